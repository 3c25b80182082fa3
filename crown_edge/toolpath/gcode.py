"""G-code emission from a fixed grammar, and the grammar checker.

The emitter writes only these lines (each at most 80 characters)::

    (comment)              fixed text the code writes itself, and the validated job id
    G21 G90                millimetres, absolute
    G0 X.. Y.. A..         rapid, numeric axis words only
    G1 X.. Y.. A.. F..     cut, numeric axis words and feed
    M4 S..                 laser on, dynamic power (GRBL laser mode, $32=1)
    M5                     laser off
    M8 / M9                air assist on / off

Customer text never appears: glyphs become coordinates before they get here. The controller must
be in laser mode ($32=1) so the laser is off during G0 moves; the GRBL driver checks that.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from crown_edge.errors import ValidationError
from crown_edge.models import MaterialProfile
from crown_edge.toolpath.fonts import Polyline
from crown_edge.toolpath.surface import SurfaceMapping

MAX_LINE = 80

_NUM = r"-?[0-9]{1,6}\.[0-9]{3}"
_COMMENT = (
    r"\((?:crown-edge toolpath v1|job [A-Za-z0-9._-]{1,64}|pass [0-9]{1,2} of [0-9]{1,2}|end)\)"
)
_AXES = rf"(?: X{_NUM})?(?: Y{_NUM})?(?: A{_NUM})?"
GRAMMAR = re.compile(
    rf"{_COMMENT}|G21 G90|G0(?= [XYA]){_AXES}|G1(?= [XYA]){_AXES}(?: F[0-9]{{1,6}})?"
    r"|M4 S[0-9]{1,4}|M5|M8|M9",
    re.ASCII,
)
"""Every emitted line matches this regular expression in full (see :func:`is_grammar_line`)."""

JOB_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


def is_grammar_line(line: str) -> bool:
    """True when ``line`` is one the emitter may write (full match, at most 80 characters)."""
    return len(line) <= MAX_LINE and GRAMMAR.fullmatch(line) is not None


def grammar_violations(lines: Iterable[str]) -> list[tuple[int, str]]:
    """``(index, line)`` of every line outside the grammar; empty means the program is clean."""
    return [(i, line) for i, line in enumerate(lines) if not is_grammar_line(line)]


class Move(NamedTuple):
    """One motion block as the controller sees it: target on X, Y, A (machine units).

    A named tuple rather than a frozen dataclass: a program has thousands and construction cost
    shows in the render time.
    """

    rapid: bool
    target: tuple[float, float, float]
    feed_mm_min: float


@dataclass(frozen=True, slots=True)
class Program:
    """Emitted G-code plus the motion it encodes and surface-side statistics."""

    lines: tuple[str, ...]
    moves: tuple[Move | None, ...]
    """Motion blocks; ``None`` where an M-code makes the controller stop and synchronise."""
    segments: int
    cut_length_mm: float
    travel_length_mm: float


def _fmt(value: float) -> str:
    text = f"{value:.3f}"
    return "0.000" if text == "-0.000" else text


def emit_gcode(
    strokes: Sequence[Polyline],
    mapping: SurfaceMapping,
    material: MaterialProfile,
    *,
    job_id: str,
    start: tuple[float, float] = (0.0, 0.0),
) -> Program:
    """Write the program for ordered surface ``strokes`` with the material's power, feed, passes.

    Passes alternate direction (odd passes run the order backwards, each stroke reversed) so a
    second pass starts where the first ended. ``job_id`` must match ``[A-Za-z0-9._-]{1,64}``.
    """
    if not JOB_ID.fullmatch(job_id):
        raise ValidationError("job id not allowed in G-code", key="job_id")
    power = int(material.power)
    if not 0 <= power <= 1000:
        raise ValidationError(f"laser power {power} out of range", key="power", allowed="0..1000")
    feed = float(material.feed_mm_min)
    if not (math.isfinite(feed) and 1 <= feed <= 100_000):
        raise ValidationError(f"feed {feed} out of range", key="feed_mm_min")
    passes = int(material.passes)
    if not 1 <= passes <= 20:
        raise ValidationError(f"passes {passes} out of range", key="passes", allowed="1..20")

    us = [u for stroke in strokes for u, _ in stroke]
    vs = [v for stroke in strokes for _, v in stroke]
    if us and not math.isfinite(sum(us) + sum(vs)):
        raise ValidationError("non-finite coordinate in strokes", key="strokes")
    if us:
        corners = [mapping.to_machine(u, v) for u in (min(us), max(us)) for v in (min(vs), max(vs))]
        reach = max(abs(c) for corner in corners for c in corner)
        if not reach < 999_999:
            raise ValidationError(f"machine coordinate {reach} out of range", key="strokes")
    name0, name1 = mapping.axes
    a_axis = name1 == "A"
    to_machine = mapping.to_machine
    rotary = mapping.is_rotary
    scale = mapping.rotary_scale
    lines: list[str] = ["(crown-edge toolpath v1)", f"(job {job_id})", "G21 G90"]
    lines.append("M8" if material.air_assist else "M9")
    append = lines.append
    moves: list[Move | None] = []
    add_move = moves.append
    c0 = c1 = "0.000"  # machine position as printed
    f0 = f1 = 0.0
    su, sv = start
    cur_f = ""
    flat_f = max(1, min(round(feed), 999_999))
    segments = 0
    cut = 0.0
    travel = 0.0
    laser_on = False
    hypot = math.hypot

    for p in range(passes):
        if passes > 1:
            append(f"(pass {p + 1} of {passes})")
        ordered: Iterable[Polyline] = strokes if p % 2 == 0 else (s[::-1] for s in strokes[::-1])
        for stroke in ordered:
            if not stroke:
                continue
            u0, v0 = stroke[0]
            jump = hypot(u0 - su, v0 - sv)
            if jump > 1e-9:
                travel += jump
                m0, m1 = to_machine(u0, v0) if rotary else (u0, v0)
                t0, t1 = _fmt(m0), _fmt(m1)
                if t0 != c0 or t1 != c1:
                    words = "G0"
                    if t0 != c0:
                        words += f" {name0}{t0}"
                        c0, f0 = t0, float(t0)
                    if t1 != c1:
                        words += f" {name1}{t1}"
                        c1, f1 = t1, float(t1)
                    append(words)
                    add_move(Move(True, (f0, 0.0, f1) if a_axis else (f0, f1, 0.0), 0.0))
            su, sv = u0, v0
            if not laser_on:
                append(f"M4 S{power}")
                add_move(None)
                laser_on = True
            for u, v in stroke[1:]:
                du, dv = u - su, v - sv
                length = hypot(du, dv)
                if length <= 1e-9:
                    continue
                if rotary:  # SurfaceMapping.to_machine, inlined: this loop runs per point
                    m0, m1 = v, u * scale
                else:
                    m0, m1 = u, v
                t0 = f"{m0:.3f}"
                t1 = f"{m1:.3f}"
                if t0 == "-0.000":
                    t0 = "0.000"
                if t1 == "-0.000":
                    t1 = "0.000"
                if t0 == c0 and t1 == c1:
                    continue  # below the printed resolution; the next point carries on
                if rotary:  # keep the surface speed: F applies to the machine-axis length
                    f_value = round(feed * hypot(du * scale, dv) / length)
                    f_value = max(1, min(f_value, 999_999))
                else:
                    f_value = flat_f
                words = "G1"
                if t0 != c0:
                    words += f" {name0}{t0}"
                    c0, f0 = t0, float(t0)
                if t1 != c1:
                    words += f" {name1}{t1}"
                    c1, f1 = t1, float(t1)
                f_txt = f"F{f_value}"
                if f_txt != cur_f:
                    words += " " + f_txt
                    cur_f = f_txt
                append(words)
                add_move(Move(False, (f0, 0.0, f1) if a_axis else (f0, f1, 0.0), f_value))
                cut += length
                segments += 1
                su, sv = u, v
    lines.append("M5")
    lines.append("M9")
    lines.append("(end)")
    return Program(tuple(lines), tuple(moves), segments, cut, travel)
