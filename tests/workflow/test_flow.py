"""The seed's flows: text-only, design approval / rejection / timeout, QA retries, blocked jobs."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from temporalio.client import WorkflowUpdateFailedError

from crown_edge.workflow import names as n
from crown_edge.workflow.data import ApprovalDecision
from crown_edge.workflow.workflow import EngravingWorkflow
from tests.workflow.fakes import MachineScript
from tests.workflow.support import Harness, message, outcome, start, unique, wait_for

pytestmark = pytest.mark.asyncio(loop_scope="session")


def stock(h: Harness, units: int, max_lines: int = 4) -> str:
    """A fresh item with ``units`` in stock; returns its id."""
    item_id = unique("item")
    h.workshop.stock[item_id] = units
    h.workshop.max_lines[item_id] = max_lines
    return item_id


async def wait_for_event(h: Harness, job_id: str, status: str) -> None:
    """Wait until the cloud has published ``status`` for the job."""
    for _ in range(400):
        if any(e["status"] == status for e in h.events.of("status", job_id)):
            return
        await asyncio.sleep(0.025)
    raise AssertionError(f"{status} never published for {job_id}")


def catalog_stock(h: Harness, item_id: str) -> str:
    """Add a unit of a catalogue item (design tests need the cloud to know the item)."""
    h.workshop.stock[item_id] = h.workshop.stock.get(item_id, 0) + 1
    return item_id


async def test_happy_path_text_only(harness: Harness) -> None:
    item = stock(harness, 2)
    job = unique("J-text")
    result = await outcome(await start(harness.client, message(job, item)))

    assert result.status == "complete"
    assert result.retry_count == 0
    assert harness.workshop.stock[item] == 1
    assert job in harness.workshop.consumed
    await wait_for_event(harness, job, "complete")  # the publisher runs beside the flow
    statuses = harness.events.of("status", job)
    assert [e["seq"] for e in statuses] == list(range(1, len(statuses) + 1))
    words = [e["status"] for e in statuses]
    assert words[:3] == ["received", "validated", "queued"]
    assert words[-2:] == ["qa_pending", "complete"]
    assert "engraving" in words
    assert [n["kind"] for n in harness.events.of("notification", job)] == ["complete"]


async def test_statuses_and_the_notice_leave_in_batches(harness: Harness) -> None:
    """``batched-status``: no ``publish_status`` per change, no separate ``notify_customer``;
    ``received`` waits for the validation and leaves with ``validated`` and ``queued``."""
    job = unique("J-batch")
    handle = await start(harness.client, message(job, stock(harness, 1)))
    await outcome(handle)
    await wait_for_event(harness, job, "complete")

    history = await handle.fetch_history()
    scheduled = [
        e.activity_task_scheduled_event_attributes.activity_type.name
        for e in history.events
        if e.WhichOneof("attributes") == "activity_task_scheduled_event_attributes"
    ]
    assert n.PUBLISH_STATUS not in scheduled
    assert n.NOTIFY_CUSTOMER not in scheduled
    assert scheduled[:2] == [n.VALIDATE_JOB, n.SEND_TO_MACHINE]
    reports = scheduled.count(n.REPORT_STATUS)
    statuses = harness.events.of("status", job)
    assert 1 <= reports < len(statuses)
    assert [e["status"] for e in statuses][:3] == ["received", "validated", "queued"]
    # the notice is sent after the status that caused it
    kinds = [k for k, p in harness.events.events if p.get("job_id") == job]
    assert kinds.index("notification") > max(i for i, k in enumerate(kinds) if k == "status")


async def test_design_approved_by_update(harness: Harness) -> None:
    job = unique("J-design")
    logo = harness.designs_dir.parent / f"{job}-logo.svg"
    logo.write_text(
        '<svg xmlns="http://www.w3.org/2000/svg" width="20" height="10">'
        '<circle cx="5" cy="5" r="4"/></svg>'
    )
    msg = message(job, catalog_stock(harness, "plaque-a5"), artwork_url=logo.as_uri())
    handle = await start(harness.client, msg)

    view = await wait_for(handle, lambda v: v.status == "pending_approval")
    assert view.design_url == f"/designs/{job}.svg"
    assert (harness.designs_dir / f"{job}.svg").read_text().startswith("<svg")
    ready = harness.events.of("design_ready", job)[0]
    assert (ready["design_url"], ready["warnings"]) == (view.design_url, [])

    answered = await handle.execute_update(
        EngravingWorkflow.approve_design_update, ApprovalDecision(True, "lovely")
    )
    assert answered.status in {"approved", "queued", "engraving", "qa_pending", "complete"}
    result = await outcome(handle)
    assert result.status == "complete"
    assert result.design_url == view.design_url
    history = (await handle.query(EngravingWorkflow.status)).history
    assert history[:5] == ("received", "validated", "designing", "pending_approval", "approved")


async def test_update_is_refused_when_no_design_is_awaited(harness: Harness) -> None:
    item = stock(harness, 1)
    job = unique("J-noapp")
    gate = asyncio.Event()
    harness.workshop.machines[job] = MachineScript(hold=gate)
    handle = await start(harness.client, message(job, item))
    await wait_for(handle, lambda v: v.status == "engraving")
    try:
        with pytest.raises(WorkflowUpdateFailedError):
            await handle.execute_update(
                EngravingWorkflow.approve_design_update, ApprovalDecision(True)
            )
    finally:
        gate.set()
    assert (await outcome(handle)).status == "complete"


async def test_design_changes_requested_then_revised_then_approved(harness: Harness) -> None:
    item = catalog_stock(harness, "trophy-plate")
    job = unique("J-revise")
    handle = await start(harness.client, message(job, item, requires_design=True))
    first = await wait_for(handle, lambda v: v.status == "pending_approval")
    assert first.awaiting == "approval" and first.design_revision == 0

    answered = await handle.execute_update(
        EngravingWorkflow.approve_design_update, ApprovalDecision(False, "bigger font")
    )
    assert answered.status == "revision_requested"
    assert answered.reason == "bigger font"
    revised = await wait_for(handle, lambda v: v.status == "pending_approval")
    assert revised.design_revision == 1
    assert revised.design_url == f"/designs/{job}-r1.svg" != first.design_url
    assert (harness.designs_dir / f"{job}-r1.svg").is_file()
    assert harness.events.of("revision_requested", job)[0]["comment"] == "bigger font"
    assert harness.events.of("design_ready", job)[-1]["revision"] == 1
    assert job in harness.workshop.reservations, "the unit stays held during a revision"

    await handle.execute_update(EngravingWorkflow.approve_design_update, ApprovalDecision(True))
    view = await outcome(handle)
    assert view.status == "complete"
    assert view.history[2:7] == (
        "designing",
        "pending_approval",
        "revision_requested",
        "designing",
        "pending_approval",
    )


async def test_too_many_change_requests_escalate(harness: Harness) -> None:
    item = catalog_stock(harness, "trophy-plate")
    job = unique("J-picky")
    handle = await start(harness.client, message(job, item, requires_design=True))
    for round_ in range(n.MAX_DESIGN_REVISIONS + 1):
        await wait_for(
            handle, lambda v, r=round_: v.status == "pending_approval" and v.design_revision == r
        )
        await handle.execute_update(
            EngravingWorkflow.approve_design_update, ApprovalDecision(False, f"no {round_}")
        )
    view = await outcome(handle)

    assert view.status == "escalated"
    assert harness.events.of("escalation", job)[0]["notes"] == [
        f"no {i}" for i in range(n.MAX_DESIGN_REVISIONS + 1)
    ]
    assert job not in harness.workshop.reservations
    assert not [r for r in harness.workshop.runs if r.job_id == job]


async def test_design_auto_approved_after_24_hours(harness: Harness) -> None:
    item = catalog_stock(harness, "cup-silver")
    job = unique("J-auto")
    handle = await start(harness.client, message(job, item, requires_design=True))
    await wait_for(handle, lambda v: v.status == "pending_approval")
    await wait_for_event(harness, job, "pending_approval")  # the job is idle: only the timer

    await harness.env.sleep(timedelta(hours=24, seconds=1))
    result = await outcome(handle)

    assert result.status == "complete"
    history = (await handle.query(EngravingWorkflow.status)).history
    assert "approved" in history


async def test_qa_fails_once_then_complete(harness: Harness) -> None:
    item = stock(harness, 1)
    job = unique("J-qa1")
    harness.workshop.qa_verdicts[job] = [False]
    result = await outcome(await start(harness.client, message(job, item)))

    assert result.status == "complete"
    assert result.retry_count == 1
    assert [r.attempt for r in harness.workshop.runs if r.job_id == job] == [1, 2]
    await wait_for_event(harness, job, "complete")
    failed = [e for e in harness.events.of("status", job) if e["status"] == "qa_failed"]
    assert failed[0]["retry_count"] == 1


async def test_qa_fails_three_times_escalates(harness: Harness) -> None:
    item = stock(harness, 1)
    job = unique("J-qa3")
    harness.workshop.qa_verdicts[job] = [False, False, False]
    result = await outcome(await start(harness.client, message(job, item)))

    assert result.status == "escalated"
    assert result.retry_count == 3
    assert [r.attempt for r in harness.workshop.runs if r.job_id == job] == [1, 2, 3]
    escalation = harness.events.of("escalation", job)
    assert escalation[0]["attempts"] == 3
    assert len(escalation[0]["notes"]) == 3
    released = [r for r in harness.workshop.released if r.job_id == job]
    assert released[0].engraved  # the unit carries a failed engraving: written off
    assert harness.workshop.stock[item] == 0


async def test_no_inventory_blocks_and_offers_alternatives(harness: Harness) -> None:
    item = stock(harness, 0)
    other = stock(harness, 3)
    job = unique("J-empty")
    view = await outcome(await start(harness.client, message(job, item)))

    assert (view.status, view.reason, view.awaiting) == ("blocked", "no_inventory", "alternative")
    offered = harness.events.of("alternatives_offered", job)
    assert other in [a["item_id"] for a in offered[0]["alternatives"]]
    assert item not in [a["item_id"] for a in offered[0]["alternatives"]]
    assert other in [a.item_id for a in view.alternatives]


async def test_text_that_does_not_fit_blocks(harness: Harness) -> None:
    item = stock(harness, 1, max_lines=1)
    job = unique("J-long")
    result = await outcome(await start(harness.client, message(job, item)))

    assert (result.status, result.reason) == ("blocked", "text_does_not_fit")
    assert harness.workshop.stock[item] == 1
    assert harness.events.of("notification", job)[0]["kind"] == "blocked"


async def test_unknown_item_blocks(harness: Harness) -> None:
    job = unique("J-unknown")
    result = await outcome(await start(harness.client, message(job, unique("no-such-item"))))

    assert (result.status, result.reason) == ("blocked", "unknown_item")
