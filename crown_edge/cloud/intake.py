"""The Order API's intake journal: an accepted order is on disk before the 202, then in SQS.

``POST /orders`` used to answer only once SQS took the message: under load (eight customers at
once, moto serving one request at a time) that send was most of the answer's time. Now the
order, once validated, is committed to a local SQLite file (``synchronous=FULL``, WAL, owner-only
like every database of the project: :func:`crown_edge.store.files.private_database`) and the
POST answers 202 (orders arriving while a commit is on disk share the next transaction: one
fsync for all of them); a sender task, on a connection of its own, moves the rows to SQS with
``SendMessageBatch`` (at most ten per call, per queue) and deletes a row only after SQS
accepted its entry. A row whose entry SQS refused, or a call that failed, stays and is sent
again after a back-off; rows a previous process left (it stopped, or died, before sending them)
are sent on start-up.

Exactly once? The FIFO deduplication id is the job id (as a direct send's), so a resend within
SQS's five-minute window is dropped by SQS; a resend after that (a journal restored from a
backup, a process that died between SQS's answer and the row's delete and stayed down for
minutes) reaches the dispatcher, whose start is idempotent per job id (``REJECT_DUPLICATE``):
a second message never starts a second job.

Several cloud processes (``crown-edge cloud --instance NAME``) each journal into their own file
(``intake-NAME.db``) and hold it by a :class:`~crown_edge.cloud.lease.FileLease`: a second process
given the same file waits a few seconds, then refuses to start (LeaseBusy) rather than send the
same rows twice. A process killed between its 202 and SQS leaves rows nobody sends until it
comes back, so every journal also **adopts** its siblings (``siblings``, a glob in the same
directory): every :data:`ADOPT_EVERY_S` it takes the lease of each sibling journal whose owner is
gone (the kernel freed the lock), sends that journal's rows on, and lets go. No accepted order
waits for a dead process's restart.

The timeline keeps its two stages: ``accepted`` is when the row was committed (the message
attribute ``accepted_at``), ``sqs_sent`` SQS's own ``SentTimestamp``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sqlite3
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from crown_edge.cloud.lease import FileLease
from crown_edge.errors import SyncError
from crown_edge.models import IntakeMessage
from crown_edge.store.files import private_database
from crown_edge.sync import queues
from crown_edge.sync.sqs import ACCEPTED_AT, OrderQueue, error_code

log = logging.getLogger(__name__)

#: SQS takes at most ten entries per SendMessageBatch.
BATCH = 10
#: Back-off after a failed send: first wait, doubling up to the last.
RETRY_FIRST_S = 0.5
RETRY_MAX_S = 30.0
#: How long closing waits for the rows still unsent (the next start sends what is left).
CLOSE_FLUSH_S = 5.0
#: How often a journal looks for siblings left by a process that is gone (see the docstring).
ADOPT_EVERY_S = 5.0
#: How long a start waits for its journal's lease (a survivor may be sending it on).
LEASE_WAIT_S = 30.0
#: How long one adoption waits for SQS to take the orphaned rows (the rest: next round).
ADOPT_FLUSH_S = 10.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS intake (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id TEXT NOT NULL,
    queue TEXT NOT NULL,
    body TEXT NOT NULL,
    accepted_at REAL NOT NULL
)
"""


@dataclass(frozen=True, slots=True)
class JournalRow:
    """One accepted order waiting for SQS."""

    id: int
    job_id: str
    queue: str
    body: str
    accepted_at: float


