"""The statements every store operation is built from, each written once.

Functions of an open ``sqlite3.Connection``, called inside one of the store's transactions
(:meth:`~crown_edge.store.db.Database._write`); code outside :mod:`crown_edge.store` uses the
:class:`~crown_edge.store.Store` methods instead. Every job transition here writes the new state,
an append-only ``job_events`` row and an ``outbox`` row for the MQTT link together, so a power cut
at any instant leaves each job in exactly one state with every event also queued for delivery.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Iterable
from typing import Any

from crown_edge.errors import IllegalTransition, UnknownItem, UnknownJob
from crown_edge.lifecycle import TRANSITIONS, JobEvent, next_state
from crown_edge.models import JobStatus
from crown_edge.store.jobs import JOB_COLUMNS, Job, RunEnd, job_from_row

#: The queue's order: moved to the top first, then rush, then due date, then arrival.
QUEUE_ORDER = "top DESC, rush DESC, due_at ASC, arrival ASC"

#: A unit that may carry engraving is written off, never put back on the shelf.
TOUCHED = frozenset(
    {JobStatus.ENGRAVING, JobStatus.INTERRUPTED, JobStatus.QA_PENDING, JobStatus.QA_FAILED}
)


def allowed(status: JobStatus, event: JobEvent) -> bool:
    """Whether the lifecycle table allows ``event`` in ``status``."""
    return (status, event) in TRANSITIONS


def get_job(conn: sqlite3.Connection, job_id: str) -> Job:
    """The job, or UnknownJob."""
    row = conn.execute(f"SELECT {JOB_COLUMNS} FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
    if row is None:
        raise UnknownJob(job_id)
    return job_from_row(row)


def put_outbox(
    conn: sqlite3.Connection,
    topic: str,
    body: str,
    now: float,
    *,
    retain: bool = False,
    event: tuple[str, str, int] | None = None,
) -> None:
    """Queue one message for the MQTT link; ``event`` is (event_id, job_id, seq) of a job event."""
    event_id, job_id, seq = event if event is not None else (None, None, None)
    conn.execute(
        "INSERT INTO outbox (topic, payload, qos, retain, created_at, event_id, job_id, seq) "
        "VALUES (?, ?, 1, ?, ?, ?, ?, ?)",
        (topic, body, int(retain), now, event_id, job_id, seq),
    )


def emit(
    conn: sqlite3.Connection,
    job: Job,
    event: str,
    status: JobStatus,
    now: float,
    data: dict[str, Any],
) -> dict[str, Any]:
    """Append the event row and its outbox row; returns the event payload."""
    seq = job.event_seq + 1
    conn.execute("UPDATE jobs SET event_seq = ? WHERE job_id = ?", (seq, job.job_id))
    payload: dict[str, Any] = {
        "event_id": uuid.uuid4().hex,
        "job_id": job.job_id,
        "seq": seq,
        "status": str(status),
        "event": event,
        "at": now,
    }
    payload.update({k: v for k, v in data.items() if v is not None})
    body = json.dumps(payload, sort_keys=True)
    conn.execute(
        "INSERT INTO job_events (event_id, job_id, seq, event, status, at, data) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        (payload["event_id"], job.job_id, seq, event, str(status), now, body),
    )
    put_outbox(conn, "events", body, now, event=(payload["event_id"], job.job_id, seq))
    return payload


def transition(
    conn: sqlite3.Connection,
    job_id: str,
    event: JobEvent,
    now: float,
    *,
    expect: Iterable[JobStatus] | None = None,
    sets: dict[str, Any] | None = None,
    data: dict[str, Any] | None = None,
) -> Job:
    """Apply one lifecycle event: new state, columns ``sets``, event row and outbox row."""
    job = get_job(conn, job_id)
    if expect is not None and job.status not in set(expect):
        raise IllegalTransition(job_id, str(job.status), str(event))
    new = next_state(job_id, job.status, event)
    columns = {"status": str(new), "updated_at": now, **(sets or {})}
    assignments = ", ".join(f"{col} = ?" for col in columns)
    conn.execute(f"UPDATE jobs SET {assignments} WHERE job_id = ?", (*columns.values(), job_id))
    payload = dict(data or {})
    for key in ("reason", "machine_id", "progress", "retry_count", "attempt"):
        if key in columns and key not in payload:
            payload[key] = columns[key]
    emit(conn, job, str(event), new, now, payload)
    return get_job(conn, job_id)


def reserve(conn: sqlite3.Connection, job: Job, now: float, *, fresh: bool = False) -> bool:
    """Reserve one unit for the job (idempotent unless ``fresh``: a new unit after a scrap)."""
    held = conn.execute("SELECT state FROM reservations WHERE job_id = ?", (job.job_id,)).fetchone()
    if not fresh and held is not None and held[0] in ("reserved", "consumed"):
        return True
    item = conn.execute("SELECT 1 FROM items WHERE item_id = ?", (job.item_id,)).fetchone()
    if item is None:
        raise UnknownItem(job.item_id)
    cur = conn.execute(
        "UPDATE items SET available = available - 1, reserved = reserved + 1, updated_at = ? "
        "WHERE item_id = ? AND available > 0",
        (now, job.item_id),
    )
    if cur.rowcount == 0:
        return False
    conn.execute(
        "INSERT INTO reservations (job_id, item_id, state, at) VALUES (?, ?, 'reserved', ?) "
        "ON CONFLICT (job_id) DO UPDATE SET state = 'reserved', at = excluded.at",
        (job.job_id, job.item_id, now),
    )
    return True


def settle(conn: sqlite3.Connection, job_id: str, state: str, now: float) -> bool:
    """A held unit is ``released`` (back on the shelf) or ``consumed``; False if none was held."""
    row = conn.execute(
        "SELECT item_id, state FROM reservations WHERE job_id = ?", (job_id,)
    ).fetchone()
    if row is None or row[1] != "reserved":
        return False
    item_id = row[0]
    if state == "released":
        conn.execute(
            "UPDATE items SET available = available + 1, reserved = reserved - 1, "
            "updated_at = ? WHERE item_id = ?",
            (now, item_id),
        )
    else:
        conn.execute(
            "UPDATE items SET consumed = consumed + 1, reserved = reserved - 1, "
            "updated_at = ? WHERE item_id = ?",
            (now, item_id),
        )
    conn.execute("UPDATE reservations SET state = ?, at = ? WHERE job_id = ?", (state, now, job_id))
    return True


def end_run(
    conn: sqlite3.Connection, job_id: str, end: RunEnd, now: float, machine_id: str | None = None
) -> None:
    """End the job's open run (on ``machine_id`` when given) with ``end``: the one statement."""
    conn.execute(
        "UPDATE runs SET ended_at = ?, outcome = ?, acked_lines = ?, total_lines = ?, "
        "last_acked_line = ?, detail = ?, sent_line = COALESCE(?, sent_line) "
        "WHERE job_id = ? AND ended_at IS NULL AND (? IS NULL OR machine_id = ?)",
        (
            now,
            end.outcome,
            end.acked_lines,
            end.total_lines,
            end.last_acked_line,
            json.dumps(end.detail, sort_keys=True, default=str),
            end.sent_line,
            job_id,
            machine_id,
            machine_id,
        ),
    )


