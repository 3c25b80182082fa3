"""Pure grbl-like motion model: G-code lines -> planned blocks -> seconds.

The model follows grbl 1.1's planner closely enough to predict job times within a few percent:

* each G0/G1 line is one block with a nominal speed (F or the axis max rates for G0, limited by
  every axis' ``$11x`` max rate) and an acceleration limited by every axis' ``$12x``;
* the speed at a junction is capped by grbl's junction-deviation rule (``$11``)::

      sin(θ/2) = sqrt((1 - cos θ) / 2)        θ = angle between the two moves
      v_junction² = a · δ · sin(θ/2) / (1 - sin(θ/2))

* the planner holds at most ``planner_blocks`` blocks (15 on grbl 1.1) and always plans to stop at
  the end of the last one it holds, so short segments cannot reach full speed;
* each block is a trapezoid (or triangle) between its entry and exit speeds.

:func:`motion_time` is the "planner always fed" ideal. The simulator uses :func:`block_duration`
with whatever blocks it actually holds, so a starved planner is slower, as on a real machine.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace

from crown_edge.drivers.grbl.protocol import words_of

AXES = "XYZA"
"""Axis letters in order. A (a rotary, in degrees, as on grblHAL) is optional in the simulator."""
_DEFAULT_RATE = (6000.0, 6000.0, 1000.0, 18000.0)
_DEFAULT_ACCEL = (2000.0, 2000.0, 100.0, 1800.0)


@dataclass(frozen=True, slots=True)
class MotionSettings:
    """The grbl settings the motion model needs (units: mm, mm/min, mm/s²; A in degrees).

    ``max_rate`` and ``acceleration`` list X, Y, Z and optionally A; a missing A takes the
    default.
    """

    max_rate: tuple[float, ...] = _DEFAULT_RATE
    """``$110..$113`` in mm/min."""
    acceleration: tuple[float, ...] = _DEFAULT_ACCEL
    """``$120..$123`` in mm/s²."""
    junction_deviation: float = 0.01
    """``$11`` in mm."""
    planner_blocks: int = 15

    def rate(self, axis: int) -> float:
        """Max rate of axis ``axis`` (0 = X) in units/min."""
        return self.max_rate[axis] if axis < len(self.max_rate) else _DEFAULT_RATE[axis]

    def accel(self, axis: int) -> float:
        """Acceleration of axis ``axis`` (0 = X) in units/s²."""
        return self.acceleration[axis] if axis < len(self.acceleration) else _DEFAULT_ACCEL[axis]

    @classmethod
    def from_grbl(cls, settings: dict[int, float], planner_blocks: int = 15) -> MotionSettings:
        """Build from a ``$$`` dump (number -> value); missing numbers keep the defaults."""
        base = cls(planner_blocks=planner_blocks)
        axes = range(len(AXES))
        return replace(
            base,
            max_rate=tuple(settings.get(110 + i, base.rate(i)) for i in axes),
            acceleration=tuple(settings.get(120 + i, base.accel(i)) for i in axes),
            junction_deviation=settings.get(11, base.junction_deviation),
        )


@dataclass(frozen=True, slots=True)
class Block:
    """One planned straight move (or a dwell when ``length`` is 0 and ``dwell`` > 0)."""

    length: float
    nominal_speed: float
    """mm/s"""
    acceleration: float
    """mm/s² along the move"""
    max_entry_speed: float
    """mm/s: junction limit with the previous block"""
    unit: tuple[float, ...] = (0.0, 0.0, 0.0, 0.0)
    dwell: float = 0.0
    line_index: int = -1


@dataclass(slots=True)
class ModalState:
    """The bits of G-code modal state the motion model tracks between lines."""

    position: list[float] = field(default_factory=lambda: [0.0] * len(AXES))
    motion: int = 0
    feed: float = 0.0
    absolute: bool = True
    scale: float = 1.0
    """1.0 for G21 (mm), 25.4 for G20 (inch)."""


def words(line: str) -> list[tuple[str, float]]:
    """The (letter, value) words of a G-code line, comments removed, upper-cased."""
    return words_of(line)


def _junction_speed(prev: Block | None, unit: tuple[float, ...], accel: float, jd: float) -> float:
    if prev is None or prev.length == 0.0:
        return 0.0
    cos_theta = -sum(a * b for a, b in zip(prev.unit, unit, strict=True))
    if cos_theta > 0.999999:
        return 0.0  # full reversal
    if cos_theta < -0.999999:
        return math.inf  # straight on
    sin_half = math.sqrt(0.5 * (1.0 - cos_theta))
    return math.sqrt(accel * jd * sin_half / (1.0 - sin_half))


def block_for(
    state: ModalState,
    wordlist: Sequence[tuple[str, float]],
    settings: MotionSettings,
    prev: Block | None,
    line_index: int = -1,
) -> Block | None:
    """Update ``state`` with one line's words; return its motion block (None if no motion)."""
    target = list(state.position)
    has_axis = False
    dwell = 0.0
    gcodes = [value for letter, value in wordlist if letter == "G"]
    for value in gcodes:
        if value in (0, 1, 2, 3):
            state.motion = int(value)
        elif value == 90:
            state.absolute = True
        elif value == 91:
            state.absolute = False
        elif value == 20:
            state.scale = 25.4
        elif value == 21:
            state.scale = 1.0
    for letter, value in wordlist:
        if letter == "F":
            state.feed = value * state.scale
        elif letter in AXES:
            i = AXES.index(letter)
            mm = value * state.scale if letter != "A" else value  # A is in degrees
            target[i] = mm if state.absolute else state.position[i] + mm
            has_axis = True
        elif letter == "P" and 4 in gcodes:
            dwell = value
    if 4 in gcodes:
        return Block(0.0, 0.0, 1.0, 0.0, dwell=dwell, line_index=line_index)
    if not has_axis or any(g in (10, 28, 30, 92) for g in gcodes):
        return None  # no move, or one the model does not follow (homing, offsets)
    delta = [t - p for t, p in zip(target, state.position, strict=True)]
    length = math.sqrt(sum(d * d for d in delta))
    state.position = target
    if length == 0.0:
        return None
    unit = tuple(d / length for d in delta)
    speed = math.inf
    accel = math.inf
    for i, component in enumerate(unit):
        if component != 0.0:
            speed = min(speed, settings.rate(i) / 60.0 / abs(component))
            accel = min(accel, settings.accel(i) / abs(component))
    if state.motion != 0 and state.feed > 0:
        speed = min(speed, state.feed / 60.0)
    junction = _junction_speed(prev, unit, accel, settings.junction_deviation)
    prev_speed = prev.nominal_speed if prev is not None and prev.length > 0 else 0.0
    max_entry = min(junction, speed, prev_speed)
    return Block(length, speed, accel, max_entry, unit, line_index=line_index)