class IntakeJournal:
    """Accepted orders, durable before the answer, sent on to SQS in batches.

    Implements the Order API's ``OrderSender``: :meth:`send_order` commits the row and returns
    ``journal:{row id}``. Use as an async context manager: the sender runs while it is open.
    ``clock`` gives ``accepted_at`` (epoch seconds). ``owner`` names this process in the lease
    file; ``siblings`` (a glob beside ``path``, e.g. ``intake*.db``) are the journals it adopts
    when their process is gone (None: none); ``lease`` is one already held (an adoption's).
    """

    def __init__(
        self,
        path: Path,
        orders: OrderQueue,
        *,
        clock: Callable[[], float] = time.time,
        retry_first_s: float = RETRY_FIRST_S,
        retry_max_s: float = RETRY_MAX_S,
        close_flush_s: float = CLOSE_FLUSH_S,
        owner: str = "cloud",
        siblings: str | None = None,
        adopt_every_s: float = ADOPT_EVERY_S,
        lease: FileLease | None = None,
        lease_wait_s: float = LEASE_WAIT_S,
    ) -> None:
        self.path = Path(path)
        self.owner = owner
        self.siblings = siblings
        self.adopt_every_s = adopt_every_s
        self.lease_wait_s = lease_wait_s
        self._lease = lease if lease is not None else FileLease(self.path, owner)
        #: Orders sent on from journals of processes that were gone, since start.
        self.adopted = 0
        self.orders = orders
        self.clock = clock
        self.retry_first_s = retry_first_s
        self.retry_max_s = retry_max_s
        self.close_flush_s = close_flush_s
        #: Rows SQS accepted (and the journal deleted) since start.
        self.sent = 0
        #: Failed SendMessageBatch calls and entries SQS refused, since start.
        self.failures = 0
        #: Transactions that committed orders, since start (several orders each under load).
        self.commits = 0
        #: How long the latest commits took (ms, from the call to the row on disk).
        self.commit_ms: deque[float] = deque(maxlen=10_000)
        # Two connections, each owned by one thread, so the loop never blocks: the Order API's
        # commits (synchronous=FULL: on disk before the 202) and the sender's reads and deletes
        # (synchronous=NORMAL: a delete lost in a crash only means a harmless resend), which so
        # never hold an order's commit behind their own fsync.
        self._db_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="intake-db")
        self._send_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="intake-send")
        self._db: sqlite3.Connection | None = None
        self._send_db: sqlite3.Connection | None = None
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._sender: asyncio.Task[None] | None = None
        self._adopter: asyncio.Task[None] | None = None
        self._queued: list[tuple[tuple[str, str, str, float], asyncio.Future[int]]] = []
        self._committer: asyncio.Task[None] | None = None

    # --- the database (in its own thread) ----------------------------------------------------

    async def _in_db(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._db_thread, fn, *args)

    async def _in_send_db(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._send_thread, fn, *args)

    def _connect(self, synchronous: str) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        db.execute("PRAGMA busy_timeout=10000")
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(f"PRAGMA synchronous={synchronous}")
        return db

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        private_database(self.path)  # owner-only before SQLite writes a byte
        db = self._connect("FULL")
        db.execute(_SCHEMA)
        private_database(self.path)  # the WAL and shared-memory files now exist
        self._db = db

    def _open_sender(self) -> None:
        self._send_db = self._connect("NORMAL")

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise SyncError("the intake journal is not open")
        return self._db

    def _sender_conn(self) -> sqlite3.Connection:
        if self._send_db is None:
            raise SyncError("the intake journal is not open")
        return self._send_db

    def _insert_all(self, rows: list[tuple[str, str, str, float]]) -> list[int]:
        db = self._conn()
        db.execute("BEGIN IMMEDIATE")
        try:
            ids = [
                int(
                    db.execute(
                        "INSERT INTO intake (job_id, queue, body, accepted_at) VALUES (?, ?, ?, ?)",
                        row,
                    ).lastrowid
                    or 0
                )
                for row in rows
            ]
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return ids

    def _oldest(self, limit: int) -> list[JournalRow]:
        rows = self._sender_conn().execute(
            "SELECT id, job_id, queue, body, accepted_at FROM intake ORDER BY id LIMIT ?",
            (limit,),
        )
        return [JournalRow(*row) for row in rows]

    def _delete(self, ids: list[int]) -> None:
        db = self._sender_conn()
        db.execute("BEGIN IMMEDIATE")
        db.executemany("DELETE FROM intake WHERE id = ?", [(i,) for i in ids])
        db.execute("COMMIT")

    def _close_db(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def _close_sender(self) -> None:
        if self._send_db is not None:
            self._send_db.close()
            self._send_db = None

    async def pending(self) -> list[JournalRow]:
        """The rows not yet accepted by SQS, oldest first."""
        rows: list[JournalRow] = await self._in_send_db(self._oldest, -1)
        return rows

    # --- the Order API's side ----------------------------------------------------------------

    async def send_order(self, message: IntakeMessage) -> str:
        """Commit the order (fsync'd) and wake the sender; returns ``journal:{row id}``.

        Orders that arrive while a commit is on disk go together in the next transaction (one
        fsync for all of them): under load the answer waits for at most two commits.
        """
        queue = queues.PRIORITY_QUEUE if message.rush else queues.ENGRAVING_QUEUE
        body = json.dumps(message.to_dict())
        began = time.perf_counter()
        done: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._queued.append(((message.job_id, queue, body, self.clock()), done))
        if self._committer is None or self._committer.done():
            self._committer = asyncio.create_task(self._commit_queued(), name="intake-commit")
        row = await asyncio.shield(done)
        self.commit_ms.append((time.perf_counter() - began) * 1000)
        self._idle.clear()
        self._wake.set()
        return f"journal:{row}"

    async def _commit_queued(self) -> None:
        """Commit what is queued, one transaction per round, until nothing is left."""
        while self._queued:
            batch, self._queued = self._queued, []
            try:
                ids: list[int] = await self._in_db(self._insert_all, [row for row, _ in batch])
            except sqlite3.Error as exc:
                for _, done in batch:
                    if not done.done():
                        done.set_exception(SyncError(f"intake journal: {exc}", operation="journal"))
                continue
            self.commits += 1
            for (_, done), row_id in zip(batch, ids, strict=True):
                if not done.done():
                    done.set_result(row_id)

    # --- the sender --------------------------------------------------------------------------

    async def flush(self) -> int:
        """One pass: send every row now in the journal, ten per call per queue.

        Returns how many rows SQS accepted; rows it refused (or a failed call's) stay.
        """
        done = 0
        while True:
            rows: list[JournalRow] = await self._in_send_db(self._oldest, BATCH * 4)
            if not rows:
                return done
            by_queue: dict[str, list[JournalRow]] = {}
            for row in rows:
                by_queue.setdefault(row.queue, []).append(row)
            accepted_now = 0
            for queue, batch in by_queue.items():
                for start in range(0, len(batch), BATCH):
                    ids = await self._send_batch(queue, batch[start : start + BATCH])
                    if ids:
                        await self._in_send_db(self._delete, ids)
                        accepted_now += len(ids)
            done += accepted_now
            self.sent += accepted_now
            if accepted_now < len(rows):
                return done  # some stayed: the caller backs off before the next pass

    async def _send_batch(self, queue: str, rows: list[JournalRow]) -> list[int]:
        """SendMessageBatch of ``rows`` to ``queue``; the ids of the rows SQS accepted."""
        entries = [
            {
                "Id": str(row.id),
                "MessageBody": row.body,
                "MessageGroupId": row.job_id,
                "MessageDeduplicationId": row.job_id,
                "MessageAttributes": {
                    ACCEPTED_AT: {"DataType": "Number", "StringValue": f"{row.accepted_at:.6f}"}
                },
            }
            for row in rows
        ]
        try:
            url = self.orders.url(queue)
            result = await asyncio.to_thread(
                self.orders.client.send_message_batch, QueueUrl=url, Entries=entries
            )
        except Exception as exc:
            self.failures += 1
            log.warning(
                "intake: %d order(s) not sent to %s yet (%s): %s",
                len(rows),
                queue,
                error_code(exc) or type(exc).__name__,
                exc,
            )
            return []
        for failed in result.get("Failed", []):
            self.failures += 1
            log.warning(
                "intake: SQS refused journal row %s: %s %s",
                failed.get("Id"),
                failed.get("Code"),
                failed.get("Message"),
            )
        return [int(ok["Id"]) for ok in result.get("Successful", [])]

    async def _run(self) -> None:
        delay = self.retry_first_s
        while True:
            self._wake.clear()
            try:
                await self.flush()
                left = await self._in_send_db(self._oldest, 1)
            except (sqlite3.Error, SyncError) as exc:
                log.warning("intake journal: %s", exc)
                left = [None]
            if not left:
                delay = self.retry_first_s
                if not self._wake.is_set():  # no order committed meanwhile
                    self._idle.set()
                await self._wake.wait()
                continue
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._wake.wait()
            delay = min(delay * 2, self.retry_max_s)

    async def drained(self) -> None:
        """Wait until every row committed so far was accepted by SQS."""
        await self._idle.wait()

    # --- adoption ----------------------------------------------------------------------------

    def orphans(self) -> list[Path]:
        """Sibling journals (``siblings``) other than this one, by name."""
        if self.siblings is None:
            return []
        own = self.path.resolve()
        return sorted(
            p for p in self.path.parent.glob(self.siblings) if p.is_file() and p.resolve() != own
        )

    async def adopt_orphans(self) -> int:
        """Send on the rows of every sibling journal whose process is gone; returns how many
        SQS accepted. A journal whose lease is held (its process lives) is left alone."""
        sent = 0
        for path in self.orphans():
            lease = FileLease(path, f"{self.owner} (adopting)")
            if not await asyncio.to_thread(lease.try_acquire):
                continue
            try:
                left = await asyncio.to_thread(_rows_in, path)
                if not left:
                    continue
                log.warning(
                    "intake journal %s: its process is gone; sending its %d order(s) on",
                    path.name,
                    left,
                )
                orphan = IntakeJournal(
                    path,
                    self.orders,
                    owner=lease.owner,
                    lease=lease,
                    retry_first_s=self.retry_first_s,
                    close_flush_s=0.0,
                )
                async with orphan:  # its sender sends the rows; wait for it, within reason
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(ADOPT_FLUSH_S):
                            await orphan.drained()
                sent += orphan.sent
            except (sqlite3.Error, SyncError, OSError) as exc:
                log.warning("intake journal %s: cannot adopt it now: %s", path.name, exc)
            finally:
                lease.release()
        self.adopted += sent
        return sent

    async def _adopt_forever(self) -> None:
        while True:
            await self.adopt_orphans()
            await asyncio.sleep(self.adopt_every_s)

    # --- lifetime ----------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        await self._lease.acquire(self.lease_wait_s)
        try:
            await self._start()
        except BaseException:
            await self._stop()
            raise
        return self

    async def _start(self) -> None:
        await self._in_db(self._open)
        await self._in_send_db(self._open_sender)
        left = await self.pending()
        if left:
            log.info("intake journal: %d order(s) left by a previous run, sending", len(left))
        self._sender = asyncio.create_task(self._run(), name="intake-sender")
        if self.siblings is not None:
            self._adopter = asyncio.create_task(self._adopt_forever(), name="intake-adopter")

    async def __aexit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._stop()

    async def _stop(self) -> None:
        sender, self._sender = self._sender, None
        adopter, self._adopter = self._adopter, None
        try:
            if adopter is not None:
                adopter.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await adopter
            if self._committer is not None:
                with contextlib.suppress(Exception):
                    await self._committer
            if sender is not None:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.close_flush_s):
                        await self._idle.wait()
                sender.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sender
            left = await self.pending() if self._send_db is not None else []
            if left:
                log.warning(
                    "intake journal %s: %d order(s) kept for the next start (or an adopter)",
                    self.path.name,
                    len(left),
                )
        finally:
            await self._in_send_db(self._close_sender)
            await self._in_db(self._close_db)
            self._send_thread.shutdown(wait=True)
            self._db_thread.shutdown(wait=True)
            self._lease.release()


def _rows_in(path: Path) -> int:
    """How many rows a journal holds (0 for a file without the table yet)."""
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute("PRAGMA busy_timeout=10000")
        return int(db.execute("SELECT count(*) FROM intake").fetchone()[0])
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return 0
        raise
    finally:
        db.close()


__all__ = ["BATCH", "IntakeJournal", "JournalRow"]
