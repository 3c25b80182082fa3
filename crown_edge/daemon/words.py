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


#: What the order workflow's statuses before the workshop's part mean to a technician.
_ORDER_WORDS = {
    "designing": "the design is being drawn",
    "pending_approval": "waiting for the customer's approval of the design",
    "revision_requested": "the customer asked for changes; a revised design follows",
    "approved": "design approved; about to be queued here",
}
#: Timeline statuses that happen in the cloud, not on the workshop.
_DESIGN_STEPS = frozenset({"designing", "pending_approval", "revision_requested", "approved"})


def order_summary(view: Mapping[str, Any]) -> dict[str, Any]:
    """The order workflow's view of a job the workshop still holds as ``validated``.

    ``status`` and ``words`` say where the order is (e.g. waiting for the customer's approval);
    ``design_steps`` are the cloud-side timeline entries (design, approval, revisions) with
    their times, for the job's history.
    """
    status = str(view.get("status") or "")
    timeline = view.get("timeline") or ()
    steps = [
        {"status": str(e.get("status")), "at": e.get("at")}
        for e in timeline
        if isinstance(e, Mapping) and e.get("status") in _DESIGN_STEPS
    ]
    words = _ORDER_WORDS.get(status, status.replace("_", " "))
    revision = view.get("design_revision") or 0
    if status == "pending_approval" and isinstance(revision, int) and revision > 0:
        words += f" (revision {revision})"
    return {"status": status, "words": words, "design_steps": steps}
