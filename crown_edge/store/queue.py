"""The durable queue's reads and writes: queue views, claims, positions, machine rows.

Decisions are not made here: a claim reads a :class:`QueueView` and hands it to the caller's
``pick`` (the scheduler's pure planner) inside the same transaction, then applies the choice, so
a claim is atomic across processes: the job must still be ``queued`` and the machine must hold no
``engraving`` job (a unique partial index backs that).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from crown_edge.errors import IllegalTransition
from crown_edge.lifecycle import JobEvent
from crown_edge.models import JobStatus, MachineState
from crown_edge.store import sql
from crown_edge.store.db import Database
from crown_edge.store.jobs import JOB_COLUMNS, Job, MachineRow, job_from_row


class QueuedRow(NamedTuple):
    """A queued job as the planner needs it."""

    job_id: str
    estimate_s: float
    eligible_mask: int


@dataclass(frozen=True, slots=True)
class QueueView:
    """What a machine's pick looks at, read in one go."""

    machines: tuple[MachineRow, ...]
    """Every recorded machine (``job_id``/``progress``: the job it engraves)."""
    busy_s: dict[str, float]
    """Estimated seconds of work left on each busy machine."""
    head: tuple[QueuedRow, ...]
    """The first queued jobs in queue order."""
    first_eligible: Callable[[int], str | None]
    """The first queued job the machine of that ordinal can take, past the head too (valid only
    during the pick)."""


#: ``pick(view) -> job_id``: the scheduler's decision, run inside the claim's transaction.
Pick = Callable[[QueueView], str | None]


def _engraving(conn: sqlite3.Connection) -> list[tuple[str, str, float | None, float]]:
    """(machine_id, job_id, progress, estimate_s) of every engraving job."""
    return conn.execute(
        "SELECT machine_id, job_id, progress, estimate_s FROM jobs WHERE status = 'engraving'"
    ).fetchall()


def machine_rows(
    conn: sqlite3.Connection,
    engraving: list[tuple[str, str, float | None, float]] | None = None,
) -> tuple[MachineRow, ...]:
    """Every machine row, by ordinal, with its engraving job."""
    rows = _engraving(conn) if engraving is None else engraving
    current = {mid: (job_id, progress) for mid, job_id, progress, _ in rows}
    out = []
    for mid, ordinal, paused, avail, execution, alarm, hb in conn.execute(
        "SELECT machine_id, ordinal, paused, availability, execution, alarm, heartbeat_at "
        "FROM machines ORDER BY ordinal"
    ):
        job_id, progress = current.get(mid, (None, None))
        out.append(
            MachineRow(mid, ordinal, bool(paused), avail, execution, alarm, hb, job_id, progress)
        )
    return tuple(out)


def view(conn: sqlite3.Connection, head: int) -> QueueView:
    """The queue view with the first ``head`` queued jobs."""
    engraving = _engraving(conn)
    busy = {
        mid: float(estimate) * (1.0 - float(progress or 0.0))
        for mid, _, progress, estimate in engraving
    }
    rows = conn.execute(
        "SELECT job_id, estimate_s, eligible_mask FROM jobs WHERE status = 'queued' "
        f"ORDER BY {sql.QUEUE_ORDER} LIMIT ?",
        (head,),
    ).fetchall()

    def first_eligible(ordinal: int) -> str | None:
        row = conn.execute(
            "SELECT job_id FROM jobs WHERE status = 'queued' AND (eligible_mask >> ?) & 1 "
            f"ORDER BY {sql.QUEUE_ORDER} LIMIT 1",
            (ordinal,),
        ).fetchone()
        return str(row[0]) if row else None

    return QueueView(
        machines=machine_rows(conn, engraving),
        busy_s=busy,
        head=tuple(QueuedRow._make(r) for r in rows),
        first_eligible=first_eligible,
    )


def claim(conn: sqlite3.Connection, job_id: str, machine_id: str, now: float) -> Job | None:
    """Claim a queued job for an idle machine (a new ``runs`` row); None when either is taken."""
    busy = conn.execute(
        "SELECT 1 FROM jobs WHERE status = 'engraving' AND machine_id = ?", (machine_id,)
    ).fetchone()
    if busy is not None:
        return None
    job = sql.get_job(conn, job_id)
    if job.status is not JobStatus.QUEUED:
        return None
    job = sql.transition(
        conn,
        job_id,
        JobEvent.START,
        now,
        expect=[JobStatus.QUEUED],
        # the resume mark starts where this run starts: lines after it are not sent yet
        sets={"machine_id": machine_id, "progress": 0.0, "sent_line": job.start_line},
    )
    conn.execute(
        "INSERT INTO runs (job_id, attempt, machine_id, started_at, start_line, sent_line) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        (job_id, job.attempt, machine_id, now, job.start_line, job.start_line),
    )
    return job


