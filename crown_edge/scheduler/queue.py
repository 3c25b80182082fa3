"""The durable priority queue: the planner's decisions applied through the store.

Decisions come from :mod:`crown_edge.scheduler.planner` (pure); the store
(:mod:`crown_edge.store.queue`) reads the queue and runs the decision inside the claim's own
transaction, so a claim is atomic across processes: the job must still be ``queued`` and the
machine must hold no ``engraving`` job (a unique partial index backs that).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from crown_edge.catalog import Catalog
from crown_edge.config import MachineConfig
from crown_edge.errors import UnknownItem, UnknownMachine
from crown_edge.lifecycle import JobEvent
from crown_edge.models import JobStatus, MachineState
from crown_edge.scheduler.planner import (
    MachineSlot,
    Planned,
    choose_for,
    eligible_mask,
    plan,
)
from crown_edge.store import Job, MachineRow, QueueView, Store

log = logging.getLogger(__name__)

HEAD = 24  # queued jobs the planner looks at when a machine asks for work


def slots(view: QueueView, configs: dict[str, MachineConfig], now: float) -> list[MachineSlot]:
    """The planner's machines: when each is free, how fast, whether it takes work."""
    out = []
    for row in view.machines:
        cfg = configs.get(row.machine_id)
        speed = cfg.speed_factor if cfg else 1.0
        out.append(
            MachineSlot(
                machine_id=row.machine_id,
                ordinal=row.ordinal,
                free_at=now + view.busy_s.get(row.machine_id, 0.0) / speed,
                speed_factor=speed,
                usable=cfg is not None and not row.paused and row.availability == "AVAILABLE",
            )
        )
    return out


def choose(
    machine_id: str, view: QueueView, configs: dict[str, MachineConfig], now: float
) -> str | None:
    """The job ``machine_id`` takes now from ``view``, or None (idle, busy, nothing fits)."""
    machines = slots(view, configs, now)
    me = next((s for s in machines if s.machine_id == machine_id), None)
    if me is None or not me.usable or me.free_at > now:
        return None
    head = view.head
    choice = choose_for(machine_id, head, machines)
    if choice is None and not any((j.eligible_mask >> me.ordinal) & 1 for j in head):
        choice = view.first_eligible(me.ordinal)
    return choice


def queue_columns(
    *, estimate_s: float | None = None, attempt: int | None = None, start_line: int = 0
) -> dict[str, Any]:
    """The columns a job entering the queue gets: a fresh run's fields (eligibility aside)."""
    sets: dict[str, Any] = {
        "machine_id": None,
        "progress": None,
        "start_line": start_line,
        "reason": None,
    }
    if estimate_s is not None:
        sets["estimate_s"] = estimate_s
    if attempt is not None:
        sets["attempt"] = attempt
    return sets


def _warn_if_stuck(job: Job) -> None:
    if job.status is JobStatus.QUEUED and job.eligible_mask == 0:
        log.warning("job %s: no configured machine can engrave item %s", job.job_id, job.item_id)


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

    def eligible(self, item_id: str) -> int:
        """Eligibility mask of an item, 0 for an item the catalogue does not know."""
        try:
            return self.mask_for(item_id)
        except UnknownItem:
            return 0

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
        fresh_unit: bool = False,
    ) -> Job:
        """Put a job in the queue (one transaction: state, eligibility, event, outbox).

        ``fresh_unit``: scrap the held unit and reserve a new one in the same transaction.
        """
        sets = queue_columns(estimate_s=estimate_s, attempt=attempt, start_line=start_line)
        job = await self.store.requeue(
            job_id,
            event,
            now,
            sets=sets,
            data=data,
            fresh_unit=fresh_unit,
            eligible=self.eligible,
        )
        _warn_if_stuck(job)
        return job

    async def admit(
        self, job_id: str, now: float, *, estimate_s: float | None = None, attempt: int = 1
    ) -> Job:
        """Validate, reserve and queue a walk-in job in one transaction (it has no workflow to
        queue it later); NoInventory (the job ``blocked``) when no unit is left."""
        job = await self.store.validate_and_reserve(
            job_id,
            now,
            queue=queue_columns(estimate_s=estimate_s, attempt=attempt),
            eligible=self.eligible,
        )
        _warn_if_stuck(job)
        return job

    async def pick_next(self, machine_id: str, now: float) -> str | None:
        """Which job ``machine_id`` would take now (read only)."""
        self._config(machine_id)
        return await self.store.pick(lambda v: choose(machine_id, v, self.configs, now), HEAD)

    async def claim_next(self, machine_id: str, now: float) -> Job | None:
        """Pick and claim the next job for ``machine_id`` atomically; None when nothing fits."""
        self._config(machine_id)
        return await self.store.claim_next(
            machine_id, now, lambda v: choose(machine_id, v, self.configs, now), HEAD
        )

    async def claim(self, job_id: str, machine_id: str, now: float) -> Job | None:
        """Claim a specific queued job for a machine; None if someone else got it first."""
        self._config(machine_id)
        return await self.store.claim(job_id, machine_id, now)

    async def snapshot(self, now: float, limit: int | None = None) -> list[tuple[Job, Planned]]:
        """Queued jobs in order with their position (1 = next), planned machine and ETA."""
        jobs, view = await self.store.queued()
        planned = plan(jobs, slots(view, self.configs, now))
        pairs = list(zip(jobs, planned, strict=True))
        return pairs[:limit] if limit is not None else pairs

    async def position(self, job_id: str) -> int | None:
        """Queue position of a queued job (1 = next), or None when it is not queued."""
        return await self.store.position(job_id)

    async def move_to_top(self, job_id: str, now: float) -> Job:
        """Put a queued job first in line (latest moved goes first)."""
        return await self.store.move_to_top(job_id, now)

    async def set_paused(self, machine_id: str, paused: bool) -> None:
        """Pause (no new jobs) or resume a machine."""
        self._config(machine_id)
        await self.store.set_paused(machine_id, paused)

    async def set_machine_state(self, state: MachineState, now: float) -> None:
        """Record a machine's live state and queue it for MQTT (retained)."""
        self._config(state.machine_id)
        await self.store.set_machine_state(state, now)

    async def machine_rows(self) -> list[dict[str, Any]]:
        """Stored machine rows (state, pause, current job) as the control socket shows them."""
        return [self._row(r) for r in await self.store.machine_rows()]

    def _row(self, r: MachineRow) -> dict[str, Any]:
        return {
            "machine_id": r.machine_id,
            "configured": r.machine_id in self.configs,
            "paused": r.paused,
            "availability": r.availability,
            "execution": r.execution,
            "alarm": r.alarm,
            "heartbeat_at": r.heartbeat_at,
            "job_id": r.job_id,
            "progress": r.progress,
        }