def blocks_from_lines(lines: Iterable[str], settings: MotionSettings) -> list[Block]:
    """Interpret G-code lines into motion blocks (non-motion lines produce none)."""
    state = ModalState()
    out: list[Block] = []
    prev: Block | None = None
    for index, line in enumerate(lines):
        text = line.strip()
        if not text or text.startswith("$"):
            continue
        block = block_for(state, words(text), settings, prev, index)
        if block is not None:
            out.append(block)
            prev = block if block.length > 0 else None
    return out


def trapezoid_time(length: float, v0: float, v1: float, vmax: float, accel: float) -> float:
    """Seconds to cover ``length`` from speed v0 to v1 with cruise cap vmax and acceleration."""
    if length <= 0.0:
        return 0.0
    accel_dist = max(0.0, (vmax * vmax - v0 * v0) / (2 * accel))
    decel_dist = max(0.0, (vmax * vmax - v1 * v1) / (2 * accel))
    if accel_dist + decel_dist <= length:
        cruise = length - accel_dist - decel_dist
        return (vmax - v0) / accel + (vmax - v1) / accel + cruise / vmax
    peak = math.sqrt(max(0.0, (2 * accel * length + v0 * v0 + v1 * v1) / 2))
    peak = max(peak, v0, v1)
    return max(0.0, (peak - v0) / accel) + max(0.0, (peak - v1) / accel)


def exit_speed(window: Sequence[Block], entry: float) -> float:
    """Exit speed of ``window[0]`` when the planner holds ``window`` and must stop after it."""
    if not window:
        return 0.0
    # Reverse pass: the fastest entry from which each block can still slow to the next one.
    next_entry = 0.0
    entries = [0.0] * len(window)
    for i in range(len(window) - 1, 0, -1):
        block = window[i]
        reachable = math.sqrt(next_entry**2 + 2 * block.acceleration * block.length)
        entries[i] = min(block.max_entry_speed, reachable)
        next_entry = entries[i]
    first = window[0]
    if len(window) == 1:
        return 0.0
    # Forward limit: what block 0 can reach from its entry speed.
    forward = math.sqrt(entry * entry + 2 * first.acceleration * first.length)
    return min(entries[1], forward)


def block_duration(window: Sequence[Block], entry: float) -> tuple[float, float]:
    """(seconds, exit speed) of ``window[0]`` entered at ``entry`` with ``window`` planned."""
    block = window[0]
    if block.length == 0.0:
        return block.dwell, 0.0
    for j, later in enumerate(window):
        if later.length == 0.0:  # a dwell ends lookahead: the machine stops there
            window = window[:j]
            break
    v1 = exit_speed(window, entry)
    return trapezoid_time(block.length, entry, v1, block.nominal_speed, block.acceleration), v1


def plan_durations(blocks: Sequence[Block], planner_blocks: int) -> list[float]:
    """Per-block seconds with the planner always holding ``planner_blocks`` blocks (or the rest)."""
    out: list[float] = []
    entry = 0.0
    for i in range(len(blocks)):
        window = blocks[i : i + planner_blocks]
        seconds, entry = block_duration(window, min(entry, blocks[i].max_entry_speed))
        out.append(seconds)
    return out


