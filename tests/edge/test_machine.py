"""send_to_machine: queueing once per attempt, re-attaching, interrupted runs, cancellation."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from temporalio.activity import ActivityCancellationDetails
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from crown_edge.daemon.activities import EdgeActivities
from crown_edge.lifecycle import JobEvent
from crown_edge.models import JobStatus
from crown_edge.scheduler import Scheduler
from crown_edge.store import Store
from crown_edge.workflow import names as n
from tests.edge.support import (
    FakeMachine,
    count_runs,
    enqueue_events,
    eventually,
    run_input,
    validate_input,
    wait_status,
)

S = JobStatus


class Beats:
    """An ActivityEnvironment that records heartbeat details."""

    def __init__(self) -> None:
        self.details: list[dict[str, Any]] = []
        self.env = ActivityEnvironment()
        self.env.on_heartbeat = self._beat

    def _beat(self, *details: Any) -> None:
        self.details.extend(details)

    def statuses(self) -> list[str]:
        return [d["status"] for d in self.details]


async def validated(edge: EdgeActivities, job_id: str, item_id: str = "plaque-a5") -> None:
    await ActivityEnvironment().run(edge.validate_job, validate_input(job_id, item_id))


async def test_run_completes_with_heartbeats(
    edge: EdgeActivities, store: Store, scheduler: Scheduler
) -> None:
    await validated(edge, "M-1")
    beats = Beats()
    task = asyncio.create_task(beats.env.run(edge.send_to_machine, run_input("M-1")))
    await wait_status(store, "M-1", S.QUEUED)
    await eventually(lambda: asyncio.sleep(0, beats.statuses()), lambda s: "queued" in s)
    machine = FakeMachine(store, scheduler)
    await machine.claim()
    await eventually(lambda: asyncio.sleep(0, beats.statuses()), lambda s: "engraving" in s)
    await machine.end("M-1", acked=42, total=42)
    result = await task
    assert result == n.MachineRunResult(n.OUTCOME_COMPLETED, "laser-1", 42, 42)
    queued = next(d for d in beats.details if d["status"] == "queued")
    assert queued["queue_position"] == 1 and queued["attempt"] == 1
    engraving = next(d for d in beats.details if d["status"] == "engraving")
    assert engraving["machine_id"] == "laser-1" and engraving["progress"] == 0.0
    job = await store.get_job("M-1")
    assert (job.status, job.attempt) == (S.QA_PENDING, 1)
    assert job.due_at == pytest.approx(1796126400.0), "due date from the run input"


async def test_retry_with_same_attempt_never_queues_or_runs_twice(
    edge: EdgeActivities, store: Store, scheduler: Scheduler
) -> None:
    await validated(edge, "M-2")
    first = ActivityEnvironment()
    task = asyncio.create_task(first.run(edge.send_to_machine, run_input("M-2")))
    await wait_status(store, "M-2", S.QUEUED)
    await asyncio.sleep(0.05)
    # the worker goes away (shutdown, lost heartbeat): the job must stay queued
    first.cancel(ActivityCancellationDetails(worker_shutdown=True))
    with pytest.raises(asyncio.CancelledError):
        await task
    assert (await store.get_job("M-2")).status is S.QUEUED
    retry = asyncio.create_task(ActivityEnvironment().run(edge.send_to_machine, run_input("M-2")))
    await asyncio.sleep(0.05)
    machine = FakeMachine(store, scheduler)
    await machine.run()
    result = await retry
    assert result.outcome == n.OUTCOME_COMPLETED
    # a late retry of the finished attempt reports it again
    again = await ActivityEnvironment().run(edge.send_to_machine, run_input("M-2"))
    assert again == result
    assert await enqueue_events(store, "M-2") == 1
    assert await count_runs(store, "M-2") == 1


async def test_retry_reattaches_to_an_engraving_run(
    edge: EdgeActivities, store: Store, scheduler: Scheduler
) -> None:
    await validated(edge, "M-3")
    first = ActivityEnvironment()
    task = asyncio.create_task(first.run(edge.send_to_machine, run_input("M-3")))
    machine = FakeMachine(store, scheduler)
    await machine.claim()
    first.cancel(ActivityCancellationDetails(timed_out=True))
    with pytest.raises(asyncio.CancelledError):
        await task
    assert (await store.get_job("M-3")).status is S.ENGRAVING, "a timeout never stops a run"
    retry = asyncio.create_task(ActivityEnvironment().run(edge.send_to_machine, run_input("M-3")))
    await asyncio.sleep(0.05)
    assert not retry.done()
    await machine.end("M-3")
    assert (await retry).outcome == n.OUTCOME_COMPLETED
    assert await count_runs(store, "M-3") == 1


async def test_interrupted_run_waits_for_the_technician(
    edge: EdgeActivities, store: Store, scheduler: Scheduler
) -> None:
    await validated(edge, "M-4")
    beats = Beats()
    task = asyncio.create_task(beats.env.run(edge.send_to_machine, run_input("M-4")))
    machine = FakeMachine(store, scheduler)
    await machine.claim()
    await machine.end(
        "M-4",
        event=JobEvent.INTERRUPT,
        outcome="interrupted",
        acked=3,
        total=10,
        detail={"alarm": "ALARM:1"},
    )
    await eventually(lambda: asyncio.sleep(0, beats.statuses()), lambda s: "interrupted" in s)
    await asyncio.sleep(0.05)
    assert not task.done(), "an interrupted run waits for the technician"
    # the technician restarts it (same attempt); the machine runs it to the end
    await store.transition("M-4", JobEvent.RESTART, time.time())
    await machine.run(acked=10, total=10)
    result = await task
    assert result.outcome == n.OUTCOME_COMPLETED and result.acked_lines == 10
    runs = await store.runs("M-4")
    assert [(r.attempt, r.outcome) for r in runs] == [(1, "interrupted"), (1, "completed")]


async def test_scrapped_run_fails(edge: EdgeActivities, store: Store, scheduler: Scheduler) -> None:
    await validated(edge, "M-5")
    task = asyncio.create_task(ActivityEnvironment().run(edge.send_to_machine, run_input("M-5")))
    machine = FakeMachine(store, scheduler)
    await machine.claim()
    await machine.end(
        "M-5", event=JobEvent.INTERRUPT, outcome="interrupted", detail={"alarm": "ALARM:3"}
    )
    await store.transition("M-5", JobEvent.SCRAP, time.time(), sets={"reason": "scrapped"})
    result = await task
    assert result.outcome == n.OUTCOME_FAILED and result.alarm == "ALARM:3"


async def test_next_attempt_after_failed_qa_is_reengraved(
    edge: EdgeActivities, store: Store, scheduler: Scheduler
) -> None:
    await validated(edge, "M-6")
    machine = FakeMachine(store, scheduler)
    task = asyncio.create_task(ActivityEnvironment().run(edge.send_to_machine, run_input("M-6")))
    await machine.run()
    await task
    await store.record_verdict("M-6", 1, False, "smudged", "tech", time.time())
    assert (await store.get_job("M-6")).status is S.QA_FAILED
    task = asyncio.create_task(
        ActivityEnvironment().run(edge.send_to_machine, run_input("M-6", attempt=2))
    )
    await machine.run(acked=7, total=7)
    result = await task
    assert result.acked_lines == 7
    job = await store.get_job("M-6")
    assert (job.status, job.attempt) == (S.QA_PENDING, 2)
    # a stale retry of attempt 1 reports attempt 1, not the current one
    old = await ActivityEnvironment().run(edge.send_to_machine, run_input("M-6", attempt=1))
    assert old.outcome == n.OUTCOME_COMPLETED and old.acked_lines == 10


async def test_cancel_stops_a_queued_job(edge: EdgeActivities, store: Store) -> None:
    await validated(edge, "M-7")
    env = ActivityEnvironment()
    task = asyncio.create_task(env.run(edge.send_to_machine, run_input("M-7")))
    await wait_status(store, "M-7", S.QUEUED)
    env.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert (await store.get_job("M-7")).status is S.CANCELLED


async def test_cancel_while_engraving_asks_the_machine_worker(
    edge: EdgeActivities, store: Store, scheduler: Scheduler
) -> None:
    await validated(edge, "M-8")
    env = ActivityEnvironment()
    task = asyncio.create_task(env.run(edge.send_to_machine, run_input("M-8")))
    machine = FakeMachine(store, scheduler)
    await machine.claim()
    env.cancel()
    reason = await eventually(lambda: store.cancel_requested("M-8"), lambda r: r is not None)
    assert reason == "cancelled by the workflow"
    assert not task.done(), "the activity waits for the machine to stop"
    # the daemon's machine worker acts on the request
    await machine.end("M-8", event=JobEvent.CANCEL, outcome="cancelled", acked=4)
    with pytest.raises(asyncio.CancelledError):
        await task
    assert (await store.get_job("M-8")).status is S.CANCELLED


async def test_item_no_machine_can_engrave(edge: EdgeActivities, store: Store) -> None:
    await validated(edge, "M-9", "glass-tumbler")
    with pytest.raises(ApplicationError) as info:
        await ActivityEnvironment().run(
            edge.send_to_machine, run_input("M-9", item_id="glass-tumbler")
        )
    assert info.value.type == n.ERR_NO_ELIGIBLE_MACHINE and info.value.non_retryable
    assert (await store.get_job("M-9")).status is S.VALIDATED
    # the workflow then releases the unit with the blocking reason
    release = n.ReleaseInput("M-9", "glass-tumbler", "no_eligible_machine")
    await ActivityEnvironment().run(edge.release_reservation, release)
    job = await store.get_job("M-9")
    assert (job.status, job.reason) == (S.BLOCKED, "no_eligible_machine")


async def test_job_cancelled_on_the_workshop_ends_the_run(
    edge: EdgeActivities, store: Store
) -> None:
    await validated(edge, "M-10")
    task = asyncio.create_task(ActivityEnvironment().run(edge.send_to_machine, run_input("M-10")))
    await wait_status(store, "M-10", S.QUEUED)
    await store.transition("M-10", JobEvent.CANCEL, time.time(), sets={"reason": "customer called"})
    result = await task
    assert result.outcome == n.OUTCOME_FAILED
    assert result.message == "cancelled on the workshop: customer called"


async def test_queued_job_gets_an_estimate(edge: EdgeActivities, store: Store) -> None:
    await validated(edge, "M-11")
    task = asyncio.create_task(ActivityEnvironment().run(edge.send_to_machine, run_input("M-11")))
    job = await wait_status(store, "M-11", S.QUEUED)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert job.estimate_s > 0 and job.estimate_s != 60.0, "estimate from the toolpath render"