def position(conn: sqlite3.Connection, job_id: str) -> int | None:
    """Queue position of a queued job (1 = next), or None."""
    job = sql.get_job(conn, job_id)
    if job.status is not JobStatus.QUEUED:
        return None
    row = conn.execute(
        "SELECT top, rush, due_at, arrival FROM jobs WHERE job_id = ?", (job_id,)
    ).fetchone()
    top, rush, due_at, arrival = row
    ahead = conn.execute(
        "SELECT COUNT(*) FROM jobs WHERE status = 'queued' AND ("
        "top > ? OR (top = ? AND rush > ?) OR (top = ? AND rush = ? AND due_at < ?) "
        "OR (top = ? AND rush = ? AND due_at = ? AND arrival < ?))",
        (top, top, rush, top, rush, due_at, top, rush, due_at, arrival),
    ).fetchone()[0]
    return int(ahead) + 1


def move_to_top(conn: sqlite3.Connection, job_id: str, now: float) -> Job:
    """Put a queued job first in line (latest moved goes first)."""
    job = sql.get_job(conn, job_id)
    if job.status is not JobStatus.QUEUED:
        raise IllegalTransition(job_id, str(job.status), "move_to_top")
    top = conn.execute("SELECT COALESCE(MAX(top), 0) + 1 FROM jobs").fetchone()[0]
    conn.execute("UPDATE jobs SET top = ?, updated_at = ? WHERE job_id = ?", (top, now, job_id))
    return sql.get_job(conn, job_id)


class QueueStore(Database):
    """The queue's operations (mixed into :class:`~crown_edge.store.Store`)."""

    async def sync_machines(self, machine_ids: Sequence[str]) -> None:
        """Record the configured machines and their ordinals (bit positions in eligibility)."""

        def fn(conn: sqlite3.Connection) -> None:
            for ordinal, mid in enumerate(machine_ids):
                conn.execute(
                    "INSERT INTO machines (machine_id, ordinal) VALUES (?, ?) "
                    "ON CONFLICT (machine_id) DO UPDATE SET ordinal = excluded.ordinal",
                    (mid, ordinal),
                )

        await self._write(fn)

    async def pick(self, pick: Pick, head: int) -> str | None:
        """What ``pick`` chooses from the queue now (read only)."""
        return await self._read(lambda c: pick(view(c, head)))

    async def claim_next(self, machine_id: str, now: float, pick: Pick, head: int) -> Job | None:
        """Pick with ``pick`` and claim the choice for ``machine_id``, in one transaction."""

        def fn(conn: sqlite3.Connection) -> Job | None:
            job_id = pick(view(conn, head))
            return None if job_id is None else claim(conn, job_id, machine_id, now)

        return await self._write(fn)

    async def claim(self, job_id: str, machine_id: str, now: float) -> Job | None:
        """Claim a specific queued job for a machine; None if someone else got it first."""
        return await self._write(lambda c: claim(c, job_id, machine_id, now))

    async def queued(self) -> tuple[list[Job], QueueView]:
        """Every queued job in queue order, and the view the planner plans them on."""

        def fn(conn: sqlite3.Connection) -> tuple[list[Job], QueueView]:
            rows = conn.execute(
                f"SELECT {JOB_COLUMNS} FROM jobs WHERE status = 'queued' ORDER BY {sql.QUEUE_ORDER}"
            )
            return [job_from_row(r) for r in rows], view(conn, 0)

        return await self._read(fn)

    async def position(self, job_id: str) -> int | None:
        """Queue position of a queued job (1 = next), or None when it is not queued."""
        return await self._read(lambda c: position(c, job_id))

    async def move_to_top(self, job_id: str, now: float) -> Job:
        """Put a queued job first in line (latest moved goes first)."""
        return await self._write(lambda c: move_to_top(c, job_id, now))

    async def set_paused(self, machine_id: str, paused: bool) -> None:
        """Pause (no new jobs) or resume a machine."""
        await self._write(
            lambda c: c.execute(
                "UPDATE machines SET paused = ? WHERE machine_id = ?", (int(paused), machine_id)
            )
        )

    async def set_machine_state(self, state: MachineState, now: float) -> None:
        """Record a machine's live state and queue it for MQTT (retained), in one transaction."""
        body = json.dumps({**state.to_dict(), "at": now}, sort_keys=True)

        def fn(conn: sqlite3.Connection) -> None:
            conn.execute(
                "UPDATE machines SET availability = ?, execution = ?, alarm = ?, heartbeat_at = ? "
                "WHERE machine_id = ?",
                (
                    str(state.availability),
                    str(state.execution),
                    state.alarm,
                    state.heartbeat_at,
                    state.machine_id,
                ),
            )
            sql.put_outbox(conn, f"machines/{state.machine_id}/state", body, now, retain=True)

        await self._write(fn)

    async def machine_rows(self) -> list[MachineRow]:
        """Stored machine rows (state, pause, current job), by ordinal."""
        return list(await self._read(lambda c: machine_rows(c)))
