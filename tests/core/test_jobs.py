"""The job service: the standalone retry policy, and a cancel that waits for the machine."""

from __future__ import annotations

import asyncio
import time

import pytest

from crown_edge.catalog import load_catalog
from crown_edge.daemon.jobs import ESCALATED_REASON, JobOps, after_qa_fail
from crown_edge.errors import NoInventory
from crown_edge.lifecycle import JobEvent
from crown_edge.models import JobStatus
from crown_edge.scheduler import Scheduler
from crown_edge.store import Job, RunEnd, Store
from crown_edge.workflow.names import MAX_ATTEMPTS

from .conftest import message


@pytest.mark.parametrize("attempt", range(1, MAX_ATTEMPTS + 2))
def test_a_failed_qa_runs_again_until_the_workflows_limit(attempt: int) -> None:
    expected = JobEvent.REENGRAVE if attempt < MAX_ATTEMPTS else JobEvent.ESCALATE
    assert after_qa_fail(attempt) is expected


def ops_for(store: Store, scheduler: Scheduler) -> JobOps:
    return JobOps(store, scheduler, load_catalog(), cancel_wait_s=10.0)


async def engraving(store: Store, scheduler: Scheduler, job_id: str) -> Job:
    await store.submit(message(job_id), now=1.0)
    await store.validate_and_reserve(job_id, now=1.0)
    await scheduler.enqueue(job_id, 1.0, attempt=1)
    job = await scheduler.claim(job_id, "flat-1", now=2.0)
    assert job is not None
    return job


async def worker(store: Store, job_id: str, event: JobEvent, outcome: str) -> None:
    """A machine worker: on a cancel request, stop and end the run with ``event``."""
    changed = asyncio.Event()
    store.on_commit.append(changed.set)
    try:
        while True:
            changed.clear()
            reason = await store.cancel_requested(job_id)
            if reason is not None:
                break
            await changed.wait()
    finally:
        store.on_commit.remove(changed.set)
    end = RunEnd(outcome, 3, 10, 3, {"reason": reason})
    await store.end_run(job_id, "flat-1", end, event, time.time(), sets={"reason": reason})


async def test_cancel_waits_for_the_worker_to_stop_the_run(
    store: Store, scheduler: Scheduler
) -> None:
    await engraving(store, scheduler, "J-1")
    stopping = asyncio.create_task(worker(store, "J-1", JobEvent.CANCEL, "cancelled"))
    job = await ops_for(store, scheduler).cancel("J-1", "phone")
    await stopping
    assert (job.status, job.reason) == (JobStatus.CANCELLED, "phone")
    assert [r.outcome for r in await store.runs("J-1")] == ["cancelled"]


async def test_a_run_that_ended_first_is_cancelled_after_it(
    store: Store, scheduler: Scheduler
) -> None:
    await engraving(store, scheduler, "J-2")
    finishing = asyncio.create_task(worker(store, "J-2", JobEvent.INTERRUPT, "interrupted"))
    job = await ops_for(store, scheduler).cancel("J-2", "phone")
    await finishing
    assert job.status is JobStatus.CANCELLED
    statuses = [e["status"] for e in await store.events("J-2")]
    assert statuses[-2:] == ["interrupted", "cancelled"]
    row = next(r for r in await store.list_stock() if r.item_id == "plaque-a5")
    assert row.reserved == 0 and row.consumed == 1  # touched by the run: written off


async def test_cancel_without_waiting_leaves_the_request(
    store: Store, scheduler: Scheduler
) -> None:
    await engraving(store, scheduler, "J-3")
    job = await ops_for(store, scheduler).cancel("J-3", "workflow", wait=False)
    assert job.status is JobStatus.ENGRAVING
    assert await store.cancel_requested("J-3") == "workflow"


async def test_a_walk_in_job_escalates_after_the_last_failed_qa(
    store: Store, scheduler: Scheduler
) -> None:
    ops = ops_for(store, scheduler)
    await store.submit(message("J-4"), now=1.0)
    await store.validate_and_reserve("J-4", now=1.0)
    await scheduler.enqueue("J-4", 1.0, attempt=MAX_ATTEMPTS)
    await scheduler.claim("J-4", "flat-1", now=2.0)
    await store.end_run("J-4", "flat-1", RunEnd("completed", 9, 9, 9), JobEvent.FINISH, 3.0)
    job = await ops.record_qa("J-4", False, "blurred", "tech")
    assert (job.status, job.reason) == (JobStatus.ESCALATED, ESCALATED_REASON)


def commits(store: Store) -> list[int]:
    """A counter of the store's committed write transactions (each one calls on_commit)."""
    count = [0]

    def seen() -> None:
        count[0] += 1

    store.on_commit.append(seen)
    return count


async def test_a_walk_in_job_is_validated_reserved_and_queued_in_one_transaction(
    store: Store, scheduler: Scheduler
) -> None:
    ops = ops_for(store, scheduler)
    count = commits(store)
    job = await ops.intake_local(message("W-1"))
    assert (job.status, job.attempt, job.message["origin"]) == (JobStatus.QUEUED, 1, "local")
    assert job.eligible_mask != 0
    assert count == [2]  # received; then validated + reserved + queued together
    statuses = [e["status"] for e in await store.events("W-1")]
    assert statuses == ["received", "validated", "queued"]


async def test_a_walk_in_job_without_stock_is_blocked_not_queued(
    store: Store, scheduler: Scheduler
) -> None:
    await store.set_stock("plaque-a5", 0, now=0.5)
    with pytest.raises(NoInventory):
        await ops_for(store, scheduler).intake_local(message("W-2"))
    job = await store.get_job("W-2")
    assert (job.status, job.reason) == (JobStatus.BLOCKED, "no_inventory")


async def test_a_failed_qa_and_the_next_run_are_one_transaction(
    store: Store, scheduler: Scheduler
) -> None:
    ops = ops_for(store, scheduler)
    await ops.intake_local(message("W-3"))
    await scheduler.claim("W-3", "flat-1", now=2.0)
    await store.end_run("W-3", "flat-1", RunEnd("completed", 9, 9, 9), JobEvent.FINISH, 3.0)
    count = commits(store)
    job = await ops.record_qa("W-3", False, "blurred", "tech")
    assert (job.status, job.attempt, job.retry_count) == (JobStatus.QUEUED, 2, 1)
    assert count == [1]
    events = await store.events("W-3")
    assert [e["event"] for e in events][-2:] == ["qa_fail", "reengrave"]
    assert events[-2]["notes"] == "blurred"


async def test_a_workflow_job_waits_in_qa_failed_for_its_workflow(
    store: Store, scheduler: Scheduler
) -> None:
    ops = JobOps(store, scheduler, load_catalog(), standalone=False)
    await engraving(store, scheduler, "W-4")
    await store.end_run("W-4", "flat-1", RunEnd("completed", 9, 9, 9), JobEvent.FINISH, 3.0)
    job = await ops.record_qa("W-4", False, "blurred", "tech")
    assert (job.status, job.retry_count) == (JobStatus.QA_FAILED, 1)
