"""The durable priority queue on top of the store.

Decisions come from :mod:`crown_edge.scheduler.planner`; this module feeds it rows and applies the
result in the same SQLite transaction, so a claim is atomic across processes: the job must still
be ``queued`` and the machine must hold no ``engraving`` job (a unique partial index backs that).
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Sequence
from typing import Any

from crown_edge.catalog import Catalog
from crown_edge.config import MachineConfig
from crown_edge.errors import IllegalTransition, UnknownItem, UnknownMachine
from crown_edge.lifecycle import JobEvent
from crown_edge.models import JobStatus, MachineState
from crown_edge.scheduler.planner import (
    MachineSlot,
    Planned,
    QueuedJob,
    choose_for,
    eligible_mask,
    plan,
)
from crown_edge.store import Job, Store
from crown_edge.store.jobs import JOB_COLUMNS, job_from_row
from crown_edge.store.store import QUEUE_ORDER, _get_job, _transition

log = logging.getLogger(__name__)

HEAD = 24  # queued jobs the planner looks at when a machine asks for work


def _slots(
    conn: sqlite3.Connection, configs: dict[str, MachineConfig], now: float
) -> list[MachineSlot]:
    busy = {
        row[0]: float(row[1]) * (1.0 - float(row[2] or 0.0))
        for row in conn.execute(
            "SELECT machine_id, estimate_s, progress FROM jobs WHERE status = 'engraving'"
        )
    }
    slots = []
    for mid, ordinal, paused, availability in conn.execute(
        "SELECT machine_id, ordinal, paused, availability FROM machines"
    ):
        cfg = configs.get(mid)
        speed = cfg.speed_factor if cfg else 1.0
        slots.append(
            MachineSlot(
                machine_id=mid,
                ordinal=ordinal,
                free_at=now + busy.get(mid, 0.0) / speed,
                speed_factor=speed,
                usable=cfg is not None and not paused and availability == "AVAILABLE",
            )
        )
    return slots


def _head(conn: sqlite3.Connection, limit: int) -> list[QueuedJob]:
    rows = conn.execute(
        "SELECT job_id, estimate_s, eligible_mask FROM jobs WHERE status = 'queued' "
        f"ORDER BY {QUEUE_ORDER} LIMIT ?",
        (limit,),
    ).fetchall()
    return [QueuedJob(r[0], float(r[1]), int(r[2])) for r in rows]


class Scheduler:
    """Queue operations for one workshop's machines."""

    def __init__(self, store: Store, machines: Sequence[MachineConfig], catalog: Catalog) -> None:
        self.store = store
        self.machines = tuple(machines)
        self.configs = {m.id: m for m in machines}
        self.catalog = catalog

    async def start(self) -> None:
        """Record the configured machines (ordinals) in the store."""
        await self.store.sync_machines([m.id for m in self.machines])

    def mask_for(self, item_id: str) -> int:
        """Eligibility mask of an item over the configured machines."""
        return eligible_mask(self.catalog.item(item_id), self.machines)

    def _config(self, machine_id: str) -> MachineConfig:
        try:
            return self.configs[machine_id]
        except KeyError:
            raise UnknownMachine(machine_id) from None

    async def enqueue(
        self,
        job_id: str,
        now: float,
        *,
        event: JobEvent = JobEvent.ENQUEUE,
        estimate_s: float | None = None,
        attempt: int | None = None,
        start_line: int = 0,
        data: dict[str, Any] | None = None,
    ) -> Job:
        """Put a job in the queue (one transaction: state, eligibility, event, outbox)."""
        job = await self.store.get_job(job_id)
        try:
            mask = self.mask_for(job.item_id)
        except UnknownItem:
            mask = 0
        if mask == 0:
            log.warning("job %s: no configured machine can engrave item %s", job_id, job.item_id)
        sets: dict[str, Any] = {
            "eligible_mask": mask,
            "machine_id": None,
            "progress": None,
            "start_line": start_line,
            "reason": None,
        }
        if estimate_s is not None:
            sets["estimate_s"] = estimate_s
        if attempt is not None:
            sets["attempt"] = attempt
        return await self.store.transition(job_id, event, now, sets=sets, data=data)

    async def pick_next(self, machine_id: str, now: float) -> str | None:
        """Which job ``machine_id`` would take now (read only)."""
        self._config(machine_id)
        return await self.store.run_sql(lambda c: self._choose(c, machine_id, now), write=False)

    def _choose(self, conn: sqlite3.Connection, machine_id: str, now: float) -> str | None:
        slots = _slots(conn, self.configs, now)
        me = next((s for s in slots if s.machine_id == machine_id), None)
        if me is None or not me.usable or me.free_at > now:
            return None
        head = _head(conn, HEAD)
        choice = choose_for(machine_id, head, slots)
        if choice is None and not any((j.eligible_mask >> me.ordinal) & 1 for j in head):
            row = conn.execute(
                "SELECT job_id FROM jobs WHERE status = 'queued' AND (eligible_mask >> ?) & 1 "
                f"ORDER BY {QUEUE_ORDER} LIMIT 1",
                (me.ordinal,),
            ).fetchone()
            choice = row[0] if row else None
        return choice

    async def claim_next(self, machine_id: str, now: float) -> Job | None:
        """Pick and claim the next job for ``machine_id`` atomically; None when nothing fits."""
        self._config(machine_id)

        def fn(conn: sqlite3.Connection) -> Job | None:
            job_id = self._choose(conn, machine_id, now)
            if job_id is None:
                return None
            return self._claim(conn, job_id, machine_id, now)

        return await self.store.run_sql(fn)

    async def claim(self, job_id: str, machine_id: str, now: float) -> Job | None:
        """Claim a specific queued job for a machine; None if someone else got it first."""
        self._config(machine_id)
        return await self.store.run_sql(lambda c: self._claim(c, job_id, machine_id, now))

    @staticmethod
    def _claim(conn: sqlite3.Connection, job_id: str, machine_id: str, now: float) -> Job | None:
        busy = conn.execute(
            "SELECT 1 FROM jobs WHERE status = 'engraving' AND machine_id = ?", (machine_id,)
        ).fetchone()
        if busy is not None:
            return None
        job = _get_job(conn, job_id)
        if job.status is not JobStatus.QUEUED:
            return None
        job = _transition(
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

    async def snapshot(self, now: float, limit: int | None = None) -> list[tuple[Job, Planned]]:
        """Queued jobs in order with their position (1 = next), planned machine and ETA."""

        def fn(conn: sqlite3.Connection) -> list[tuple[Job, Planned]]:
            sql = f"SELECT {JOB_COLUMNS} FROM jobs WHERE status = 'queued' ORDER BY {QUEUE_ORDER}"
            jobs = [job_from_row(r) for r in conn.execute(sql)]
            planned = plan(
                [QueuedJob(j.job_id, j.estimate_s, j.eligible_mask) for j in jobs],
                _slots(conn, self.configs, now),
            )
            pairs = list(zip(jobs, planned, strict=True))
            return pairs[:limit] if limit is not None else pairs

        return await self.store.run_sql(fn, write=False)

    async def position(self, job_id: str) -> int | None:
        """Queue position of a queued job (1 = next), or None when it is not queued."""

        def fn(conn: sqlite3.Connection) -> int | None:
            job = _get_job(conn, job_id)
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

        return await self.store.run_sql(fn, write=False)

    async def move_to_top(self, job_id: str, now: float) -> Job:
        """Put a queued job first in line (latest moved goes first)."""

        def fn(conn: sqlite3.Connection) -> Job:
            job = _get_job(conn, job_id)
            if job.status is not JobStatus.QUEUED:
                raise IllegalTransition(job_id, str(job.status), "move_to_top")
            top = conn.execute("SELECT COALESCE(MAX(top), 0) + 1 FROM jobs").fetchone()[0]
            conn.execute(
                "UPDATE jobs SET top = ?, updated_at = ? WHERE job_id = ?", (top, now, job_id)
            )
            return _get_job(conn, job_id)

        return await self.store.run_sql(fn)

    async def set_paused(self, machine_id: str, paused: bool) -> None:
        """Pause (no new jobs) or resume a machine."""
        self._config(machine_id)
        await self.store.run_sql(
            lambda c: c.execute(
                "UPDATE machines SET paused = ? WHERE machine_id = ?", (int(paused), machine_id)
            )
        )

    async def set_machine_state(self, state: MachineState, now: float) -> None:
        """Record a machine's live state and queue it for MQTT (retained)."""
        self._config(state.machine_id)
        payload = json.dumps({**state.to_dict(), "at": now}, sort_keys=True)

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
            conn.execute(
                "INSERT INTO outbox (topic, payload, qos, retain, created_at) "
                "VALUES (?, ?, 1, 1, ?)",
                (f"machines/{state.machine_id}/state", payload, now),
            )

        await self.store.run_sql(fn)

    async def machine_rows(self) -> list[dict[str, Any]]:
        """Stored machine rows (state, pause, current job)."""

        def fn(conn: sqlite3.Connection) -> list[dict[str, Any]]:
            current = {
                r[0]: (r[1], r[2])
                for r in conn.execute(
                    "SELECT machine_id, job_id, progress FROM jobs WHERE status = 'engraving'"
                )
            }
            out = []
            for mid, _ordinal, paused, avail, execution, alarm, hb in conn.execute(
                "SELECT machine_id, ordinal, paused, availability, execution, alarm, heartbeat_at "
                "FROM machines ORDER BY ordinal"
            ):
                job_id, progress = current.get(mid, (None, None))
                out.append(
                    {
                        "machine_id": mid,
                        "configured": mid in self.configs,
                        "paused": bool(paused),
                        "availability": avail,
                        "execution": execution,
                        "alarm": alarm,
                        "heartbeat_at": hb,
                        "job_id": job_id,
                        "progress": progress,
                    }
                )
            return out

        return await self.store.run_sql(fn, write=False)
