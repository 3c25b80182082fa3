"""The grbl 1.1 controller logic of the simulator: lines in, responses and planner entries out.

No I/O and no clock: :class:`~crown_edge.sim.grbl.GrblSimulator` feeds it lines and real-time
bytes at the emulated baud rate and executes the planner entries in (scaled) real time.

What it reproduces of grbl 1.1h (``gnea/grbl``, the default ``config.h`` build, ``[OPT:V,15,128]``):

* a soft reset (``mc_reset()``) raises ``ALARM:3`` only while the steppers move — Run, Jog, or a
  feed hold still decelerating (``Hold:1``); Home raises ``ALARM:6``. A line the main loop was
  blocked on (planner full) is answered ``ok`` but never executed (:class:`ResetPlan`);
* a feed hold decelerates (``Hold:1``) before it is complete (``Hold:0``); only a complete hold
  resumes on ``~``, and in laser mode ``DISABLE_LASER_DURING_HOLD`` stops the spindle, so the
  resume prints ``[MSG:Restoring spindle]`` when the parser's spindle state is M3/M4;
* ``$20=1`` (soft limits) is refused with ``error:10`` while homing (``$22``) is off;
* ``report.c`` formats: ``FS:`` and ``$G``'s F/S as whole numbers, ``$$`` floats with three
  decimals and flags as integers, ``A:`` with S (M3), C (M4), F (M8) and M (M7, only in a build
  with ``ENABLE_M7``: ``mist=True``).
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from crown_edge.drivers.grbl import codes
from crown_edge.drivers.grbl.protocol import MAX_LINE_CHARS, effective_length
from crown_edge.sim.grbl_gcode import (
    LETTERS,
    Words,
    parse_words,
    program_opened_by,
    without_comments,
)
from crown_edge.sim.grbl_gcode import ProgramRecord as ProgramRecord
from crown_edge.sim.grbl_gcode import job_id_of as job_id_of
from crown_edge.sim.grbl_report import (
    BANNER,
    BUILD_DATE,
    DEFAULT_SETTINGS,
    FLOOD,
    LOCKED,
    MIST,
    RESTORING_SPINDLE,
    VERSION,
    accessory_letters,
    format_setting,
    status_line,
    whole,
)
from crown_edge.sim.motion import AXES, Block, ModalState, MotionSettings, block_for

_MOTION_SETTINGS = (11, *range(110, 114), *range(120, 124))
"""The ``$$`` numbers :meth:`MotionSettings.from_grbl` reads."""

SOFT_LIMITS_NEED_HOMING = 10
"""``error:10``: ``$20=1`` refused while homing (``$22``) is off, as grbl 1.1's settings.c does."""


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
    coolant: int = 0
    """:data:`FLOOD` | :data:`MIST` in force for this line."""
    feed: float = 0.0
    """The programmed feed (mm/min): M4 scales S by current speed / this."""


@dataclass(frozen=True, slots=True)
class ResetPlan:
    """What grbl prints for a soft reset, in two bursts.

    ``alarm`` goes out at once (``ALARM:3`` when motion was cut, else nothing). ``after`` follows
    once the controller has re-initialised (after a silence when an alarm was raised): the
    trailing ``ok`` of the line the main loop was blocked on, then the banner.
    """

    alarm: list[str]
    after: list[str]


