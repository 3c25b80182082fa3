"""Row types returned by the store."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from crown_edge.models import IntakeMessage, JobStatus


@dataclass(frozen=True, slots=True)
class Job:
    """A job as stored on the workshop."""

    job_id: str
    status: JobStatus
    reason: str | None
    customer_id: str
    item_id: str
    rush: bool
    due_at: float
    received_at: float
    updated_at: float
    estimate_s: float
    machine_id: str | None
    attempt: int
    retry_count: int
    progress: float | None
    acked_lines: int | None
    last_acked_line: int | None
    total_lines: int | None
    start_line: int
    top: int
    event_seq: int
    eligible_mask: int
    message: dict[str, Any] = field(default_factory=dict)
    sent_line: int | None = None
    """The resume mark: no line after it has left for the controller (see ``jobs resume``)."""

    @property
    def intake(self) -> IntakeMessage:
        """The intake message the job was created from."""
        return IntakeMessage.parse(self.message)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view (the CLI's ``--json`` and the control socket)."""
        return {
            "job_id": self.job_id,
            "status": str(self.status),
            "reason": self.reason,
            "customer_id": self.customer_id,
            "item_id": self.item_id,
            "rush": self.rush,
            "due_at": self.due_at,
            "received_at": self.received_at,
            "updated_at": self.updated_at,
            "estimate_s": self.estimate_s,
            "machine_id": self.machine_id,
            "attempt": self.attempt,
            "retry_count": self.retry_count,
            "progress": self.progress,
            "acked_lines": self.acked_lines,
            "last_acked_line": self.last_acked_line,
            "total_lines": self.total_lines,
            "start_line": self.start_line,
            "sent_line": self.sent_line,
            "text": self.message.get("text", []),
        }


JOB_COLUMNS = (
    "job_id, status, reason, customer_id, item_id, rush, due_at, received_at, updated_at, "
    "estimate_s, machine_id, attempt, retry_count, progress, acked_lines, last_acked_line, "
    "total_lines, start_line, top, event_seq, eligible_mask, message, sent_line"
)


def job_from_row(row: tuple[Any, ...]) -> Job:
    """Build a Job from a row selected with JOB_COLUMNS."""
    return Job(
        job_id=row[0],
        status=JobStatus(row[1]),
        reason=row[2],
        customer_id=row[3],
        item_id=row[4],
        rush=bool(row[5]),
        due_at=row[6],
        received_at=row[7],
        updated_at=row[8],
        estimate_s=row[9],
        machine_id=row[10],
        attempt=row[11],
        retry_count=row[12],
        progress=row[13],
        acked_lines=row[14],
        last_acked_line=row[15],
        total_lines=row[16],
        start_line=row[17],
        top=row[18],
        event_seq=row[19],
        eligible_mask=row[20],
        message=json.loads(row[21]),
        sent_line=row[22],
    )


@dataclass(frozen=True, slots=True)
class StockRow:
    """Live stock of one item."""

    item_id: str
    available: int
    reserved: int
    consumed: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view."""
        return {
            "item_id": self.item_id,
            "available": self.available,
            "reserved": self.reserved,
            "consumed": self.consumed,
        }


@dataclass(frozen=True, slots=True)
class RunRecord:
    """One machine run of a job attempt."""

    job_id: str
    attempt: int
    machine_id: str
    started_at: float
    ended_at: float | None
    outcome: str | None
    start_line: int
    acked_lines: int | None
    total_lines: int | None
    last_acked_line: int | None
    detail: dict[str, Any]
    sent_line: int | None = None
    first_line_at: float | None = None
    """When the machine acknowledged the run's first line (None: not yet, or before this was
    recorded)."""


@dataclass(frozen=True, slots=True)
class RunEnd:
    """How a machine run ended, as the store records it on the run's row."""

    outcome: str
    """``completed``, ``interrupted``, ``failed`` or ``cancelled``."""
    acked_lines: int | None
    total_lines: int | None
    last_acked_line: int | None
    detail: dict[str, Any] = field(default_factory=dict)
    sent_line: int | None = None
    """The last program line that left for the controller (None: unknown, the mark stays)."""


@dataclass(frozen=True, slots=True)
class Verdict:
    """The QA verdict of one attempt (the first one given wins)."""

    job_id: str
    attempt: int
    passed: bool
    notes: str
    by: str
    at: float
    delivered_at: float | None


class MachineRow(NamedTuple):
    """A machine as the store has it: pause, last reported state, the job it engraves."""

    machine_id: str
    ordinal: int
    paused: bool
    availability: str
    execution: str
    alarm: str | None
    heartbeat_at: float | None
    job_id: str | None
    progress: float | None
