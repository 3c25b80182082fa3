"""Pure helpers of the customer side: timeline steps, customer-safe reasons, update checks."""

from __future__ import annotations

import pytest
from temporalio.exceptions import ApplicationError

from crown_edge.workflow import names as n
from crown_edge.workflow.data import AlternativeChoice, ApprovalDecision, Rating, TimelineEntry
from crown_edge.workflow.view import (
    STEP_OF,
    STEPS,
    check_approval,
    check_choice,
    check_rating,
    customer_reason,
    steps,
)


def timeline(*statuses: str) -> list[TimelineEntry]:
    return [TimelineEntry(s, f"2026-01-01T00:00:{i:02d}+00:00") for i, s in enumerate(statuses)]


def states(tl: list[TimelineEntry], status: str, *, design: bool = False) -> list[str]:
    return [s.state for s in steps(tl, status, requires_design=design)]


def test_a_text_job_being_engraved() -> None:
    tl = timeline("received", "validated", "queued", "engraving")
    assert states(tl, "engraving") == [
        "done",
        "skipped",
        "skipped",
        "current",
        "pending",
        "pending",
    ]
    got = steps(tl, "engraving", requires_design=False)
    assert got[0].at == tl[0].at and got[3].at == tl[2].at and got[4].at is None


def test_a_design_job_waiting_for_approval() -> None:
    tl = timeline("received", "validated", "designing", "pending_approval")
    assert states(tl, "pending_approval", design=True) == [
        "done",
        "done",
        "current",
        "pending",
        "pending",
        "pending",
    ]


def test_a_complete_job_has_every_step_done_or_skipped() -> None:
    tl = timeline("received", "validated", "queued", "engraving", "qa_pending", "complete")
    assert states(tl, "complete") == ["done", "skipped", "skipped", "done", "done", "done"]


def test_a_job_cancelled_while_queued_stops_at_engraving() -> None:
    tl = timeline("received", "validated", "queued", "cancelled")
    assert states(tl, "cancelled") == [
        "done",
        "skipped",
        "skipped",
        "stopped",
        "pending",
        "pending",
    ]


def test_a_blocked_job_is_current_at_received() -> None:
    tl = timeline("received", "blocked")
    assert states(tl, "blocked")[0] == "current"


def test_every_status_word_has_a_step() -> None:
    assert set(STEP_OF.values()) == set(STEPS)
    for status in (*STEP_OF, "cancelled", "failed", "escalated"):
        assert len(steps(timeline("received", status), status, requires_design=True)) == 6


@pytest.mark.parametrize("status", ["qa_failed", "interrupted", "failed", "escalated"])
def test_internal_reasons_never_reach_the_customer(status: str) -> None:
    shown = customer_reason(status, "smudged by tech-7, alarm 9, Traceback ...")
    assert shown is not None and "tech-7" not in shown and "alarm" not in shown
    assert customer_reason(status, None) is None


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        ("blocked", "no_inventory"),
        ("cancelled", "customer phoned"),
        ("revision_requested", "bigger"),
    ],
)
def test_customer_facing_reasons_pass(status: str, reason: str) -> None:
    assert customer_reason(status, reason) == reason


def refusal(fn: object, *args: object, **kw: object) -> str | None:
    with pytest.raises(ApplicationError) as info:
        fn(*args, **kw)  # type: ignore[operator]
    assert info.value.non_retryable
    return info.value.type


def test_approval_checks() -> None:
    ok = {"job_id": "J", "status": "pending_approval"}
    check_approval(ApprovalDecision(False, "x" * n.COMMENT_MAX), awaiting=True, **ok)
    assert refusal(check_approval, ApprovalDecision(True), awaiting=False, **ok) == (
        n.REFUSED_NOT_AWAITING_APPROVAL
    )
    long = ApprovalDecision(False, "x" * (n.COMMENT_MAX + 1))
    assert refusal(check_approval, long, awaiting=True, **ok) == n.REFUSED_INVALID_INPUT


def test_choice_checks() -> None:
    kw = {"offered": ["a", "b"], "job_id": "J", "status": "blocked"}
    check_choice(AlternativeChoice("a"), awaiting=True, **kw)
    check_choice(AlternativeChoice(cancel=True), awaiting=True, **kw)
    assert refusal(check_choice, AlternativeChoice("a"), awaiting=False, **kw) == (
        n.REFUSED_NOT_AWAITING_ALTERNATIVE
    )
    assert (
        refusal(check_choice, AlternativeChoice("c"), awaiting=True, **kw) == n.REFUSED_NOT_OFFERED
    )
    assert refusal(check_choice, AlternativeChoice(), awaiting=True, **kw) == n.REFUSED_NOT_OFFERED
    both = AlternativeChoice("a", cancel=True)
    assert refusal(check_choice, both, awaiting=True, **kw) == n.REFUSED_INVALID_INPUT


@pytest.mark.parametrize(
    "rating",
    [Rating(0), Rating(6), Rating(-1), Rating(True), Rating(3, "x" * (n.COMMENT_MAX + 1))],
)
def test_bad_ratings_are_refused(rating: Rating) -> None:
    kw = {"job_id": "J", "status": "complete"}
    assert refusal(check_rating, rating, ratable=True, rated=False, **kw) == (
        n.REFUSED_INVALID_RATING
    )


def test_rating_checks() -> None:
    kw = {"job_id": "J", "status": "complete"}
    for stars in range(n.MIN_STARS, n.MAX_STARS + 1):
        check_rating(Rating(stars, "x" * n.COMMENT_MAX), ratable=True, rated=False, **kw)
    assert refusal(check_rating, Rating(5), ratable=True, rated=True, **kw) == (
        n.REFUSED_ALREADY_RATED
    )
    assert refusal(check_rating, Rating(5), ratable=False, rated=False, **kw) == (
        n.REFUSED_NOT_RATABLE
    )
