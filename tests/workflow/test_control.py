"""Cancellation, live machine details, racing for stock, interruptions, idempotent starts."""

from __future__ import annotations

import asyncio

import pytest
from temporalio.worker import Replayer

from crown_edge.workflow import names as n
from crown_edge.workflow.data import CancelRequest, ResumeRequest
from crown_edge.workflow.workflow import EngravingWorkflow
from tests.workflow.fakes import MachineScript
from tests.workflow.support import Harness, message, outcome, start, unique, wait_for

pytestmark = pytest.mark.asyncio(loop_scope="session")


def stock(h: Harness, units: int) -> str:
    """A fresh item with ``units`` in stock; returns its id."""
    item_id = unique("item")
    h.workshop.stock[item_id] = units
    return item_id


async def test_cancel_stops_the_machine_and_releases_stock(harness: Harness) -> None:
    item = stock(harness, 1)
    job = unique("J-cancel")
    harness.workshop.machines[job] = MachineScript(until_cancelled=True)
    handle = await start(harness.client, message(job, item))
    await wait_for(handle, lambda v: v.status == "engraving")

    await handle.signal(EngravingWorkflow.cancel, CancelRequest("customer changed mind", "ops"))
    result = await outcome(handle)

    assert (result.status, result.reason) == ("cancelled", "customer changed mind")
    assert job in harness.workshop.machine_stopped
    released = [r for r in harness.workshop.released if r.job_id == job]
    assert len(released) == 1
    assert released[0].engraved  # the run had started: the unit is written off
    assert job not in harness.workshop.reservations
    assert harness.events.of("notification", job)[-1]["kind"] == "cancelled"


async def test_cancel_while_awaiting_approval_returns_the_unit(harness: Harness) -> None:
    item = stock(harness, 1)
    harness.workshop.stock["glass-tumbler"] = harness.workshop.stock.get("glass-tumbler", 0) + 1
    job = unique("J-cancel-design")
    handle = await start(harness.client, message(job, "glass-tumbler", requires_design=True))
    await wait_for(handle, lambda v: v.status == "pending_approval")
    before = harness.workshop.stock["glass-tumbler"]

    await handle.signal(EngravingWorkflow.cancel, CancelRequest("duplicate order"))
    result = await outcome(handle)

    assert result.status == "cancelled"
    assert harness.workshop.stock["glass-tumbler"] == before + 1
    assert harness.workshop.stock[item] == 1


async def test_temporal_cancellation_is_handled_like_the_signal(harness: Harness) -> None:
    item = stock(harness, 1)
    job = unique("J-tcancel")
    harness.workshop.machines[job] = MachineScript(until_cancelled=True)
    handle = await start(harness.client, message(job, item))
    await wait_for(handle, lambda v: v.status == "engraving")

    await handle.cancel()
    result = await outcome(handle)

    assert result.status == "cancelled"
    assert job in harness.workshop.machine_stopped
    assert job not in harness.workshop.reservations


async def test_query_shows_queue_position_then_machine_and_progress(harness: Harness) -> None:
    item = stock(harness, 1)
    job = unique("J-query")
    queued, engraving = asyncio.Event(), asyncio.Event()
    harness.workshop.machines[job] = MachineScript(
        hold_queued=queued, hold=engraving, queue_position=3, machine_id="laser-7"
    )
    handle = await start(harness.client, message(job, item))
    try:
        view = await wait_for(handle, lambda v: v.status == "queued" and v.queue_position == 3)
        assert view.machine_id is None
        queued.set()
        view = await wait_for(handle, lambda v: v.status == "engraving")
        assert (view.machine_id, view.progress, view.attempt) == ("laser-7", 0.5, 1)
        assert view.history[-2:] == ("queued", "engraving")
    finally:
        queued.set()
        engraving.set()
    assert (await outcome(handle)).status == "complete"
    published = [e for e in harness.events.of("status", job) if e["status"] == "queued"]
    assert [e.get("queue_position") for e in published] == [None, 3]


async def test_concurrent_jobs_race_for_the_last_unit(harness: Harness) -> None:
    item = stock(harness, 1)
    jobs = [unique("J-race") for _ in range(4)]
    handles = await asyncio.gather(*(start(harness.client, message(j, item)) for j in jobs))
    results = await asyncio.gather(*(outcome(h) for h in handles))

    outcomes = sorted((r.status, r.reason) for r in results)
    assert outcomes == [("blocked", "no_inventory")] * 3 + [("complete", None)]
    assert harness.workshop.stock[item] == 0
    assert sum(j in harness.workshop.consumed for j in jobs) == 1


async def test_interrupted_run_waits_for_resume_then_runs_again(harness: Harness) -> None:
    item = stock(harness, 1)
    job = unique("J-interrupt")
    harness.workshop.machines[job] = MachineScript(outcomes=[n.OUTCOME_INTERRUPTED])
    handle = await start(harness.client, message(job, item))
    await wait_for(handle, lambda v: v.status == "interrupted")

    await handle.signal(EngravingWorkflow.resume, ResumeRequest("tech-1", "re-fixtured"))
    result = await outcome(handle)

    assert result.status == "complete"
    assert [r.attempt for r in harness.workshop.runs if r.job_id == job] == [1, 2]


async def test_rush_job_carries_priority_1(harness: Harness) -> None:
    item = stock(harness, 2)
    rush, standard = unique("J-rush"), unique("J-std")
    await outcome(await start(harness.client, message(rush, item, rush=True)))
    await outcome(await start(harness.client, message(standard, item)))

    priorities = {r.job_id: r.priority for r in harness.workshop.runs}
    assert (priorities[rush], priorities[standard]) == (1, 5)


async def test_start_job_is_idempotent_on_the_job_id(harness: Harness) -> None:
    item = stock(harness, 2)
    job = unique("J-dup")
    gate = asyncio.Event()
    harness.workshop.machines[job] = MachineScript(hold=gate)
    first = await start(harness.client, message(job, item))
    second = await start(harness.client, message(job, item))  # while running: same run
    assert second.result_run_id == first.result_run_id
    gate.set()
    assert (await outcome(first)).status == "complete"

    third = await start(harness.client, message(job, item))  # after close: rejected duplicate
    assert third.id == n.workflow_id(job)
    assert (await outcome(third)).status == "complete"
    assert len([r for r in harness.workshop.runs if r.job_id == job]) == 1
    assert harness.workshop.stock[item] == 1


async def test_histories_replay_deterministically(harness: Harness) -> None:
    item = stock(harness, 1)
    job = unique("J-replay")
    harness.workshop.qa_verdicts[job] = [False]
    handle = await start(harness.client, message(job, item, rush=True))
    await outcome(handle)

    replayer = Replayer(workflows=[EngravingWorkflow])
    await replayer.replay_workflow(await handle.fetch_history())


async def test_a_failed_run_ends_the_job_failed_and_escalates(harness: Harness) -> None:
    item = stock(harness, 1)
    job = unique("J-failed")
    harness.workshop.machines[job] = MachineScript(outcomes=[n.OUTCOME_FAILED])
    result = await outcome(await start(harness.client, message(job, item)))

    assert result.status == "failed"
    assert harness.events.of("escalation", job)
    released = [r for r in harness.workshop.released if r.job_id == job]
    assert released and released[0].engraved
