"""The grbl 1.1 controller logic of the simulator: lines in, responses and planner entries out.

No I/O and no clock: :class:`~crown_edge.sim.grbl.GrblSimulator` feeds it lines and real-time
bytes at the emulated baud rate and executes the planner entries in (scaled) real time.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass, field

from crown_edge.drivers.grbl import codes
from crown_edge.drivers.grbl.protocol import MAX_LINE_CHARS, effective_length
from crown_edge.sim.motion import AXES, Block, ModalState, MotionSettings, block_for

VERSION = "1.1h"
BUILD_DATE = "20190825"
BANNER = f"Grbl {VERSION} ['$' for help]"

DEFAULT_SETTINGS: dict[int, float] = {
    0: 10,
    1: 25,
    2: 0,
    3: 0,
    4: 0,
    5: 0,
    6: 0,
    10: 1,
    11: 0.010,
    12: 0.002,
    13: 0,
    20: 0,
    21: 0,
    22: 0,
    23: 0,
    24: 25.0,
    25: 500.0,
    26: 250,
    27: 1.0,
    30: 1000,
    31: 0,
    32: 1,
    100: 80.0,
    101: 80.0,
    102: 80.0,
    110: 6000.0,
    111: 6000.0,
    112: 1000.0,
    120: 2000.0,
    121: 2000.0,
    122: 100.0,
    130: 400.0,
    131: 300.0,
    132: 50.0,
}
"""A laser's ``$$``: laser mode on ($32=1), homing off ($22=0) so the machine starts Idle."""

_JOB_COMMENT = re.compile(r"^\(\s*job(?:[\s_-]*id)?\s*[:=]?\s*([^\s)]+)", re.IGNORECASE)
_LETTERS = frozenset("GMFSPNTIJKRL")
_G_SUPPORTED = frozenset(
    {0, 1, 2, 3, 4, 10, 17, 18, 19, 20, 21, 28, 30, 53, 54, 90, 91, 92, 93, 94}
)
_M_SUPPORTED = frozenset({0, 1, 2, 3, 4, 5, 7, 8, 9, 30})


def job_id_of(line: str) -> str | None:
    """The job id of a ``(job ID)`` / ``(job: ID)`` / ``(job_id=ID)`` comment line, else None."""
    match = _JOB_COMMENT.match(line.strip())
    return match[1] if match else None


@dataclass(slots=True)
class ProgramRecord:
    """One program the simulator received: its job id and every line, as received and executed."""

    job_id: str | None
    received: list[str] = field(default_factory=list)
    executed: list[str] = field(default_factory=list)
    interrupted: bool = False


@dataclass(slots=True)
class Entry:
    """A line waiting in the planner (motion) or behind it (modal changes keep their order)."""

    text: str
    block: Block | None
    record: ProgramRecord | None
    spindle: tuple[int, float]
    """(M3/M4/M5 as 3/4/5, S) in force for this line."""
    line_number: int | None = None
    cutting: bool = False
    """True for G1/G2/G3 moves: the laser fires on them (M3/M4 with S > 0)."""


