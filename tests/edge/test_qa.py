"""quality_check (manual and auto) and mark_complete on a real store."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from crown_edge.catalog import Catalog
from crown_edge.daemon.activities import EdgeActivities
from crown_edge.lifecycle import JobEvent
from crown_edge.models import JobStatus
from crown_edge.scheduler import Scheduler
from crown_edge.store import Store
from crown_edge.workflow import names as n
from tests.edge.support import FakeMachine, qa_input, run_input, validate_input

S = JobStatus


async def engraved(
    edge: EdgeActivities, store: Store, scheduler: Scheduler, job_id: str, **end: Any
) -> None:
    """Validate, queue and run the job once: it ends in qa_pending (attempt 1)."""
    env = ActivityEnvironment()
    await env.run(edge.validate_job, validate_input(job_id))
    task = asyncio.create_task(env.run(edge.send_to_machine, run_input(job_id)))
    await FakeMachine(store, scheduler).run(**end)
    await task


async def technician(store: Store, job_id: str, passed: bool, notes: str = "") -> None:
    """What ``crown-edge qa pass|fail`` does: store the verdict, move the job."""
    await store.record_verdict(job_id, None, passed, notes, "tech-1", time.time())


async def delivered_at(store: Store, job_id: str) -> float | None:
    found = await store.verdict(job_id, 1)
    return None if found is None else found.delivered_at


async def test_verdict_given_before_the_activity_is_delivered(
    edge: EdgeActivities, store: Store, scheduler: Scheduler
) -> None:
    await engraved(edge, store, scheduler, "Q-1")
    await technician(store, "Q-1", True, "crisp")  # while Temporal was unreachable
    result = await ActivityEnvironment().run(edge.quality_check, qa_input("Q-1"))
    assert result == n.QaResult(True, "crisp", "tech-1")
    assert await delivered_at(store, "Q-1") is not None
    again = await ActivityEnvironment().run(edge.quality_check, qa_input("Q-1"))
    assert again == result, "a retry gets the same verdict"


async def test_waits_for_the_technician(
    edge: EdgeActivities, store: Store, scheduler: Scheduler
) -> None:
    await engraved(edge, store, scheduler, "Q-2")
    beats: list[Any] = []
    env = ActivityEnvironment()
    env.on_heartbeat = lambda *d: beats.extend(d)
    task = asyncio.create_task(env.run(edge.quality_check, qa_input("Q-2")))
    for _ in range(500):
        if beats:
            break
        await asyncio.sleep(0.005)
    assert beats and beats[0]["waiting"] == "qa_verdict"
    assert not task.done()
    await technician(store, "Q-2", False, "smudged")
    result = await task
    assert result == n.QaResult(False, "smudged", "tech-1")
    assert (await store.get_job("Q-2")).status is S.QA_FAILED


@pytest.fixture
def auto_edge(store: Store, scheduler: Scheduler, catalog: Catalog) -> EdgeActivities:
    return EdgeActivities(store, scheduler, catalog, qa_mode="auto", poll_s=0.01)


async def test_auto_passes_a_clean_run(
    auto_edge: EdgeActivities, store: Store, scheduler: Scheduler
) -> None:
    await engraved(auto_edge, store, scheduler, "Q-3", acked=12, total=12)
    result = await ActivityEnvironment().run(auto_edge.quality_check, qa_input("Q-3"))
    assert result.passed and result.by == "auto"
    assert (await store.get_job("Q-3")).status is S.COMPLETE
    assert await delivered_at(store, "Q-3") is not None


async def test_auto_fails_a_run_with_unacknowledged_lines(
    auto_edge: EdgeActivities, store: Store, scheduler: Scheduler
) -> None:
    await engraved(auto_edge, store, scheduler, "Q-4", acked=11, total=12)
    result = await ActivityEnvironment().run(auto_edge.quality_check, qa_input("Q-4"))
    assert not result.passed and "11/12" in result.notes
    job = await store.get_job("Q-4")
    assert (job.status, job.retry_count) == (S.QA_FAILED, 1)


async def test_auto_fails_a_run_with_an_alarm(
    auto_edge: EdgeActivities, store: Store, scheduler: Scheduler
) -> None:
    await engraved(auto_edge, store, scheduler, "Q-5", detail={"interlock": "door"})
    result = await ActivityEnvironment().run(auto_edge.quality_check, qa_input("Q-5"))
    assert not result.passed and "interlock" in result.notes


async def test_qa_of_a_cancelled_job_is_refused(
    edge: EdgeActivities, store: Store, scheduler: Scheduler
) -> None:
    await engraved(edge, store, scheduler, "Q-6")
    await store.transition("Q-6", JobEvent.CANCEL, time.time())
    with pytest.raises(ApplicationError) as info:
        await ActivityEnvironment().run(edge.quality_check, qa_input("Q-6"))
    assert info.value.non_retryable


async def stock(store: Store) -> tuple[int, int, int]:
    row = next(r for r in await store.list_stock() if r.item_id == "plaque-a5")
    return row.available, row.reserved, row.consumed


async def test_mark_complete_is_idempotent(
    edge: EdgeActivities, store: Store, scheduler: Scheduler
) -> None:
    start = await stock(store)
    await engraved(edge, store, scheduler, "Q-7")
    await technician(store, "Q-7", True)
    done = n.CompleteInput("Q-7", "plaque-a5", 1, "laser-1", "tech-1")
    env = ActivityEnvironment()
    await env.run(edge.mark_complete, done)
    await env.run(edge.mark_complete, done)
    assert await stock(store) == (start[0] - 1, 0, 1)
    assert (await store.get_job("Q-7")).status is S.COMPLETE


async def test_mark_complete_from_qa_pending(
    edge: EdgeActivities, store: Store, scheduler: Scheduler
) -> None:
    await engraved(edge, store, scheduler, "Q-8")
    done = n.CompleteInput("Q-8", "plaque-a5", 1, "laser-1")
    await ActivityEnvironment().run(edge.mark_complete, done)
    await ActivityEnvironment().run(edge.mark_complete, done)
    assert (await store.get_job("Q-8")).status is S.COMPLETE
    events = [e["status"] for e in await store.events("Q-8")]
    assert events.count("complete") == 1


async def test_auto_leaves_a_run_sent_to_qa_by_a_technician_to_a_person(
    auto_edge: EdgeActivities, store: Store, scheduler: Scheduler
) -> None:
    """``jobs resume --to-qa``: an interrupted run whose lines were all sent is judged by hand."""
    env = ActivityEnvironment()
    await env.run(auto_edge.validate_job, validate_input("Q-9"))
    run = asyncio.create_task(env.run(auto_edge.send_to_machine, run_input("Q-9")))
    machine = FakeMachine(store, scheduler)
    await machine.claim()
    await machine.end(
        "Q-9",
        event=JobEvent.INTERRUPT,
        outcome="interrupted",
        acked=10,
        total=12,
        detail={"reason": "daemon_restart"},
    )
    await store.send_to_qa("Q-9", time.time(), by="tech-1")
    assert (await run).outcome == n.OUTCOME_COMPLETED  # the workflow goes on to QA
    beats: list[Any] = []
    qa_env = ActivityEnvironment()
    qa_env.on_heartbeat = lambda *d: beats.extend(d)
    task = asyncio.create_task(qa_env.run(auto_edge.quality_check, qa_input("Q-9")))
    for _ in range(500):
        if beats:
            break
        await asyncio.sleep(0.005)
    assert beats and beats[0]["waiting"] == "qa_verdict" and not task.done()
    await technician(store, "Q-9", True, "finished before the restart")
    result = await task
    assert result == n.QaResult(True, "finished before the restart", "tech-1")
