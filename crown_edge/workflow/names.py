"""The Temporal contract of the engraving flow: names, task queues and activity data types.

This module is the one place the workflow, the cloud activities and the workshop (edge) activity
worker agree on. It is pure (dataclasses and strings only) so Temporal's workflow sandbox can
import it freely.

Task queues
    ``crown-orders``          the workflow and the cloud activities (:data:`ORDERS_TASK_QUEUE`).
    ``crown-edge-{shop_id}``  one per workshop: every activity that touches the workshop's stock,
                              machines or technicians (:func:`workshop_task_queue`).

Workshop activities (implemented by the edge daemon, registered under these exact names)

- ``validate_job`` (ValidateJobInput -> ValidateResult): checks the item and the text fit and
  reserves ONE unit; idempotent per job_id; raises a non-retryable ``ApplicationError`` of type
  ``NoInventory`` / ``TextDoesNotFit`` / ``UnknownItem`` when the job cannot go ahead.
- ``list_alternatives`` (AlternativesInput -> AlternativesResult): in-stock items whose
  engraving area takes the same text (asked after ``NoInventory``).
- ``release_reservation`` (ReleaseInput -> None): idempotent; a no-op if nothing is held.
- ``send_to_machine`` (MachineRunInput -> MachineRunResult): long-running, heartbeats, signals
  ``machine_update``; idempotent per (job_id, attempt).
- ``quality_check`` (QaInput -> QaResult): waits for the technician's verdict, heartbeating
  while it waits; idempotent per (job_id, attempt).
- ``mark_complete`` (CompleteInput -> None): consumes the reservation; idempotent per job_id.

Idempotency is the edge's promise: Temporal retries an activity after a worker restart or a lost
heartbeat, and a retry of ``send_to_machine`` with the same ``attempt`` must re-attach to (or
report the result of) the run already made, never engrave the item a second time. A new physical
run always comes with a new ``attempt`` number from the workflow.

A job cancelled on the workshop (technician ``jobs cancel``) is reported as such:
``send_to_machine`` returns a result with ``cancel_reason`` set, and ``validate_job`` /
``quality_check`` raise a non-retryable ``ApplicationError`` of type ``JobCancelled`` (message:
the reason). The workflow ends the job ``cancelled`` with that reason, not ``failed``.

Cloud activities (``crown_edge.cloud.activities.CloudActivities``, on ``crown-orders``):
``create_design``, ``request_revision``, ``notify_customer``, ``offer_alternatives``, ``escalate``,
``publish_status``, ``record_rating``. Their data types live in :mod:`crown_edge.workflow.data`.

The customer's side (what the Order API / customer page calls on the handle ``job-{job_id}``)

- update ``approve_design`` (:class:`~crown_edge.workflow.data.ApprovalDecision`) -> ``JobView``:
  ``approved=True`` approves; ``approved=False`` requests changes, ``comment`` saying which
  (at most :data:`COMMENT_MAX` characters). A request for changes sends the design back
  (``revision_requested`` -> ``designing`` -> ``pending_approval`` with a new ``design_url``),
  at most :data:`MAX_DESIGN_REVISIONS` times; one more rejection escalates the job to a manager.
  Refused (``NotAwaitingApproval``) unless the job waits for an answer (``awaiting ==
  "approval"``). The signal of the same name still works (technicians, older callers) and
  ignores what it cannot take.
- update ``choose_alternative`` (:class:`~crown_edge.workflow.data.AlternativeChoice`) ->
  ``JobView``: while the job is ``blocked`` / ``no_inventory`` and ``awaiting ==
  "alternative"``, take one of ``JobView.alternatives`` (``item_id``) or give up
  (``cancel=True`` -> ``cancelled``). The job is validated again with the new item; the answer
  is the view after that (``validated`` and on, or still ``blocked`` with a fresh list when the
  item sold out meanwhile). Refused: ``NotAwaitingAlternative``, ``NotOffered``, ``InvalidInput``.
- update ``rate`` (:class:`~crown_edge.workflow.data.Rating`) -> ``JobView``: 1-5 stars and an
  optional comment (at most :data:`COMMENT_MAX` characters), once, while the job is ``complete``
  and ``awaiting == "rating"`` (the workflow stays open :data:`RATING_WINDOW` after completion
  for this). Refused: ``NotRatable``, ``AlreadyRated``, ``InvalidRating``.
- query ``status`` -> :class:`~crown_edge.workflow.data.JobView` (safe to show the customer: it
  never carries QA or technician notes, alarm texts or failure details).

Every refusal is an ``ApplicationError`` raised by the update's validator, ``type`` one of the
``REFUSED_*`` names below and the message saying why; a refused update changes nothing and is not
written to the workflow history (the client sees ``WorkflowUpdateFailedError`` with the
``ApplicationError`` as its ``cause``).

The workshop's side: signal ``restocked`` (:class:`~crown_edge.workflow.data.Restock`), sent by
the daemon when ``inventory set`` makes an item available that blocked jobs wait for. The
workflow then validates again at once; it also re-validates every :data:`RESTOCK_RECHECK` on its
own, so a lost signal (workshop offline, daemon restarted) only delays the job. A job nobody
unblocks within :data:`BLOCKED_WAIT` ends ``cancelled`` (reason :data:`REASON_STOCK_TIMEOUT`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Final

# --- workflow, queues ----------------------------------------------------------------------------

WORKFLOW_NAME: Final = "EngravingWorkflow"
ORDERS_TASK_QUEUE: Final = "crown-orders"
WORKSHOP_QUEUE_PREFIX: Final = "crown-edge-"

PRIORITY_RUSH: Final = 1
PRIORITY_STANDARD: Final = 5

#: No answer to a design within this long means the design is approved (seed: DESIGN_TIMEOUT).
DESIGN_TIMEOUT: Final = timedelta(hours=24)
#: Physical engraving runs per job, first run included; after that the job is escalated.
MAX_ATTEMPTS: Final = 3
#: Revised designs a customer may ask for; one more request for changes escalates the job.
MAX_DESIGN_REVISIONS: Final = 3
#: How long an out-of-stock job waits for an alternative or a restock before it is cancelled.
BLOCKED_WAIT: Final = timedelta(days=7)
#: A blocked job re-validates this often on its own (a restock signal may have been lost).
RESTOCK_RECHECK: Final = timedelta(hours=6)
#: How long a complete job accepts the customer's rating (the workflow stays open that long).
RATING_WINDOW: Final = timedelta(days=14)
#: Longest customer comment (request for changes, rating) in characters.
COMMENT_MAX: Final = 1000
#: Rating scale.
MIN_STARS: Final = 1
MAX_STARS: Final = 5
#: ``cancelled`` reason of a blocked job nobody unblocked within BLOCKED_WAIT.
REASON_STOCK_TIMEOUT: Final = "out of stock: no alternative chosen and no restock within 7 days"
#: ``cancelled`` reason when the customer gives up on an out-of-stock job.
REASON_CUSTOMER_CANCELLED: Final = "cancelled by the customer"

#: ``JobView.awaiting`` values: what the job waits for from the customer.
AWAITING_APPROVAL: Final = "approval"
AWAITING_ALTERNATIVE: Final = "alternative"
AWAITING_RATING: Final = "rating"

# Patch ids (``workflow.patched``) of the behaviour added after the v1 histories.
#: Rejections send the design back for a revision (bounded) instead of ending the job.
PATCH_DESIGN_REVISIONS: Final = "design-revisions"
#: An out-of-stock job waits for an alternative, a restock or the timeout instead of ending.
PATCH_WAIT_FOR_STOCK: Final = "wait-for-stock"
#: A complete job stays open for the customer's rating.
PATCH_RATING_WINDOW: Final = "rating-window"
#: A job cancelled on the workshop ends ``cancelled`` (with its reason), not ``failed``.
PATCH_WORKSHOP_CANCEL: Final = "workshop-cancel"
#: Status changes (and the customer's notice that follows one) leave in batches through one
#: ``report_status`` activity each, instead of one ``publish_status`` per change and a separate
#: ``notify_customer``; the statuses set before the first ``validate_job`` answered go together.
PATCH_BATCHED_STATUS: Final = "batched-status"


def workflow_id(job_id: str) -> str:
    """The workflow id of a job: ``job-{job_id}`` (one workflow per job, ever)."""
    return f"job-{job_id}"


def workshop_task_queue(shop_id: str) -> str:
    """The task queue served by the workshop ``shop_id``: ``crown-edge-{shop_id}``."""
    return f"{WORKSHOP_QUEUE_PREFIX}{shop_id}"


# --- activity names ------------------------------------------------------------------------------

# Workshop activities (task queue crown-edge-{shop_id}).
VALIDATE_JOB: Final = "validate_job"
LIST_ALTERNATIVES: Final = "list_alternatives"
RELEASE_RESERVATION: Final = "release_reservation"
SEND_TO_MACHINE: Final = "send_to_machine"
QUALITY_CHECK: Final = "quality_check"
MARK_COMPLETE: Final = "mark_complete"

WORKSHOP_ACTIVITIES: Final = (
    VALIDATE_JOB,
    LIST_ALTERNATIVES,
    RELEASE_RESERVATION,
    SEND_TO_MACHINE,
    QUALITY_CHECK,
    MARK_COMPLETE,
)

# Cloud activities (task queue crown-orders).
CREATE_DESIGN: Final = "create_design"
REQUEST_REVISION: Final = "request_revision"
NOTIFY_CUSTOMER: Final = "notify_customer"
OFFER_ALTERNATIVES: Final = "offer_alternatives"
ESCALATE: Final = "escalate"
PUBLISH_STATUS: Final = "publish_status"
RECORD_RATING: Final = "record_rating"
#: Status changes in order, then customer notices, in one call (``PATCH_BATCHED_STATUS``).
REPORT_STATUS: Final = "report_status"

CLOUD_ACTIVITIES: Final = (
    CREATE_DESIGN,
    REQUEST_REVISION,
    NOTIFY_CUSTOMER,
    OFFER_ALTERNATIVES,
    ESCALATE,
    PUBLISH_STATUS,
    RECORD_RATING,
    REPORT_STATUS,
)

# --- signals, updates, queries -------------------------------------------------------------------

#: Signal AND update, argument :class:`~crown_edge.workflow.data.ApprovalDecision`.
APPROVE_DESIGN: Final = "approve_design"
#: Signal from the edge, argument :class:`~crown_edge.workflow.data.MachineUpdate`.
MACHINE_UPDATE: Final = "machine_update"
#: Signal, argument :class:`~crown_edge.workflow.data.CancelRequest`.
CANCEL: Final = "cancel"
#: Signal, argument :class:`~crown_edge.workflow.data.ResumeRequest`: re-run after ``interrupted``.
RESUME: Final = "resume"
#: Update, argument :class:`~crown_edge.workflow.data.AlternativeChoice`, returns ``JobView``.
CHOOSE_ALTERNATIVE: Final = "choose_alternative"
#: Update, argument :class:`~crown_edge.workflow.data.Rating`, returns ``JobView``.
RATE: Final = "rate"
#: Signal from the workshop, argument :class:`~crown_edge.workflow.data.Restock`.
RESTOCKED: Final = "restocked"
#: Query returning :class:`~crown_edge.workflow.data.JobView`.
STATUS_QUERY: Final = "status"

# --- refusals of the customer's updates (ApplicationError types) ----------------------------------

REFUSED_NOT_AWAITING_APPROVAL: Final = "NotAwaitingApproval"
REFUSED_NOT_AWAITING_ALTERNATIVE: Final = "NotAwaitingAlternative"
REFUSED_NOT_OFFERED: Final = "NotOffered"
REFUSED_NOT_RATABLE: Final = "NotRatable"
REFUSED_ALREADY_RATED: Final = "AlreadyRated"
REFUSED_INVALID_RATING: Final = "InvalidRating"
REFUSED_INVALID_INPUT: Final = "InvalidInput"

# --- ApplicationError types raised by workshop activities -----------------------------------------

ERR_NO_INVENTORY: Final = "NoInventory"
ERR_TEXT_DOES_NOT_FIT: Final = "TextDoesNotFit"
ERR_UNKNOWN_ITEM: Final = "UnknownItem"
#: Raised by send_to_machine when no configured machine can ever run the job.
ERR_NO_ELIGIBLE_MACHINE: Final = "NoEligibleMachine"
#: Raised by workshop activities when a technician cancelled the job on the workshop.
ERR_JOB_CANCELLED: Final = "JobCancelled"

#: ApplicationError type -> ``blocked`` reason word.
BLOCKING_ERRORS: Final = {
    ERR_NO_INVENTORY: "no_inventory",
    ERR_TEXT_DOES_NOT_FIT: "text_does_not_fit",
    ERR_UNKNOWN_ITEM: "unknown_item",
    ERR_NO_ELIGIBLE_MACHINE: "no_eligible_machine",
}

# --- workshop activity data ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ValidateJobInput:
    """Input of ``validate_job``: check the item and the text fit, then reserve one unit.

    Raise a non-retryable ``ApplicationError`` with ``type`` ``NoInventory``, ``TextDoesNotFit``
    or ``UnknownItem`` (``details`` optional, a human-readable reason string) when the job cannot
    go ahead; nothing is reserved in that case. A repeated call for a job that already holds a
    reservation returns the same result and reserves nothing more.
    """

    job_id: str
    item_id: str
    lines: tuple[str, ...]
    font: str | None
    material: str | None
    shop_id: str
    priority: int
    rush: bool
    requires_design: bool = False
    customer_id: str = ""
    due_date: str = ""


@dataclass(frozen=True, slots=True)
class ValidateResult:
    """Output of ``validate_job``: the job is feasible and one unit is reserved for it."""

    job_id: str
    item_id: str
    material: str
    reserved: bool = True
    #: Cap height the layout will use, if the edge computed it (informational).
    cap_height_mm: float | None = None
    #: Units of the item still available after this reservation.
    remaining: int | None = None


@dataclass(frozen=True, slots=True)
class AlternativesInput:
    """Input of ``list_alternatives``: which in-stock items could take this job instead."""

    job_id: str
    item_id: str
    lines: tuple[str, ...]
    font: str | None
    limit: int = 5


@dataclass(frozen=True, slots=True)
class Alternative:
    """One in-stock item whose engraving area takes the job's text."""

    item_id: str
    name: str
    material: str
    available: int


