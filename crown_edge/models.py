"""Plain value types shared by every layer: jobs, items, materials, machines, intake messages.

Nothing here does I/O. The intake-message parser turns an untrusted JSON object into an
:class:`IntakeMessage` or raises :class:`~crown_edge.errors.MessageInvalid` with field-level
reasons.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from crown_edge.errors import MessageInvalid


class JobStatus(StrEnum):
    """Job status words. Outside tools rely on these exact strings."""

    RECEIVED = "received"
    VALIDATED = "validated"
    BLOCKED = "blocked"
    DESIGNING = "designing"
    PENDING_APPROVAL = "pending_approval"
    APPROVED = "approved"
    REVISION_REQUESTED = "revision_requested"
    QUEUED = "queued"
    ENGRAVING = "engraving"
    INTERRUPTED = "interrupted"
    QA_PENDING = "qa_pending"
    QA_FAILED = "qa_failed"
    COMPLETE = "complete"
    ESCALATED = "escalated"
    CANCELLED = "cancelled"
    FAILED = "failed"


class BlockReason(StrEnum):
    """Why a job is ``blocked``."""

    NO_INVENTORY = "no_inventory"
    TEXT_DOES_NOT_FIT = "text_does_not_fit"
    INVALID_MESSAGE = "invalid_message"
    UNKNOWN_ITEM = "unknown_item"
    NO_ELIGIBLE_MACHINE = "no_eligible_machine"


class Availability(StrEnum):
    """MTConnect availability of a machine."""

    AVAILABLE = "AVAILABLE"
    UNAVAILABLE = "UNAVAILABLE"


class Execution(StrEnum):
    """MTConnect execution state of a machine."""

    READY = "READY"
    ACTIVE = "ACTIVE"
    FEED_HOLD = "FEED_HOLD"
    INTERRUPTED = "INTERRUPTED"
    STOPPED = "STOPPED"


class Surface(StrEnum):
    """Shape of an item's engraving surface."""

    FLAT = "flat"
    CYLINDER = "cylinder"


@dataclass(frozen=True, slots=True)
class EngravingArea:
    """Where text may go on an item, measured on the surface, in millimetres.

    For a cylinder ``width_mm`` runs around the circumference and ``height_mm`` along the axis.
    """

    width_mm: float
    height_mm: float
    max_lines: int = 4
    margin_mm: float = 2.0
    nominal_cap_height_mm: float = 8.0
    min_cap_height_mm: float = 2.5


@dataclass(frozen=True, slots=True)
class Item:
    """A stock item that can be engraved (a plaque, a cup, a glass)."""

    item_id: str
    name: str
    material: str
    area: EngravingArea
    surface: Surface = Surface.FLAT
    diameter_mm: float | None = None
    stock_available: int = 0
    stock_reserved: int = 0


@dataclass(frozen=True, slots=True)
class MaterialProfile:
    """Laser settings for one material: power ``S`` (0..spindle max), feed mm/min, passes."""

    name: str
    power: int = 600
    feed_mm_min: float = 3000.0
    passes: int = 1
    air_assist: bool = True


