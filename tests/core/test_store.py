"""Durable store: transitions with events and outbox, reservations, recovery."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from crown_edge.errors import IllegalTransition, NoInventory, UnknownItem, UnknownJob
from crown_edge.lifecycle import JobEvent
from crown_edge.models import JobStatus
from crown_edge.scheduler import Scheduler
from crown_edge.store import Store
from crown_edge.store.schema import MIGRATIONS

from .conftest import message, queued


async def test_submit_is_idempotent_and_writes_event_and_outbox(store: Store) -> None:
    first = await store.submit(message("J-1"), now=1.0)
    again = await store.submit(message("J-1"), now=2.0)
    assert first.status is JobStatus.RECEIVED
    assert again.received_at == 1.0
    events = await store.events("J-1")
    assert [e["status"] for e in events] == ["received"]
    pending = await store.outbox_pending()
    assert [p.payload["event_id"] for p in pending] == [events[0]["event_id"]]


async def test_transition_one_transaction_state_event_outbox(store: Store) -> None:
    await store.submit(message("J-1"), now=1.0)
    await store.validate_and_reserve("J-1", now=2.0)
    job = await store.transition("J-1", JobEvent.START_DESIGN, now=3.0)
    assert job.status is JobStatus.DESIGNING
    events = await store.events("J-1")
    assert [e["seq"] for e in events] == [1, 2, 3]
    assert [e["status"] for e in events] == ["received", "validated", "designing"]
    outbox = await store.outbox_pending()
    assert [o.payload["seq"] for o in outbox if o.topic == "events"] == [1, 2, 3]


async def test_illegal_transition_changes_nothing(store: Store) -> None:
    await store.submit(message("J-1"), now=1.0)
    with pytest.raises(IllegalTransition):
        await store.transition("J-1", JobEvent.FINISH, now=2.0)
    assert (await store.get_job("J-1")).status is JobStatus.RECEIVED
    assert len(await store.events("J-1")) == 1


async def test_unknown_job_is_a_typed_error(store: Store) -> None:
    with pytest.raises(UnknownJob) as info:
        await store.get_job("nope")
    assert str(info.value) == "unknown job: nope"


async def test_reservation_atomic_and_last_unit_goes_to_one_job(store: Store) -> None:
    await store.set_stock("plaque-a5", 1, now=0.0)
    for i in range(5):
        await store.submit(message(f"J-{i}"), now=1.0)

    async def try_reserve(job_id: str) -> bool:
        try:
            await store.validate_and_reserve(job_id, now=2.0)
        except NoInventory:
            return False
        return True

    results = await asyncio.gather(*(try_reserve(f"J-{i}") for i in range(5)))
    assert sum(results) == 1
    stock = {s.item_id: s for s in await store.list_stock()}["plaque-a5"]
    assert (stock.available, stock.reserved) == (0, 1)
    blocked = [j for j in await store.list_jobs() if j.status is JobStatus.BLOCKED]
    assert len(blocked) == 4 and {j.reason for j in blocked} == {"no_inventory"}


async def test_reserve_is_idempotent_and_release_consume(store: Store) -> None:
    await store.set_stock("plaque-a5", 2, now=0.0)
    await store.submit(message("J-1"), now=1.0)
    await store.validate_and_reserve("J-1", now=2.0)
    await store.validate_and_reserve("J-1", now=3.0)
    stock = {s.item_id: s for s in await store.list_stock()}["plaque-a5"]
    assert (stock.available, stock.reserved) == (1, 1)
    assert await store.consume_reservation("J-1", now=4.0)
    assert not await store.consume_reservation("J-1", now=5.0)
    assert not await store.release_reservation("J-1", now=5.0)
    stock = {s.item_id: s for s in await store.list_stock()}["plaque-a5"]
    assert (stock.available, stock.reserved, stock.consumed) == (1, 0, 1)


async def test_unknown_item_on_reserve_and_set_stock(store: Store) -> None:
    await store.submit(message("J-1", item_id="no-such-item"), now=1.0)
    with pytest.raises(UnknownItem):
        await store.validate_and_reserve("J-1", now=2.0)
    assert (await store.get_job("J-1")).status is JobStatus.RECEIVED
    with pytest.raises(UnknownItem):
        await store.set_stock("no-such-item", 3, now=1.0)


async def test_blocked_job_revalidates_after_restock(store: Store) -> None:
    await store.set_stock("plaque-a5", 0, now=0.0)
    await store.submit(message("J-1"), now=1.0)
    with pytest.raises(NoInventory):
        await store.validate_and_reserve("J-1", now=2.0)
    await store.set_stock("plaque-a5", 1, now=3.0)
    job = await store.validate_and_reserve("J-1", now=4.0)
    assert job.status is JobStatus.VALIDATED


async def test_outbox_mark_sent(store: Store) -> None:
    await store.submit(message("J-1"), now=1.0)
    await store.submit(message("J-2"), now=1.0)
    pending = await store.outbox_pending()
    await store.outbox_mark_sent([pending[0].id])
    left = await store.outbox_pending()
    assert [p.id for p in left] == [pending[1].id]


async def test_migrations_apply_once_and_reopen_keeps_data(tmp_path: Path) -> None:
    path = tmp_path / "x.db"
    async with Store.from_path(path) as s:
        await s.submit(message("J-1"), now=1.0)
    async with Store.from_path(path) as s:
        assert (await s.get_job("J-1")).status is JobStatus.RECEIVED
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        versions = [r[0] for r in conn.execute("SELECT version FROM schema_migrations")]
        assert versions == list(range(1, len(MIGRATIONS) + 1))
    finally:
        conn.close()


async def test_resume_mark_starts_at_the_run_only_grows_and_survives_a_restart(
    store: Store, scheduler: Scheduler
) -> None:
    await queued(store, scheduler, "M-1", now=1.0)
    job = await scheduler.claim_next("flat-1", now=2.0)
    assert job is not None and job.sent_line == 0
    await store.mark_sent("M-1", 64)
    await store.mark_sent("M-1", 32)  # a late, lower mark never lowers it
    assert (await store.get_job("M-1")).sent_line == 64
    assert await store.recover_on_startup(now=3.0) == ["M-1"]
    job = await store.get_job("M-1")
    assert job.status is JobStatus.INTERRUPTED and job.sent_line == 64
    (run,) = await store.runs("M-1")
    assert run.sent_line == 64 and run.outcome == "interrupted"
    await store.mark_sent("M-1", 90)  # not engraving any more: nothing changes
    assert (await store.get_job("M-1")).sent_line == 64


async def test_send_to_qa_marks_the_run_for_a_person(store: Store, scheduler: Scheduler) -> None:
    await queued(store, scheduler, "M-2", now=1.0)
    assert await scheduler.claim_next("flat-1", now=2.0) is not None
    await store.recover_on_startup(now=3.0)
    job = await store.send_to_qa("M-2", now=4.0, by="ana")
    assert job.status is JobStatus.QA_PENDING
    (run,) = await store.runs("M-2")
    assert run.detail["to_qa"] == "ana" and run.detail["reason"] == "daemon_restart"
    with pytest.raises(IllegalTransition):
        await store.send_to_qa("M-2", now=5.0, by="ana")


async def test_only_a_commit_that_changed_rows_wakes_the_listeners(
    store: Store, scheduler: Scheduler
) -> None:
    """A claim that finds nothing must not wake the other machine workers (they would wake
    each other back in a loop and spin the CPU while the workshop is idle)."""
    woken: list[int] = []
    store.on_commit.append(lambda: woken.append(1))
    assert await scheduler.claim_next("flat-1", now=1.0) is None
    assert woken == []
    await queued(store, scheduler, "J-WAKE")
    assert woken, "queueing a job wakes the workers"
    woken.clear()
    claimed = await scheduler.claim_next("flat-1", now=2.0)
    assert claimed is not None and claimed.job_id == "J-WAKE"
    assert woken == [1]
    woken.clear()
    assert await scheduler.claim_next("flat-2", now=3.0) is None
    assert woken == []
