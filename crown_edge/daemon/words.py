"""What the daemon tells a technician, in words: why a queued job has no machine, why a design
answer was refused. Pure: values in, one line out."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

# workflow statuses a job reaches only after its design was answered (or it needed none)
_PAST_APPROVAL = frozenset(
    {
        "approved",
        "validated",
        "queued",
        "engraving",
        "interrupted",
        "qa_pending",
        "qa_passed",
        "qa_failed",
        "complete",
        "completed",
        "failed",
        "cancelled",
        "escalated",
        "blocked",
    }
)


def machine_trouble(row: Mapping[str, Any]) -> str | None:
    """Why a machine takes no job now (paused, alarm, offline), or None when it could."""
    if row.get("paused"):
        return "paused"
    if row.get("alarm"):
        return f"in alarm ({row['alarm']})"
    availability = str(row.get("availability") or "UNAVAILABLE")
    if availability != "AVAILABLE":
        return "offline" if availability == "UNAVAILABLE" else availability.lower()
    return None


def no_machine_reason(
    eligible_mask: int, machine_ids: Sequence[str], rows: Mapping[str, Mapping[str, Any]]
) -> str:
    """Why the planner put a queued job on no machine.

    ``machine_ids`` are the configured machines in ordinal order (the bits of ``eligible_mask``);
    ``rows`` their stored state by id (``Scheduler.machine_rows``).
    """
    eligible = [mid for i, mid in enumerate(machine_ids) if (eligible_mask >> i) & 1]
    if not eligible:
        return "no machine here can engrave this item (material, bed size or rotary)"
    troubles = [(mid, machine_trouble(rows.get(mid, {})) or "busy") for mid in eligible]
    if len(troubles) == 1:
        mid, why = troubles[0]
        return f"the only eligible machine, {mid}, is {why}"
    listed = ", ".join(f"{mid} {why}" for mid, why in troubles)
    return f"every eligible machine is out: {listed}"


def decision_refused(
    job_id: str,
    approved: bool,
    *,
    refusal: str,
    detail: str,
    status: str | None,
    requires_design: bool,
) -> str:
    """One line for an approve/reject the workflow refused.

    ``refusal`` is the workflow's error type (``NotAwaitingApproval``, ``InvalidInput``, ...),
    ``status`` the job's workflow status when it could be read.
    """
    verb = "approve" if approved else "reject"
    if refusal == "NotAwaitingApproval" or refusal.startswith("Already"):
        if not requires_design:
            return f"job {job_id} is a text-only order: it has no design to {verb}"
        if status in ("designing", "revision_requested"):
            return f"job {job_id}: its design is being drawn again; {verb} it once it is ready"
        if status in _PAST_APPROVAL:
            return f"job {job_id}: its design was already answered (the job is {status} now)"
        where = f" (it is {status})" if status else ""
        return f"job {job_id} is not waiting for a design answer{where}"
    if refusal == "InvalidInput":
        return f"job {job_id}: {detail}"
    return f"job {job_id}: the design answer was refused: {detail}"


def decision_done(job_id: str, approved: bool, status: str, revision: int) -> str:
    """One line for an accepted approve/reject."""
    if approved:
        return f"{job_id}: design approved; the job is {status} now"
    if status == "escalated":
        return f"{job_id}: changes requested once too often; the job went to a manager"
    return f"{job_id}: changes requested (revision {revision}); the job is {status} now"