@dataclass(frozen=True, slots=True)
class AlternativesResult:
    """Output of ``list_alternatives`` (possibly empty)."""

    items: tuple[Alternative, ...] = ()


@dataclass(frozen=True, slots=True)
class ReleaseInput:
    """Input of ``release_reservation``: give back the job's reserved unit.

    ``engraved`` is true when the unit may already carry (part of) the engraving - a cancel during
    or after a run, or a job escalated after failed QA - so the edge writes it off rather than
    returning it to available stock. Idempotent: a job without a reservation is a no-op.
    """

    job_id: str
    item_id: str
    reason: str
    engraved: bool = False


@dataclass(frozen=True, slots=True)
class MachineRunInput:
    """Input of ``send_to_machine``: queue the job on the workshop and engrave it once.

    The activity returns when this ``attempt`` has a final outcome. While it runs it heartbeats
    (heartbeat details are the edge's own resume state) and reports ``queued`` / ``engraving``
    to the workflow with the ``machine_update`` signal (see :class:`MachineUpdate` in
    :mod:`crown_edge.workflow.data`), e.g. from inside the activity::

        handle = activity.client().get_workflow_handle(workflow_id(job_id))
        await handle.signal(MACHINE_UPDATE, MachineUpdate("queued", attempt, queue_position=2))

    Cancellation arrives through the heartbeat: stop the machine (feed hold, then reset), then
    let ``CancelledError`` propagate.
    """

    job_id: str
    attempt: int
    item_id: str
    lines: tuple[str, ...]
    material: str | None
    font: str | None
    rush: bool
    due_date: str
    priority: int
    shop_id: str
    #: Preview/design produced in the cloud, if any (``/designs/{job_id}.svg``).
    design_url: str | None = None
    artwork_url: str | None = None