class GrblCore:
    """grbl's parser, settings, state and planner queue.

    ``mist`` builds grbl with ``ENABLE_M7`` (``[OPT:VM…]``); the default build answers M7 with
    ``error:20``.
    """

    def __init__(
        self,
        settings: dict[int, float] | None = None,
        *,
        planner_blocks: int = 15,
        rx_buffer: int = 128,
        axes: str = "XYZ",
        mist: bool = False,
    ) -> None:
        if axes not in ("XYZ", "XYZA"):
            raise ValueError("axes must be XYZ (grbl 1.1) or XYZA (a grblHAL-style rotary A)")
        self.axes = axes
        self.letters = LETTERS | frozenset(axes)
        self.mist = mist
        self.settings: dict[int, float] = dict(DEFAULT_SETTINGS)
        if "A" in axes:  # steps/deg, deg/min, deg/s², max travel of the rotary
            self.settings.update({103: 8.889, 113: 18000.0, 123: 1800.0, 133: 360.0})
        self.settings.update(settings or {})
        self.planner_blocks = planner_blocks
        self.rx_buffer = rx_buffer
        self._motion: tuple[tuple[float | None, ...], MotionSettings] | None = None
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
        self.decelerating = False
        """A feed hold is braking (``Hold:1``); a reset now cuts motion."""
        self.spindle_stopped = False
        """Laser mode stopped the spindle for a complete hold; ``~`` restores it."""
        self.spindle = (5, 0.0)
        self.coolant = 0
        self.last_block: Block | None = None
        self.line_number: int | None = None
        self.reports = 0
        self.power_up()

    # --- lifecycle -------------------------------------------------------------------------------

    def motion_settings(self) -> MotionSettings:
        """The current ``$$`` values as a motion model configuration.

        Built again only when a motion setting (``$11``, ``$11x``, ``$12x``) differs from the
        last build's: every motion line asks for it, and the settings rarely change.
        """
        settings = self.settings
        key = tuple(settings.get(n) for n in _MOTION_SETTINGS)
        if self._motion is None or self._motion[0] != key:
            self._motion = (key, MotionSettings.from_grbl(settings, self.planner_blocks))
        return self._motion[1]

    @property
    def laser_mode(self) -> bool:
        """``$32``: laser mode (M4 power follows speed, the laser is off on rapids and holds)."""
        return bool(self.settings.get(32, 0))

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
            out.append(LOCKED)
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
        self.decelerating = False
        self.spindle_stopped = False
        self.spindle = (5, 0.0)
        self.coolant = 0
        self.last_block = None
        return moving

    def soft_reset(self, *, line_in_progress: bool = False) -> ResetPlan:
        """Ctrl-X, as ``mc_reset()`` and ``main()`` do it.

        Motion is cut (``ALARM:3``; ``ALARM:6`` while homing) when the steppers run: Run, Jog,
        Home, or a hold still braking. ``line_in_progress``: the main loop was blocked on a line
        (planner full, or ``$H``); it is answered ``ok`` and never executed. An alarm raised
        before is kept.
        """
        homing = self.state == "Home"
        cut = self.state in ("Run", "Jog", "Home") or (self.state == "Hold" and self.decelerating)
        self.abort()
        self.critical = False
        alarm: list[str] = []
        if cut:
            self.alarm = codes.HOMING_FAIL_RESET if homing else codes.ABORT_DURING_CYCLE
            alarm.append(f"ALARM:{self.alarm}")
        after = ["ok"] if line_in_progress or homing else []
        after += ["", BANNER]
        if self.alarm is not None or (self.homing_enabled and self.state == "Alarm"):
            self.state = "Alarm"
            after.append(LOCKED)
        else:
            self.state = "Door" if self.door_open else "Idle"
        return ResetPlan(alarm, after)

    # --- holds -----------------------------------------------------------------------------------

    def feed_hold(self, *, moving: bool) -> None:
        """``!``: hold; ``moving`` (the steppers run) means it brakes first (``Hold:1``)."""
        if self.state in ("Idle", "Run"):
            self.state = "Hold"
            self.hold = True
            self.decelerating = moving
            if not moving:
                self.hold_complete()

    def hold_complete(self) -> None:
        """The hold has braked to a stop (``Hold:0``); in laser mode the spindle stops."""
        self.decelerating = False
        # DISABLE_LASER_DURING_HOLD: the stop override only engages when the parser has M3/M4.
        self.spindle_stopped = self.laser_mode and self.parser_spindle()[0] in (3, 4)

    def cycle_start(self) -> list[str]:
        """``~``: resume a complete hold or a closed door; a hold still braking ignores it."""
        out: list[str] = []
        if self.state == "Hold" and not self.decelerating:
            if self.spindle_stopped and self.parser_spindle()[0] in (3, 4):
                out.append(RESTORING_SPINDLE)
        elif not (self.state == "Door" and not self.door_open):
            return out
        self.hold = False
        self.spindle_stopped = False
        self.state = "Run" if self.blocks_queued else "Idle"
        return out

    def parser_spindle(self) -> tuple[int, float]:
        """(M3/M4/M5, S) of the last line parsed (grbl's ``gc_state``), queued or not."""
        return self.queue[-1].spindle if self.queue else self.spindle

    def parser_coolant(self) -> int:
        """Coolant bits of the last line parsed."""
        return self.queue[-1].coolant if self.queue else self.coolant

    def power(self, entry: Entry | None, speed: float) -> float:
        """The spindle/laser output (``FS:`` second field) while ``entry`` runs at ``speed``.

        In laser mode the laser fires only on cutting moves: M3 at S, M4 at S x speed /
        programmed feed; ``entry`` is None when nothing moves (idle, holds). Without laser
        mode the spindle runs at S whenever it is on.
        """
        if not self.laser_mode:
            mode, power = entry.spindle if entry is not None else self.spindle
            return power if mode in (3, 4) else 0.0
        if entry is None or not entry.cutting:
            return 0.0
        mode, power = entry.spindle
        if mode == 3:
            return power
        if mode == 4 and entry.feed > 0:
            return power * min(1.0, speed / entry.feed)
        return 0.0

    def blocks_on_planner(self, text: str) -> bool:
        """True if the main loop must wait for a free planner block before parsing ``text``.

        ``$`` commands and comment-only lines never reach the planner.
        """
        clean = without_comments(text).strip()
        return bool(clean) and not clean.startswith("$")

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
        self.coolant = entry.coolant
        if entry.line_number is not None:
            self.line_number = entry.line_number

    def retire(self) -> None:
        """The entry at the head of the queue has executed: account it, Idle if the queue is dry."""
        self.finish(self.queue.popleft())
        self.update_idle()

    def update_idle(self) -> None:
        """Return to Idle / Door when the planner has run dry."""
        if not self.queue and self.state in ("Run", "Jog", "Home"):
            self.state = "Door" if self.door_open else "Idle"

    # --- lines -----------------------------------------------------------------------------------

    def execute(self, raw: str) -> list[str]:
        """Process one received line (no newline); return the response lines (ok/error last)."""
        text = raw.strip()
        self._track_program(text)
        if effective_length(text) > MAX_LINE_CHARS:
            return ["error:11"]
        clean = without_comments(text).replace(" ", "").upper()
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

    def _track_program(self, text: str) -> None:
        opened = program_opened_by(self.record, text)
        if opened is not None:
            self.record = opened
            self.programs.append(opened)

    def _received(self, text: str) -> None:
        if self.record is not None:
            self.record.received.append(text)

    def _system(self, clean: str) -> list[str]:
        if clean == "$":
            return ["[HLP:$$ $# $G $I $N $x=val $Nx=line $J=line $SLP $C $X $H ~ ! ? ctrl-x]", "ok"]
        if clean == "$$":
            return [format_setting(n, v) for n, v in sorted(self.settings.items())] + ["ok"]
        if clean == "$I":
            options = "VM" if self.mist else "V"  # HOMING_INIT_LOCK is on: no "L"
            return [
                f"[VER:{VERSION}.{BUILD_DATE}:]",
                f"[OPT:{options},{self.planner_blocks},{self.rx_buffer}]",
                "ok",
            ]
        if clean == "$G":
            motion = f"G{self.modal.motion}"
            units = "G21" if self.modal.scale == 1.0 else "G20"
            dist = "G90" if self.modal.absolute else "G91"
            mode, power = self.parser_spindle()
            coolant = self.parser_coolant()
            cool = [m for bit, m in ((MIST, "M7"), (FLOOD, "M8")) if coolant & bit] or ["M9"]
            feed = whole(self.modal.feed)
            modes = f"{motion} G54 G17 {units} {dist} G94 M{mode} {' '.join(cool)}"
            return [f"[GC:{modes} T0 F{feed} S{whole(power)}]", "ok"]
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
            number, value = int(match[1]), float(match[2])
            if number == 20 and int(value) and not self.homing_enabled:
                return [f"error:{SOFT_LIMITS_NEED_HOMING}"]  # settings.c: STATUS_SOFT_LIMIT_ERROR
            self.settings[number] = value
            return ["ok"]
        return [f"error:{codes.INVALID_STATEMENT}"]

    def _gcode(self, text: str, clean: str, *, jog: bool = False) -> str:
        words = parse_words(
            clean,
            letters=self.letters,
            mist=self.mist,
            spindle=self.parser_spindle(),
            coolant=self.parser_coolant(),
        )
        if not isinstance(words, Words):
            return words
        parsed, line_number = words.words, words.line_number
        (mode, power), coolant = words.spindle, words.coolant
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
        if any(letter == "M" and v in (2, 30) for letter, v in parsed):
            coolant = 0  # program end: coolant off
        cutting = self.modal.motion != 0
        entry = Entry(text, block, self.record, (mode, power), line_number, cutting)
        entry.coolant, entry.feed = coolant, self.modal.feed
        self.queue.append(entry)
        if block is not None and self.state == "Idle" and not self.hold:
            self.state = "Jog" if jog else "Run"
        return "ok"

    # --- status ----------------------------------------------------------------------------------

    def status(
        self,
        *,
        feed: float,
        power: float,
        rx_free: int,
        position: Sequence[float] | None = None,
    ) -> str:
        """A ``<...>`` status report (:func:`~crown_edge.sim.grbl_report.status_line`).

        ``feed`` (mm/min) and ``power`` are what the machine does at this instant (see
        :meth:`power`); ``position`` the live machine position (default: where the last
        executed block ended).
        """
        self.reports += 1
        where = self.position if position is None else position
        return status_line(
            self.state,
            decelerating=self.decelerating,
            door_open=self.door_open,
            position=where[: len(self.axes)],
            mask=int(self.settings.get(10, 1)),
            planner_free=self.planner_blocks - self.blocks_queued,
            rx_free=rx_free,
            line_number=self.line_number,
            feed=feed,
            power=power,
            report_count=self.reports,
            accessories=self.accessories(),
        )

    def accessories(self) -> str:
        """The ``A:`` letters of the spindle and coolant in force (empty when all off)."""
        return accessory_letters(0 if self.spindle_stopped else self.spindle[0], self.coolant)
