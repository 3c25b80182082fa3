"""The durable workshop store: SQLite in WAL mode with ``synchronous=FULL``.

Every job transition is one transaction that writes the new state, an append-only
``job_events`` row and an ``outbox`` row for the MQTT link, so a power cut at any instant leaves
each job in exactly one state with every event also queued for delivery.

Each write runs as one function inside aiosqlite's connection thread (a single hop per
transaction, ``BEGIN IMMEDIATE`` so concurrent writers in other processes serialise on the
database lock rather than failing on upgrade). Claims are enforced by the database: a conditional
``UPDATE ... WHERE status = 'queued'`` and a unique partial index allowing one ``engraving`` job per
machine, so two claimers never get the same job, even in different processes.

The database and its WAL/shared-memory files are owner-only (``0600``, see
:mod:`crown_edge.store.files`): they hold customer names and texts.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar, cast

import aiosqlite

from crown_edge.catalog import Catalog
from crown_edge.errors import IllegalTransition, NoInventory, StoreError, UnknownItem, UnknownJob
from crown_edge.lifecycle import JobEvent, next_state
from crown_edge.models import IntakeMessage, JobStatus, OutboxEntry
from crown_edge.store import outbox
from crown_edge.store.files import private_database
from crown_edge.store.jobs import JOB_COLUMNS, Job, RunRecord, StockRow, job_from_row
from crown_edge.store.schema import MIGRATIONS

log = logging.getLogger(__name__)
T = TypeVar("T")

QUEUE_ORDER = "top DESC, rush DESC, due_at ASC, arrival ASC"


def _get_job(conn: sqlite3.Connection, job_id: str) -> Job:
    row = conn.execute(f"SELECT {JOB_COLUMNS} FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
    if row is None:
        raise UnknownJob(job_id)
    return job_from_row(row)


def _emit(
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
    conn.execute(
        "INSERT INTO outbox (topic, payload, qos, retain, created_at, event_id, job_id, seq) "
        "VALUES ('events', ?, 1, 0, ?, ?, ?, ?)",
        (body, now, payload["event_id"], job.job_id, seq),
    )
    return payload


def _transition(
    conn: sqlite3.Connection,
    job_id: str,
    event: JobEvent,
    now: float,
    *,
    expect: Iterable[JobStatus] | None = None,
    sets: dict[str, Any] | None = None,
    data: dict[str, Any] | None = None,
) -> Job:
    job = _get_job(conn, job_id)
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
    _emit(conn, job, str(event), new, now, payload)
    return _get_job(conn, job_id)


class Store:
    """The workshop's durable store. Use as an async context manager."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db: aiosqlite.Connection | None = None
        #: Called (in the event loop) after every committed write, e.g. to wake the MQTT link.
        self.on_commit: list[Callable[[], None]] = []

    @classmethod
    def from_path(cls, path: Path | str) -> Self:
        """A store on ``path`` (created with its parent directory on open)."""
        return cls(Path(path))

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def open(self) -> None:
        """Open the database, set durability pragmas and apply pending migrations."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            private_database(self.path)  # customer data: owner-only before SQLite writes a byte
            db = await aiosqlite.connect(self.path, isolation_level=None, timeout=30.0)
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open store {self.path}: {exc}", path=str(self.path)) from exc
        self._db = db
        try:
            await self._run(self._setup)
            private_database(self.path)  # the WAL and shared-memory files now exist
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        """Close the database connection."""
        if self._db is not None:
            db, self._db = self._db, None
            await db.close()

    @staticmethod
    def _setup(conn: sqlite3.Connection) -> None:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA busy_timeout = 30000")
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations "
                "(version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)"
            )
            done = {r[0] for r in conn.execute("SELECT version FROM schema_migrations")}
            for number, script in enumerate(MIGRATIONS, start=1):
                if number in done:
                    continue
                for statement in script.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute("INSERT INTO schema_migrations VALUES (?, datetime('now'))", (number,))
                log.info("applied store migration %s", number)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    # --- plumbing ------------------------------------------------------------------------------

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(conn)`` in the connection's thread: one hop, however many statements."""
        db = self._db
        if db is None:
            raise StoreError("store is not open", path=str(self.path))
        # aiosqlite schedules every call through ``_execute`` on its own thread; using it for a
        # whole transaction keeps each job transition to a single thread hop.
        execute = cast(Callable[..., Any], db._execute)
        try:
            return cast(T, await execute(lambda: fn(db._conn)))
        except sqlite3.Error as exc:
            raise StoreError(f"store error: {exc}", path=str(self.path)) from exc

    async def _tx(self, fn: Callable[[sqlite3.Connection], T], *, notify: bool = True) -> T:
        """Run ``fn`` inside one ``BEGIN IMMEDIATE`` ... ``COMMIT`` transaction.

        ``notify`` False skips :attr:`on_commit` (the link's own delivery bookkeeping must not
        wake it again). A transaction that changed no row notifies nobody either: a machine
        worker's claim that found nothing must not wake the other workers, or idle workers wake
        each other in a loop and spin the CPU.
        """
        changed = False

        def body(conn: sqlite3.Connection) -> T:
            nonlocal changed
            conn.execute("BEGIN IMMEDIATE")
            before = conn.total_changes
            try:
                result = fn(conn)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            changed = conn.total_changes != before
            conn.execute("COMMIT")
            return result

        result = await self._run(body)
        if notify and changed:
            for callback in self.on_commit:
                callback()
        return result

    async def healthy(self) -> bool:
        """True when the database answers a trivial query (used for the systemd watchdog)."""
        try:
            return await self._run(lambda c: c.execute("SELECT 1").fetchone() == (1,))
        except StoreError:
            return False

    # --- catalogue and machines ----------------------------------------------------------------

    async def sync_catalog(self, catalog: Catalog, now: float) -> None:
        """Add catalogue items not yet in the store, with their initial stock."""

        def fn(conn: sqlite3.Connection) -> None:
            conn.executemany(
                "INSERT OR IGNORE INTO items (item_id, available, updated_at) VALUES (?, ?, ?)",
                [(i.item_id, i.stock_available, now) for i in catalog.items.values()],
            )

        await self._tx(fn)

    async def sync_machines(self, machine_ids: Sequence[str]) -> None:
        """Record the configured machines and their ordinals (bit positions in eligibility)."""

        def fn(conn: sqlite3.Connection) -> None:
            for ordinal, mid in enumerate(machine_ids):
                conn.execute(
                    "INSERT INTO machines (machine_id, ordinal) VALUES (?, ?) "
                    "ON CONFLICT (machine_id) DO UPDATE SET ordinal = excluded.ordinal",
                    (mid, ordinal),
                )

        await self._tx(fn)

    async def recover_on_startup(self, now: float) -> list[str]:
        """Jobs found ``engraving`` become ``interrupted``: never re-run automatically."""

        def fn(conn: sqlite3.Connection) -> list[str]:
            ids = [r[0] for r in conn.execute("SELECT job_id FROM jobs WHERE status = 'engraving'")]
            for job_id in ids:
                _transition(
                    conn,
                    job_id,
                    JobEvent.INTERRUPT,
                    now,
                    sets={"reason": "daemon_restart"},
                )
                # the run keeps what the job had saved: progress and the resume mark
                conn.execute(
                    "UPDATE runs SET ended_at = ?, outcome = 'interrupted', "
                    'detail = \'{"reason": "daemon_restart"}\', '
                    "acked_lines = (SELECT acked_lines FROM jobs WHERE job_id = runs.job_id), "
                    "total_lines = (SELECT total_lines FROM jobs WHERE job_id = runs.job_id), "
                    "last_acked_line = (SELECT last_acked_line FROM jobs "
                    "WHERE job_id = runs.job_id), "
                    "sent_line = COALESCE(sent_line, "
                    "(SELECT sent_line FROM jobs WHERE job_id = runs.job_id)) "
                    "WHERE job_id = ? AND ended_at IS NULL",
                    (now, job_id),
                )
            return ids

        return await self._tx(fn)

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
            job = _get_job(conn, msg.job_id)
            _emit(conn, job, "receive", JobStatus.RECEIVED, now, {"rush": msg.rush})
            return _get_job(conn, msg.job_id)

        return await self._tx(fn)

    async def get_job(self, job_id: str) -> Job:
        """The job, or UnknownJob."""
        return await self._run(lambda c: _get_job(c, job_id))

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

        return await self._run(fn)

    async def events(self, job_id: str) -> list[dict[str, Any]]:
        """The job's history, oldest first."""

        def fn(conn: sqlite3.Connection) -> list[dict[str, Any]]:
            _get_job(conn, job_id)
            rows = conn.execute(
                "SELECT data FROM job_events WHERE job_id = ? ORDER BY seq", (job_id,)
            ).fetchall()
            return [json.loads(r[0]) for r in rows]

        return await self._run(fn)

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
        return await self._tx(
            lambda c: _transition(c, job_id, event, now, expect=expect, sets=sets, data=data)
        )

    async def validate_and_reserve(self, job_id: str, now: float) -> Job:
        """Reserve one unit of the job's item and mark it ``validated``, atomically.

        Idempotent: a job that already holds a reservation is not charged twice. With no unit
        left the job becomes ``blocked`` (reason ``no_inventory``) and NoInventory is raised
        after the block is committed.
        """

        def fn(conn: sqlite3.Connection) -> Job:
            job = _get_job(conn, job_id)
            if job.status is not JobStatus.RECEIVED:
                if job.status is JobStatus.BLOCKED and job.reason == "no_inventory":
                    if not _reserve(conn, job, now):
                        return job
                    return _transition(
                        conn, job_id, JobEvent.REVALIDATE, now, sets={"reason": None}
                    )
                return job
            if _reserve(conn, job, now):
                return _transition(conn, job_id, JobEvent.VALIDATE, now)
            return _transition(conn, job_id, JobEvent.BLOCK, now, sets={"reason": "no_inventory"})

        job = await self._tx(fn)
        if job.status is JobStatus.BLOCKED and job.reason == "no_inventory":
            raise NoInventory(job.item_id)
        return job

    async def release_reservation(self, job_id: str, now: float) -> bool:
        """Give a reserved unit back to stock (cancel, block, rejection). Idempotent."""
        return await self._tx(lambda c: _settle(c, job_id, "released", now))

    async def consume_reservation(self, job_id: str, now: float) -> bool:
        """The unit was engraved and shipped: reserved -> consumed. Idempotent."""
        return await self._tx(lambda c: _settle(c, job_id, "consumed", now))

    # --- inventory -----------------------------------------------------------------------------

    async def list_stock(self) -> list[StockRow]:
        """Live stock per item."""
        rows = await self._run(
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

        return await self._tx(fn)

    # --- outbox (DeliveryOutbox for the MQTT link; the SQL is crown_edge.store.outbox) --------

    async def outbox_pending(self, limit: int = 100) -> list[OutboxEntry]:
        """Rows not done yet (waiting, or sent and not acknowledged), in order."""
        rows = await self._run(
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

    async def outbox_due(self, limit: int, now: float) -> list[OutboxEntry]:
        """Rows to send now: never sent, or unacknowledged past their retransmit time."""
        return await self._run(lambda c: outbox.due(c, limit, now))

    async def outbox_next_due(self) -> float | None:
        """When the next row is due (``-inf``: now), None when nothing waits."""
        return await self._run(outbox.next_due)

    async def outbox_tried(
        self, ids: Sequence[int], now: float, delay: Callable[[int], float]
    ) -> None:
        """Rows ``ids`` went out at ``now``; ``delay(attempts)`` is their ack timeout."""
        await self._tx(lambda c: outbox.tried(c, ids, now, delay), notify=False)

    async def outbox_mark_sent(self, ids: Sequence[int], now: float | None = None) -> None:
        """Mark rows done (rows that need no ack: after the broker acknowledged them)."""
        stamp = time.time() if now is None else now
        await self._tx(lambda c: outbox.mark_done(c, ids, stamp), notify=False)

    async def outbox_acked(self, event_ids: Sequence[str], now: float) -> int:
        """The cloud has these events: their rows are done; returns how many rows that was."""
        return await self._tx(lambda c: outbox.acked(c, event_ids, now), notify=False)

    async def outbox_replay(self, job_id: str, first: int, last: int, now: float) -> int:
        """Queue the job's events ``first`` … ``last`` again from its history."""
        return await self._tx(lambda c: outbox.replay(c, job_id, first, last, now))

    async def outbox_enforce(
        self, now: float, *, max_rows: int, max_age_s: float, keep_done_s: float
    ) -> outbox.OutboxTrim:
        """Apply the outbox bounds (see :func:`crown_edge.store.outbox.enforce`)."""
        return await self._tx(
            lambda c: outbox.enforce(
                c, now, max_rows=max_rows, max_age_s=max_age_s, keep_done_s=keep_done_s
            ),
            notify=False,
        )

    async def outbox_stats(self, now: float) -> outbox.OutboxStats:
        """Backlog rows, the oldest one's age, rows given up."""
        return await self._run(lambda c: outbox.stats(c, now))

    async def outbox_put(
        self, topic: str, payload: dict[str, Any], now: float, *, retain: bool = False
    ) -> None:
        """Queue a message that is not a job transition (machine state, edge state)."""
        body = json.dumps(payload, sort_keys=True)
        await self._tx(
            lambda c: c.execute(
                "INSERT INTO outbox (topic, payload, qos, retain, created_at) "
                "VALUES (?, ?, 1, ?, ?)",
                (topic, body, int(retain), now),
            )
        )

    # --- runs ----------------------------------------------------------------------------------

    async def runs(self, job_id: str) -> list[RunRecord]:
        """Machine runs of the job, oldest first."""
        rows = await self._run(
            lambda c: c.execute(
                "SELECT job_id, attempt, machine_id, started_at, ended_at, outcome, start_line, "
                "acked_lines, total_lines, last_acked_line, detail, sent_line FROM runs "
                "WHERE job_id = ? ORDER BY id",
                (job_id,),
            ).fetchall()
        )
        return [
            RunRecord(
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
            )
            for r in rows
        ]

    async def send_to_qa(self, job_id: str, now: float, *, by: str) -> Job:
        """An interrupted job whose every line had been sent goes to QA on a technician's word.

        The last run keeps its real outcome and counts; its detail records ``to_qa`` so the
        automatic QA check leaves the verdict to a person.
        """

        def fn(conn: sqlite3.Connection) -> Job:
            job = _transition(
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

        return await self._tx(fn)

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

        await self._tx(fn, notify=False)

    async def run_sql(self, fn: Callable[[sqlite3.Connection], T], *, write: bool = True) -> T:
        """Run a function on the connection (inside a transaction when ``write``).

        For the scheduler and activity modules that own their own queries.
        """
        return await (self._tx(fn) if write else self._run(fn))


def _reserve(conn: sqlite3.Connection, job: Job, now: float, *, fresh: bool = False) -> bool:
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


def _settle(conn: sqlite3.Connection, job_id: str, state: str, now: float) -> bool:
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
