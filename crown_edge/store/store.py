"""The durable workshop store: every read and write of the workshop's state, typed.

SQLite in WAL mode with ``synchronous=FULL`` (:mod:`crown_edge.store.db`). Every job transition
is one transaction that writes the new state, an append-only ``job_events`` row and an ``outbox``
row for the MQTT link (:mod:`crown_edge.store.sql`), so a power cut at any instant leaves each
job in exactly one state with every event also queued for delivery. Each operation that belongs
together is one method and one transaction: claim, end of a run (run row, job event, cancel
request), resume with a fresh unit, scrap, cancel, QA verdict (with its stock), machine state
(with its outbox row).

:class:`Store` gathers the repositories: jobs and stock here, the queue and machines
(:mod:`crown_edge.store.queue`), cancels and verdicts (:mod:`crown_edge.store.workshop`), the
outbox (:mod:`crown_edge.store.outbox`). Claims are enforced by the database: a conditional
``UPDATE ... WHERE status = 'queued'`` and a unique partial index allowing one ``engraving`` job
per machine, so two claimers never get the same job, even in different processes.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from crown_edge.catalog import Catalog
from crown_edge.errors import NoInventory, StoreError, UnknownItem
from crown_edge.lifecycle import JobEvent
from crown_edge.models import IntakeMessage, JobStatus
from crown_edge.store import sql
from crown_edge.store.figures import Figures, job_counts, read_figures
from crown_edge.store.jobs import JOB_COLUMNS, Job, RunEnd, RunRecord, StockRow, job_from_row
from crown_edge.store.outbox import OutboxStore
from crown_edge.store.queue import QueueStore
from crown_edge.store.workshop import WorkshopStore

_RUN_COLUMNS = (
    "job_id, attempt, machine_id, started_at, ended_at, outcome, start_line, acked_lines, "
    "total_lines, last_acked_line, detail, sent_line, first_line_at"
)


def _run_record(r: tuple[Any, ...]) -> RunRecord:
    return RunRecord(
        job_id=r[0],
        attempt=r[1],
        machine_id=r[2],
        started_at=r[3],
        ended_at=r[4],
        outcome=r[5],
        start_line=r[6],
        acked_lines=r[7],
        total_lines=r[8],
        last_acked_line=r[9],
        detail=json.loads(r[10] or "{}"),
        sent_line=r[11],
        first_line_at=r[12],
    )


def _validate(conn: sqlite3.Connection, job_id: str, now: float) -> Job:
    job = sql.get_job(conn, job_id)
    if job.status is not JobStatus.RECEIVED:
        if job.status is JobStatus.BLOCKED and job.reason == "no_inventory":
            if not sql.reserve(conn, job, now):
                return job
            return sql.transition(conn, job_id, JobEvent.REVALIDATE, now, sets={"reason": None})
        return job
    if sql.reserve(conn, job, now):
        return sql.transition(conn, job_id, JobEvent.VALIDATE, now)
    return sql.transition(conn, job_id, JobEvent.BLOCK, now, sets={"reason": "no_inventory"})


class Store(QueueStore, WorkshopStore, OutboxStore):
    """The workshop's durable store. Use as an async context manager."""

    # --- catalogue and start-up ----------------------------------------------------------------

    async def sync_catalog(self, catalog: Catalog, now: float) -> None:
        """Add catalogue items not yet in the store, with their initial stock."""
        rows = [(i.item_id, i.stock_available, now) for i in catalog.items.values()]
        await self._write(
            lambda c: c.executemany(
                "INSERT OR IGNORE INTO items (item_id, available, updated_at) VALUES (?, ?, ?)",
                rows,
            )
        )

    async def recover_on_startup(self, now: float) -> list[str]:
        """Jobs found ``engraving`` become ``interrupted``: never re-run automatically.

        Their open run ends ``interrupted`` keeping what the job had saved: progress and the
        resume mark.
        """

        def fn(conn: sqlite3.Connection) -> list[str]:
            ids = [r[0] for r in conn.execute("SELECT job_id FROM jobs WHERE status = 'engraving'")]
            for job_id in ids:
                job = sql.get_job(conn, job_id)
                end = RunEnd(
                    "interrupted",
                    job.acked_lines,
                    job.total_lines,
                    job.last_acked_line,
                    {"reason": "daemon_restart"},
                    job.sent_line,
                )
                sql.end_run(conn, job_id, end, now)
                sql.clear_cancel(conn, job_id)  # asked of a run that is over: never of the next
                sql.transition(
                    conn, job_id, JobEvent.INTERRUPT, now, sets={"reason": "daemon_restart"}
                )
            return ids

        return await self._write(fn)

    # --- jobs ----------------------------------------------------------------------------------

    async def submit(self, msg: IntakeMessage, now: float, estimate_s: float = 60.0) -> Job:
        """Record a new job as ``received``; idempotent on job_id (returns the existing job)."""

        def fn(conn: sqlite3.Connection) -> Job:
            row = conn.execute(
                f"SELECT {JOB_COLUMNS} FROM jobs WHERE job_id = ?", (msg.job_id,)
            ).fetchone()
            if row is not None:
                return job_from_row(row)
            arrival = conn.execute("SELECT COALESCE(MAX(arrival), 0) + 1 FROM jobs").fetchone()[0]
            conn.execute(
                "INSERT INTO jobs (job_id, arrival, status, customer_id, item_id, rush, due_at, "
                "received_at, updated_at, message, estimate_s) "
                "VALUES (?, ?, 'received', ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    msg.job_id,
                    arrival,
                    msg.customer_id,
                    msg.item_id,
                    int(msg.rush),
                    msg.due_at,
                    now,
                    now,
                    json.dumps(msg.to_dict(), sort_keys=True),
                    estimate_s,
                ),
            )
            job = sql.get_job(conn, msg.job_id)
            sql.emit(conn, job, "receive", JobStatus.RECEIVED, now, {"rush": msg.rush})
            return sql.get_job(conn, msg.job_id)

        return await self._write(fn)

    async def get_job(self, job_id: str) -> Job:
        """The job, or UnknownJob."""
        return await self._read(lambda c: sql.get_job(c, job_id))

    async def list_jobs(self, status: Sequence[str] | None = None, limit: int = 200) -> list[Job]:
        """Jobs, newest first, optionally filtered by status."""

        def fn(conn: sqlite3.Connection) -> list[Job]:
            if status:
                marks = ",".join("?" * len(status))
                rows = conn.execute(
                    f"SELECT {JOB_COLUMNS} FROM jobs WHERE status IN ({marks}) "
                    "ORDER BY arrival DESC LIMIT ?",
                    (*status, limit),
                ).fetchall()
            else:
                rows = conn.execute(
                    f"SELECT {JOB_COLUMNS} FROM jobs ORDER BY arrival DESC LIMIT ?", (limit,)
                ).fetchall()
            return [job_from_row(r) for r in rows]

        return await self._read(fn)

    async def job_counts(self) -> dict[str, int]:
        """How many jobs are in each status."""
        return await self._read(job_counts)

    async def events(self, job_id: str) -> list[dict[str, Any]]:
        """The job's history, oldest first."""

        def fn(conn: sqlite3.Connection) -> list[dict[str, Any]]:
            sql.get_job(conn, job_id)
            rows = conn.execute(
                "SELECT data FROM job_events WHERE job_id = ? ORDER BY seq", (job_id,)
            ).fetchall()
            return [json.loads(r[0]) for r in rows]

        return await self._read(fn)

    async def transition(
        self,
        job_id: str,
        event: JobEvent,
        now: float,
        *,
        expect: Iterable[JobStatus] | None = None,
        sets: dict[str, Any] | None = None,
        data: dict[str, Any] | None = None,
    ) -> Job:
        """Apply one lifecycle event: new state + event row + outbox row, one transaction."""
        return await self._write(
            lambda c: sql.transition(c, job_id, event, now, expect=expect, sets=sets, data=data)
        )

    async def requeue(
        self,
        job_id: str,
        event: JobEvent,
        now: float,
        *,
        sets: dict[str, Any],
        data: dict[str, Any] | None = None,
        fresh_unit: bool = False,
        eligible: Callable[[str], int] | None = None,
    ) -> Job:
        """Put the job (back) in the queue with ``event``, in one transaction.

        ``fresh_unit``: the held unit is scrapped (consumed) and a fresh one reserved first
        (``jobs resume --restart``); NoInventory, and nothing changed, when none is left.
        ``eligible(item_id)``: the job's ``eligible_mask`` (which machines may take it).
        """

        def fn(conn: sqlite3.Connection) -> Job:
            columns = dict(sets)
            if fresh_unit or eligible is not None:
                current = sql.get_job(conn, job_id)
                if eligible is not None:
                    columns["eligible_mask"] = eligible(current.item_id)
                if fresh_unit:
                    sql.settle(conn, job_id, "consumed", now)
                    if not sql.reserve(conn, current, now, fresh=True):
                        raise NoInventory(current.item_id)
            return sql.transition(conn, job_id, event, now, sets=columns, data=data)

        return await self._write(fn)

    async def scrap(self, job_id: str, now: float) -> Job:
        """An interrupted job is given up: its unit written off and the job ``failed``."""

        def fn(conn: sqlite3.Connection) -> Job:
            sql.settle(conn, job_id, "consumed", now)
            return sql.transition(
                conn,
                job_id,
                JobEvent.SCRAP,
                now,
                expect=[JobStatus.INTERRUPTED],
                sets={"reason": "scrapped"},
            )

        return await self._write(fn)

    async def validate_and_reserve(
        self,
        job_id: str,
        now: float,
        *,
        queue: dict[str, Any] | None = None,
        eligible: Callable[[str], int] | None = None,
    ) -> Job:
        """Reserve one unit of the job's item and mark it ``validated``, atomically.

        Idempotent: a job that already holds a reservation is not charged twice. With no unit
        left the job becomes ``blocked`` (reason ``no_inventory``) and NoInventory is raised
        after the block is committed. ``queue``: a job validated now is also queued (``ENQUEUE``
        with these columns, ``eligible(item_id)`` its eligibility mask) in the same
        transaction, as a walk-in job with no workflow to queue it later must be.
        """

        def fn(conn: sqlite3.Connection) -> Job:
            job = _validate(conn, job_id, now)
            if queue is None or job.status is not JobStatus.VALIDATED:
                return job
            columns = dict(queue)
            if eligible is not None:
                columns["eligible_mask"] = eligible(job.item_id)
            return sql.transition(conn, job_id, JobEvent.ENQUEUE, now, sets=columns)

        job = await self._write(fn)
        if job.status is JobStatus.BLOCKED and job.reason == "no_inventory":
            raise NoInventory(job.item_id)
        return job

    async def release_reservation(self, job_id: str, now: float) -> bool:
        """Give a reserved unit back to stock (cancel, block, rejection). Idempotent."""
        return await self._write(lambda c: sql.settle(c, job_id, "released", now))

    async def consume_reservation(self, job_id: str, now: float) -> bool:
        """The unit was engraved (or may carry engraving): reserved -> consumed. Idempotent."""
        return await self._write(lambda c: sql.settle(c, job_id, "consumed", now))

    # --- inventory -----------------------------------------------------------------------------

    async def list_stock(self) -> list[StockRow]:
        """Live stock per item."""
        rows = await self._read(
            lambda c: c.execute(
                "SELECT item_id, available, reserved, consumed FROM items ORDER BY item_id"
            ).fetchall()
        )
        return [StockRow(*r) for r in rows]

    async def set_stock(self, item_id: str, available: int, now: float) -> StockRow:
        """Set the available count of an item (a technician counted the shelf)."""
        if available < 0:
            raise StoreError("stock cannot be negative", item_id=item_id)

        def fn(conn: sqlite3.Connection) -> StockRow:
            cur = conn.execute(
                "UPDATE items SET available = ?, updated_at = ? WHERE item_id = ?",
                (available, now, item_id),
            )
            if cur.rowcount == 0:
                raise UnknownItem(item_id)
            row = conn.execute(
                "SELECT item_id, available, reserved, consumed FROM items WHERE item_id = ?",
                (item_id,),
            ).fetchone()
            return StockRow(*row)

        return await self._write(fn)

    # --- runs ----------------------------------------------------------------------------------

    async def runs(self, job_id: str) -> list[RunRecord]:
        """Machine runs of the job, oldest first."""
        rows = await self._read(
            lambda c: c.execute(
                f"SELECT {_RUN_COLUMNS} FROM runs WHERE job_id = ? ORDER BY id", (job_id,)
            ).fetchall()
        )
        return [_run_record(r) for r in rows]

    async def save_progress(self, job_id: str, acked: int, total: int, now: float) -> None:
        """Record how far the running job got (lines acknowledged of ``total``)."""
        progress = acked / total if total else 0.0
        await self._write(
            lambda c: c.execute(
                "UPDATE jobs SET progress = ?, acked_lines = ?, last_acked_line = ?, "
                "total_lines = ?, updated_at = ? WHERE job_id = ? AND status = 'engraving'",
                (progress, acked, acked, total, now, job_id),
            )
        )

    async def mark_first_line(self, job_id: str, now: float) -> None:
        """The machine acknowledged the first line of the job's latest run at ``now`` (kept once
        per run: a later call changes nothing, also when the run has ended meanwhile)."""
        await self._write(
            lambda c: c.execute(
                "UPDATE runs SET first_line_at = ? WHERE id = "
                "(SELECT MAX(id) FROM runs WHERE job_id = ?) AND first_line_at IS NULL",
                (now, job_id),
            )
        )

    async def mark_sent(self, job_id: str, line: int) -> None:
        """Raise the resume mark of the job's running run to ``line`` (durable on return).

        Called before lines up to ``line`` leave for the controller; the mark only grows, so a
        late or repeated call never lowers it.
        """

        def fn(conn: sqlite3.Connection) -> None:
            conn.execute(
                "UPDATE jobs SET sent_line = MAX(COALESCE(sent_line, 0), ?) "
                "WHERE job_id = ? AND status = 'engraving'",
                (line, job_id),
            )
            conn.execute(
                "UPDATE runs SET sent_line = MAX(COALESCE(sent_line, 0), ?) "
                "WHERE job_id = ? AND ended_at IS NULL",
                (line, job_id),
            )

        await self._write(fn, notify=False)

    async def end_run(
        self,
        job_id: str,
        machine_id: str | None,
        end: RunEnd,
        event: JobEvent,
        now: float,
        *,
        sets: dict[str, Any] | None = None,
        data: dict[str, Any] | None = None,
    ) -> Job | None:
        """End the job's open run and apply ``event`` to the ``engraving`` job, in one
        transaction that also forgets the job's cancel request.

        The run row ends whatever the job's state; the event applies only while the job is
        ``engraving`` (None is returned otherwise: someone else moved it, nothing to record).
        A ``CANCEL`` also writes the held unit off: it may carry engraving.
        """

        def fn(conn: sqlite3.Connection) -> Job | None:
            sql.end_run(conn, job_id, end, now, machine_id)
            sql.clear_cancel(conn, job_id)
            if sql.get_job(conn, job_id).status is not JobStatus.ENGRAVING:
                return None
            if event is JobEvent.CANCEL:  # the unit may carry engraving: never back on the shelf
                sql.settle(conn, job_id, "consumed", now)
            return sql.transition(conn, job_id, event, now, sets=sets, data=data)

        return await self._write(fn)

    async def send_to_qa(self, job_id: str, now: float, *, by: str) -> Job:
        """An interrupted job whose every line had been sent goes to QA on a technician's word.

        The last run keeps its real outcome and counts; its detail records ``to_qa`` so the
        automatic QA check leaves the verdict to a person.
        """

        def fn(conn: sqlite3.Connection) -> Job:
            job = sql.transition(
                conn, job_id, JobEvent.TO_QA, now, expect=[JobStatus.INTERRUPTED], data={"by": by}
            )
            row = conn.execute(
                "SELECT id, detail FROM runs WHERE job_id = ? AND attempt = ? ORDER BY id DESC "
                "LIMIT 1",
                (job_id, job.attempt),
            ).fetchone()
            if row is not None:
                detail = json.loads(row[1] or "{}")
                detail["to_qa"] = by
                conn.execute(
                    "UPDATE runs SET detail = ? WHERE id = ?",
                    (json.dumps(detail, sort_keys=True), row[0]),
                )
            return job

        return await self._write(fn)

    # --- figures -------------------------------------------------------------------------------

    async def figures(self, now: float, completion_buckets: Sequence[float]) -> Figures:
        """Every metric the workshop reports, read in one go (see :mod:`crown_edge.metrics`)."""
        return await self._read(lambda c: read_figures(c, now, completion_buckets))