def motion_time(lines: Iterable[str], settings: MotionSettings | None = None) -> float:
    """Seconds grbl needs to execute ``lines`` when its planner is always fed (the ideal)."""
    chosen = settings or MotionSettings()
    blocks = blocks_from_lines(lines, chosen)
    return sum(plan_durations(blocks, chosen.planner_blocks))


@dataclass(frozen=True, slots=True)
class Trapezoid:
    """One block's speed profile: speed up from ``entry`` to ``peak``, cruise, brake to ``exit``.

    Lets the simulator say where a block is and how fast it goes at any instant, as grbl's
    status report does (``MPos`` and the ``FS`` feed). Speeds in mm/s, lengths in mm.
    """

    length: float
    entry: float
    exit: float
    peak: float
    acceleration: float

    @classmethod
    def of(cls, length: float, v0: float, v1: float, vmax: float, accel: float) -> Trapezoid:
        """The profile :func:`trapezoid_time` times: same peak speed, same duration."""
        if length <= 0.0:
            return cls(0.0, 0.0, 0.0, 0.0, accel)
        accel_dist = max(0.0, (vmax * vmax - v0 * v0) / (2 * accel))
        decel_dist = max(0.0, (vmax * vmax - v1 * v1) / (2 * accel))
        if accel_dist + decel_dist <= length:
            peak = vmax
        else:
            peak = math.sqrt(max(0.0, (2 * accel * length + v0 * v0 + v1 * v1) / 2))
            peak = max(peak, v0, v1)
        return cls(length, v0, v1, peak, accel)

    @property
    def _ramp_up(self) -> float:
        return max(0.0, (self.peak - self.entry) / self.acceleration)

    @property
    def _ramp_down(self) -> float:
        return max(0.0, (self.peak - self.exit) / self.acceleration)

    @property
    def _cruise(self) -> float:
        if self.peak <= 0.0:
            return 0.0
        up = (self.peak + self.entry) / 2 * self._ramp_up
        down = (self.peak + self.exit) / 2 * self._ramp_down
        return max(0.0, self.length - up - down) / self.peak

    @property
    def duration(self) -> float:
        """Seconds the block takes."""
        if self.length <= 0.0:
            return 0.0
        return self._ramp_up + self._cruise + self._ramp_down

    def speed_at(self, t: float) -> float:
        """Speed ``t`` seconds into the block (0 before it starts and after it ends)."""
        if self.length <= 0.0 or t < 0.0 or t > self.duration:
            return 0.0
        up, cruise = self._ramp_up, self._cruise
        if t < up:
            return self.entry + self.acceleration * t
        if t < up + cruise:
            return self.peak
        return max(0.0, self.peak - self.acceleration * (t - up - cruise))

    def distance_at(self, t: float) -> float:
        """Millimetres covered ``t`` seconds into the block, within ``[0, length]``."""
        if self.length <= 0.0 or t <= 0.0:
            return 0.0
        up, cruise = self._ramp_up, self._cruise
        a = self.acceleration
        if t < up:
            done = self.entry * t + a * t * t / 2
        elif t < up + cruise:
            done = (self.entry + self.peak) / 2 * up + self.peak * (t - up)
        else:
            down = min(t - up - cruise, self._ramp_down)
            done = (
                (self.entry + self.peak) / 2 * up
                + self.peak * cruise
                + self.peak * down
                - a * down * down / 2
            )
        return min(self.length, max(0.0, done))


def block_profile(window: Sequence[Block], entry: float) -> Trapezoid:
    """The speed profile of ``window[0]`` entered at ``entry`` with ``window`` planned."""
    block = window[0]
    if block.length == 0.0:
        return Trapezoid(0.0, 0.0, 0.0, 0.0, block.acceleration)
    _, v1 = block_duration(window, entry)
    return Trapezoid.of(block.length, entry, v1, block.nominal_speed, block.acceleration)


@dataclass(slots=True)
class RunningBlock:
    """A block the steppers execute, on the loop clock: where it started, its profile, its pauses.

    Pure: the caller passes loop times; ``time_scale`` turns loop seconds into model seconds.
    """

    profile: Trapezoid
    unit: tuple[float, ...]
    origin: list[float]
    start: float
    """Loop time the block started."""
    paused: float = 0.0
    """Loop seconds spent paused so far."""
    paused_since: float | None = None

    def elapsed(self, now: float, time_scale: float) -> float:
        """Model seconds into the block at loop time ``now``."""
        if time_scale == 0:
            return self.profile.duration
        stopped = self.paused + (now - self.paused_since if self.paused_since is not None else 0)
        return max(0.0, (now - self.start - stopped) / time_scale)

    def position(self, t: float) -> list[float]:
        """The machine position ``t`` model seconds into the block."""
        done = self.profile.distance_at(t)
        return [p + u * done for p, u in zip(self.origin, self.unit, strict=True)]
