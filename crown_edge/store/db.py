"""The store's connection: SQLite in WAL mode with ``synchronous=FULL``, one writer thread.

Every write runs as one function inside aiosqlite's connection thread (a single hop per
transaction, ``BEGIN IMMEDIATE`` so concurrent writers in other processes serialise on the
database lock rather than failing on upgrade).

The database and its WAL/shared-memory files are owner-only (``0600``, see
:mod:`crown_edge.store.files`): they hold customer names and texts.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar, cast

import aiosqlite

from crown_edge.errors import StoreError
from crown_edge.store.files import private_database
from crown_edge.store.schema import MIGRATIONS

log = logging.getLogger(__name__)
T = TypeVar("T")


def _in_connection_thread(db: aiosqlite.Connection, fn: Callable[[], T]) -> Any:
    """Schedule ``fn`` on aiosqlite's connection thread and return its awaitable.

    aiosqlite has no public way to run a callable in its thread: every public method is one
    statement, one hop. A job transition is several statements that must run back to back
    inside one transaction, so this is the one place that uses its internal ``_execute`` (the
    same queue its public methods use). Pinned by the version range in ``pyproject.toml``.
    """
    return cast(Callable[..., Any], db._execute)(fn)


def _raw_connection(db: aiosqlite.Connection) -> sqlite3.Connection:
    """The sqlite3 connection behind ``db`` (only valid inside its thread)."""
    return db._conn


class Database:
    """The store's connection, its migrations and its two ways in: a read and a transaction.

    Use as an async context manager. The repository methods live on
    :class:`~crown_edge.store.Store`.
    """

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
            await self._read(_setup)
            private_database(self.path)  # the WAL and shared-memory files now exist
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        """Close the database connection."""
        if self._db is not None:
            db, self._db = self._db, None
            await db.close()

    async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(conn)`` in the connection's thread: one hop, however many statements."""
        db = self._db
        if db is None:
            raise StoreError("store is not open", path=str(self.path))
        try:
            return cast(T, await _in_connection_thread(db, lambda: fn(_raw_connection(db))))
        except sqlite3.Error as exc:
            raise StoreError(f"store error: {exc}", path=str(self.path)) from exc

    async def _write(self, fn: Callable[[sqlite3.Connection], T], *, notify: bool = True) -> T:
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

        result = await self._read(body)
        if notify and changed:
            for callback in self.on_commit:
                callback()
        return result

    async def healthy(self) -> bool:
        """True when the database answers a trivial query (used for the systemd watchdog)."""
        try:
            return await self._read(lambda c: c.execute("SELECT 1").fetchone() == (1,))
        except StoreError:
            return False


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
