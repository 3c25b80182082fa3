"""Data classes of the engraving workflow: its input, signals, query view, events and cloud I/O.

Pure values only (Temporal's sandbox imports this module): every class is a frozen dataclass that
the default Temporal JSON converter round-trips. Workshop-activity types are in
:mod:`crown_edge.workflow.names`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from crown_edge.workflow.names import (
    PRIORITY_RUSH,
    PRIORITY_STANDARD,
    Alternative,
    workshop_task_queue,
)

if TYPE_CHECKING:
    from crown_edge.models import IntakeMessage


# --- workflow input and result -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EngravingJob:
    """The workflow input: the intake message's fields plus priority and default workshop.

    ``priority`` is the Temporal priority key; ``default_shop_id`` names the workshop when the
    message has no ``shop_id``. Unknown intake fields (``extra``) stay on the intake side.
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
    #: Temporal priority key for the workflow and its activities: 1 rush, 5 standard.
    priority: int = PRIORITY_STANDARD
    #: Workshop used when ``shop_id`` is None (the cloud's configured default).
    default_shop_id: str = "default"

    @property
    def workshop(self) -> str:
        """The workshop that makes this job."""
        return self.shop_id or self.default_shop_id

    @property
    def workshop_queue(self) -> str:
        """Task queue of the workshop activities: ``crown-edge-{shop}``."""
        return workshop_task_queue(self.workshop)

    @classmethod
    def from_intake(cls, msg: IntakeMessage, *, default_shop_id: str) -> EngravingJob:
        """Build the workflow input from a validated intake message."""
        return cls(
            job_id=msg.job_id,
            customer_id=msg.customer_id,
            item_id=msg.item_id,
            due_date=msg.due_date,
            text=tuple(msg.text),
            artwork_url=msg.artwork_url,
            rush=msg.rush,
            font=msg.font,
            material=msg.material,
            price_cents=msg.price_cents,
            shop_id=msg.shop_id,
            requires_design=msg.requires_design,
            priority=PRIORITY_RUSH if msg.rush else PRIORITY_STANDARD,
            default_shop_id=default_shop_id,
        )


@dataclass(frozen=True, slots=True)
class JobResult:
    """What the workflow returns: its final status word and the reason, if any."""

    job_id: str
    status: str
    reason: str | None = None
    retry_count: int = 0
    attempts: int = 0
    design_url: str | None = None
    #: The customer's rating, when one came within the rating window.
    rating: Rating | None = None
    #: The item made (an alternative the customer chose, or the ordered one).
    item_id: str | None = None


# --- signals and updates -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ApprovalDecision:
    """The customer's answer to a design (signal or update ``approve_design``).

    ``approved=False`` asks for changes; ``comment`` says which (``COMMENT_MAX`` characters).
    """

    approved: bool
    comment: str = ""
    by: str = "customer"


@dataclass(frozen=True, slots=True)
class AlternativeChoice:
    """Update ``choose_alternative``: one of the offered items (``item_id``), or ``cancel``."""

    item_id: str | None = None
    cancel: bool = False
    by: str = "customer"


@dataclass(frozen=True, slots=True)
class Rating:
    """Update ``rate``: 1-5 ``stars`` and an optional ``comment`` for a complete job.

    ``at`` is filled in by the workflow (ISO 8601, when the rating was taken).
    """

    stars: int
    comment: str = ""
    at: str | None = None


@dataclass(frozen=True, slots=True)
class Restock:
    """Signal ``restocked`` from the workshop: ``item_id`` has ``available`` units again."""

    item_id: str
    available: int = 0
    by: str = "workshop"


@dataclass(frozen=True, slots=True)
class MachineUpdate:
    """Live machine details the edge signals (``machine_update``) while ``send_to_machine`` runs.

    ``status`` is ``queued`` (with ``queue_position``, 1 = next), ``engraving`` (with
    ``machine_id`` and ``progress`` 0-1) or ``interrupted``. Updates for another ``attempt`` than
    the current one are stale and ignored. Send on change and at most every few seconds: every
    signal is a history event.
    """

    status: str
    attempt: int = 0
    machine_id: str | None = None
    progress: float | None = None
    queue_position: int | None = None
    #: Why a run is ``interrupted`` (alarm, lost port...); kept internal, never shown as is.
    reason: str | None = None
    #: Expected end of the run (ISO 8601), when the workshop's scheduler has one.
    eta: str | None = None


@dataclass(frozen=True, slots=True)
class CancelRequest:
    """Signal ``cancel``: stop the job (and its machine run) and release its stock."""

    reason: str = ""
    by: str = ""


@dataclass(frozen=True, slots=True)
class ResumeRequest:
    """Signal ``resume``: a technician allows a new run after an ``interrupted`` one."""

    by: str = ""
    comment: str = ""


# --- query ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    """One status the job entered, with the workflow time it did (ISO 8601, UTC)."""

    status: str
    at: str


