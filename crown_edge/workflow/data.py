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


# --- signals and updates -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ApprovalDecision:
    """The customer's answer to a design (signal or update ``approve_design``)."""

    approved: bool
    comment: str = ""
    by: str = "customer"


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
    #: Why a run is ``interrupted`` (alarm, lost port...); shown as the job's reason.
    reason: str | None = None


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
class JobView:
    """Answer of the ``status`` query: where the job is now and how it got there."""

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


# --- cloud activity data -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class JobStatusEvent:
    """One status change, as published by ``publish_status`` (DESIGN.md §4 ``events`` payload).

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
    """Input of ``create_design``: render the preview the customer approves."""

    job_id: str
    customer_id: str
    item_id: str
    lines: tuple[str, ...]
    font: str | None = None
    material: str | None = None
    artwork_url: str | None = None


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


@dataclass(frozen=True, slots=True)
class Notification:
    """Input of ``notify_customer``; ``kind`` names the transition (``complete``, ``blocked``)."""

    job_id: str
    customer_id: str
    kind: str
    message: str = ""
    data: dict[str, str] = field(default_factory=dict)


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
