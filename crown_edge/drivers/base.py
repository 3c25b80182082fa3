"""What every machine hands the daemon: the :class:`MachineDriver` protocol, run outcomes, progress.

A machine (the GRBL binding over serial or over the in-process simulator, see
:mod:`crown_edge.daemon.binding`; a test fake) runs one program at a time and reports its
outcome as a typed :class:`RunResult`, which travels unchanged to the daemon's worker;
:func:`crown_edge.daemon.outcome.run_ending` turns it into the job's event, reason and payload.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

from crown_edge.models import MachineState


class RunOutcome(StrEnum):
    """How a program run ended."""

    COMPLETED = "completed"
    """Every line acknowledged and the machine came back to rest."""
    FAILED = "failed"
    """The controller refused a line (``error:N``); feeding stopped at that line."""
    INTERRUPTED = "interrupted"
    """Alarm, reset, e-stop, lost port, silent controller or a lost acknowledgement."""


@dataclass(frozen=True, slots=True)
class RunProgress:
    """Progress of a running program: acknowledged lines over total lines.

    ``acked_lines`` counts this run's acknowledged lines, like :attr:`RunResult.acked_lines`;
    lines 1..``start_line`` were skipped (a resumed run) and count as done in ``fraction``.
    """

    job_id: str
    acked_lines: int
    total_lines: int
    start_line: int = 0

    @property
    def last_acked_line(self) -> int:
        """1-based number of the last acknowledged program line (``start_line`` if none yet)."""
        return self.start_line + self.acked_lines

    @property
    def fraction(self) -> float:
        """0..1: how far the status word ``engraving`` has got."""
        return self.last_acked_line / self.total_lines if self.total_lines else 1.0


ProgressCallback = Callable[[RunProgress], object]
ReserveCallback = Callable[[int], Awaitable[None]]
"""``on_reserve(line)``: make the resume mark durable up to ``line`` before lines up to it leave;
raising means it could not be saved (the run then stops)."""


@dataclass(frozen=True, slots=True)
class RunResult:
    """The outcome of one program run.

    Line numbers are 1-based program line numbers. ``last_acked_line`` is the last line the
    controller accepted (0: none); pass it as ``start_line`` to continue after it — acknowledged
    is not executed, so that is a technician's decision, never automatic.
    """

    job_id: str
    outcome: RunOutcome
    acked_lines: int
    """Lines acknowledged in this run (lines skipped by ``start_line`` excluded)."""
    total_lines: int
    last_acked_line: int
    start_line: int = 0
    error_line: int | None = None
    """The line the controller refused (``failed``)."""
    error_code: int | None = None
    error_text: str | None = None
    alarm_code: int | None = None
    alarm_text: str | None = None
    reason: str | None = None
    """Why a run was interrupted: alarm, link_lost, silent, reset, emergency_stop, lost_ack,
    stalled (or the reason the daemon gave its stop, e.g. a cancel)."""
    elapsed_s: float = 0.0
    bytes_sent: int = 0
    sent_line: int | None = None
    """The highest program line written to the controller (everything after it is certainly
    not engraved); None when the driver cannot tell."""
    detail: str | None = None
    """What a technician should know about how the run stopped, in words (e.g. that the feed
    hold was still decelerating when the reset went out, or where a stalled machine froze)."""
    interlock: str | None = None
    """The safety interlock whose trip stopped the run (``door``, ``estop``...), if one did."""
    before_start: bool = False
    """The run never began (machine not ready, an interlock open): nothing was sent."""

    @property
    def all_acked(self) -> bool:
        """True when every program line from ``start_line`` on was acknowledged."""
        return self.start_line + self.acked_lines == self.total_lines

    @property
    def qa_auto_ok(self) -> bool:
        """The automatic QA check: completed, every line acknowledged, no error, no alarm."""
        return (
            self.outcome is RunOutcome.COMPLETED
            and self.all_acked
            and self.error_code is None
            and self.alarm_code is None
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form for events and the store."""
        return {
            "job_id": self.job_id,
            "outcome": str(self.outcome),
            "acked_lines": self.acked_lines,
            "total_lines": self.total_lines,
            "last_acked_line": self.last_acked_line,
            "start_line": self.start_line,
            "error_line": self.error_line,
            "error_code": self.error_code,
            "error_text": self.error_text,
            "alarm_code": self.alarm_code,
            "alarm_text": self.alarm_text,
            "reason": self.reason,
            "detail": self.detail,
            "sent_line": self.sent_line,
            "elapsed_s": round(self.elapsed_s, 3),
            "qa_auto_ok": self.qa_auto_ok,
        }


class MachineDriver(Protocol):
    """The one face of a machine the daemon programs against.

    Satisfied by the GRBL binding (:class:`crown_edge.daemon.binding.GrblMachine`), its
    simulator variant and the test fake (``tests/fakes.py``). Machine faults never raise out of
    :meth:`run_program`: they end the run (``interrupted``, ``before_start`` when nothing could
    be sent).
    """

    @property
    def machine_id(self) -> str:
        """Configured machine id."""
        ...

    def state(self) -> MachineState:
        """Live state in MTConnect words."""
        ...

    def work_position(self) -> dict[str, float] | None:
        """Where the head is (work coordinates by axis letter), if the machine can tell."""
        ...

    async def run_program(
        self,
        job_id: str,
        lines: Sequence[str],
        *,
        start_line: int = 0,
        on_progress: ProgressCallback | None = None,
        cylinder: bool = False,
        on_reserve: ReserveCallback | None = None,
    ) -> RunResult:
        """Run a program to its end and report how it ended.

        ``start_line``: lines 1..start_line are skipped (a technician's resume).
        ``cylinder``: the item sits in the rotary chuck (clamp and enable it first).
        ``on_reserve(line)``: save the resume mark before lines up to ``line`` leave.
        """
        ...

    async def pause(self) -> None:
        """Feed hold: motion decelerates to a stop, the laser goes off."""
        ...

    async def resume(self) -> None:
        """Continue after :meth:`pause`."""
        ...

    async def stop(self) -> None:
        """Feed hold, then stop (laser off); a running program ends ``interrupted``."""
        ...
