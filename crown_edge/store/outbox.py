"""The outbox's SQL: rows kept until the cloud acknowledges them, sent again until it does.

Functions of a connection, run inside the store's transactions; :class:`OutboxStore` (mixed into
:class:`~crown_edge.store.Store`) has the async faces. A row's life (columns from migration 4)::

    pending (sent_at NULL) ──send──► tried (attempts+1, next_at = now + retransmit delay)
       ▲                                │ ack from the cloud (event rows)   │ broker PUBACK
       │ replay request                 ▼                                    ▼ (other rows)
       └───────────────────────── done (sent_at) ◄──────────────────────────┘
    pending ──age / size bound──► dropped (sent_at = dropped_at; logged and counted by the caller)

A dropped event row keeps its ids (not its payload, which ``job_events`` holds): it still counts
as unacknowledged in the ``acked_seq`` a job's events carry, so the cloud sees the gap and can
ask for a replay, which restores the row. Done rows are deleted ``keep_done_s`` after the ack.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from crown_edge.models import OutboxEntry
from crown_edge.store.db import Database
from crown_edge.store.sql import put_outbox
from crown_edge.sync.delivery import with_acked_seq

#: The job's highest seq below its first row not acknowledged (dropped counts as not).
_ACKED_SEQ = (
    "CASE WHEN o.job_id IS NULL THEN NULL ELSE "
    "(SELECT MIN(u.seq) FROM outbox u WHERE u.job_id = o.job_id "
    "AND (u.sent_at IS NULL OR u.dropped_at IS NOT NULL)) - 1 END"
)


@dataclass(frozen=True, slots=True)
class OutboxTrim:
    """What one bounds check did: rows given up (by reason), done rows deleted."""

    dropped_old: int = 0
    dropped_over_size: int = 0
    first_dropped_id: int | None = None
    last_dropped_id: int | None = None
    pruned: int = 0

    @property
    def dropped(self) -> int:
        """Rows given up in this check."""
        return self.dropped_old + self.dropped_over_size


@dataclass(frozen=True, slots=True)
class OutboxStats:
    """The backlog: rows waiting, the age of the oldest, rows given up and not replayed."""

    backlog_rows: int
    oldest_age_s: float
    dropped_rows: int


def due(conn: sqlite3.Connection, limit: int, now: float) -> list[OutboxEntry]:
    """Pending rows whose (re)send time has come, in id order, event payloads with ``acked_seq``."""
    rows = conn.execute(
        f"SELECT o.id, o.topic, o.payload, o.qos, o.retain, o.created_at, {_ACKED_SEQ} "
        "FROM outbox o WHERE o.sent_at IS NULL AND (o.next_at IS NULL OR o.next_at <= ?) "
        "ORDER BY o.id LIMIT ?",
        (now, limit),
    ).fetchall()
    return [
        OutboxEntry(
            id=r[0],
            topic=r[1],
            payload=with_acked_seq(json.loads(r[2]), r[6]),
            qos=r[3],
            retain=bool(r[4]),
            created_at=r[5],
        )
        for r in rows
    ]


def next_due(conn: sqlite3.Connection) -> float | None:
    """When the next pending row is due (``-inf`` for one never sent), None when none waits."""
    row = conn.execute(
        "SELECT COUNT(*), MIN(COALESCE(next_at, -1e300)) FROM outbox WHERE sent_at IS NULL"
    ).fetchone()
    if not row[0]:
        return None
    return float("-inf") if row[1] <= -1e300 else float(row[1])


def tried(
    conn: sqlite3.Connection, ids: Sequence[int], now: float, delay: Callable[[int], float]
) -> None:
    """The rows ``ids`` went out at ``now``: count the attempt, schedule the next one."""
    for row_id in ids:
        found = conn.execute("SELECT attempts FROM outbox WHERE id = ?", (row_id,)).fetchone()
        if found is None:
            continue
        attempts = int(found[0]) + 1
        conn.execute(
            "UPDATE outbox SET attempts = ?, tried_at = ?, next_at = ? WHERE id = ?",
            (attempts, now, now + delay(attempts), row_id),
        )


def mark_done(conn: sqlite3.Connection, ids: Sequence[int], now: float) -> None:
    """The rows ``ids`` are done (a broker PUBACK for rows that need no ack)."""
    conn.executemany(
        "UPDATE outbox SET sent_at = ?, dropped_at = NULL WHERE id = ?", [(now, i) for i in ids]
    )


def acked(conn: sqlite3.Connection, event_ids: Sequence[str], now: float) -> int:
    """The cloud has these events: their rows are done. Returns how many rows that finished.

    No "fast retransmit" of older unacknowledged rows: the bridge acknowledges after its SQS
    relay, so an ack overtaking an older row usually means that row waits in the bridge's relay
    queue, not that it was lost; resending it would only feed the bridge duplicates.
    """
    done = 0
    for event_id in event_ids:
        done += conn.execute(
            "UPDATE outbox SET sent_at = ?, dropped_at = NULL WHERE event_id = ? "
            "AND (sent_at IS NULL OR dropped_at IS NOT NULL)",
            (now, event_id),
        ).rowcount
    return done


def replay(conn: sqlite3.Connection, job_id: str, first: int, last: int, now: float) -> int:
    """Queue the job's events ``first`` … ``last`` again from its history; returns how many.

    A row still in the outbox is made pending again (its payload restored); one already pruned is
    written anew. Rows keep their id order, so a replay goes out before newer events.
    """
    history = conn.execute(
        "SELECT event_id, seq, data FROM job_events WHERE job_id = ? AND seq BETWEEN ? AND ? "
        "ORDER BY seq",
        (job_id, first, last),
    ).fetchall()
    for event_id, seq, data in history:
        row = conn.execute(
            "SELECT id FROM outbox WHERE event_id = ? ORDER BY id LIMIT 1", (event_id,)
        ).fetchone()
        if row is not None:
            conn.execute(
                "UPDATE outbox SET sent_at = NULL, dropped_at = NULL, next_at = NULL, "
                "payload = ? WHERE id = ?",
                (data, row[0]),
            )
        else:
            put_outbox(conn, "events", data, now, event=(event_id, job_id, seq))
    return len(history)


def enforce(
    conn: sqlite3.Connection, now: float, *, max_rows: int, max_age_s: float, keep_done_s: float
) -> OutboxTrim:
    """Give up pending rows older than ``max_age_s`` or beyond the newest ``max_rows`` (oldest
    first), and delete rows done more than ``keep_done_s`` ago. The caller logs and counts."""
    old = [
        r[0]
        for r in conn.execute(
            "SELECT id FROM outbox WHERE sent_at IS NULL AND created_at < ? ORDER BY id",
            (now - max_age_s,),
        )
    ]
    _drop(conn, old, now)
    (pending,) = conn.execute("SELECT COUNT(*) FROM outbox WHERE sent_at IS NULL").fetchone()
    over = [
        r[0]
        for r in conn.execute(
            "SELECT id FROM outbox WHERE sent_at IS NULL ORDER BY id LIMIT ?",
            (max(0, pending - max_rows),),
        )
    ]
    _drop(conn, over, now)
    pruned = conn.execute(
        "DELETE FROM outbox WHERE sent_at IS NOT NULL AND ("
        "(dropped_at IS NULL AND sent_at < ?) OR (dropped_at IS NOT NULL AND dropped_at < ?))",
        (now - keep_done_s, now - max_age_s),
    ).rowcount
    ids = old + over
    return OutboxTrim(
        dropped_old=len(old),
        dropped_over_size=len(over),
        first_dropped_id=min(ids) if ids else None,
        last_dropped_id=max(ids) if ids else None,
        pruned=pruned,
    )


def _drop(conn: sqlite3.Connection, ids: list[int], now: float) -> None:
    conn.executemany(
        "UPDATE outbox SET sent_at = ?, dropped_at = ?, "
        "payload = CASE WHEN event_id IS NULL THEN payload ELSE '{}' END WHERE id = ?",
        [(now, now, i) for i in ids],
    )


def stats(conn: sqlite3.Connection, now: float) -> OutboxStats:
    """The backlog figures the metrics and ``status`` show."""
    count, oldest = conn.execute(
        "SELECT COUNT(*), MIN(created_at) FROM outbox WHERE sent_at IS NULL"
    ).fetchone()
    (dropped,) = conn.execute("SELECT COUNT(*) FROM outbox WHERE dropped_at IS NOT NULL").fetchone()
    return OutboxStats(
        backlog_rows=int(count),
        oldest_age_s=max(0.0, now - oldest) if oldest is not None else 0.0,
        dropped_rows=int(dropped),
    )


class OutboxStore(Database):
    """The outbox's async faces: the DeliveryOutbox of the MQTT link."""

    async def outbox_pending(self, limit: int = 100) -> list[OutboxEntry]:
        """Rows not done yet (waiting, or sent and not acknowledged), in order."""
        rows = await self._read(
            lambda c: c.execute(
                "SELECT id, topic, payload, qos, retain, created_at FROM outbox "
                "WHERE sent_at IS NULL ORDER BY id LIMIT ?",
                (limit,),
            ).fetchall()
        )
        return [
            OutboxEntry(id=r[0], topic=r[1], payload=json.loads(r[2]), qos=r[3], retain=bool(r[4]))
            for r in rows
        ]

    async def outbox_waiting(self) -> int:
        """How many rows are not done yet (``status``'s ``outbox_pending``)."""
        return await self._read(
            lambda c: int(
                c.execute("SELECT COUNT(*) FROM outbox WHERE sent_at IS NULL").fetchone()[0]
            )
        )

    async def outbox_due(self, limit: int, now: float) -> list[OutboxEntry]:
        """Rows to send now: never sent, or unacknowledged past their retransmit time."""
        return await self._read(lambda c: due(c, limit, now))

    async def outbox_next_due(self) -> float | None:
        """When the next row is due (``-inf``: now), None when nothing waits."""
        return await self._read(next_due)

    async def outbox_tried(
        self, ids: Sequence[int], now: float, delay: Callable[[int], float]
    ) -> None:
        """Rows ``ids`` went out at ``now``; ``delay(attempts)`` is their ack timeout."""
        await self._write(lambda c: tried(c, ids, now, delay), notify=False)

    async def outbox_mark_sent(self, ids: Sequence[int], now: float | None = None) -> None:
        """Mark rows done (rows that need no ack: after the broker acknowledged them)."""
        stamp = time.time() if now is None else now
        await self._write(lambda c: mark_done(c, ids, stamp), notify=False)

    async def outbox_acked(self, event_ids: Sequence[str], now: float) -> int:
        """The cloud has these events: their rows are done; returns how many rows that was."""
        return await self._write(lambda c: acked(c, event_ids, now), notify=False)

    async def outbox_replay(self, job_id: str, first: int, last: int, now: float) -> int:
        """Queue the job's events ``first`` … ``last`` again from its history."""
        return await self._write(lambda c: replay(c, job_id, first, last, now))

    async def outbox_enforce(
        self, now: float, *, max_rows: int, max_age_s: float, keep_done_s: float
    ) -> OutboxTrim:
        """Apply the outbox bounds (see :func:`enforce`)."""
        return await self._write(
            lambda c: enforce(
                c, now, max_rows=max_rows, max_age_s=max_age_s, keep_done_s=keep_done_s
            ),
            notify=False,
        )

    async def outbox_stats(self, now: float) -> OutboxStats:
        """Backlog rows, the oldest one's age, rows given up."""
        return await self._read(lambda c: stats(c, now))

    async def outbox_put(
        self, topic: str, payload: dict[str, Any], now: float, *, retain: bool = False
    ) -> None:
        """Queue a message that is not a job transition (machine state, edge state)."""
        body = json.dumps(payload, sort_keys=True)
        await self._write(lambda c: put_outbox(c, topic, body, now, retain=retain))
