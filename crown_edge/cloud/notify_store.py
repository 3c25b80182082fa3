"""The notifier's durable record (SQLite): customer contacts, and every notice with its state.

The Order API keeps no database of its own, and the workflow input carries only the seed's
order fields, so a customer's email (and the order's signed link) is written here at the door,
before the order is queued. Each notice is a row keyed by its status event's id: inserting the
same event twice (an activity retried, a worker restarted) is a no-op, and a row leaves
``pending`` only as ``sent`` or ``failed``, so every event is told at most once, and after a
restart of the cloud process the pending ones are picked up again.

Calls are synchronous and short; the notifier runs them in a worker thread. One connection,
guarded by a lock; WAL with ``synchronous=FULL`` (a notice recorded is a notice kept).

Several cloud processes on one host share the file (each records the notices of the activities
it ran, and the contacts its Order API took; one of them sends): a writer busy in another process
is waited for (:data:`BUSY_TIMEOUT`) rather than failing the write, and each write is one
statement that is safe on its own (``INSERT OR IGNORE`` by key; a state change only from
``pending``), except the two that read before they write, which run as one ``BEGIN IMMEDIATE``
transaction (:meth:`NoticeStore.enqueue` with an offer to wait for, :meth:`NoticeStore.offer`).
Rows are fetched while the lock is held, so no half-read statement keeps a read snapshot open.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crown_edge.cloud.notify_words import Alternative, Contact, Notice
from crown_edge.store.files import private_database

#: How long a statement waits for another process's write to finish (SQLite's busy timeout).
#: Writes here are single rows, so a wait this long means a stuck process, not a busy one.
BUSY_TIMEOUT = 10.0

SCHEMA = """
CREATE TABLE IF NOT EXISTS contacts (
    job_id TEXT PRIMARY KEY,
    email TEXT NOT NULL,
    status_url TEXT NOT NULL,
    notify_engraving INTEGER NOT NULL DEFAULT 0,
    text TEXT NOT NULL DEFAULT '[]',
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS notices (
    event_id TEXT PRIMARY KEY,
    job_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    reason TEXT,
    design_url TEXT,
    state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'sent', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    next_at REAL NOT NULL,
    last_error TEXT,
    created REAL NOT NULL,
    done_at REAL
);
CREATE INDEX IF NOT EXISTS notices_due ON notices (state, next_at);
CREATE TABLE IF NOT EXISTS offers (
    job_id TEXT PRIMARY KEY,
    alternatives TEXT NOT NULL,
    at REAL NOT NULL
);
"""


@dataclass(frozen=True, slots=True)
class Pending:
    """A notice waiting to be sent, with its contact and the attempts made so far."""

    notice: Notice
    contact: Contact
    attempts: int


class NoticeStore:
    """Contacts and notices in one SQLite file (module docstring)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        private_database(path)  # customer emails: owner-only before SQLite writes a byte
        self._db = sqlite3.connect(
            path, timeout=BUSY_TIMEOUT, check_same_thread=False, isolation_level=None
        )
        try:
            _prepare(self._db)
        except BaseException:
            self._db.close()
            raise
        private_database(path)  # the WAL and shared-memory files now exist

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()

    def _run(self, sql: str, args: tuple[Any, ...] = ()) -> sqlite3.Cursor:
        """One statement on its own (autocommit); for a write, its cursor's rowcount."""
        with self._lock:
            return self._db.execute(sql, args)

    def _rows(self, sql: str, args: tuple[Any, ...] = ()) -> list[Any]:
        """All rows of a query, read to the end under the lock."""
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction taken at its start (``BEGIN IMMEDIATE``): a read inside it sees
        what no other process can change before the write that depends on it. (A deferred one
        could fail at its first write with SQLITE_BUSY, which the busy timeout does not wait
        out.) Committed on success, rolled back on any error."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def remember(self, contact: Contact, now: float) -> bool:
        """Keep the contact of a new order; an order already known keeps its first contact
        (as its workflow keeps the first order). Returns whether it was new."""
        cur = self._run(
            "INSERT OR IGNORE INTO contacts "
            "(job_id, email, status_url, notify_engraving, text, created) VALUES (?,?,?,?,?,?)",
            (
                contact.job_id,
                contact.email,
                contact.status_url,
                int(contact.notify_engraving),
                json.dumps(list(contact.text)),
                now,
            ),
        )
        return cur.rowcount == 1

    def contact(self, job_id: str) -> Contact | None:
        """The contact of ``job_id``; None when the order came without an email."""
        rows = self._rows(
            "SELECT job_id, email, status_url, notify_engraving, text FROM contacts "
            "WHERE job_id = ?",
            (job_id,),
        )
        return _contact(rows[0]) if rows else None

    def enqueue(
        self, notice: Notice, now: float, due: float | None = None, *, offer_wait: float = 0.0
    ) -> bool:
        """Record ``notice`` as pending (to be sent from ``due``, default ``now``) unless its
        event is already known; whether it is new.

        ``offer_wait`` > 0: the notice waits up to that long for the job's offer of
        alternatives, unless one came in the last ``offer_wait`` s. The look at the offers and
        the insert are one transaction: an offer recorded by another process in between would
        otherwise find no notice to make due (:meth:`offer`), and the notice would wait for
        nothing.
        """
        if offer_wait <= 0:
            cur = self._run(_ENQUEUE, _enqueue_args(notice, now, due))
            return cur.rowcount == 1
        with self._transaction() as db:
            offered = db.execute("SELECT at FROM offers WHERE job_id = ?", (notice.job_id,))
            row = offered.fetchone()
            if row is None or float(row[0]) < now - offer_wait:
                due = max(now if due is None else due, now + offer_wait)
            cur = db.execute(_ENQUEUE, _enqueue_args(notice, now, due))
            return cur.rowcount == 1

    def offer(self, job_id: str, alternatives: list[Alternative], now: float) -> None:
        """The items offered for ``job_id``'s out-of-stock item; a waiting "out of stock"
        notice of the job is due at once."""
        data = json.dumps([[a.name, a.material] for a in alternatives])
        with self._transaction() as db:
            db.execute(
                "INSERT INTO offers (job_id, alternatives, at) VALUES (?,?,?) "
                "ON CONFLICT (job_id) DO UPDATE SET alternatives = excluded.alternatives, "
                "at = excluded.at",
                (job_id, data, now),
            )
            db.execute(
                "UPDATE notices SET next_at = ? WHERE job_id = ? AND kind = 'blocked' "
                "AND state = 'pending' AND attempts = 0 AND next_at > ?",
                (now, job_id, now),
            )

    def offered(self, job_id: str) -> tuple[list[Alternative], float] | None:
        """The latest items offered for ``job_id`` and when; None before any offer."""
        rows = self._rows("SELECT alternatives, at FROM offers WHERE job_id = ?", (job_id,))
        if not rows:
            return None
        items = json.loads(rows[0][0])
        return [Alternative(str(name), str(material)) for name, material in items], rows[0][1]

    def due(self, now: float, limit: int = 20) -> list[Pending]:
        """Pending notices whose time has come, oldest first."""
        rows = self._rows(
            "SELECT n.event_id, n.job_id, n.kind, n.reason, n.design_url, n.attempts, "
            "c.job_id, c.email, c.status_url, c.notify_engraving, c.text "
            "FROM notices n JOIN contacts c USING (job_id) "
            "WHERE n.state = 'pending' AND n.next_at <= ? ORDER BY n.next_at, n.created LIMIT ?",
            (now, limit),
        )
        return [Pending(Notice(*r[0:5]), _contact(r[6:11]), int(r[5])) for r in rows]

    def next_due(self) -> float | None:
        """When the next pending notice is due (None: nothing pending)."""
        rows = self._rows("SELECT MIN(next_at) FROM notices WHERE state = 'pending'")
        return float(rows[0][0]) if rows and rows[0][0] is not None else None

    def sent(self, event_id: str, attempts: int, now: float) -> None:
        """The notice was taken by the mail service."""
        self._finish(event_id, "sent", attempts, None, now)

    def failed(self, event_id: str, attempts: int, error: str, now: float) -> None:
        """The notice was given up (after the last attempt, or refused for good)."""
        self._finish(event_id, "failed", attempts, error, now)

    def _finish(
        self, event_id: str, state: str, attempts: int, error: str | None, now: float
    ) -> None:
        self._run(
            "UPDATE notices SET state = ?, attempts = ?, last_error = ?, done_at = ? "
            "WHERE event_id = ? AND state = 'pending'",
            (state, attempts, error, now, event_id),
        )

    def retry(self, event_id: str, attempts: int, error: str, at: float) -> None:
        """Try the notice again at ``at``."""
        self._run(
            "UPDATE notices SET attempts = ?, last_error = ?, next_at = ? "
            "WHERE event_id = ? AND state = 'pending'",
            (attempts, error, at, event_id),
        )

    def pending(self) -> int:
        """How many notices are pending (from the index: the sent ones, which stay, cost nothing;
        every replica asks this every poll)."""
        rows = self._rows("SELECT COUNT(*) FROM notices WHERE state = 'pending'")
        return int(rows[0][0])

    def counts(self) -> dict[str, int]:
        """Notices by state (for tools and tests: it reads every row)."""
        rows = self._rows("SELECT state, COUNT(*) FROM notices GROUP BY state")
        return {str(state): int(n) for state, n in rows}

    def notices(self, job_id: str) -> list[dict[str, Any]]:
        """Every notice of ``job_id`` with its state (for tools and tests)."""
        names = ("event_id", "kind", "state", "attempts", "last_error")
        rows = self._rows(
            "SELECT event_id, kind, state, attempts, last_error FROM notices "
            "WHERE job_id = ? ORDER BY created",
            (job_id,),
        )
        return [dict(zip(names, row, strict=True)) for row in rows]


def _prepare(db: sqlite3.Connection) -> None:
    """WAL, then the schema, retried while another process holds the file's lock.

    Turning a new file to WAL takes an exclusive lock for which SQLite does not call the busy
    handler: replicas starting together on a store nobody created yet would get "database is
    locked" at once. Both steps are idempotent, so they are simply tried again, up to
    :data:`BUSY_TIMEOUT`.
    """
    deadline = time.monotonic() + BUSY_TIMEOUT
    while True:
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.executescript(SCHEMA)
            return
        except sqlite3.OperationalError as exc:
            busy = exc.sqlite_errorcode in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
            if not busy or time.monotonic() >= deadline:
                raise
        time.sleep(0.02)


_ENQUEUE = (
    "INSERT OR IGNORE INTO notices (event_id, job_id, kind, reason, design_url, next_at, created) "
    "VALUES (?,?,?,?,?,?,?)"
)


def _enqueue_args(notice: Notice, now: float, due: float | None) -> tuple[Any, ...]:
    return (
        notice.event_id,
        notice.job_id,
        notice.kind,
        notice.reason,
        notice.design_url,
        now if due is None else due,
        now,
    )


def _contact(row: tuple[Any, ...] | Any) -> Contact:
    job_id, email, status_url, engraving, text = row
    lines = json.loads(text)
    return Contact(
        job_id,
        email,
        status_url,
        bool(engraving),
        tuple(str(x) for x in lines) if isinstance(lines, list) else (),
    )
