"""The customer's side of a job: design answers, out-of-stock choices and restocks, the rating,
a cancel made on the workshop; every refusal leaves the job as it was."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from temporalio.client import WorkflowHandle, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError

from crown_edge.workflow import names as n
from crown_edge.workflow.data import (
    AlternativeChoice,
    ApprovalDecision,
    JobResult,
    JobView,
    Rating,
    Restock,
)
from crown_edge.workflow.workflow import EngravingWorkflow
from tests.workflow.fakes import MachineScript
from tests.workflow.support import Harness, message, outcome, start, unique, wait_for

pytestmark = pytest.mark.asyncio(loop_scope="session")

Handle = WorkflowHandle[EngravingWorkflow, JobResult]


def stock(h: Harness, units: int) -> str:
    """A fresh item with ``units`` in stock; returns its id."""
    item_id = unique("item")
    h.workshop.stock[item_id] = units
    return item_id


async def refused(handle: Handle, update: Any, arg: Any) -> str:
    """Send an update that must be refused; the refusal's ApplicationError type."""
    before = await handle.query(EngravingWorkflow.status)
    with pytest.raises(WorkflowUpdateFailedError) as info:
        await handle.execute_update(update, arg)
    cause = info.value.cause
    assert isinstance(cause, ApplicationError), cause
    assert cause.type is not None
    after = await handle.query(EngravingWorkflow.status)
    assert after == before, "a refused update changes nothing"
    return cause.type


async def idle(h: Harness, handle: Handle, status: str) -> None:
    """Wait until ``status`` is published: the job waits only for a timer or a message."""
    job_id = handle.id.removeprefix("job-")
    for _ in range(400):
        if any(e["status"] == status for e in h.events.of("status", job_id)):
            await asyncio.sleep(0.1)  # the publish activity's completion reaches the history
            return
        await asyncio.sleep(0.025)
    raise AssertionError(f"{status} never published for {job_id}")


async def blocked_job(h: Harness, units_elsewhere: int = 2) -> tuple[Handle, str, str, JobView]:
    """A job whose item is out of stock, waiting; returns (handle, job, item, alternative)."""
    item = stock(h, 0)
    other = stock(h, units_elsewhere)
    job = unique("J-oos")
    handle = await start(h.client, message(job, item))
    view = await outcome(handle)
    assert (view.status, view.reason, view.awaiting) == ("blocked", "no_inventory", "alternative")
    assert other and view.alternatives
    return handle, job, item, view


async def completed(handle: Handle) -> JobView:
    """The view once the job is complete and waits for its rating."""
    return await wait_for(handle, lambda v: v.status == "complete" and v.awaiting == "rating")


# --- design ------------------------------------------------------------------------------------


async def test_approval_refusals_change_nothing(harness: Harness) -> None:
    item = stock(harness, 1)
    job = unique("J-noapp2")
    gate = asyncio.Event()
    harness.workshop.machines[job] = MachineScript(hold=gate)
    handle = await start(harness.client, message(job, item))
    await wait_for(handle, lambda v: v.status == "engraving")
    try:
        kind = await refused(
            handle, EngravingWorkflow.approve_design_update, ApprovalDecision(True)
        )
    finally:
        gate.set()
    assert kind == n.REFUSED_NOT_AWAITING_APPROVAL


async def test_a_too_long_change_request_is_refused(harness: Harness) -> None:
    harness.workshop.stock["trophy-plate"] = harness.workshop.stock.get("trophy-plate", 0) + 1
    job = unique("J-long-comment")
    handle = await start(harness.client, message(job, "trophy-plate", requires_design=True))
    await wait_for(handle, lambda v: v.status == "pending_approval")

    decision = ApprovalDecision(False, "x" * (n.COMMENT_MAX + 1))
    kind = await refused(handle, EngravingWorkflow.approve_design_update, decision)

    assert kind == n.REFUSED_INVALID_INPUT
    view = await handle.execute_update(
        EngravingWorkflow.approve_design_update, ApprovalDecision(True, "fine")
    )
    assert view.status != "pending_approval"


# --- out of stock ------------------------------------------------------------------------------


