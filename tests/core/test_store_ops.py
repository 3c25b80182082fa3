"""Store operations that are one transaction each: end of a run, cancel, QA verdict, requeue."""

from __future__ import annotations

import sqlite3

import pytest

from crown_edge.errors import IllegalTransition, NoInventory
from crown_edge.lifecycle import JobEvent
from crown_edge.models import Availability, Execution, JobStatus, MachineState
from crown_edge.scheduler import Scheduler
from crown_edge.store import Job, RunEnd, Store

from .conftest import message, queued


async def engraving(store: Store, scheduler: Scheduler, job_id: str) -> Job:
    """A job in its first run on flat-1."""
    await store.submit(message(job_id), now=1.0)
    await store.validate_and_reserve(job_id, now=1.0)
    await scheduler.enqueue(job_id, 1.0, attempt=1)
    job = await scheduler.claim(job_id, "flat-1", now=2.0)
    assert job is not None
    return job


async def stock(store: Store) -> tuple[int, int, int]:
    row = next(r for r in await store.list_stock() if r.item_id == "plaque-a5")
    return row.available, row.reserved, row.consumed


async def test_a_cancel_asked_of_an_engraving_job_is_done_by_ending_its_run(
    store: Store, scheduler: Scheduler
) -> None:
    await engraving(store, scheduler, "E-1")
    held = await stock(store)
    asked = await store.cancel("E-1", "phone", now=3.0)
    assert asked.status is JobStatus.ENGRAVING  # never changed under the machine
    assert await store.cancel_requested("E-1") == "phone"
    assert await stock(store) == held
    end = RunEnd("cancelled", 4, 10, 4, {"reason": "phone"}, sent_line=6)
    job = await store.end_run("E-1", "flat-1", end, JobEvent.CANCEL, now=4.0)
    assert job is not None and job.status is JobStatus.CANCELLED
    assert await store.cancel_requested("E-1") is None
    (run,) = await store.runs("E-1")
    assert (run.outcome, run.ended_at, run.acked_lines, run.sent_line) == ("cancelled", 4.0, 4, 6)
    available, reserved, consumed = held
    assert await stock(store) == (available, reserved - 1, consumed + 1)
    events = await store.events("E-1")
    assert events[-1]["status"] == "cancelled"
    outbox = [o.payload.get("event_id") for o in await store.outbox_pending(1000)]
    assert events[-1]["event_id"] in outbox


async def test_a_run_ended_after_the_job_moved_on_only_closes_its_row(
    store: Store, scheduler: Scheduler
) -> None:
    await engraving(store, scheduler, "E-2")
    await store.transition("E-2", JobEvent.INTERRUPT, now=3.0, sets={"reason": "test"})
    seq = len(await store.events("E-2"))
    end = RunEnd("completed", 10, 10, 10)
    assert await store.end_run("E-2", "flat-1", end, JobEvent.FINISH, now=4.0) is None
    assert (await store.get_job("E-2")).status is JobStatus.INTERRUPTED
    assert len(await store.events("E-2")) == seq
    assert [r.outcome for r in await store.runs("E-2")] == ["completed"]


async def test_cancel_settles_the_unit_by_what_the_job_went_through(
    store: Store, scheduler: Scheduler
) -> None:
    await queued(store, scheduler, "K-1")
    await engraving(store, scheduler, "K-2")
    await store.end_run("K-2", "flat-1", RunEnd("completed", 9, 9, 9), JobEvent.FINISH, now=3.0)
    available, reserved, consumed = await stock(store)
    assert (await store.cancel("K-1", "x", now=4.0)).status is JobStatus.CANCELLED
    assert await stock(store) == (available + 1, reserved - 1, consumed)  # never touched
    assert (await store.cancel("K-2", "x", now=4.0)).status is JobStatus.CANCELLED
    assert await stock(store) == (available + 1, reserved - 2, consumed + 1)  # engraved
    with pytest.raises(IllegalTransition):
        await store.cancel("K-2", "again", now=5.0, strict=True)
    assert (await store.cancel("K-2", "again", now=5.0)).reason == "x"


async def test_the_first_verdict_of_an_attempt_wins_and_a_pass_consumes_once(
    store: Store, scheduler: Scheduler
) -> None:
    await engraving(store, scheduler, "V-1")
    await store.end_run("V-1", "flat-1", RunEnd("completed", 9, 9, 9), JobEvent.FINISH, now=3.0)
    available, reserved, consumed = await stock(store)
    verdict, job = await store.record_verdict("V-1", None, True, "crisp", "tech", now=4.0)
    assert (verdict.passed, verdict.by, job.status) == (True, "tech", JobStatus.COMPLETE)
    assert await stock(store) == (available, reserved - 1, consumed + 1)
    again, job = await store.record_verdict("V-1", 1, False, "late", "auto", now=5.0)
    assert (again.passed, again.notes, again.at) == (True, "crisp", 4.0)
    assert job.status is JobStatus.COMPLETE
    assert not await store.consume_reservation("V-1", now=6.0)
    assert await stock(store) == (available, reserved - 1, consumed + 1)
    event = (await store.events("V-1"))[-1]
    assert (event["event"], event["by"], event["notes"]) == ("qa_pass", "tech", "crisp")


