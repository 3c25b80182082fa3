"""The cloud's view of every job, machine and workshop, built from status events. Pure: no I/O.

Two sources report a job's status, each with its own per-job ``seq``: the workflow (cloud,
``event_id`` ``{job_id}:{seq}``) and the workshop's store (over MQTT, after any outage). Delivery
is at least once everywhere, so per ``(job, source)`` an event counts only if its ``seq`` is
higher than the last one seen — anything else is a stale or duplicate copy. Across sources the
newer event wins the job's "latest" slot, so a workshop draining an hour-old backlog does not
roll back a status the workflow has moved past. An event's time is ``min(at, received)``: a
workshop whose clock runs fast cannot claim to be newer than it is.

Two rules keep a forged or corrupt event from doing lasting harm (the bridge also checks that a
workshop reports only its own jobs, see :mod:`crown_edge.cloud.jobdir`):

- **A plausible seq.** An event whose ``seq`` jumps more than ``MAX_SEQ_JUMP`` past the last one
  of its source (or past 0 for the first one seen) is rejected and changes nothing: a job has a
  few dozen status changes, so a huge ``seq`` is an attack or a bug, and recording it would make
  every later real event look stale.
- **A terminal status stays.** Once a job's latest status is terminal (``complete``,
  ``cancelled``, ``escalated``, ``failed``), no workshop event takes the latest slot again: the
  workflow decides how a job ends. Such an event still counts as fresh for its source (it is
  deduplicated and relayed as the workshop's history), it just does not change the status the
  customer sees.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

REQUIRED_EVENT_FIELDS = ("event_id", "job_id", "seq", "status")
#: How far past the last seen ``seq`` of a source an event may jump (module docstring).
MAX_SEQ_JUMP = 10_000
#: Customer statuses a workshop event never overwrites.
TERMINAL_STATUSES = frozenset({"complete", "cancelled", "escalated", "failed"})
#: Prefix of the source name of workshop events (``edge:{shop_id}``).
EDGE_SOURCE = "edge:"


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


def event_time(event: dict[str, Any]) -> float | None:
    """``at`` as POSIX seconds: a number, or an ISO 8601 string (naive means UTC)."""
    at = event.get("at")
    if isinstance(at, bool):
        return None
    if isinstance(at, int | float):
        return float(at)
    if isinstance(at, str):
        try:
            parsed = dt.datetime.fromisoformat(at.replace("Z", "+00:00"))
        except ValueError:
            return None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=dt.UTC)
        return parsed.timestamp()
    return None


@dataclass(frozen=True, slots=True)
class Applied:
    """What :meth:`StatusBoard.apply` did: ``fresh`` in its source; now the job's ``latest``.

    ``rejected`` names the rule an event broke (``malformed``, ``implausible_seq``); such an
    event changed nothing. A stale or duplicate copy is neither fresh nor rejected.
    """

    fresh: bool
    latest: bool
    rejected: str | None = None


@dataclass(slots=True)
class StatusBoard:
    """Latest event per job, latest state per machine and workshop."""

    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    machines: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    edges: dict[str, dict[str, Any]] = field(default_factory=dict)
    max_jobs: int = 100_000
    _seqs: dict[tuple[str, str], int] = field(default_factory=dict)
    _times: dict[str, float] = field(default_factory=dict)

    def apply(
        self, event: dict[str, Any], source: str = "workflow", received: float | None = None
    ) -> Applied:
        """Take ``event`` from ``source``, ``received`` at that time (module docstring)."""
        if event_problem(event) is not None:
            return Applied(False, False, "malformed")
        job_id, seq = event["job_id"], int(event["seq"])
        key = (job_id, source)
        last = self._seqs.get(key)
        if seq > (last or 0) + MAX_SEQ_JUMP:
            return Applied(False, False, "implausible_seq")
        if last is not None and last >= seq:
            return Applied(False, False)
        self._seqs[key] = seq
        at = event_time(event)
        if received is not None:
            at = received if at is None else min(at, received)
        current = self.jobs.get(job_id)
        if (
            current is not None
            and source.startswith(EDGE_SOURCE)
            and current.get("status") in TERMINAL_STATUSES
        ):
            return Applied(True, False)
        if current is not None and current.get("source") != source:
            current_at = self._times.get(job_id)
            if at is not None and current_at is not None and at < current_at:
                return Applied(True, False)
        self.jobs[job_id] = dict(event, source=source)
        if at is not None:
            self._times[job_id] = at
        else:
            self._times.pop(job_id, None)
        self._trim()
        return Applied(True, True)

    def _trim(self) -> None:
        while len(self.jobs) > self.max_jobs:  # forget the oldest-inserted job
            old = next(iter(self.jobs))
            del self.jobs[old]
            self._times.pop(old, None)
            for key in [k for k in self._seqs if k[0] == old]:
                del self._seqs[key]

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
            "source": "api",
            **extra,
        }
        self.jobs[job_id] = event
        self._times[job_id] = at
        self._trim()
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
