"""The store's outbox under end-to-end delivery: kept until acked, retransmit schedule, fast
retransmit, replay from the job history, bounds (logged and counted by the link), stats."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from crown_edge.catalog import load_catalog
from crown_edge.lifecycle import JobEvent
from crown_edge.models import IntakeMessage
from crown_edge.store import Store
from crown_edge.store.schema import MIGRATIONS
from crown_edge.sync.delivery import RetransmitSchedule

SCHEDULE = RetransmitSchedule(timeout=10.0, maximum=40.0)


def _msg(job_id: str) -> IntakeMessage:
    return IntakeMessage.parse(
        {"job_id": job_id, "customer_id": "C", "item_id": "plaque-a5", "due_date": "2026-12-01"}
    )


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    async with Store.from_path(tmp_path / "edge.db") as s:
        await s.sync_catalog(load_catalog(), now=0.0)
        yield s


async def _events(store: Store, job_id: str, now: float = 1.0) -> list[str]:
    """A job with three events (received, validated, queued); their ids."""
    await store.submit(_msg(job_id), now)
    await store.transition(job_id, JobEvent.VALIDATE, now)
    await store.transition(job_id, JobEvent.ENQUEUE, now)
    return [e["event_id"] for e in await store.events(job_id)]


async def test_rows_stay_until_acked_and_are_resent_on_schedule(store: Store) -> None:
    ids = await _events(store, "J-1")
    due = await store.outbox_due(10, now=100.0)
    assert [e.payload["seq"] for e in due] == [1, 2, 3]
    assert [e.payload["acked_seq"] for e in due] == [0, 0, 0]
    await store.outbox_tried([e.id for e in due], 100.0, SCHEDULE.delay)
    assert await store.outbox_due(10, now=109.0) == []
    assert await store.outbox_next_due() == 110.0
    assert await store.outbox_acked([ids[0]], now=105.0) == 1
    assert await store.outbox_acked([ids[0]], now=106.0) == 0  # idempotent
    again = await store.outbox_due(10, now=110.0)
    assert [e.payload["seq"] for e in again] == [2, 3]
    assert [e.payload["acked_seq"] for e in again] == [1, 1]
    await store.outbox_tried([e.id for e in again], 110.0, SCHEDULE.delay)
    assert await store.outbox_next_due() == 130.0  # the second wait is twice as long
    await store.outbox_acked(ids[1:], now=111.0)
    assert await store.outbox_pending() == [] and await store.outbox_next_due() is None


async def test_an_ack_does_not_resend_older_rows_early(store: Store) -> None:
    ids = await _events(store, "J-1")
    rows = await store.outbox_due(10, now=100.0)
    await store.outbox_tried([rows[0].id], 100.0, SCHEDULE.delay)  # may wait in the relay
    await store.outbox_tried([r.id for r in rows[1:]], 101.0, SCHEDULE.delay)
    await store.outbox_acked([ids[2]], now=102.0)
    assert await store.outbox_due(10, now=102.0) == []
    assert [e.payload["seq"] for e in await store.outbox_due(10, now=110.0)] == [1]


async def test_replay_requeues_from_the_history(store: Store) -> None:
    ids = await _events(store, "J-1")
    rows = await store.outbox_due(10, now=100.0)
    await store.outbox_tried([r.id for r in rows], 100.0, SCHEDULE.delay)
    await store.outbox_acked(ids, now=101.0)
    with contextlib.closing(sqlite3.connect(store.path)) as db, db:  # pruned
        db.execute("DELETE FROM outbox WHERE seq = 3")
    assert await store.outbox_replay("J-1", 2, 3, now=200.0) == 2
    replayed = await store.outbox_due(10, now=200.0)
    assert [(e.payload["seq"], e.payload["event_id"]) for e in replayed] == [
        (2, ids[1]),
        (3, ids[2]),
    ]
    assert await store.outbox_replay("J-1", 7, 9, now=200.0) == 0  # nothing there


async def test_bounds_drop_oldest_and_keep_the_gap_visible(store: Store) -> None:
    ids = await _events(store, "J-1", now=1.0)
    await _events(store, "J-2", now=1000.0)
    trim = await store.outbox_enforce(1500.0, max_rows=100, max_age_s=600.0, keep_done_s=60.0)
    assert (trim.dropped_old, trim.dropped_over_size) == (3, 0)  # J-1's rows are too old
    stats = await store.outbox_stats(1500.0)
    assert (stats.backlog_rows, stats.oldest_age_s, stats.dropped_rows) == (3, 500.0, 3)
    trim = await store.outbox_enforce(1500.0, max_rows=2, max_age_s=600.0, keep_done_s=60.0)
    assert (trim.dropped_old, trim.dropped_over_size) == (0, 1)
    # a dropped row still counts as not acknowledged: J-1 has nothing acked
    assert await store.outbox_replay("J-1", 1, 3, now=1600.0) == 3
    assert [e.payload["acked_seq"] for e in await store.outbox_due(10, 1600.0)][:3] == [0, 0, 0]
    await store.outbox_acked(ids, now=1601.0)
    trim = await store.outbox_enforce(1700.0, max_rows=100, max_age_s=6000.0, keep_done_s=60.0)
    assert trim.pruned == 3  # done rows go after keep_done_s


async def test_migration_4_fills_the_ids_of_queued_events(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT)")
    for number, script in enumerate(MIGRATIONS[:3], start=1):
        conn.executescript(script)
        conn.execute("INSERT INTO schema_migrations VALUES (?, 'then')", (number,))
    conn.execute(
        "INSERT INTO outbox (topic, payload, created_at) VALUES ('events', ?, 1.0)",
        ('{"event_id": "e1", "job_id": "J-1", "seq": 1}',),
    )
    conn.commit()
    conn.close()
    async with Store.from_path(path) as store:
        with contextlib.closing(sqlite3.connect(path)) as db:
            row = db.execute("SELECT event_id, job_id, seq FROM outbox").fetchone()
        assert tuple(row) == ("e1", "J-1", 1)
        assert await store.outbox_acked(["e1"], now=2.0) == 1