async def test_choosing_an_alternative_continues_with_the_new_item(harness: Harness) -> None:
    handle, job, item, view = await blocked_job(harness)
    other = view.alternatives[0]
    assert other.name and other.item_id != item
    before = harness.workshop.stock[other.item_id]

    answered = await handle.execute_update(
        EngravingWorkflow.choose_alternative, AlternativeChoice(item_id=other.item_id)
    )

    assert answered.status != "blocked" and answered.item_id == other.item_id
    assert answered.awaiting is None and answered.alternatives == ()
    done = await completed(handle)
    assert (done.status, done.item_id) == ("complete", other.item_id)
    assert harness.workshop.stock[other.item_id] == before - 1
    assert [r.item_id for r in harness.workshop.runs if r.job_id == job] == [other.item_id]
    assert done.history[:3] == ("received", "blocked", "validated")


async def test_choice_refusals_change_nothing(harness: Harness) -> None:
    handle, _, item, _ = await blocked_job(harness)
    choose = EngravingWorkflow.choose_alternative

    assert await refused(handle, choose, AlternativeChoice(item_id=item)) == n.REFUSED_NOT_OFFERED
    assert await refused(handle, choose, AlternativeChoice()) == n.REFUSED_NOT_OFFERED
    both = AlternativeChoice(item_id=item, cancel=True)
    assert await refused(handle, choose, both) == n.REFUSED_INVALID_INPUT

    view = await handle.execute_update(choose, AlternativeChoice(cancel=True))
    assert (view.status, view.reason) == ("cancelled", n.REASON_CUSTOMER_CANCELLED)
    assert (await handle.result()).status == "cancelled"


async def test_choice_refused_when_not_waiting(harness: Harness) -> None:
    item = stock(harness, 1)
    job = unique("J-nochoice")
    gate = asyncio.Event()
    harness.workshop.machines[job] = MachineScript(hold=gate)
    handle = await start(harness.client, message(job, item))
    await wait_for(handle, lambda v: v.status == "engraving")
    try:
        choice = AlternativeChoice(item_id=item)
        kind = await refused(handle, EngravingWorkflow.choose_alternative, choice)
    finally:
        gate.set()
    assert kind == n.REFUSED_NOT_AWAITING_ALTERNATIVE


async def test_restock_signal_lets_the_job_continue(harness: Harness) -> None:
    handle, job, item, _ = await blocked_job(harness)
    harness.workshop.stock[item] = 1

    await handle.signal(EngravingWorkflow.restocked, Restock(item, 1))
    view = await completed(handle)

    assert (view.status, view.item_id) == ("complete", item)
    assert job in harness.workshop.consumed


async def test_restock_found_by_the_recheck_timer_without_a_signal(harness: Harness) -> None:
    handle, _, item, _ = await blocked_job(harness)
    await idle(harness, handle, "blocked")
    harness.workshop.stock[item] = 1  # the signal was lost: the shop was offline

    await harness.env.sleep(n.RESTOCK_RECHECK + timedelta(seconds=1))
    view = await completed(handle)

    assert (view.status, view.item_id) == ("complete", item)


async def test_nobody_unblocks_the_job_for_seven_days(harness: Harness) -> None:
    handle, job, _, _ = await blocked_job(harness)
    await idle(harness, handle, "blocked")

    await harness.env.sleep(n.BLOCKED_WAIT + timedelta(seconds=1))
    result = await handle.result()

    assert (result.status, result.reason) == ("cancelled", n.REASON_STOCK_TIMEOUT)
    view = await handle.query(EngravingWorkflow.status)
    assert (view.status, view.reason, view.awaiting) == ("cancelled", n.REASON_STOCK_TIMEOUT, None)
    assert harness.events.of("notification", job)[-1]["kind"] == "cancelled"
    assert job not in harness.workshop.reservations


# --- rating ------------------------------------------------------------------------------------


async def test_rating_a_complete_job(harness: Harness) -> None:
    item = stock(harness, 1)
    job = unique("J-rate")
    handle = await start(harness.client, message(job, item))
    view = await outcome(handle)
    assert (view.status, view.awaiting, view.rating) == ("complete", "rating", None)

    rated = await handle.execute_update(EngravingWorkflow.rate, Rating(5, "beautiful"))

    assert rated.status == "complete" and rated.awaiting is None
    assert rated.rating is not None and (rated.rating.stars, rated.rating.comment) == (
        5,
        "beautiful",
    )
    result = await handle.result()
    assert result.status == "complete" and result.rating is not None
    event = harness.events.of("rating", job)
    assert [(e["stars"], e["comment"], e["item_id"]) for e in event] == [(5, "beautiful", item)]
    assert [s.state for s in rated.steps] == ["done", "skipped", "skipped", "done", "done", "done"]


