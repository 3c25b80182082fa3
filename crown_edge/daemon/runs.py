"""Pure decisions over a job's stored machine runs: the result of an attempt, the auto QA verdict.

The daemon's machine worker writes one ``runs`` row per physical run (a claim inserts it, the end
of the run sets ``ended_at``, ``outcome``, ``acked_lines``, ``total_lines``, ``last_acked_line``
and ``detail``). A technician's restart of an interrupted run keeps the attempt number, so one
attempt may own several rows; the last one is the run that counts.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from crown_edge.models import JobStatus
from crown_edge.store import Job, RunRecord
from crown_edge.workflow import names as n

S = JobStatus

#: Job states in which the attempt's program ran to its end.
RAN_TO_END = frozenset({S.QA_PENDING, S.QA_FAILED, S.COMPLETE, S.ESCALATED})
#: Run ``detail`` keys that make an automatic QA verdict fail when set.
FAULT_KEYS = ("alarm", "interlock", "error")


def last_run(runs: Sequence[RunRecord], attempt: int) -> RunRecord | None:
    """The latest run row of ``attempt``, if any."""
    mine = [r for r in runs if r.attempt == attempt]
    return mine[-1] if mine else None


def _text(detail: dict[str, Any], key: str) -> str | None:
    value = detail.get(key)
    return None if value in (None, "", False) else str(value)


def run_result(job: Job, runs: Sequence[RunRecord], attempt: int) -> n.MachineRunResult:
    """The ``send_to_machine`` result of ``attempt`` once it has left the machines."""
    run = last_run(runs, attempt)
    detail = run.detail if run is not None else {}
    if job.attempt == attempt:
        completed = job.status in RAN_TO_END
    else:  # a later attempt exists: this one ended as its last run row says
        completed = run is not None and run.outcome == n.OUTCOME_COMPLETED
    message = _text(detail, "message") or _text(detail, "error") or _text(detail, "reason")
    cancel_reason = None
    if not completed:
        if job.status is S.CANCELLED and job.attempt <= attempt:
            # cancelled during this attempt, or before it was queued (then no run exists)
            cancel_reason = job.reason or "cancelled on the workshop"
            message = message or f"cancelled on the workshop: {job.reason or 'no reason given'}"
        elif job.status is S.FAILED and job.attempt == attempt:
            message = message or job.reason or "failed on the workshop"
        else:
            message = message or (run.outcome if run is not None else None) or "no run recorded"
    return n.MachineRunResult(
        outcome=n.OUTCOME_COMPLETED if completed else n.OUTCOME_FAILED,
        machine_id=run.machine_id if run is not None else job.machine_id,
        acked_lines=(run.acked_lines if run is not None else None) or 0,
        total_lines=(run.total_lines if run is not None else None) or 0,
        alarm=_text(detail, "alarm"),
        message=message,
        cancel_reason=cancel_reason,
    )


def auto_verdict(runs: Sequence[RunRecord], attempt: int) -> tuple[bool, str] | None:
    """Automatic QA: pass when the attempt's run completed with every line acknowledged.

    Returns ``(passed, notes)``; the notes say why a run fails. None when the verdict is a
    person's: an interrupted run a technician sent to QA (``jobs resume --to-qa``).
    """
    run = last_run(runs, attempt)
    if run is not None and run.detail.get("to_qa"):
        return None
    if run is None:
        return False, "auto: no run recorded"
    if run.outcome != n.OUTCOME_COMPLETED:
        return False, f"auto: run outcome {run.outcome or 'unknown'}"
    if run.total_lines is None or run.acked_lines != run.total_lines:
        return False, f"auto: {run.acked_lines}/{run.total_lines} lines acknowledged"
    for key in FAULT_KEYS:
        if _text(run.detail, key):
            return False, f"auto: {key} {run.detail[key]}"
    return True, f"auto: {run.acked_lines}/{run.total_lines} lines acknowledged"


def due_at_of(due_date: str) -> float | None:
    """POSIX seconds of an ISO-8601 due date (UTC when it names no zone), None if unreadable."""
    try:
        parsed = dt.datetime.fromisoformat(due_date.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.timestamp()
