"""The job lifecycle as one transition table.

``TRANSITIONS[(state, event)] -> new state``. Anything not in the table is illegal and raises
:class:`~crown_edge.errors.IllegalTransition`. Pure: no clock, no database. The store applies a
transition together with its event row and outbox row in one SQLite transaction.

An ``engraving`` job never goes back to ``queued`` on its own: ``interrupt`` parks it in
``interrupted``, and only a technician's explicit ``restart``/``resume_from_line``/``scrap``/
``to_qa`` moves it on, so a partially engraved item is never engraved twice automatically.
"""

from __future__ import annotations

from enum import StrEnum

from crown_edge.errors import IllegalTransition
from crown_edge.models import JobStatus as S


class JobEvent(StrEnum):
    """Events that move a job between states."""

    VALIDATE = "validate"
    BLOCK = "block"
    REVALIDATE = "revalidate"
    START_DESIGN = "start_design"
    DESIGN_READY = "design_ready"
    APPROVE = "approve"
    REJECT = "reject"
    ENQUEUE = "enqueue"
    START = "start"
    INTERRUPT = "interrupt"
    FINISH = "finish"
    MACHINE_ERROR = "machine_error"
    RESTART = "restart"
    RESUME_FROM_LINE = "resume_from_line"
    SCRAP = "scrap"
    TO_QA = "to_qa"
    """A technician judged an interrupted item finished (every line had been sent)."""
    REQUEUE = "requeue"
    QA_PASS = "qa_pass"
    QA_FAIL = "qa_fail"
    REENGRAVE = "reengrave"
    ESCALATE = "escalate"
    COMPLETE = "complete"
    CANCEL = "cancel"
    FAIL = "fail"


E = JobEvent

_CANCELLABLE = (
    S.RECEIVED,
    S.VALIDATED,
    S.BLOCKED,
    S.DESIGNING,
    S.PENDING_APPROVAL,
    S.APPROVED,
    S.QUEUED,
    S.ENGRAVING,
    S.INTERRUPTED,
    S.QA_PENDING,
    S.QA_FAILED,
)
_FAILABLE = tuple(s for s in _CANCELLABLE if s is not S.BLOCKED)

TRANSITIONS: dict[tuple[S, JobEvent], S] = {
    (S.RECEIVED, E.VALIDATE): S.VALIDATED,
    (S.RECEIVED, E.BLOCK): S.BLOCKED,
    (S.VALIDATED, E.BLOCK): S.BLOCKED,
    (S.BLOCKED, E.REVALIDATE): S.VALIDATED,
    (S.VALIDATED, E.START_DESIGN): S.DESIGNING,
    (S.DESIGNING, E.DESIGN_READY): S.PENDING_APPROVAL,
    (S.PENDING_APPROVAL, E.APPROVE): S.APPROVED,
    (S.PENDING_APPROVAL, E.REJECT): S.REVISION_REQUESTED,
    (S.VALIDATED, E.ENQUEUE): S.QUEUED,
    (S.APPROVED, E.ENQUEUE): S.QUEUED,
    (S.QUEUED, E.START): S.ENGRAVING,
    # a machine fault before the first line: back to the queue for another machine
    (S.ENGRAVING, E.REQUEUE): S.QUEUED,
    (S.ENGRAVING, E.INTERRUPT): S.INTERRUPTED,
    (S.ENGRAVING, E.FINISH): S.QA_PENDING,
    (S.ENGRAVING, E.MACHINE_ERROR): S.FAILED,
    (S.INTERRUPTED, E.RESTART): S.QUEUED,
    (S.INTERRUPTED, E.RESUME_FROM_LINE): S.QUEUED,
    (S.INTERRUPTED, E.SCRAP): S.FAILED,
    (S.INTERRUPTED, E.TO_QA): S.QA_PENDING,
    (S.QA_PENDING, E.QA_PASS): S.COMPLETE,
    (S.QA_PENDING, E.QA_FAIL): S.QA_FAILED,
    (S.QA_PENDING, E.COMPLETE): S.COMPLETE,
    (S.QA_FAILED, E.REENGRAVE): S.QUEUED,
    (S.QA_FAILED, E.ESCALATE): S.ESCALATED,
    (S.QA_PENDING, E.ESCALATE): S.ESCALATED,
    **{(s, E.CANCEL): S.CANCELLED for s in _CANCELLABLE},
    **{(s, E.FAIL): S.FAILED for s in _FAILABLE},
}

TERMINAL = frozenset({S.COMPLETE, S.ESCALATED, S.CANCELLED, S.FAILED, S.REVISION_REQUESTED})
"""States a job never leaves."""


def next_state(job_id: str, state: S | str, event: JobEvent | str) -> S:
    """The state after ``event`` in ``state``; IllegalTransition if the table has no entry."""
    try:
        key = (S(state), JobEvent(event))
    except ValueError:
        raise IllegalTransition(job_id, str(state), str(event)) from None
    try:
        return TRANSITIONS[key]
    except KeyError:
        raise IllegalTransition(job_id, str(state), str(event)) from None


def allowed_events(state: S | str) -> list[JobEvent]:
    """Events the table allows in ``state`` (for help texts and the CLI)."""
    return [e for (s, e) in TRANSITIONS if s == S(state)]