class GrblCore:
    """grbl's parser, settings, state and planner queue."""

    def __init__(
        self,
        settings: dict[int, float] | None = None,
        *,
        planner_blocks: int = 15,
        rx_buffer: int = 128,
        axes: str = "XYZ",
    ) -> None:
        if axes not in ("XYZ", "XYZA"):
            raise ValueError("axes must be XYZ (grbl 1.1) or XYZA (a grblHAL-style rotary A)")
        self.axes = axes
        self.letters = _LETTERS | frozenset(axes)
        self.settings: dict[int, float] = dict(DEFAULT_SETTINGS)
        if "A" in axes:  # steps/deg, deg/min, deg/s², max travel of the rotary
            self.settings.update({103: 8.889, 113: 18000.0, 123: 1800.0, 133: 360.0})
        self.settings.update(settings or {})
        self.planner_blocks = planner_blocks
        self.rx_buffer = rx_buffer
        self.queue: deque[Entry] = deque()
        self.programs: list[ProgramRecord] = []
        self.record: ProgramRecord | None = None
        self.modal = ModalState()
        self.position = [0.0] * len(AXES)
        self.state = "Idle"
        self.alarm: int | None = None
        self.critical = False
        """Hard/soft limit: grbl ignores everything but a reset (``[MSG:Reset to continue]``)."""
        self.door_open = False
        self.hold = False
        self.spindle = (5, 0.0)
        self.last_block: Block | None = None
        self.line_number: int | None = None
        self.reports = 0
        self.power_up()

    # --- lifecycle -------------------------------------------------------------------------------

    def motion_settings(self) -> MotionSettings:
        """The current ``$$`` values as a motion model configuration."""
        return MotionSettings.from_grbl(self.settings, self.planner_blocks)

    @property
    def homing_enabled(self) -> bool:
        """``$22``: homing cycle enabled (the machine then starts locked in Alarm)."""
        return bool(self.settings.get(22, 0))

    def power_up(self) -> list[str]:
        """Reset state as after power-up; return the lines grbl prints."""
        self.abort()
        self.alarm = None
        self.critical = False
        out = ["", BANNER]
        if self.homing_enabled:
            self.state = "Alarm"
            out.append("[MSG:'$H'|'$X' to unlock]")
        else:
            self.state = "Door" if self.door_open else "Idle"
        return out

    def abort(self) -> bool:
        """Drop everything queued; True if the machine was moving (a reset then raises ALARM:3)."""
        moving = bool(self.queue) and self.state in ("Run", "Jog", "Home")
        if self.record is not None and self.queue:
            self.record.interrupted = True
        self.queue.clear()
        self.modal = ModalState(position=list(self.position))
        self.hold = False
        self.spindle = (5, 0.0)
        self.last_block = None
        return moving

    def soft_reset(self) -> list[str]:
        """Ctrl-X: stop at once, keep an alarm if one was raised or motion was cut."""
        moving = self.abort()
        self.critical = False
        out: list[str] = []
        if moving:
            self.alarm = codes.ABORT_DURING_CYCLE
            out.append(f"ALARM:{self.alarm}")
        out += ["", BANNER]
        if self.alarm is not None or (self.homing_enabled and self.state == "Alarm"):
            self.state = "Alarm"
            out.append("[MSG:'$H'|'$X' to unlock]")
        else:
            self.state = "Door" if self.door_open else "Idle"
        return out

    def raise_alarm(self, code: int) -> list[str]:
        """Raise ``ALARM:code``: motion stops, queued lines are dropped, G-code is locked."""
        self.abort()
        self.alarm = code
        self.state = "Alarm"
        out = [f"ALARM:{code}"]
        if code in (codes.HARD_LIMIT, codes.SOFT_LIMIT):
            self.critical = True
            out.append("[MSG:Reset to continue]")
        return out

    # --- queue -----------------------------------------------------------------------------------

    @property
    def blocks_queued(self) -> int:
        """Motion blocks in the planner."""
        return sum(1 for e in self.queue if e.block is not None)

    @property
    def planner_full(self) -> bool:
        """True when a new motion line would have to wait for a block to finish."""
        return self.blocks_queued >= self.planner_blocks

    def window(self) -> list[Block]:
        """The blocks the planner holds, oldest first."""
        return [e.block for e in self.queue if e.block is not None]

    def finish(self, entry: Entry) -> None:
        """Account an entry as executed (the simulator calls this when its time has passed)."""
        if entry.record is not None:
            entry.record.executed.append(entry.text)
        if entry.block is not None and entry.block.length > 0:
            self.position = [
                p + u * entry.block.length
                for p, u in zip(self.position, entry.block.unit, strict=True)
            ]
        self.spindle = entry.spindle
        if entry.line_number is not None:
            self.line_number = entry.line_number

    def update_idle(self) -> None:
        """Return to Idle / Door when the planner has run dry."""
        if not self.queue and self.state in ("Run", "Jog", "Home"):
            self.state = "Door" if self.door_open else "Idle"

    # --- lines -----------------------------------------------------------------------------------

    def execute(self, raw: str) -> list[str]:
        """Process one received line (no newline); return the response lines (ok/error last)."""
        text = raw.strip()
        job = job_id_of(text)
        if job is not None:
            self.record = ProgramRecord(job)
            self.programs.append(self.record)
        if effective_length(text) > MAX_LINE_CHARS:
            return ["error:11"]
        clean = re.sub(r"\([^)]*\)|;.*$", "", text).replace(" ", "").upper()
        if not clean:
            self._received(text)
            if self.record is not None:
                self.record.executed.append(text)  # a comment runs as soon as it is read
            return ["ok"]
        if clean.startswith("$"):
            return self._system(clean)
        if self.state in ("Alarm",):
            return [f"error:{codes.GCODE_LOCK}"]
        result = self._gcode(text, clean)
        if result == "ok":
            self._received(text)
        return [result]

    def _received(self, text: str) -> None:
        if self.record is not None:
            self.record.received.append(text)

    def _system(self, clean: str) -> list[str]:
        if clean == "$":
            return ["[HLP:$$ $# $G $I $N $x=val $Nx=line $J=line $SLP $C $X $H ~ ! ? ctrl-x]", "ok"]
        if clean == "$$":
            return [f"${n}={_fmt(v)}" for n, v in sorted(self.settings.items())] + ["ok"]
        if clean == "$I":
            return [
                f"[VER:{VERSION}.{BUILD_DATE}:]",
                f"[OPT:VL,{self.planner_blocks},{self.rx_buffer}]",
                "ok",
            ]
        if clean == "$G":
            motion = f"G{self.modal.motion}"
            units = "G21" if self.modal.scale == 1.0 else "G20"
            dist = "G90" if self.modal.absolute else "G91"
            mode, power = self.spindle
            feed = _fmt(self.modal.feed)
            gc = f"[GC:{motion} G54 G17 {units} {dist} G94 M{mode} M9 T0 F{feed} S{_fmt(power)}]"
            return [gc, "ok"]
        if clean == "$#":
            zero = "0.000,0.000,0.000"
            return [f"[G54:{zero}]", f"[G92:{zero}]", "[TLO:0.000]", f"[PRB:{zero}:0]", "ok"]
        if clean == "$X":
            if self.state == "Alarm":
                self.alarm = None
                self.state = "Door" if self.door_open else "Idle"
                return ["[MSG:Caution: Unlocked]", "ok"]
            return ["ok"]
        if clean == "$H":
            if not self.homing_enabled:
                return [f"error:{codes.SETTING_DISABLED}"]
            if self.door_open:
                return [f"error:{codes.CHECK_DOOR}"]
            if self.queue or self.state not in ("Idle", "Alarm"):
                return [f"error:{codes.NOT_IDLE}"]
            self.alarm = None
            self.state = "Home"
            return []  # the simulator answers ok when the homing cycle ends
        if clean.startswith("$J="):
            if self.state not in ("Idle", "Jog"):
                return [f"error:{codes.NOT_IDLE if self.state != 'Alarm' else codes.GCODE_LOCK}"]
            if "F" not in clean:
                return [f"error:{codes.INVALID_JOG}"]
            result = self._gcode(clean[3:], "G1" + clean[3:], jog=True)
            return [result]
        if match := re.fullmatch(r"\$(\d+)=([-+]?\d*\.?\d+)", clean):
            if self.queue or self.state not in ("Idle", "Alarm"):
                return [f"error:{codes.NOT_IDLE}"]
            self.settings[int(match[1])] = float(match[2])
            return ["ok"]
        return [f"error:{codes.INVALID_STATEMENT}"]

    def _gcode(self, text: str, clean: str, *, jog: bool = False) -> str:
        parsed: list[tuple[str, float]] = []
        for match in re.finditer(r"(.)([^A-Z]*)", clean):
            letter, number = match[1], match[2]
            if not letter.isalpha():
                return f"error:{codes.EXPECTED_COMMAND_LETTER}"
            if letter not in self.letters:
                return f"error:{codes.UNSUPPORTED_COMMAND}"
            try:
                parsed.append((letter, float(number)))
            except ValueError:
                return f"error:{codes.BAD_NUMBER_FORMAT}"
        line_number: int | None = None
        mode, power = self.spindle if not self.queue else self.queue[-1].spindle
        for letter, value in parsed:
            if letter == "G" and value not in _G_SUPPORTED:
                return f"error:{codes.UNSUPPORTED_COMMAND}"
            if letter == "M":
                if value not in _M_SUPPORTED:
                    return f"error:{codes.UNSUPPORTED_COMMAND}"
                if value in (3, 4, 5):
                    mode = int(value)
            if letter == "S":
                power = value
            if letter == "N":
                line_number = int(value)
        has_axis = any(letter in self.axes for letter, _ in parsed)
        motion_words = [v for letter, v in parsed if letter == "G" and v in (0, 1, 2, 3)]
        motion = motion_words[-1] if motion_words else self.modal.motion
        has_feed = any(letter == "F" for letter, _ in parsed) or self.modal.feed > 0
        if has_axis and motion in (1, 2, 3) and not has_feed:
            return f"error:{codes.UNDEFINED_FEED_RATE}"
        prev = self.last_block
        block = block_for(self.modal, parsed, self.motion_settings(), prev)
        if block is not None and block.length > 0:
            self.last_block = block
        elif block is not None:
            self.last_block = None
        if any(letter == "M" and v in (0, 1, 2, 30) for letter, v in parsed):
            mode, power = 5, power
        cutting = self.modal.motion != 0
        self.queue.append(Entry(text, block, self.record, (mode, power), line_number, cutting))
        if block is not None and self.state == "Idle" and not self.hold:
            self.state = "Jog" if jog else "Run"
        return "ok"

    # --- status ----------------------------------------------------------------------------------

    def status(self, *, feed: float, laser: bool, rx_free: int) -> str:
        """A ``<...>`` status report as grbl 1.1 formats it (``$10`` picks MPos/WPos and Bf)."""
        self.reports += 1
        state = self.state
        if state == "Hold":
            state = "Hold:0"
        elif state == "Door":
            state = "Door:1" if self.door_open else "Door:0"
        mask = int(self.settings.get(10, 1))
        pos = ",".join(f"{p:.3f}" for p in self.position[: len(self.axes)])
        parts = [state, f"MPos:{pos}" if mask & 1 else f"WPos:{pos}"]
        if mask & 2:
            parts.append(f"Bf:{self.planner_blocks - self.blocks_queued},{rx_free}")
        if self.line_number is not None:
            parts.append(f"Ln:{self.line_number}")
        mode, power = self.spindle
        parts.append(f"FS:{_fmt(feed)},{_fmt(power if laser else 0)}")
        pins = "D" if self.door_open else ""
        if pins:
            parts.append(f"Pn:{pins}")
        if self.reports % 10 == 1:
            parts.append("WCO:0.000,0.000,0.000")
        elif self.reports % 10 == 2:
            parts.append("Ov:100,100,100")
            if mode in (3, 4):
                parts.append("A:S")
        return "<" + "|".join(parts) + ">"


def _fmt(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.3f}"
