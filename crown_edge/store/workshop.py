"""Store helpers the workshop activities need beyond the Store API, each one transaction.

Cancel requests (a contract with the daemon's machine workers)
--------------------------------------------------------------

Cancelling a job that is ``engraving`` cannot be a plain state change: the machine is moving. The
activity writes a row instead, and the machine worker running the job acts on it::

    CREATE TABLE IF NOT EXISTS edge_cancel_requests (
        job_id TEXT PRIMARY KEY,   -- the job to stop
        at     REAL NOT NULL,      -- when it was asked (POSIX seconds)
        reason TEXT NOT NULL DEFAULT ''
    )

The machine worker checks :func:`cancel_requested` for its job at least every second while it
streams. On a row it stops the machine (feed hold, then soft reset), ends the ``runs`` row with
``outcome = 'cancelled'``, transitions the job ``CANCEL`` (engraving -> cancelled) and calls
:func:`clear_cancel_request`. Rows for jobs that are no longer ``engraving`` are stale: the
activity cancels those jobs itself, and a worker may delete them.

QA verdicts are written by the technician CLI (``qa pass|fail``) into ``qa_verdicts``; the
activity marks a verdict delivered (``delivered_at``) when it hands it to Temporal.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass

from crown_edge.errors import IllegalTransition
from crown_edge.lifecycle import TRANSITIONS, JobEvent
from crown_edge.models import JobStatus
from crown_edge.store import Job, Store
from crown_edge.store.store import _get_job, _transition


@dataclass(frozen=True, slots=True)
class Verdict:
    """A stored QA verdict of one attempt."""

    job_id: str
    attempt: int
    passed: bool
    notes: str
    by: str
    at: float
    delivered_at: float | None


def allowed(status: JobStatus, event: JobEvent) -> bool:
    """Whether the lifecycle table allows ``event`` in ``status``."""
    return (status, event) in TRANSITIONS


# --- cancel requests ---------------------------------------------------------------------------


def _stop(conn: sqlite3.Connection, job_id: str, reason: str, now: float) -> Job:
    job = _get_job(conn, job_id)
    if job.status is JobStatus.ENGRAVING:
        conn.execute(
            "INSERT INTO edge_cancel_requests (job_id, at, reason) VALUES (?, ?, ?) "
            "ON CONFLICT (job_id) DO NOTHING",
            (job_id, now, reason),
        )
        return job
    conn.execute("DELETE FROM edge_cancel_requests WHERE job_id = ?", (job_id,))
    if allowed(job.status, JobEvent.CANCEL):
        return _transition(conn, job_id, JobEvent.CANCEL, now, sets={"reason": reason or None})
    return job


async def stop_job(store: Store, job_id: str, reason: str, now: float) -> Job:
    """Cancel the job now, or ask its machine worker to when it is ``engraving``.

    Returns the job after the change (still ``engraving`` when a request was written).
    """
    return await store.run_sql(lambda c: _stop(c, job_id, reason, now))


async def cancel_requested(store: Store, job_id: str) -> str | None:
    """The reason of a pending cancel request for the job, or None (for the machine worker)."""

    def fn(conn: sqlite3.Connection) -> str | None:
        row = conn.execute(
            "SELECT reason FROM edge_cancel_requests WHERE job_id = ?", (job_id,)
        ).fetchone()
        return None if row is None else str(row[0])

    return await store.run_sql(fn, write=False)


async def clear_cancel_request(store: Store, job_id: str) -> None:
    """Forget the job's cancel request (the machine worker has stopped the run)."""

    def fn(conn: sqlite3.Connection) -> None:
        conn.execute("DELETE FROM edge_cancel_requests WHERE job_id = ?", (job_id,))

    await store.run_sql(fn)


# --- jobs --------------------------------------------------------------------------------------