@dataclass(frozen=True, slots=True)
class MachineState:
    """A machine's live state in MTConnect words."""

    machine_id: str
    availability: Availability
    execution: Execution
    alarm: str | None = None
    heartbeat_at: float | None = None
    paused: bool = False
    job_id: str | None = None
    progress: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON payload as published on ``machines/{machine_id}/state``."""
        return {
            "machine_id": self.machine_id,
            "availability": str(self.availability),
            "execution": str(self.execution),
            "alarm": self.alarm,
            "heartbeat_at": self.heartbeat_at,
            "paused": self.paused,
            "job_id": self.job_id,
            "progress": self.progress,
        }


# --- intake message ------------------------------------------------------------------------------

_REQUIRED_STR = ("job_id", "customer_id", "item_id", "due_date")
_OPTIONAL_STR = ("artwork_url", "font", "material", "shop_id")
_KNOWN = {*_REQUIRED_STR, *_OPTIONAL_STR, "text", "rush", "price_cents", "requires_design"}
MAX_ID_LEN = 128
MAX_LINE_LEN = 200
MAX_LINES = 20


def _parse_due(value: str) -> dt.datetime:
    text = value.strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    parsed = dt.datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed


@dataclass(frozen=True, slots=True)
class IntakeMessage:
    """A validated intake message (the seed's schema plus optional extras).

    ``extra`` keeps unknown fields untouched so nothing a sender added is lost.
    """

    job_id: str
    customer_id: str
    item_id: str
    due_date: str
    text: tuple[str, ...] = ()
    artwork_url: str | None = None
    rush: bool = False
    font: str | None = None
    material: str | None = None
    price_cents: int | None = None
    shop_id: str | None = None
    requires_design: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def priority(self) -> int:
        """Temporal priority key: 1 for rush, 5 for standard."""
        return 1 if self.rush else 5

    @property
    def due_at(self) -> float:
        """Due date as a POSIX timestamp (UTC)."""
        return _parse_due(self.due_date).timestamp()

    def to_dict(self) -> dict[str, Any]:
        """The message as JSON-ready data, unknown fields included."""
        out: dict[str, Any] = dict(self.extra)
        out.update(
            job_id=self.job_id,
            customer_id=self.customer_id,
            item_id=self.item_id,
            due_date=self.due_date,
            text=list(self.text),
            rush=self.rush,
            requires_design=self.requires_design,
        )
        for key in ("artwork_url", "font", "material", "price_cents", "shop_id"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        return out

    @classmethod
    def parse(cls, data: Any) -> IntakeMessage:
        """Validate untrusted data; raise MessageInvalid listing every field-level problem."""
        if not isinstance(data, dict):
            raise MessageInvalid([f"message must be a JSON object, got {type(data).__name__}"])
        reasons: list[str] = []
        job_id = data.get("job_id") if isinstance(data.get("job_id"), str) else None
        for key in _REQUIRED_STR:
            value = data.get(key)
            if key not in data:
                reasons.append(f"{key}: required")
            elif not isinstance(value, str):
                reasons.append(f"{key}: must be a string, got {type(value).__name__}")
            elif not value.strip():
                reasons.append(f"{key}: must not be empty")
            elif key != "due_date" and len(value) > MAX_ID_LEN:
                reasons.append(f"{key}: longer than {MAX_ID_LEN} characters")
        for key in ("job_id", "customer_id", "item_id", "shop_id"):
            value = data.get(key)
            if isinstance(value, str) and value and not _is_safe_id(value):
                reasons.append(f"{key}: only letters, digits, '-', '_' and '.' are allowed")
        due = data.get("due_date")
        if isinstance(due, str) and due.strip():
            try:
                _parse_due(due)
            except ValueError:
                reasons.append("due_date: must be an ISO 8601 date or date-time")
        for key in _OPTIONAL_STR:
            if key in data and data[key] is not None and not isinstance(data[key], str):
                reasons.append(f"{key}: must be a string, got {type(data[key]).__name__}")
        text = data.get("text", [])
        if text is None:
            text = []
        if not isinstance(text, list):
            reasons.append(f"text: must be an array of strings, got {type(text).__name__}")
            text = []
        else:
            if len(text) > MAX_LINES:
                reasons.append(f"text: at most {MAX_LINES} lines")
            for i, line in enumerate(text):
                if not isinstance(line, str):
                    reasons.append(f"text[{i}]: must be a string, got {type(line).__name__}")
                elif len(line) > MAX_LINE_LEN:
                    reasons.append(f"text[{i}]: longer than {MAX_LINE_LEN} characters")
        for key in ("rush", "requires_design"):
            if key in data and data[key] is not None and not isinstance(data[key], bool):
                reasons.append(f"{key}: must be a boolean, got {type(data[key]).__name__}")
        price = data.get("price_cents")
        if price is not None and (
            isinstance(price, bool) or not isinstance(price, int) or price < 0
        ):
            reasons.append("price_cents: must be a non-negative integer")
        if reasons:
            raise MessageInvalid(reasons, job_id=job_id)
        artwork = data.get("artwork_url")
        requires_design = bool(data.get("requires_design")) or bool(artwork)
        return cls(
            job_id=data["job_id"],
            customer_id=data["customer_id"],
            item_id=data["item_id"],
            due_date=data["due_date"],
            text=tuple(text),
            artwork_url=artwork,
            rush=bool(data.get("rush", False)),
            font=data.get("font"),
            material=data.get("material"),
            price_cents=price,
            shop_id=data.get("shop_id"),
            requires_design=requires_design,
            extra={k: v for k, v in data.items() if k not in _KNOWN},
        )


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    """One stored message waiting for the MQTT link.

    ``topic`` is relative to ``crown/v1/{shop_id}/`` (``events``, ``machines/m1/state``...).
    """

    id: int
    topic: str
    payload: dict[str, Any]
    qos: int = 1
    retain: bool = False
    created_at: float = 0.0


def _is_safe_id(value: str) -> bool:
    return all(c.isascii() and (c.isalnum() or c in "-_.") for c in value)