def cancel_now_or_ask(
    conn: sqlite3.Connection,
    job_id: str,
    reason: str,
    now: float,
    *,
    settle_stock: bool,
    strict: bool,
) -> Job:
    """Cancel the job, or ask its machine worker to when it is ``engraving``.

    ``settle_stock``: also settle the held unit (written off once it may carry engraving, else
    back on the shelf); the worker that ends a cancelled run writes its unit off. A job the
    lifecycle does not let cancel is returned as it is, or raises IllegalTransition when
    ``strict``.
    """
    job = get_job(conn, job_id)
    if job.status is JobStatus.ENGRAVING:
        conn.execute(
            "INSERT INTO edge_cancel_requests (job_id, at, reason) VALUES (?, ?, ?) "
            "ON CONFLICT (job_id) DO NOTHING",
            (job_id, now, reason),
        )
        return job
    conn.execute("DELETE FROM edge_cancel_requests WHERE job_id = ?", (job_id,))
    if not allowed(job.status, JobEvent.CANCEL):
        if strict:
            raise IllegalTransition(job_id, str(job.status), str(JobEvent.CANCEL))
        return job
    if settle_stock:
        settle(conn, job_id, "consumed" if job.status in TOUCHED else "released", now)
    return transition(conn, job_id, JobEvent.CANCEL, now, sets={"reason": reason or None})


def clear_cancel(conn: sqlite3.Connection, job_id: str) -> None:
    """Forget the job's cancel request."""
    conn.execute("DELETE FROM edge_cancel_requests WHERE job_id = ?", (job_id,))