async def set_schedule_details(
    store: Store, job_id: str, *, due_date: str, due_at: float, artwork_url: str | None
) -> None:
    """Record what only the machine-run input carries: due date (queue order) and artwork URL."""

    def fn(conn: sqlite3.Connection) -> None:
        row = conn.execute("SELECT message FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
        if row is None:
            return
        message = json.loads(row[0])
        message["due_date"] = due_date
        if artwork_url:
            message["artwork_url"] = artwork_url
        conn.execute(
            "UPDATE jobs SET due_at = ?, message = ? WHERE job_id = ?",
            (due_at, json.dumps(message, sort_keys=True), job_id),
        )

    await store.run_sql(fn)


async def switch_item(store: Store, job_id: str, item_id: str, now: float) -> Job:
    """Make ``item_id`` the job's item while it holds no unit (the customer took an alternative).

    Only a job still ``received``, or ``blocked`` for ``no_inventory``, without a live reservation
    changes; any other job is returned as it is.
    """

    def fn(conn: sqlite3.Connection) -> Job:
        job = _get_job(conn, job_id)
        waiting = job.status is JobStatus.RECEIVED or (
            job.status is JobStatus.BLOCKED and job.reason == "no_inventory"
        )
        held = conn.execute(
            "SELECT 1 FROM reservations WHERE job_id = ? AND state = 'reserved'", (job_id,)
        ).fetchone()
        if not waiting or held is not None or job.item_id == item_id:
            return job
        row = conn.execute("SELECT message FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
        message = json.loads(row[0])
        message["item_id"] = item_id
        conn.execute(
            "UPDATE jobs SET item_id = ?, message = ?, updated_at = ? WHERE job_id = ?",
            (item_id, json.dumps(message, sort_keys=True), now, job_id),
        )
        return _get_job(conn, job_id)

    return await store.run_sql(fn)


async def available_units(store: Store, item_id: str) -> int | None:
    """Units of the item available to reserve, None for an item the store does not know."""
    row = await store.run_sql(
        lambda c: c.execute("SELECT available FROM items WHERE item_id = ?", (item_id,)).fetchone(),
        write=False,
    )
    return None if row is None else int(row[0])


async def write_off(store: Store, job_id: str, now: float) -> bool:
    """The reserved unit may carry the engraving: count it used, never back in stock."""
    return await store.consume_reservation(job_id, now)


async def apply_if_allowed(
    store: Store,
    job_id: str,
    events: tuple[JobEvent, ...],
    now: float,
    *,
    reason: str | None = None,
) -> Job:
    """Apply each of ``events`` in turn while the lifecycle allows it, in one transaction.

    Used to bring the workshop's copy of a job to where the workflow says it ended; events the
    job's state does not allow are skipped (the job is already there, or past it).
    """

    def fn(conn: sqlite3.Connection) -> Job:
        job = _get_job(conn, job_id)
        for event in events:
            if allowed(job.status, event):
                try:
                    job = _transition(conn, job_id, event, now, sets={"reason": reason})
                except IllegalTransition:  # pragma: no cover - guarded by allowed()
                    break
        return job

    return await store.run_sql(fn)


# --- QA verdicts -------------------------------------------------------------------------------


def _verdict(row: tuple[object, ...] | None) -> Verdict | None:
    if row is None:
        return None
    job_id, attempt, passed, notes, by, at, delivered = row
    return Verdict(
        job_id=str(job_id),
        attempt=int(str(attempt)),
        passed=bool(passed),
        notes=str(notes or ""),
        by=str(by or ""),
        at=float(str(at)),
        delivered_at=None if delivered is None else float(str(delivered)),
    )


_VERDICT_SELECT = (
    "SELECT job_id, attempt, passed, notes, by, at, delivered_at FROM qa_verdicts "
    "WHERE job_id = ? AND attempt = ?"
)


async def deliver_verdict(store: Store, job_id: str, attempt: int, now: float) -> Verdict | None:
    """The verdict of (job_id, attempt), marked delivered on first hand-over; None if absent."""

    def fn(conn: sqlite3.Connection) -> Verdict | None:
        found = _verdict(conn.execute(_VERDICT_SELECT, (job_id, attempt)).fetchone())
        if found is not None and found.delivered_at is None:
            conn.execute(
                "UPDATE qa_verdicts SET delivered_at = ? WHERE job_id = ? AND attempt = ?",
                (now, job_id, attempt),
            )
        return found

    return await store.run_sql(fn)


async def record_verdict(
    store: Store, job_id: str, attempt: int, passed: bool, notes: str, by: str, now: float
) -> Verdict:
    """Store a verdict (first one wins) and move a ``qa_pending`` job on, in one transaction.

    Pass: ``QA_PASS`` (qa_pending -> complete). Fail: ``QA_FAIL`` (-> qa_failed, retry_count + 1).
    """

    def fn(conn: sqlite3.Connection) -> Verdict:
        conn.execute(
            "INSERT INTO qa_verdicts (job_id, attempt, passed, notes, by, at) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (job_id, attempt) DO NOTHING",
            (job_id, attempt, int(passed), notes, by, now),
        )
        found = _verdict(conn.execute(_VERDICT_SELECT, (job_id, attempt)).fetchone())
        assert found is not None
        job = _get_job(conn, job_id)
        if job.status is JobStatus.QA_PENDING and job.attempt == attempt:
            if found.passed:
                _transition(conn, job_id, JobEvent.QA_PASS, now, data={"by": found.by})
            else:
                _transition(
                    conn,
                    job_id,
                    JobEvent.QA_FAIL,
                    now,
                    sets={"retry_count": job.retry_count + 1, "reason": found.notes or None},
                    data={"by": found.by},
                )
        return found

    return await store.run_sql(fn)
