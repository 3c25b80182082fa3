"""Engraving time estimate: a GRBL 1.1-style motion planner over the program's moves.

Models what sets the time on a real controller: per-axis acceleration and maximum rate scaled by
the move direction (``limit_value_by_axis_maximum``), junction deviation cornering speed, a
look-ahead of ``planner_blocks`` blocks (15 on grbl 1.1: the exit speed of a block is also limited
by stopping within the blocks behind it in the buffer), trapezoidal speed profiles, G0 at the
rapid rate, and a full stop at spindle/coolant changes (``M4``/``M5``/``M8``/``M9`` synchronise the
buffer). Machine units are mm for X and Y (also GRBL's Y-as-rotary) and degrees for A.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from crown_edge.errors import ConfigError
from crown_edge.toolpath.gcode import Move

_WORD = re.compile(r"([A-Z])(-?\d+(?:\.\d*)?)")


@dataclass(frozen=True, slots=True)
class MachineParams:
    """Motion settings of a GRBL machine (the ``$`` settings in brackets)."""

    acceleration_mm_s2: float = 500.0
    """X and Y acceleration ($120, $121)."""
    max_rate_mm_min: float = 6000.0
    """X and Y maximum rate, used for G0 ($110, $111)."""
    junction_deviation_mm: float = 0.01
    """Cornering tolerance ($11)."""
    rotary_acceleration: float = 500.0
    """A axis acceleration in deg/s² ($123)."""
    rotary_max_rate: float = 6000.0
    """A axis maximum rate in deg/min ($113)."""
    planner_blocks: int | None = 15
    """Planner buffer size; None plans the whole program at once."""

    def __post_init__(self) -> None:
        for key in (
            "acceleration_mm_s2",
            "max_rate_mm_min",
            "rotary_acceleration",
            "rotary_max_rate",
        ):
            value = getattr(self, key)
            if not (math.isfinite(value) and value > 0):
                raise ConfigError("machine", key, f"got {value!r}", "a number > 0")
        if not (math.isfinite(self.junction_deviation_mm) and self.junction_deviation_mm >= 0):
            raise ConfigError("machine", "junction_deviation_mm", "must be >= 0")
        if self.planner_blocks is not None and self.planner_blocks < 2:
            raise ConfigError("machine", "planner_blocks", "must be >= 2 or unset")


@dataclass(frozen=True, slots=True)
class Estimate:
    """Motion time of a program, split into cutting and rapid moves."""

    total_s: float
    cut_s: float
    rapid_s: float
    blocks: int


def parse_moves(lines: Iterable[str]) -> list[Move | None]:
    """Moves from G-code lines; ``None`` marks a synchronising M-code (the planner drains).

    Reads the emitter's grammar (``G0``/``G1`` with X, Y, A, F; ``M4``/``M5``/``M8``/``M9``);
    other lines are ignored.
    """
    pos = [0.0, 0.0, 0.0]
    feed = 0.0
    out: list[Move | None] = []
    for raw in lines:
        line = raw.split("(", 1)[0].split(";", 1)[0].strip().upper()
        if not line:
            continue
        words = dict(_WORD.findall(line.replace(" ", "")))
        if "M" in words and words["M"] in ("3", "4", "5", "8", "9"):
            out.append(None)
        g = words.get("G")
        if g is None or g not in ("0", "1", "00", "01"):
            continue
        if "F" in words:
            feed = float(words["F"])
        for i, axis in enumerate("XYA"):
            if axis in words:
                pos[i] = float(words[axis])
        out.append(Move(g in ("0", "00"), (pos[0], pos[1], pos[2]), feed))
    return out


def estimate_moves(
    moves: Sequence[Move | None],
    machine: MachineParams | None = None,
    start: tuple[float, float, float] = (0.0, 0.0, 0.0),
) -> Estimate:
    """Motion time of ``moves`` (from :func:`parse_moves` or the emitter) on ``machine``."""
    m = machine or MachineParams()
    # Reciprocal axis limits: limit_value_by_axis_maximum(v, u) = 1 / max(|u_i| / v_i).
    ia_xy, ia_a = 1.0 / m.acceleration_mm_s2, 1.0 / m.rotary_acceleration
    ir_xy, ir_a = 60.0 / m.max_rate_mm_min, 60.0 / m.rotary_max_rate
    jd = m.junction_deviation_mm
    sqrt = math.sqrt
    lengths: list[float] = []
    acc: list[float] = []
    nominal_sq: list[float] = []
    max_entry: list[float] = []
    rapid: list[bool] = []
    x, y, a = start
    pux = puy = pua = 0.0
    at_rest = True
    prev_nominal_sq = 0.0
    for move in moves:
        if move is None:
            at_rest = True  # the planner drains: next block starts from rest
            continue
        tx, ty, ta = move.target
        dx, dy, da = tx - x, ty - y, ta - a
        length = sqrt(dx * dx + dy * dy + da * da)
        if length < 1e-6:
            continue
        x, y, a = tx, ty, ta
        adx = dx if dx >= 0.0 else -dx
        ady = dy if dy >= 0.0 else -dy
        ada = da if da >= 0.0 else -da
        dxy = adx if adx > ady else ady
        if ada == 0.0:
            block_acc = length / (dxy * ia_xy)
            rate = length / (dxy * ir_xy)
        else:
            block_acc = length / max(dxy * ia_xy, ada * ia_a)
            rate = length / max(dxy * ir_xy, ada * ir_a)
        ux, uy, ua = dx / length, dy / length, da / length
        if move.rapid:
            speed = rate
        else:
            speed = move.feed_mm_min / 60.0
            if speed > rate:
                speed = rate
        if speed < 1e-3:
            speed = 1e-3
        v_sq = speed * speed
        if at_rest:
            entry = 0.0
        else:
            cos_theta = -(pux * ux + puy * uy + pua * ua)
            if cos_theta > 0.999999:
                junction = 0.0
            elif cos_theta < -0.999999:
                junction = math.inf
            else:
                jx, jy, ja = ux - pux, uy - puy, ua - pua
                norm = sqrt(jx * jx + jy * jy + ja * ja)
                jx = jx if jx >= 0.0 else -jx
                jy = jy if jy >= 0.0 else -jy
                jxy = (jx if jx > jy else jy) * ia_xy
                if ja != 0.0:
                    ja = (ja if ja >= 0.0 else -ja) * ia_a
                    if ja > jxy:
                        jxy = ja
                sin_half = sqrt(0.5 * (1.0 - cos_theta))
                junction = norm / jxy * jd * sin_half / (1.0 - sin_half)
            entry = junction if junction < v_sq else v_sq
            if prev_nominal_sq < entry:
                entry = prev_nominal_sq
        lengths.append(length)
        acc.append(block_acc)
        nominal_sq.append(v_sq)
        max_entry.append(entry)
        rapid.append(move.rapid)
        pux, puy, pua = ux, uy, ua
        at_rest = False
        prev_nominal_sq = v_sq
    n = len(lengths)
    if n == 0:
        return Estimate(0.0, 0.0, 0.0, 0)
    two_al = [2 * acc[k] * lengths[k] for k in range(n)]
    # Backward: ``allowed`` is the fastest entry (squared) from which the rest can still stop;
    # the exit of block k is also capped by stopping within the next ``horizon`` blocks, the
    # ones behind it in grbl's buffer. In squared speeds both are min-plus sums, so the capped
    # exit is min(allowed[k + 1], sum of 2·a·L over the window).
    horizon = n if m.planner_blocks is None else max(1, m.planner_blocks - 1)
    exit_bound = [0.0] * n
    allowed_next = 0.0
    window = 0.0
    for k in range(n - 1, -1, -1):
        if k + 1 < n:
            window += two_al[k + 1]
            if k + 1 + horizon < n:
                window -= two_al[k + 1 + horizon]
            bound = allowed_next if allowed_next < window else window
            exit_bound[k] = bound if bound > 0.0 else 0.0
        reach = allowed_next + two_al[k]
        allowed_next = max_entry[k] if max_entry[k] < reach else reach
    # Forward: accelerate as far as allowed; each block is a trapezoid or a triangle.
    cut_s = rapid_s = 0.0
    v0_sq = 0.0
    for k in range(n):
        v1_sq = v0_sq + two_al[k]
        if exit_bound[k] < v1_sq:
            v1_sq = exit_bound[k]
        vn_sq = nominal_sq[k]
        a2 = 2.0 * acc[k]
        length = lengths[k]
        d_acc = (vn_sq - v0_sq) / a2
        d_dec = (vn_sq - v1_sq) / a2
        if d_acc + d_dec <= length:
            vn = sqrt(vn_sq)
            t = (2.0 * vn - sqrt(v0_sq) - sqrt(v1_sq)) / acc[k] + (length - d_acc - d_dec) / vn
        else:
            peak = sqrt(max(v0_sq, v1_sq, 0.5 * (a2 * length + v0_sq + v1_sq)))
            t = (2.0 * peak - sqrt(v0_sq) - sqrt(v1_sq)) / acc[k]
        if rapid[k]:
            rapid_s += t
        else:
            cut_s += t
        v0_sq = v1_sq
    return Estimate(cut_s + rapid_s, cut_s, rapid_s, n)


def estimate_gcode(lines: Iterable[str], machine: MachineParams | None = None) -> Estimate:
    """Motion time of a G-code program (the emitter's grammar) on ``machine``."""
    return estimate_moves(parse_moves(lines), machine)
