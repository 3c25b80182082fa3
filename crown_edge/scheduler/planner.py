"""Pure scheduling decisions: which machines can do a job, and who should do it.

Order of the queue: moved-to-top first, then rush, then earliest due date, then arrival (stable).
Among the machines that can do a job, it goes to the one with the earliest estimated finish:
the machine's remaining work + the work already planned for it + this job's estimate (scaled by
the machine's speed factor). No clock and no database here: callers pass ``now`` and values.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from crown_edge.config import MachineConfig
from crown_edge.models import Item, Surface


def can_do(machine: MachineConfig, item: Item) -> bool:
    """True when ``machine`` can engrave ``item``: material, bed size, rotary for cylinders."""
    if machine.materials and item.material not in machine.materials:
        return False
    if item.surface is Surface.CYLINDER:
        if not machine.has_rotary:
            return False
        # on the rotary the bed's Y travel is not the limit; the item's length along X is
        return item.area.height_mm <= machine.bed_width_mm
    fits = item.area.width_mm <= machine.bed_width_mm and item.area.height_mm <= (
        machine.bed_height_mm
    )
    rotated = item.area.height_mm <= machine.bed_width_mm and item.area.width_mm <= (
        machine.bed_height_mm
    )
    return fits or rotated


def eligible_mask(item: Item, machines: Sequence[MachineConfig]) -> int:
    """Bit ``i`` set when ``machines[i]`` can do the item (ordinals as configured)."""
    mask = 0
    for ordinal, machine in enumerate(machines):
        if can_do(machine, item):
            mask |= 1 << ordinal
    return mask


class Queued(Protocol):
    """What the planner reads of a queued job (a :class:`QueuedJob`, a store row, a Job)."""

    @property
    def job_id(self) -> str:
        """The job."""
        ...

    @property
    def estimate_s(self) -> float:
        """Its estimated run time at speed factor 1."""
        ...

    @property
    def eligible_mask(self) -> int:
        """Bit ``ordinal`` set: that machine can engrave it."""
        ...


@dataclass(frozen=True, slots=True)
class QueuedJob:
    """What the planner needs to know about a queued job."""

    job_id: str
    estimate_s: float
    eligible_mask: int


@dataclass(frozen=True, slots=True)
class MachineSlot:
    """A machine as the planner sees it: when it is free and how fast it is."""

    machine_id: str
    ordinal: int
    free_at: float
    speed_factor: float = 1.0
    usable: bool = True


@dataclass(frozen=True, slots=True)
class Planned:
    """A job's planned machine, start and finish (its ETA)."""

    job_id: str
    position: int
    machine_id: str | None
    start_at: float | None
    finish_at: float | None


def plan(jobs: Iterable[Queued], machines: Sequence[MachineSlot]) -> list[Planned]:
    """Greedy earliest-finish assignment of ``jobs`` (already in queue order) to machines.

    A job no usable machine can do gets ``machine_id=None`` and no ETA.
    """
    free = {m.machine_id: m.free_at for m in machines}
    out: list[Planned] = []
    for position, job in enumerate(jobs, start=1):
        best: tuple[float, float, str] | None = None
        for m in machines:
            if not m.usable or not (job.eligible_mask >> m.ordinal) & 1:
                continue
            start = free[m.machine_id]
            finish = start + job.estimate_s / m.speed_factor
            if best is None or finish < best[0]:
                best = (finish, start, m.machine_id)
        if best is None:
            out.append(Planned(job.job_id, position, None, None, None))
            continue
        finish, start, machine_id = best
        free[machine_id] = finish
        out.append(Planned(job.job_id, position, machine_id, start, finish))
    return out


def choose_for(
    machine_id: str, head: Sequence[Queued], machines: Sequence[MachineSlot]
) -> str | None:
    """The job ``machine_id`` should take now: the first of ``head`` planned onto it.

    The asking machine is listed first so that ties (equal finish) go to it.
    """
    ordered = sorted(machines, key=lambda m: m.machine_id != machine_id)
    for planned in plan(head, ordered):
        if planned.machine_id == machine_id:
            return planned.job_id
    return None
