"""Helpers for the workshop-activity tests: inputs, a fake machine worker, polling waits."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from crown_edge.errors import UnknownJob
from crown_edge.lifecycle import JobEvent
from crown_edge.models import JobStatus
from crown_edge.scheduler import Scheduler
from crown_edge.store import Job, RunEnd, Store
from crown_edge.workflow import names as n

T = TypeVar("T")
LINES = ("Champion", "2026")


def validate_input(job_id: str, item_id: str = "plaque-a5", **kw: Any) -> n.ValidateJobInput:
    """A validate_job input for a standard job."""
    data: dict[str, Any] = {
        "job_id": job_id,
        "item_id": item_id,
        "lines": LINES,
        "font": None,
        "material": None,
        "shop_id": "test",
        "priority": n.PRIORITY_STANDARD,
        "rush": False,
    }
    data.update(kw)
    return n.ValidateJobInput(**data)


def run_input(job_id: str, attempt: int = 1, item_id: str = "plaque-a5") -> n.MachineRunInput:
    """A send_to_machine input."""
    return n.MachineRunInput(
        job_id=job_id,
        attempt=attempt,
        item_id=item_id,
        lines=LINES,
        material=None,
        font=None,
        rush=False,
        due_date="2026-12-01T12:00:00Z",
        priority=n.PRIORITY_STANDARD,
        shop_id="test",
    )


def qa_input(job_id: str, attempt: int = 1) -> n.QaInput:
    """A quality_check input."""
    return n.QaInput(job_id, attempt, "plaque-a5", LINES, "laser-1", n.PRIORITY_STANDARD)


async def eventually(
    probe: Callable[[], Awaitable[T]], ok: Callable[[T], bool], *, tries: int = 2000
) -> T:
    """Poll ``probe`` until ``ok`` holds (no wall-clock assertions, just a try budget)."""
    value = await probe()
    for _ in range(tries):
        if ok(value):
            return value
        await asyncio.sleep(0.005)
        value = await probe()
    raise AssertionError(f"condition never held; last value {value!r}")


async def wait_status(store: Store, job_id: str, *status: JobStatus) -> Job:
    """Wait until the job exists and is in one of ``status``."""

    async def probe() -> Job | None:
        try:
            return await store.get_job(job_id)
        except UnknownJob:
            return None

    job = await eventually(probe, lambda j: j is not None and j.status in status)
    assert job is not None
    return job


class FakeMachine:
    """What the daemon's machine worker does to the store: claim, then end the run."""

    def __init__(self, store: Store, scheduler: Scheduler, machine_id: str = "laser-1") -> None:
        self.store = store
        self.scheduler = scheduler
        self.machine_id = machine_id

    async def claim(self) -> Job:
        """Wait for a queued job and claim it (queued -> engraving, a new runs row)."""
        job = await eventually(
            lambda: self.scheduler.claim_next(self.machine_id, time.time()),
            lambda j: j is not None,
        )
        assert job is not None
        return job

    async def end(
        self,
        job_id: str,
        *,
        event: JobEvent = JobEvent.FINISH,
        outcome: str = "completed",
        acked: int = 10,
        total: int = 10,
        detail: dict[str, Any] | None = None,
    ) -> Job:
        """End the open run and transition the job in one transaction, like the daemon."""
        now = time.time()
        sets: dict[str, Any] = {"acked_lines": acked, "total_lines": total}
        if event is JobEvent.FINISH:
            sets["progress"] = 1.0
        end = RunEnd(outcome, acked, total, acked, detail or {})
        job = await self.store.end_run(job_id, None, end, event, now, sets=sets)
        return job if job is not None else await self.store.get_job(job_id)

    async def run(self, **kw: Any) -> Job:
        """Claim the next job and run it to the given end."""
        job = await self.claim()
        return await self.end(job.job_id, **kw)


async def count_runs(store: Store, job_id: str) -> int:
    """How many machine runs the job has."""
    return len(await store.runs(job_id))


async def enqueue_events(store: Store, job_id: str) -> int:
    """How many times the job was queued (enqueue/reengrave/restart events)."""
    events = await store.events(job_id)
    return sum(1 for e in events if e.get("status") == "queued")