@dataclass(frozen=True, slots=True)
class Step:
    """One step of the customer's timeline: received, design, approval, engraving, qa, complete.

    ``state`` is ``done``, ``current``, ``pending``, ``skipped`` (no design needed) or
    ``stopped`` (the job ended here without completing); ``at`` is when the step began.
    """

    name: str
    state: str
    at: str | None = None


@dataclass(frozen=True, slots=True)
class JobView:
    """Answer of the ``status`` query: where the job is now and how it got there.

    Everything here may be shown to the customer: ``reason`` is a customer-safe text (QA and
    technician notes, alarm texts and failure details never appear in the view).
    """

    job_id: str
    status: str
    reason: str | None = None
    retry_count: int = 0
    attempt: int = 0
    queue_position: int | None = None
    machine_id: str | None = None
    progress: float | None = None
    design_url: str | None = None
    #: Status words in the order the job went through them.
    history: tuple[str, ...] = ()
    #: The item being made (changes when the customer takes an alternative).
    item_id: str = ""
    text: tuple[str, ...] = ()
    due_date: str = ""
    rush: bool = False
    #: Expected end of engraving (ISO 8601) when the workshop reported one.
    eta: str | None = None
    #: Every status entered, with its time.
    timeline: tuple[TimelineEntry, ...] = ()
    #: The customer's steps (received -> design -> approval -> engraving -> qa -> complete).
    steps: tuple[Step, ...] = ()
    #: What the job waits for from the customer: ``approval``, ``alternative``, ``rating``.
    awaiting: str | None = None
    #: Until when that wait lasts (ISO 8601): auto-approval, out-of-stock cancel, rating window.
    awaiting_until: str | None = None
    #: In-stock items offered while the job is blocked for ``no_inventory``.
    alternatives: tuple[Alternative, ...] = ()
    #: How many revised designs the customer asked for so far.
    design_revision: int = 0
    rating: Rating | None = None


# --- cloud activity data -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class JobStatusEvent:
    """One status change, as published by ``publish_status`` (the ``events`` payload).

    ``seq`` grows by one per status change of the job; ``event_id`` is ``{job_id}:{seq}`` so
    consumers drop stale and duplicate deliveries.
    """

    event_id: str
    job_id: str
    seq: int
    status: str
    at: str
    shop_id: str
    reason: str | None = None
    retry_count: int = 0
    queue_position: int | None = None
    machine_id: str | None = None
    progress: float | None = None
    design_url: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON payload; None fields are left out."""
        out: dict[str, Any] = {}
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        return out


@dataclass(frozen=True, slots=True)
class DesignInput:
    """Input of ``create_design``: render the preview the customer approves.

    ``revision`` > 0 is a revised design after the customer asked for changes (``comment``);
    each revision gets its own preview URL.
    """

    job_id: str
    customer_id: str
    item_id: str
    lines: tuple[str, ...]
    font: str | None = None
    material: str | None = None
    artwork_url: str | None = None
    revision: int = 0
    comment: str = ""


@dataclass(frozen=True, slots=True)
class DesignResult:
    """Output of ``create_design``: where the preview is served and any layout warnings."""

    job_id: str
    design_url: str
    fits: bool = True
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class RevisionInput:
    """Input of ``request_revision``: the customer rejected the design."""

    job_id: str
    customer_id: str
    design_url: str | None
    comment: str = ""
    #: The revision that will answer this request (1 for the first); 0 from older workflows.
    revision: int = 0


@dataclass(frozen=True, slots=True)
class Notification:
    """Input of ``notify_customer``; ``kind`` names the transition (``complete``, ``blocked``)."""

    job_id: str
    customer_id: str
    kind: str
    message: str = ""
    data: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class StatusReport:
    """Input of ``report_status``: status changes of one job in order, then customer notices.

    The workflow batches what it queued while the previous report was on its way; a notice
    always follows the status that caused it, so the notices come after the statuses.
    """

    job_id: str
    statuses: tuple[JobStatusEvent, ...] = ()
    notifications: tuple[Notification, ...] = ()


@dataclass(frozen=True, slots=True)
class OfferAlternativesInput:
    """Input of ``offer_alternatives``: the item is out of stock; these could replace it.

    ``alternatives`` come from the workshop activity ``list_alternatives`` (the workshop store owns
    stock); the cloud activity only words and sends the offer.
    """

    job_id: str
    customer_id: str
    item_id: str
    alternatives: tuple[Alternative, ...] = ()


@dataclass(frozen=True, slots=True)
class EscalateInput:
    """Input of ``escalate``: a manager must look at the job."""

    job_id: str
    customer_id: str
    reason: str
    attempts: int = 0
    notes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class RatingEvent:
    """Input of ``record_rating``: the customer rated a complete job (``customer_satisfaction``)."""

    job_id: str
    customer_id: str
    shop_id: str
    item_id: str
    stars: int
    comment: str = ""
    at: str = ""