async def test_rating_refusals_change_nothing(harness: Harness) -> None:
    item = stock(harness, 1)
    job = unique("J-rate-bad")
    gate = asyncio.Event()
    harness.workshop.machines[job] = MachineScript(hold=gate)
    handle = await start(harness.client, message(job, item))
    await wait_for(handle, lambda v: v.status == "engraving")
    try:
        early = await refused(handle, EngravingWorkflow.rate, Rating(4))
    finally:
        gate.set()
    assert early == n.REFUSED_NOT_RATABLE
    await outcome(handle)

    for bad in (Rating(0), Rating(6), Rating(3, "x" * (n.COMMENT_MAX + 1))):
        assert await refused(handle, EngravingWorkflow.rate, bad) == n.REFUSED_INVALID_RATING
    await handle.execute_update(EngravingWorkflow.rate, Rating(3))
    assert (await handle.result()).rating == (await handle.query(EngravingWorkflow.status)).rating
    # rated: the workflow has closed, so a second rating cannot even reach it
    with pytest.raises((WorkflowUpdateFailedError, RPCError)):
        await handle.execute_update(EngravingWorkflow.rate, Rating(5))
    view = await handle.query(EngravingWorkflow.status)
    assert view.rating is not None and view.rating.stars == 3


async def test_the_rating_window_closes_unrated(harness: Harness) -> None:
    item = stock(harness, 1)
    job = unique("J-unrated")
    handle = await start(harness.client, message(job, item))
    await outcome(handle)
    await idle(harness, handle, "complete")

    await harness.env.sleep(n.RATING_WINDOW + timedelta(seconds=1))
    result = await handle.result()

    assert (result.status, result.rating) == ("complete", None)
    assert not harness.events.of("rating", job)


# --- cancelled on the workshop -----------------------------------------------------------------


async def test_a_run_cancelled_on_the_workshop_ends_cancelled(harness: Harness) -> None:
    item = stock(harness, 1)
    job = unique("J-shop-cancel")
    harness.workshop.machines[job] = MachineScript(cancelled_here="customer phoned")
    result = await (await start(harness.client, message(job, item))).result()

    assert (result.status, result.reason) == ("cancelled", "customer phoned")
    released = [r for r in harness.workshop.released if r.job_id == job]
    assert released and released[0].engraved  # lines were acknowledged: written off
    assert not harness.events.of("escalation", job)


async def test_a_job_cancelled_on_the_workshop_before_qa_ends_cancelled(harness: Harness) -> None:
    item = stock(harness, 1)
    job = unique("J-shop-cancel-qa")
    harness.workshop.qa_cancelled[job] = "wrong plate"
    handle = await start(harness.client, message(job, item))
    result = await handle.result()

    assert (result.status, result.reason) == ("cancelled", "wrong plate")
    view = await handle.query(EngravingWorkflow.status)
    assert (view.status, view.reason) == ("cancelled", "wrong plate")
    assert [s.state for s in view.steps][-2:] == ["stopped", "pending"]


# --- the view ----------------------------------------------------------------------------------


async def test_the_view_carries_what_the_page_needs_and_no_qa_notes(harness: Harness) -> None:
    item = stock(harness, 1)
    job = unique("J-view")
    harness.workshop.qa_verdicts[job] = [False]
    handle = await start(harness.client, message(job, item, rush=True))
    view = await outcome(handle)
    await idle(harness, handle, "complete")

    assert (view.item_id, view.text, view.rush) == (item, ("Champion", "2026"), True)
    assert view.due_date == "2026-12-01T12:00:00Z"
    assert [t.status for t in view.timeline] == list(view.history)
    assert all(t.at for t in view.timeline)
    assert [s.name for s in view.steps] == [
        "received",
        "design",
        "approval",
        "engraving",
        "qa",
        "complete",
    ]
    assert view.awaiting_until is not None
    published = [e.get("reason") for e in harness.events.of("status", job)]
    assert not any("smudged" in (r or "") for r in published), published
    failed = [e for e in harness.events.of("status", job) if e["status"] == "qa_failed"]
    assert (failed and "re-engraved" in failed[0]["reason"]) or "engraved again" in failed[0][
        "reason"
    ]
