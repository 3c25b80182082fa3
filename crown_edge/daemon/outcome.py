"""How a machine run ends a job: a pure function from a typed :class:`RunResult` to the job event.

==========================================================  =============  ======================
run result                                                  event          ``jobs.reason``
==========================================================  =============  ======================
any outcome, when the daemon stopped it for a cancel        CANCEL         the cancel's reason
``completed``                                               FINISH         (unchanged)
``interrupted`` before anything was acknowledged (or before
the run began), not by a shutdown                           REQUEUE        (unchanged); the
                                                                           machine holds off
``interrupted`` otherwise                                   INTERRUPT      interlock, ``ALARM:n``,
                                                                           or the run's reason
``failed``                                                  MACHINE_ERROR  ``error:n at line l``
==========================================================  =============  ======================

A requeued job goes to another eligible machine (nothing was engraved), and ``fault`` says why
this machine stays out of the queue for a while. An interrupted job waits for a technician
(``jobs resume``), never re-run on its own. ``detail`` is the run row's ``detail`` and the
event's payload: the result's fields (:meth:`RunResult.to_dict`) with the words the rest of the
workshop reads (``reason``, ``interlock``, ``error``; see :mod:`crown_edge.daemon.runs`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from crown_edge.drivers.base import RunOutcome, RunResult
from crown_edge.lifecycle import JobEvent

SHUTDOWN = "shutdown"
"""The reason of a run the daemon's own shutdown stopped: interrupted, never requeued."""
CANCELLED = "cancelled"
"""The ``runs.outcome`` word of a run stopped for a cancel."""


@dataclass(frozen=True, slots=True)
class RunEnding:
    """What the end of one run does to its job and its run row."""

    event: JobEvent
    outcome: str
    """``runs.outcome``: completed | interrupted | failed | cancelled."""
    reason: str | None
    """``jobs.reason`` to set; None leaves it (FINISH, REQUEUE)."""
    detail: dict[str, Any]
    """``runs.detail``; with ``outcome`` added, the event's payload."""
    acked_lines: int
    """Program lines done, skipped lines of a resumed run included."""
    total_lines: int
    last_acked_line: int
    sent_line: int | None
    fault: str | None = None
    """REQUEUE: the fault that holds this machine out of the queue for a while."""

    @property
    def progress(self) -> float:
        """0..1, done lines over the program's lines."""
        return self.acked_lines / self.total_lines if self.total_lines else 0.0

    @property
    def payload(self) -> dict[str, Any]:
        """The event's data: the detail, whose ``outcome`` is the run's word."""
        return dict(self.detail)


def fault_reason(result: RunResult) -> str | None:
    """The word for what stopped the run: the interlock, ``ALARM:n``, or the run's reason."""
    if result.interlock:
        return result.interlock
    if result.alarm_code is not None:
        return f"ALARM:{result.alarm_code}"
    return result.reason


def error_word(result: RunResult) -> str | None:
    """``error:n at line l`` for a refused line (``error:n`` when the line is not known), or the
    error's text when there is no code (a program that could not be rendered)."""
    if result.error_code is not None:
        at = f" at line {result.error_line}" if result.error_line is not None else ""
        return f"error:{result.error_code}{at}"
    return result.error_text


def run_detail(result: RunResult) -> dict[str, Any]:
    """The run row's ``detail``: the result's fields and the words others read."""
    detail = result.to_dict()
    reason = fault_reason(result)
    if reason is not None:
        detail["reason"] = reason
    if result.interlock:
        detail["interlock"] = result.interlock
    if result.outcome is RunOutcome.FAILED or result.error_code is not None:
        word = error_word(result)
        if word is not None:
            detail["error"] = word
    if result.before_start:
        detail["before_start"] = True
    return detail


def run_ending(result: RunResult, *, cancelled: str | None = None) -> RunEnding:
    """The job event, reason and payload for a run's result (see the module table).

    ``cancelled``: the reason of a cancel the daemon stopped this run for.
    """
    detail = run_detail(result)
    # an interlock trip ends the run even when the program had just completed
    outcome = result.outcome
    if result.interlock and outcome is RunOutcome.COMPLETED:
        outcome = RunOutcome.INTERRUPTED
    figures: dict[str, Any] = {
        # a run that never began counts nothing done, not even a resume's skipped lines
        "acked_lines": 0 if result.before_start else result.start_line + result.acked_lines,
        "total_lines": result.total_lines,
        "last_acked_line": result.last_acked_line,
        "sent_line": result.sent_line,
    }
    if cancelled is not None:
        detail.update(outcome=CANCELLED, reason=cancelled)
        return RunEnding(JobEvent.CANCEL, CANCELLED, cancelled, detail, **figures)
    detail["outcome"] = str(outcome)
    if outcome is RunOutcome.COMPLETED:
        return RunEnding(JobEvent.FINISH, str(outcome), None, detail, **figures)
    if outcome is RunOutcome.INTERRUPTED:
        reason = fault_reason(result)
        nothing_done = result.before_start or figures["acked_lines"] == 0
        if nothing_done and reason != SHUTDOWN:
            # nothing was engraved: another eligible machine may take the job
            fault = reason or "machine fault"
            return RunEnding(JobEvent.REQUEUE, str(outcome), None, detail, **figures, fault=fault)
        reason = detail["reason"] = reason or "interrupted"
        return RunEnding(JobEvent.INTERRUPT, str(outcome), reason, detail, **figures)
    reason = error_word(result) or "machine_error"
    return RunEnding(JobEvent.MACHINE_ERROR, str(outcome), reason, detail, **figures)
