"""Local priority scheduler: queue order, machine matching, database-enforced claims, ETA."""

from crown_edge.scheduler.planner import (
    MachineSlot,
    Planned,
    QueuedJob,
    can_do,
    eligible_mask,
    plan,
)
from crown_edge.scheduler.queue import Scheduler

__all__ = [
    "MachineSlot",
    "Planned",
    "QueuedJob",
    "Scheduler",
    "can_do",
    "eligible_mask",
    "plan",
]
