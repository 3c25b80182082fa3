"""The cloud's view of every job, machine and workshop, built from status events. Pure: no I/O.

Events carry a per-job ``seq`` that grows with every transition. Delivery is at least once and a
workshop may resend after an outage, so :meth:`StatusBoard.apply` keeps an event only if its
``seq`` is higher than the last one seen for that job; anything else is a stale or duplicate copy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

REQUIRED_EVENT_FIELDS = ("event_id", "job_id", "seq", "status")


def event_problem(event: dict[str, Any]) -> str | None:
    """Why ``event`` is not a usable status event, or ``None`` if it is."""
    for key in REQUIRED_EVENT_FIELDS:
        if key not in event:
            return f"{key}: required"
    if not isinstance(event["job_id"], str) or not event["job_id"]:
        return "job_id: must be a non-empty string"
    if not isinstance(event["event_id"], str) or not event["event_id"]:
        return "event_id: must be a non-empty string"
    seq = event["seq"]
    if isinstance(seq, bool) or not isinstance(seq, int) or seq < 0:
        return "seq: must be a non-negative integer"
    if not isinstance(event["status"], str):
        return "status: must be a string"
    return None


@dataclass(slots=True)
class StatusBoard:
    """Latest event per job, latest state per machine and workshop."""

    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    machines: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    edges: dict[str, dict[str, Any]] = field(default_factory=dict)
    max_jobs: int = 100_000

    def apply(self, event: dict[str, Any]) -> bool:
        """Take ``event`` if it is newer than what we have for its job; return whether it was."""
        if event_problem(event) is not None:
            return False
        current = self.jobs.get(event["job_id"])
        if current is not None and int(current["seq"]) >= int(event["seq"]):
            return False
        self.jobs[event["job_id"]] = dict(event)
        if len(self.jobs) > self.max_jobs:  # forget the oldest-inserted job
            del self.jobs[next(iter(self.jobs))]
        return True

    def accept(self, job_id: str, at: float, **extra: Any) -> dict[str, Any]:
        """Record that the Order API accepted ``job_id`` (``received``, seq 0) unless known."""
        current = self.jobs.get(job_id)
        if current is not None:
            return current
        event = {
            "event_id": f"accepted-{job_id}",
            "job_id": job_id,
            "seq": 0,
            "status": "received",
            "at": at,
            **extra,
        }
        self.jobs[job_id] = event
        return event

    def job(self, job_id: str) -> dict[str, Any] | None:
        """The latest event of ``job_id``, if any."""
        return self.jobs.get(job_id)

    def set_machine(self, shop_id: str, machine_id: str, state: dict[str, Any]) -> None:
        """Record a machine's retained state."""
        self.machines[(shop_id, machine_id)] = dict(state, shop_id=shop_id, machine_id=machine_id)

    def set_edge(self, shop_id: str, state: dict[str, Any]) -> None:
        """Record a workshop's online/offline state."""
        self.edges[shop_id] = dict(state, shop_id=shop_id)