async def test_a_technician_verdict_needs_a_job_waiting_for_qa(
    store: Store, scheduler: Scheduler
) -> None:
    await store.submit(message("V-2"), now=1.0)
    await store.validate_and_reserve("V-2", now=1.0)
    await scheduler.enqueue("V-2", 1.0, attempt=1)
    with pytest.raises(IllegalTransition):
        await store.record_verdict("V-2", None, False, "", "tech", now=2.0)
    assert await store.verdict("V-2", 1) is None
    # a verdict for a given attempt is kept whatever the job's state (the automatic check)
    kept, job = await store.record_verdict("V-2", 1, False, "smudge", "auto", now=3.0)
    assert (kept.passed, job.status) == (False, JobStatus.QUEUED)


async def test_a_failed_verdict_counts_a_retry(store: Store, scheduler: Scheduler) -> None:
    await engraving(store, scheduler, "V-3")
    await store.end_run("V-3", "flat-1", RunEnd("completed", 9, 9, 9), JobEvent.FINISH, now=3.0)
    _, job = await store.record_verdict("V-3", 1, False, "blurred", "tech", now=4.0)
    assert (job.status, job.retry_count, job.reason) == (JobStatus.QA_FAILED, 1, "blurred")


async def test_restart_with_a_fresh_unit_is_one_transaction(
    store: Store, scheduler: Scheduler
) -> None:
    await engraving(store, scheduler, "R-1")
    await store.transition("R-1", JobEvent.INTERRUPT, now=3.0, sets={"reason": "ALARM:1"})
    await store.set_stock("plaque-a5", 0, now=4.0)
    before = await stock(store)
    with pytest.raises(NoInventory):
        await scheduler.enqueue("R-1", 5.0, event=JobEvent.RESTART, fresh_unit=True)
    assert (await store.get_job("R-1")).status is JobStatus.INTERRUPTED
    assert await stock(store) == before
    await store.set_stock("plaque-a5", 1, now=6.0)
    job = await scheduler.enqueue("R-1", 7.0, event=JobEvent.RESTART, fresh_unit=True)
    assert job.status is JobStatus.QUEUED
    assert await stock(store) == (0, 1, 1)  # the scrapped unit written off, a fresh one held


async def test_scrap_writes_the_unit_off_with_the_job(store: Store, scheduler: Scheduler) -> None:
    await engraving(store, scheduler, "S-1")
    with pytest.raises(IllegalTransition):
        await store.scrap("S-1", now=3.0)
    await store.transition("S-1", JobEvent.INTERRUPT, now=3.0, sets={"reason": "ALARM:1"})
    available, reserved, consumed = await stock(store)
    job = await store.scrap("S-1", now=4.0)
    assert (job.status, job.reason) == (JobStatus.FAILED, "scrapped")
    assert await stock(store) == (available, reserved - 1, consumed + 1)


async def test_restart_recovery_forgets_cancel_requests_of_runs_that_are_over(
    store: Store, scheduler: Scheduler
) -> None:
    await engraving(store, scheduler, "Z-1")
    await store.save_progress("Z-1", 3, 10, now=3.0)
    await store.cancel("Z-1", "phone", now=3.5)
    assert await store.recover_on_startup(now=4.0) == ["Z-1"]
    job = await store.get_job("Z-1")
    assert (job.status, job.progress, job.acked_lines) == (JobStatus.INTERRUPTED, 0.3, 3)
    assert await store.cancel_requested("Z-1") is None
    (run,) = await store.runs("Z-1")
    assert (run.outcome, run.acked_lines, run.detail) == (
        "interrupted",
        3,
        {"reason": "daemon_restart"},
    )


async def test_machine_state_and_its_message_are_one_write(
    store: Store, scheduler: Scheduler
) -> None:
    state = MachineState("flat-2", Availability.UNAVAILABLE, Execution.STOPPED, alarm="ALARM:1")
    await scheduler.set_machine_state(state, now=9.0)
    row = next(r for r in await store.machine_rows() if r.machine_id == "flat-2")
    assert (row.availability, row.alarm) == ("UNAVAILABLE", "ALARM:1")
    sent = [o for o in await store.outbox_pending(1000) if o.topic == "machines/flat-2/state"]
    assert sent[-1].retain and sent[-1].payload["alarm"] == "ALARM:1"
    with sqlite3.connect(store.path) as conn:  # integrity: the row and its message agree
        (count,) = conn.execute(
            "SELECT COUNT(*) FROM outbox WHERE topic = 'machines/flat-2/state'"
        ).fetchone()
    assert count == len(sent)


async def test_the_workflow_letting_a_running_job_go_asks_its_worker(
    store: Store, scheduler: Scheduler
) -> None:
    await engraving(store, scheduler, "W-1")
    available, reserved, consumed = await stock(store)
    cancel = (JobEvent.CANCEL,)
    job = await store.release("W-1", 3.0, engraved=True, events=cancel, reason="cancelled")
    assert job is not None and job.status is JobStatus.ENGRAVING
    assert await store.cancel_requested("W-1") == "cancelled"
    assert await stock(store) == (available, reserved - 1, consumed + 1)
    assert await store.release("nobody", 3.0, engraved=False, events=cancel, reason="x") is None


async def test_completion_consumes_the_unit_with_the_event(
    store: Store, scheduler: Scheduler
) -> None:
    await engraving(store, scheduler, "W-2")
    await store.end_run("W-2", "flat-1", RunEnd("completed", 9, 9, 9), JobEvent.FINISH, now=3.0)
    available, reserved, consumed = await stock(store)
    for now in (4.0, 5.0):  # a retried activity changes nothing the second time
        job = await store.apply_if_allowed("W-2", (JobEvent.COMPLETE,), now, settle="consumed")
        assert job.status is JobStatus.COMPLETE
        assert await stock(store) == (available, reserved - 1, consumed + 1)
    assert [e["status"] for e in await store.events("W-2")].count("complete") == 1
