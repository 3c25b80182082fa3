"""Cancels, QA verdicts and the workflow's view of a job: each one transaction.

Cancel requests (a contract with the daemon's machine workers)
--------------------------------------------------------------

Cancelling a job that is ``engraving`` cannot be a plain state change: the machine is moving, and
only the worker running it may end its run. :meth:`WorkshopStore.cancel` writes a row instead,
and the machine worker running the job acts on it::

    CREATE TABLE IF NOT EXISTS edge_cancel_requests (
        job_id TEXT PRIMARY KEY,   -- the job to stop
        at     REAL NOT NULL,      -- when it was asked (POSIX seconds)
        reason TEXT NOT NULL DEFAULT ''
    )

The machine worker checks :meth:`WorkshopStore.cancel_requested` for its job at least every
second while it streams. On a row it stops the machine (feed hold, then soft reset) and ends the
run with ``outcome = 'cancelled'`` and the job ``CANCEL`` (engraving -> cancelled) in one
transaction (:meth:`~crown_edge.store.Store.end_run`), which also deletes the row. Rows for jobs
that are no longer ``engraving`` are stale: a cancel of such a job cancels it at once and deletes
them.

QA verdicts
-----------

One writer, :meth:`WorkshopStore.record_verdict`, for the technician (``qa pass|fail``) and the
automatic check alike: the first verdict of an attempt is kept; a ``qa_pending`` job of that
attempt moves on in the same transaction, and a pass consumes the reserved unit (once: a held
unit is consumed only from ``reserved``). The activity marks a verdict delivered
(``delivered_at``) when it hands it to Temporal.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from typing import Any

from crown_edge.errors import IllegalTransition, UnknownJob
from crown_edge.lifecycle import JobEvent
from crown_edge.models import JobStatus
from crown_edge.store import sql
from crown_edge.store.db import Database
from crown_edge.store.jobs import Job, Verdict

#: ``after_fail(job) -> (event, columns)``: the policy after a failed QA (run inside the verdict's
#: transaction), or None to leave the job ``qa_failed``.
AfterFail = Callable[[Job], tuple[JobEvent, dict[str, Any]] | None]

_VERDICT_SELECT = (
    "SELECT job_id, attempt, passed, notes, by, at, delivered_at FROM qa_verdicts "
    "WHERE job_id = ? AND attempt = ?"
)


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


def record_verdict(
    conn: sqlite3.Connection,
    job_id: str,
    attempt: int | None,
    passed: bool,
    notes: str,
    by: str,
    now: float,
    after_fail: AfterFail | None = None,
) -> tuple[Verdict, Job]:
    """Keep the attempt's first verdict and move a ``qa_pending`` job of that attempt on.

    ``attempt`` None: the job's current attempt, which must be ``qa_pending`` (else
    IllegalTransition, nothing written): a technician judges the item in front of them.
    ``after_fail(job)``: what follows a failed QA (event and columns), or None: the job waits.
    """
    job = sql.get_job(conn, job_id)
    if attempt is None:
        if job.status is not JobStatus.QA_PENDING:
            raise IllegalTransition(job_id, str(job.status), "qa_pass" if passed else "qa_fail")
        attempt = job.attempt
    conn.execute(
        "INSERT INTO qa_verdicts (job_id, attempt, passed, notes, by, at) "
        "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (job_id, attempt) DO NOTHING",
        (job_id, attempt, int(passed), notes, by, now),
    )
    found = _verdict(conn.execute(_VERDICT_SELECT, (job_id, attempt)).fetchone())
    assert found is not None
    if job.status is JobStatus.QA_PENDING and job.attempt == attempt:
        data = {"by": found.by, "notes": found.notes or None}
        if found.passed:
            sql.settle(conn, job_id, "consumed", now)
            job = sql.transition(conn, job_id, JobEvent.QA_PASS, now, data=data)
        else:
            job = sql.transition(
                conn,
                job_id,
                JobEvent.QA_FAIL,
                now,
                sets={"retry_count": job.retry_count + 1, "reason": found.notes or None},
                data=data,
            )
            follow = after_fail(job) if after_fail is not None else None
            if follow is not None:
                event, sets = follow
                job = sql.transition(conn, job_id, event, now, sets=sets)
    return found, job


def _apply(
    conn: sqlite3.Connection,
    job: Job,
    events: tuple[JobEvent, ...],
    now: float,
    reason: str | None,
) -> Job:
    for event in events:
        if sql.allowed(job.status, event):
            job = sql.transition(conn, job.job_id, event, now, sets={"reason": reason})
    return job


class WorkshopStore(Database):
    """Cancels, verdicts and workflow-driven changes (mixed into the Store)."""

    async def cancel(
        self,
        job_id: str,
        reason: str,
        now: float,
        *,
        settle_stock: bool = True,
        strict: bool = False,
    ) -> Job:
        """Cancel the job now, or ask its machine worker to when it is ``engraving``.

        Returns the job after the change (still ``engraving`` when a request was written).
        ``settle_stock``: settle the held unit in the same transaction (written off when it may
        carry engraving, else back on the shelf). ``strict``: a job that cannot be cancelled
        raises IllegalTransition instead of being returned as it is.
        """
        return await self._write(
            lambda c: sql.cancel_now_or_ask(
                c, job_id, reason, now, settle_stock=settle_stock, strict=strict
            )
        )

    async def cancel_requested(self, job_id: str) -> str | None:
        """The reason of a pending cancel request for the job, or None (for the machine worker)."""

        def fn(conn: sqlite3.Connection) -> str | None:
            row = conn.execute(
                "SELECT reason FROM edge_cancel_requests WHERE job_id = ?", (job_id,)
            ).fetchone()
            return None if row is None else str(row[0])

        return await self._read(fn)

    async def set_schedule_details(
        self, job_id: str, *, due_date: str, due_at: float, artwork_url: str | None
    ) -> None:
        """Record what only the machine-run input carries: due date (queue order), artwork URL."""

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

        await self._write(fn)

    async def switch_item(self, job_id: str, item_id: str, now: float) -> Job:
        """Make ``item_id`` the job's item while it holds no unit (the customer took another).

        Only a job still ``received``, or ``blocked`` for ``no_inventory``, without a live
        reservation changes; any other job is returned as it is.
        """

        def fn(conn: sqlite3.Connection) -> Job:
            job = sql.get_job(conn, job_id)
            waiting = job.status is JobStatus.RECEIVED or (
                job.status is JobStatus.BLOCKED and job.reason == "no_inventory"
            )
            held = conn.execute(
                "SELECT 1 FROM reservations WHERE job_id = ? AND state = 'reserved'", (job_id,)
            ).fetchone()
            if not waiting or held is not None or job.item_id == item_id:
                return job
            message = dict(job.message)
            message["item_id"] = item_id
            conn.execute(
                "UPDATE jobs SET item_id = ?, message = ?, updated_at = ? WHERE job_id = ?",
                (item_id, json.dumps(message, sort_keys=True), now, job_id),
            )
            return sql.get_job(conn, job_id)

        return await self._write(fn)

    async def available_units(self, item_id: str) -> int | None:
        """Units of the item available to reserve, None for an item the store does not know."""
        row = await self._read(
            lambda c: c.execute(
                "SELECT available FROM items WHERE item_id = ?", (item_id,)
            ).fetchone()
        )
        return None if row is None else int(row[0])

    async def apply_if_allowed(
        self,
        job_id: str,
        events: tuple[JobEvent, ...],
        now: float,
        *,
        reason: str | None = None,
        settle: str | None = None,
    ) -> Job:
        """Apply each of ``events`` in turn while the lifecycle allows it, in one transaction.

        Brings the workshop's copy of a job to where the workflow says it ended; events the
        job's state does not allow are skipped (the job is already there, or past it).
        ``settle``: first settle the held unit, ``consumed`` or ``released`` (idempotent).
        """

        def fn(conn: sqlite3.Connection) -> Job:
            job = sql.get_job(conn, job_id)
            if settle is not None:
                sql.settle(conn, job_id, settle, now)
            return _apply(conn, job, events, now, reason)

        return await self._write(fn)

    async def release(
        self,
        job_id: str,
        now: float,
        *,
        engraved: bool,
        events: tuple[JobEvent, ...],
        reason: str,
    ) -> Job | None:
        """The workflow lets the job go: settle its unit and end the job, in one transaction.

        The unit is written off when ``engraved`` (it may carry the engraving), else back on the
        shelf. An ``engraving`` job gets a cancel request (its machine worker stops it); any
        other is brought on with :meth:`apply_if_allowed`'s rule. None: the job is unknown here.
        """

        def fn(conn: sqlite3.Connection) -> Job | None:
            sql.settle(conn, job_id, "consumed" if engraved else "released", now)
            try:
                job = sql.get_job(conn, job_id)
            except UnknownJob:
                return None
            if job.status is JobStatus.ENGRAVING:
                return sql.cancel_now_or_ask(
                    conn, job_id, reason, now, settle_stock=False, strict=False
                )
            return _apply(conn, job, events, now, reason)

        return await self._write(fn)

    async def record_verdict(
        self,
        job_id: str,
        attempt: int | None,
        passed: bool,
        notes: str,
        by: str,
        now: float,
        *,
        after_fail: AfterFail | None = None,
    ) -> tuple[Verdict, Job]:
        """Store a QA verdict and move the job on, in one transaction (see the module notes).

        Pass: ``QA_PASS`` (qa_pending -> complete) and the unit consumed. Fail: ``QA_FAIL``
        (-> qa_failed, retry_count + 1), then ``after_fail``'s event when it gives one (a job
        the daemon runs itself: another run, or escalation). ``attempt`` None: the job's
        current attempt, which must be ``qa_pending``. Returns the kept verdict (the first of
        the attempt) and the job.
        """
        return await self._write(
            lambda c: record_verdict(c, job_id, attempt, passed, notes, by, now, after_fail)
        )

    async def deliver_verdict(self, job_id: str, attempt: int, now: float) -> Verdict | None:
        """The verdict of (job_id, attempt), marked delivered on first hand-over; None if absent."""

        def fn(conn: sqlite3.Connection) -> Verdict | None:
            found = _verdict(conn.execute(_VERDICT_SELECT, (job_id, attempt)).fetchone())
            if found is not None and found.delivered_at is None:
                conn.execute(
                    "UPDATE qa_verdicts SET delivered_at = ? WHERE job_id = ? AND attempt = ?",
                    (now, job_id, attempt),
                )
            return found

        return await self._write(fn)

    async def verdict(self, job_id: str, attempt: int) -> Verdict | None:
        """The stored verdict of (job_id, attempt), or None (read only)."""
        return await self._read(
            lambda c: _verdict(c.execute(_VERDICT_SELECT, (job_id, attempt)).fetchone())
        )
