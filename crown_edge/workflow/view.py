"""Pure helpers of the workflow's customer side: the timeline steps, safe reasons, input checks.

No Temporal calls and no clock: the workflow passes in what it knows. The checks raise the
``ApplicationError`` an update validator refuses with (types ``REFUSED_*`` in
:mod:`crown_edge.workflow.names`), so the Order API can tell a customer why.
"""

from __future__ import annotations

from collections.abc import Sequence

from temporalio.exceptions import ApplicationError

from crown_edge.workflow import names as n
from crown_edge.workflow.data import (
    AlternativeChoice,
    ApprovalDecision,
    Rating,
    Step,
    TimelineEntry,
)

#: The customer's steps, in order.
STEPS = ("received", "design", "approval", "engraving", "qa", "complete")

#: Status word -> the step it belongs to.
STEP_OF = {
    "received": "received",
    "validated": "received",
    "blocked": "received",
    "designing": "design",
    "revision_requested": "design",
    "pending_approval": "approval",
    "approved": "approval",
    "queued": "engraving",
    "engraving": "engraving",
    "interrupted": "engraving",
    "qa_pending": "qa",
    "qa_failed": "qa",
    "complete": "complete",
}

#: States that end a job without completing it.
ENDED = frozenset({"cancelled", "failed", "escalated"})

#: What the customer reads for statuses whose internal reason is not theirs to see.
_SAFE_REASONS = {
    "qa_failed": "the quality check found a flaw: the item is engraved again",
    "interrupted": "the machine stopped: a technician is looking at it",
    "failed": "the job could not be made: we will contact you",
    "escalated": "the job needs a manager's attention: we will contact you",
}


def customer_reason(status: str, reason: str | None) -> str | None:
    """The reason the customer may read for ``status``; internal detail is replaced.

    Blocking reason words, cancel reasons and the customer's own comment (``revision_requested``)
    pass; QA notes, alarm texts and failure details do not.
    """
    if status in _SAFE_REASONS:
        return _SAFE_REASONS[status] if reason else None
    return reason


def steps(
    timeline: Sequence[TimelineEntry], status: str, *, requires_design: bool
) -> tuple[Step, ...]:
    """The six customer steps with their state and start time, from the job's timeline.

    Steps before the current one are ``done`` (``skipped`` when never entered: no design); the
    current one is ``current`` (``done`` once complete, ``stopped`` when the job ended there);
    later ones are ``pending`` (``skipped`` for design and approval when none is needed).
    """
    started: dict[str, str] = {}
    for entry in timeline:
        step = STEP_OF.get(entry.status)
        if step is not None:
            started.setdefault(step, entry.at)
    reached = [s for s in STEPS if s in started] or [STEPS[0]]
    current = STEP_OF.get(status, reached[-1])
    here = STEPS.index(current)
    out: list[Step] = []
    for index, name in enumerate(STEPS):
        if index < here:
            state = "done" if name in started else "skipped"
        elif index == here:
            state = "done" if status == "complete" else "stopped" if status in ENDED else "current"
        elif name in ("design", "approval") and not requires_design:
            state = "skipped"
        else:
            state = "pending"
        out.append(Step(name, state, started.get(name)))
    return tuple(out)


def check_comment(comment: str) -> None:
    """Refuse a comment longer than ``COMMENT_MAX`` characters."""
    if len(comment) > n.COMMENT_MAX:
        raise ApplicationError(
            f"comment too long: {len(comment)} characters, at most {n.COMMENT_MAX}",
            type=n.REFUSED_INVALID_INPUT,
            non_retryable=True,
        )


def check_approval(decision: ApprovalDecision, *, awaiting: bool, job_id: str, status: str) -> None:
    """Refuse an answer to a design unless one is awaited; bound the comment."""
    if not awaiting:
        raise ApplicationError(
            f"job {job_id} is not awaiting approval ({status})",
            type=n.REFUSED_NOT_AWAITING_APPROVAL,
            non_retryable=True,
        )
    check_comment(decision.comment)


def check_choice(
    choice: AlternativeChoice, *, awaiting: bool, offered: Sequence[str], job_id: str, status: str
) -> None:
    """Refuse a choice unless the job waits on alternatives and the item was offered."""
    if not awaiting:
        raise ApplicationError(
            f"job {job_id} is not waiting for an alternative ({status})",
            type=n.REFUSED_NOT_AWAITING_ALTERNATIVE,
            non_retryable=True,
        )
    if choice.cancel:
        if choice.item_id:
            raise ApplicationError(
                "choose an item or cancel, not both",
                type=n.REFUSED_INVALID_INPUT,
                non_retryable=True,
            )
        return
    if not choice.item_id or choice.item_id not in offered:
        raise ApplicationError(
            f"item {choice.item_id!r} was not offered for job {job_id}",
            type=n.REFUSED_NOT_OFFERED,
            non_retryable=True,
        )


def check_rating(rating: Rating, *, ratable: bool, rated: bool, job_id: str, status: str) -> None:
    """Refuse a rating unless the job is complete and unrated, 1-5 stars, a bounded comment."""
    if rated:
        raise ApplicationError(
            f"job {job_id} is already rated", type=n.REFUSED_ALREADY_RATED, non_retryable=True
        )
    if not ratable:
        raise ApplicationError(
            f"job {job_id} cannot be rated now ({status})",
            type=n.REFUSED_NOT_RATABLE,
            non_retryable=True,
        )
    stars = rating.stars
    if (
        isinstance(stars, bool)
        or not isinstance(stars, int)
        or not n.MIN_STARS <= stars <= n.MAX_STARS
    ):
        raise ApplicationError(
            f"stars must be a whole number {n.MIN_STARS}-{n.MAX_STARS}, got {stars!r}",
            type=n.REFUSED_INVALID_RATING,
            non_retryable=True,
        )
    if len(rating.comment) > n.COMMENT_MAX:
        raise ApplicationError(
            f"comment too long: {len(rating.comment)} characters, at most {n.COMMENT_MAX}",
            type=n.REFUSED_INVALID_RATING,
            non_retryable=True,
        )