#: ``MachineRunResult.outcome`` values.
OUTCOME_COMPLETED: Final = "completed"
OUTCOME_INTERRUPTED: Final = "interrupted"
OUTCOME_FAILED: Final = "failed"


@dataclass(frozen=True, slots=True)
class MachineRunResult:
    """Output of ``send_to_machine``.

    ``outcome`` is ``completed`` (program ran to the end), ``interrupted`` (the run stopped
    part-way - alarm, lost port, silent controller - and the item must not be re-run without a
    technician's word; the workflow then waits for ``resume`` or ``cancel``) or ``failed`` (the job
    cannot be engraved on this workshop; the workflow escalates).
    """

    outcome: str
    machine_id: str | None = None
    acked_lines: int = 0
    total_lines: int = 0
    alarm: str | None = None
    message: str | None = None
    #: Set when the job was cancelled on the workshop (the technician's reason, or a default):
    #: the workflow ends the job ``cancelled``. ``outcome`` is then ``failed`` for older workflows.
    cancel_reason: str | None = None


@dataclass(frozen=True, slots=True)
class QaInput:
    """Input of ``quality_check``: wait for the technician's verdict on this attempt.

    Idempotent per (job_id, attempt): a verdict already given is returned again.
    """

    job_id: str
    attempt: int
    item_id: str
    lines: tuple[str, ...]
    machine_id: str | None
    priority: int


@dataclass(frozen=True, slots=True)
class QaResult:
    """Output of ``quality_check``: the technician's verdict."""

    passed: bool
    notes: str = ""
    by: str = ""


@dataclass(frozen=True, slots=True)
class CompleteInput:
    """Input of ``mark_complete``: the job passed QA; consume its reserved unit.

    Idempotent per job_id.
    """

    job_id: str
    item_id: str
    attempt: int
    machine_id: str | None
    qa_by: str = ""
