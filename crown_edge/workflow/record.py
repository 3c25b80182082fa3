"""The engraving job's record inside the workflow: its state, the status query and its handlers.

:class:`JobRecord` is the base of :class:`~crown_edge.workflow.workflow.EngravingWorkflow`: it
keeps what the job is (status, timeline, item, waits, alternatives, rating), answers the
``status`` query with a customer-safe :class:`JobView`, takes the signals and updates from the
customer, the workshop and technicians, and publishes every status change in order. The flow
itself (activities, timers, endings) is in the subclass. Deterministic code only.
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from crown_edge.workflow import calls as call
    from crown_edge.workflow import names as n
    from crown_edge.workflow import view
    from crown_edge.workflow.data import (
        AlternativeChoice,
        ApprovalDecision,
        CancelRequest,
        EngravingJob,
        JobResult,
        JobStatusEvent,
        JobView,
        MachineUpdate,
        Notification,
        Rating,
        Restock,
        ResumeRequest,
        StatusReport,
        TimelineEntry,
    )

_AWAITING_APPROVAL = ("designing", "pending_approval")
_MACHINE_STATES = ("queued", "engraving", "interrupted")


class JobRecord:
    """State, query and handlers of one engraving job (see the module docstring)."""

    def __init__(self) -> None:
        self._job_id = ""
        self._status = "received"
        self._reason: str | None = None
        self._history: list[str] = []
        self._retry_count = 0
        self._attempt = 0
        self._queue_position: int | None = None
        self._machine_id: str | None = None
        self._progress: float | None = None
        self._design_url: str | None = None
        self._decision: ApprovalDecision | None = None
        self._decisions_done = 0
        self._closing = False
        self._job: EngravingJob | None = None
        self._timeline: list[TimelineEntry] = []
        self._eta: str | None = None
        self._awaiting: str | None = None
        self._awaiting_until: str | None = None
        self._alternatives: tuple[n.Alternative, ...] = ()
        self._choice: AlternativeChoice | None = None
        self._choices_done = 0
        self._restock = False
        self._revision = 0
        self._rating: Rating | None = None
        self._rating_done = False
        self._cancel: CancelRequest | None = None
        self._cancellable = True
        self._resume: ResumeRequest | None = None
        self._stock_held = False
        self._maybe_engraved = False
        self._run_active = False
        self._seq = 0
        self._outbox: list[JobStatusEvent | Notification] = []
        self._publishing = False
        #: PATCH_BATCHED_STATUS: statuses and notices leave in batches (``report_status``).
        self._batched = False
        #: While set, queued statuses wait (a short activity whose answer adds more to them).
        self._holding = False
        self._shop_id = ""

    # --- signals, updates, query -----------------------------------------------------------------

    @workflow.signal(name=n.APPROVE_DESIGN)
    def approve_design(self, decision: ApprovalDecision) -> None:
        """The customer approved or rejected the design (ignored when no design is awaited)."""
        if self._status in _AWAITING_APPROVAL and self._decision is None:
            self._decision = decision
        else:
            workflow.logger.warning("job %s: approval ignored in %s", self._job_id, self._status)

    @workflow.update(name=n.APPROVE_DESIGN)
    async def approve_design_update(self, decision: ApprovalDecision) -> JobView:
        """Like the signal, but answered: refused unless a design is awaited; returns the view."""
        taken = self._decisions_done
        self._decision = decision
        await workflow.wait_condition(lambda: self._decisions_done > taken or self._closing)
        return self.status()

    @approve_design_update.validator
    def _check_approval(self, decision: ApprovalDecision) -> None:
        awaiting = self._status in _AWAITING_APPROVAL and self._decision is None
        view.check_approval(decision, awaiting=awaiting, job_id=self._job_id, status=self._status)

    @workflow.update(name=n.CHOOSE_ALTERNATIVE)
    async def choose_alternative(self, choice: AlternativeChoice) -> JobView:
        """The customer takes an offered item (or cancels); answered once the job acted on it."""
        taken = self._choices_done
        self._choice = choice
        await workflow.wait_condition(lambda: self._choices_done > taken or self._closing)
        return self.status()

    @choose_alternative.validator
    def _check_choice(self, choice: AlternativeChoice) -> None:
        view.check_choice(
            choice,
            awaiting=self._awaiting == n.AWAITING_ALTERNATIVE and self._choice is None,
            offered=[a.item_id for a in self._alternatives],
            job_id=self._job_id,
            status=self._status,
        )

    @workflow.update(name=n.RATE)
    async def rate(self, rating: Rating) -> JobView:
        """The customer rates the complete job (once); answered once the rating is recorded."""
        self._rating = dataclasses.replace(rating, at=workflow.now().isoformat())
        await workflow.wait_condition(lambda: self._rating_done or self._closing)
        return self.status()

    @rate.validator
    def _check_rating(self, rating: Rating) -> None:
        view.check_rating(
            rating,
            ratable=self._awaiting == n.AWAITING_RATING,
            rated=self._rating is not None,
            job_id=self._job_id,
            status=self._status,
        )

    @workflow.signal(name=n.RESTOCKED)
    def restocked(self, restock: Restock) -> None:
        """The workshop has the job's item again: a waiting out-of-stock job validates again."""
        job = self._job
        waiting = self._awaiting == n.AWAITING_ALTERNATIVE
        if waiting and job is not None and restock.item_id == job.item_id:
            self._restock = True

    @workflow.signal(name=n.MACHINE_UPDATE)
    def machine_update(self, update: MachineUpdate) -> None:
        """Live details of the current machine run, sent by the edge."""
        if not self._run_active or update.attempt != self._attempt:
            return
        if update.status not in _MACHINE_STATES:
            return
        if update.status == "engraving":
            self._maybe_engraved = True
        changed = (
            update.status != self._status
            or update.queue_position != self._queue_position
            or update.machine_id != self._machine_id
            or update.reason != self._reason
        )
        self._queue_position = update.queue_position
        self._machine_id = update.machine_id
        self._progress = update.progress
        self._eta = update.eta
        if changed:
            self._set(update.status, reason=update.reason)

    @workflow.signal(name=n.CANCEL)
    def cancel(self, request: CancelRequest) -> None:
        """Cancel the job: stops a machine run and releases the reservation."""
        if self._cancel is None:
            self._cancel = request

    @workflow.signal(name=n.RESUME)
    def resume(self, request: ResumeRequest) -> None:
        """A technician allows a new run after an interrupted one."""
        if self._status == "interrupted" and not self._run_active:
            self._resume = request

    @workflow.query(name=n.STATUS_QUERY)
    def status(self) -> JobView:
        """Where the job is now, as the customer may see it."""
        job = self._job
        running = self._status in _MACHINE_STATES
        return JobView(
            job_id=self._job_id,
            status=self._status,
            reason=view.customer_reason(self._status, self._reason),
            retry_count=self._retry_count,
            attempt=self._attempt,
            queue_position=self._queue_position,
            machine_id=self._machine_id,
            progress=self._progress,
            design_url=self._design_url,
            history=tuple(self._history),
            item_id=job.item_id if job else "",
            text=job.text if job else (),
            due_date=job.due_date if job else "",
            rush=job.rush if job else False,
            eta=self._eta if running else None,
            timeline=tuple(self._timeline),
            steps=view.steps(
                self._timeline, self._status, requires_design=bool(job and job.requires_design)
            ),
            awaiting=self._awaiting,
            awaiting_until=self._awaiting_until if self._awaiting else None,
            alternatives=self._alternatives if self._awaiting else (),
            design_revision=self._revision,
            rating=self._rating if self._rating_done else None,
        )

    def _result(self, job: EngravingJob) -> JobResult:
        return JobResult(
            job_id=job.job_id,
            status=self._status,
            reason=self._reason,
            retry_count=self._retry_count,
            attempts=self._attempt,
            design_url=self._design_url,
            rating=self._rating,
            item_id=self._job.item_id if self._job else job.item_id,
        )

    def _await(self, what: str, timeout: timedelta) -> None:
        """The job now waits for the customer (``what``) until ``timeout`` from now."""
        self._awaiting = what
        self._awaiting_until = (workflow.now() + timeout).isoformat()

    # --- status publication ----------------------------------------------------------------------

    def _set(self, status: str, *, reason: str | None = None) -> None:
        """Enter ``status`` (or re-announce it with new details) and queue its event."""
        now = workflow.now().isoformat()
        if status != self._status or not self._history:
            self._history.append(status)
            self._timeline.append(TimelineEntry(status, now))
        self._status = status
        self._reason = reason
        self._seq += 1
        self._outbox.append(
            JobStatusEvent(
                event_id=f"{self._job_id}:{self._seq}",
                job_id=self._job_id,
                seq=self._seq,
                status=status,
                at=now,
                shop_id=self._shop_id,
                reason=view.customer_reason(status, reason),
                retry_count=self._retry_count,
                queue_position=self._queue_position,
                machine_id=self._machine_id,
                progress=self._progress,
                design_url=self._design_url,
            )
        )

    async def _publisher(self) -> None:
        """Publish queued status events in order: one by one, or in batches when patched."""
        if self._batched:
            await self._report_batches()
            return
        while True:
            await workflow.wait_condition(lambda: bool(self._outbox))
            self._publishing = True
            event = self._outbox.pop(0)
            try:
                # a regular activity, not a local one: a local activity's marker racing with
                # the flow's activity commands made replays non-deterministic under load
                await workflow.execute_activity(
                    n.PUBLISH_STATUS,
                    event,
                    task_queue=n.ORDERS_TASK_QUEUE,
                    start_to_close_timeout=call.PUBLISH.start_to_close,
                    retry_policy=call.PUBLISH.retry,
                )
            except ActivityError as err:
                workflow.logger.warning("job %s: status not published: %s", self._job_id, err)
            finally:
                self._publishing = False

    async def _report_batches(self) -> None:
        """Send everything queued (statuses, then notices) in one ``report_status`` call.

        A batch ends before a status queued after a notice, so statuses and notices keep the
        order they were queued in. While a report is on its way, new ones queue for the next.
        """
        while True:
            await workflow.wait_condition(lambda: bool(self._outbox) and not self._holding)
            self._publishing = True
            statuses: list[JobStatusEvent] = []
            notices: list[Notification] = []
            while self._outbox:
                item = self._outbox[0]
                if isinstance(item, JobStatusEvent):
                    if notices:
                        break
                    statuses.append(item)
                else:
                    notices.append(item)
                self._outbox.pop(0)
            try:
                await workflow.execute_activity(
                    n.REPORT_STATUS,
                    StatusReport(self._job_id, tuple(statuses), tuple(notices)),
                    task_queue=n.ORDERS_TASK_QUEUE,
                    start_to_close_timeout=call.PUBLISH.start_to_close,
                    retry_policy=call.PUBLISH.retry,
                )
            except ActivityError as err:
                workflow.logger.warning("job %s: status not reported: %s", self._job_id, err)
            finally:
                self._publishing = False
