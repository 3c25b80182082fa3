"""Waiting workshop activities share one store read per change (the pipeline's edge side).

A store commit wakes every waiting ``send_to_machine`` and ``quality_check``; they look at their
jobs through :class:`~crown_edge.daemon.activities.ActiveJobs`, one read for all of them, on a
real store.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import cast

import pytest

from crown_edge.catalog import load_catalog
from crown_edge.config import MachineConfig
from crown_edge.daemon.activities import ActiveJobs, EdgeActivities
from crown_edge.models import Availability, Execution, JobStatus, MachineState
from crown_edge.scheduler import Scheduler
from crown_edge.store import Store
from crown_edge.workflow import names as n

MACHINE = MachineConfig(id="laser-1", driver="sim")


@pytest.fixture
async def edge(tmp_path: Path) -> AsyncIterator[EdgeActivities]:
    catalog = load_catalog()
    async with Store.from_path(tmp_path / "edge.db") as store:
        await store.sync_catalog(catalog, now=0.0)
        scheduler = Scheduler(store, (MACHINE,), catalog)
        await scheduler.start()
        await scheduler.set_machine_state(
            MachineState(MACHINE.id, Availability.AVAILABLE, Execution.READY), now=0.0
        )
        # max age far above the test's length: only a commit makes it read again
        activities = EdgeActivities(store, scheduler, catalog, poll_s=600.0)
        yield activities


async def queued(edge: EdgeActivities, job_id: str) -> None:
    await edge.validate_job(
        n.ValidateJobInput(
            job_id=job_id,
            item_id="plaque-a5",
            lines=("Champion",),
            font=None,
            material=None,
            shop_id="test",
            priority=n.PRIORITY_STANDARD,
            rush=False,
        )
    )
    run = n.MachineRunInput(
        job_id=job_id,
        attempt=1,
        item_id="plaque-a5",
        lines=("Champion",),
        material=None,
        font=None,
        rush=False,
        due_date="2026-12-01T12:00:00Z",
        priority=n.PRIORITY_STANDARD,
        shop_id="test",
    )
    assert await edge._begin_run(run) is None  # queued, not done


async def test_waiters_share_one_read_per_change(edge: EdgeActivities) -> None:
    jobs = [f"J-{i}" for i in range(8)]
    for job_id in jobs:
        await queued(edge, job_id)
    active = edge.active

    seen = await asyncio.gather(*(active.get(j) for j in jobs))
    assert [job.status for job in seen] == [JobStatus.QUEUED] * len(jobs)
    assert active.reads == 1

    # nothing committed: the next look reads nothing
    again = await asyncio.gather(*(active.get(j) for j in jobs))
    assert again == seen
    assert active.reads == 1

    # a commit (the job cancelled on the workshop): the next look sees it, in one more read
    await edge.jobs.cancel("J-0", "customer phoned", settle_stock=True, strict=False)
    after = await asyncio.gather(*(active.get(j) for j in jobs))
    assert after[0].status is JobStatus.CANCELLED  # out of the watched statuses: its own read
    assert [job.status for job in after[1:]] == [JobStatus.QUEUED] * (len(jobs) - 1)
    assert active.reads == 2


async def test_a_change_wakes_only_the_waiters_of_that_job(edge: EdgeActivities) -> None:
    jobs = ["W-0", "W-1", "W-2"]
    for job_id in jobs:
        await queued(edge, job_id)
    active = edge.active
    seen = await asyncio.gather(*(active.get(j) for j in jobs))
    waiting = [
        asyncio.create_task(active.wait_change(j, job, timeout=600.0))
        for j, job in zip(jobs, seen, strict=True)
    ]
    await asyncio.sleep(0)  # all three wait

    await edge.jobs.cancel("W-0", "customer phoned", settle_stock=True, strict=False)
    async with asyncio.timeout(30):
        await waiting[0]
    assert not waiting[1].done() and not waiting[2].done()
    assert (await active.get("W-0")).status is JobStatus.CANCELLED

    for task in waiting[1:]:
        task.cancel()
    await asyncio.gather(*waiting[1:], return_exceptions=True)


class _SlowStore:
    """A store whose shared read takes a while (a busy workshop): counts the reads."""

    def __init__(self) -> None:
        self.reads = 0

    async def list_jobs(self, statuses: list[str], limit: int) -> list[object]:
        self.reads += 1
        await asyncio.sleep(0.02)
        return []

    async def get_job(self, job_id: str) -> str:
        return f"read {job_id}"


async def test_a_reader_is_served_by_one_read_while_commits_keep_coming() -> None:
    """Under a steady stream of commits the shared read goes on and on; a caller waits for one
    read that began after its change, never for the store to fall quiet (it used to: the
    activities then missed their heartbeats and were retried after the heartbeat timeout)."""
    store = _SlowStore()
    active = ActiveJobs(cast(Store, store), max_age_s=600.0)
    stop = asyncio.Event()

    async def committing() -> None:
        while not stop.is_set():
            active.changed()
            await asyncio.sleep(0.005)

    busy = asyncio.create_task(committing())
    try:
        active.changed()
        for _ in range(5):
            before = store.reads
            async with asyncio.timeout(30):  # generous: the point is it returns while busy
                assert await active.get("J-1") == "read J-1"
            assert store.reads - before <= 3  # the read under way, and at most two more
        assert not busy.done()  # the commits never stopped
    finally:
        stop.set()
        await busy
