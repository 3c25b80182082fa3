"""EngravingWorkflow: one engraving job from intake to complete (deterministic code only).

Flow (DESIGN.md §1, seed "Temporal Workflow Definition")::

    received -> validate_job (reserves a unit) -> validated
        -> [requires_design] designing -> pending_approval -> approved | revision_requested (end)
        -> queued -> engraving -> qa_pending -> complete
                                            -> qa_failed -> queued ... (3 runs in all) -> escalated
    blocked (no_inventory / text_does_not_fit / unknown_item / no_eligible_machine), cancelled
    and failed end the job from wherever it is.

Decisions
    - Live machine details (queue position, machine, progress, interruption reason) come from
      the edge through the ``machine_update`` signal: a workflow cannot read a running
      activity's heartbeats. Updates for another attempt, or outside a run, are ignored.
    - Every status change is published once, in order, by the ``publish_status`` local
      activity (one marker event per change keeps the history small); progress ticks only
      update the ``status`` query view.
    - Alternatives for ``no_inventory`` come from the workshop activity ``list_alternatives``
      (the workshop owns stock); ``offer_alternatives`` only sends them.
    - ``cancel`` (signal) and Temporal cancellation both end the job ``cancelled``: the
      running activity is cancelled (a machine run waits for the edge to confirm the stop),
      then the reservation is released, as written off when engraving may have started.
      Once the job reaches an end state, or ``mark_complete`` has begun, cancel is ignored.
    - A run that comes back ``interrupted`` waits for the ``resume`` signal; each physical run
      has its own ``attempt`` and at most ``MAX_ATTEMPTS`` runs are made in all.
"""

from __future__ import annotations

import asyncio
import contextlib

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from crown_edge.workflow import calls as call
    from crown_edge.workflow import names as n
    from crown_edge.workflow.data import (
        ApprovalDecision,
        CancelRequest,
        DesignInput,
        DesignResult,
        EngravingJob,
        EscalateInput,
        JobResult,
        JobStatusEvent,
        JobView,
        MachineUpdate,
        Notification,
        OfferAlternativesInput,
        ResumeRequest,
        RevisionInput,
    )

_AWAITING_APPROVAL = ("designing", "pending_approval")
_MACHINE_STATES = ("queued", "engraving", "interrupted")


@workflow.defn(name=n.WORKFLOW_NAME)
class EngravingWorkflow:
    """One engraving job; see the module docstring for the states and the contract."""

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
        self._decision_taken = False
        self._cancel: CancelRequest | None = None
        self._cancellable = True
        self._resume: ResumeRequest | None = None
        self._stock_held = False
        self._maybe_engraved = False
        self._run_active = False
        self._seq = 0
        self._outbox: list[JobStatusEvent] = []
        self._publishing = False
        self._shop_id = ""

    # --- entry point -----------------------------------------------------------------------------

    @workflow.run
    async def run(self, job: EngravingJob) -> JobResult:
        """Run the job to an end state and return it."""
        self._job_id = job.job_id
        self._shop_id = job.workshop
        publisher = asyncio.create_task(self._publisher())
        self._set("received")
        flow = asyncio.create_task(self._flow(job))
        try:
            while not flow.done():
                await workflow.wait_condition(
                    lambda: flow.done() or (self._cancel is not None and self._cancellable)
                )
                if not flow.done() and self._cancel is not None and self._cancellable:
                    break
        except asyncio.CancelledError:
            # Temporal cancellation of the whole workflow: handled like the cancel signal.
            self._cancel = self._cancel or CancelRequest(reason="workflow cancelled", by="temporal")
        if flow.done():
            result = flow.result()
        elif not self._cancellable:
            result = await flow
        else:
            flow.cancel()
            with contextlib.suppress(asyncio.CancelledError, ActivityError):
                await flow
            result = await self._cancelled(job)
        self._decision_taken = True  # lets a waiting approve_design update answer
        await workflow.wait_condition(lambda: not self._outbox and not self._publishing)
        publisher.cancel()
        return result

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
        """Like the signal, but answered: rejected unless a design is awaited; returns the view."""
        self._decision = decision
        await workflow.wait_condition(lambda: self._decision_taken)
        return self.status()

    @approve_design_update.validator
    def _check_approval(self, decision: ApprovalDecision) -> None:
        if self._status not in _AWAITING_APPROVAL or self._decision is not None:
            raise ValueError(f"job {self._job_id} is not awaiting approval ({self._status})")

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
        """Where the job is now."""
        return JobView(
            job_id=self._job_id,
            status=self._status,
            reason=self._reason,
            retry_count=self._retry_count,
            attempt=self._attempt,
            queue_position=self._queue_position,
            machine_id=self._machine_id,
            progress=self._progress,
            design_url=self._design_url,
            history=tuple(self._history),
        )

    # --- the flow --------------------------------------------------------------------------------

    async def _flow(self, job: EngravingJob) -> JobResult:
        self._stock_held = True  # from here on a reservation may exist; releasing is idempotent
        try:
            await call.workshop(
                job,
                n.VALIDATE_JOB,
                n.ValidateJobInput(
                    job_id=job.job_id,
                    item_id=job.item_id,
                    lines=job.text,
                    font=job.font,
                    material=job.material,
                    shop_id=job.workshop,
                    priority=job.priority,
                    rush=job.rush,
                    requires_design=job.requires_design,
                    customer_id=job.customer_id,
                    due_date=job.due_date,
                ),
                call.VALIDATE,
                n.ValidateResult,
            )
        except ActivityError as err:
            if call.was_cancelled(err):
                raise
            reason = n.BLOCKING_ERRORS.get(call.error_type(err) or "")
            if reason is None:
                return await self._fail(job, f"validation failed: {err.cause or err}")
            self._stock_held = False
            return await self._blocked(job, reason)
        self._set("validated")
        try:
            if job.requires_design:
                ended = await self._design(job)
                if ended is not None:
                    return ended
            return await self._make(job)
        except ActivityError as err:
            if call.was_cancelled(err):
                raise
            return await self._fail(job, f"activity failed: {err.cause or err}")

    async def _design(self, job: EngravingJob) -> JobResult | None:
        """Design and approval; returns a result when the job ends here."""
        self._set("designing")
        try:
            design: DesignResult = await call.cloud(
                job,
                n.CREATE_DESIGN,
                DesignInput(
                    job_id=job.job_id,
                    customer_id=job.customer_id,
                    item_id=job.item_id,
                    lines=job.text,
                    font=job.font,
                    material=job.material,
                    artwork_url=job.artwork_url,
                ),
                call.DESIGN,
                DesignResult,
            )
        except ActivityError as err:
            if call.was_cancelled(err):
                raise
            return await self._fail(job, f"design failed: {err.cause or err}")
        self._design_url = design.design_url
        self._set("pending_approval")
        try:
            await workflow.wait_condition(
                lambda: self._decision is not None, timeout=n.DESIGN_TIMEOUT
            )
        except TimeoutError:
            self._decision = ApprovalDecision(True, "no answer in 24 h: auto-approved", "timeout")
        decision = self._decision
        assert decision is not None
        if decision.approved:
            self._set("approved")
            self._decision_taken = True
            return None
        self._decision_taken = True
        self._cancellable = False
        await call.cloud_quietly(
            job,
            n.REQUEST_REVISION,
            RevisionInput(job.job_id, job.customer_id, self._design_url, decision.comment),
        )
        await self._release(job, "revision requested")
        self._set("revision_requested", reason=decision.comment or None)
        return self._result(job)

    async def _make(self, job: EngravingJob) -> JobResult:
        """Machine runs and QA, at most MAX_ATTEMPTS runs, then complete or escalate."""
        qa_notes: list[str] = []
        while True:
            if self._attempt >= n.MAX_ATTEMPTS:
                why = f"{self._attempt} runs, {self._retry_count} failed QA"
                return await self._escalate(job, why, qa_notes)
            self._attempt += 1
            self._queue_position = self._machine_id = self._progress = None
            self._set("queued")
            self._run_active = True
            try:
                run: n.MachineRunResult = await call.workshop(
                    job, n.SEND_TO_MACHINE, self._run_input(job), call.MACHINE, n.MachineRunResult
                )
            except ActivityError as err:
                self._run_active = False
                if call.was_cancelled(err):
                    raise
                reason = n.BLOCKING_ERRORS.get(call.error_type(err) or "")
                if reason is not None:
                    await self._release(job, reason)
                    return await self._blocked(job, reason)
                return await self._fail(job, f"machine run failed: {err.cause or err}")
            self._run_active = False
            self._machine_id = run.machine_id or self._machine_id
            self._queue_position = None
            if run.outcome == n.OUTCOME_INTERRUPTED:
                self._maybe_engraved = True
                self._set("interrupted", reason=run.alarm or run.message)
                await workflow.wait_condition(lambda: self._resume is not None)
                self._resume = None
                continue
            if run.outcome != n.OUTCOME_COMPLETED:
                self._maybe_engraved = self._maybe_engraved or run.acked_lines > 0
                return await self._fail(job, run.message or run.alarm or "machine run failed")
            self._maybe_engraved = True
            self._progress = 1.0
            self._set("qa_pending")
            qa: n.QaResult = await call.workshop(
                job,
                n.QUALITY_CHECK,
                n.QaInput(
                    job.job_id, self._attempt, job.item_id, job.text, run.machine_id, job.priority
                ),
                call.QA,
                n.QaResult,
            )
            if qa.passed:
                return await self._complete(job, run, qa)
            self._retry_count += 1
            qa_notes.append(qa.notes)
            self._set("qa_failed", reason=qa.notes or None)

    def _run_input(self, job: EngravingJob) -> n.MachineRunInput:
        return n.MachineRunInput(
            job_id=job.job_id,
            attempt=self._attempt,
            item_id=job.item_id,
            lines=job.text,
            material=job.material,
            font=job.font,
            rush=job.rush,
            due_date=job.due_date,
            priority=job.priority,
            shop_id=job.workshop,
            design_url=self._design_url,
            artwork_url=job.artwork_url,
        )

    # --- endings ---------------------------------------------------------------------------------

    async def _complete(
        self, job: EngravingJob, run: n.MachineRunResult, qa: n.QaResult
    ) -> JobResult:
        self._cancellable = False  # the item is made; consuming the stock is not undone
        await call.workshop(
            job,
            n.MARK_COMPLETE,
            n.CompleteInput(job.job_id, job.item_id, self._attempt, run.machine_id, qa.by),
            call.STOCK,
        )
        self._stock_held = False
        self._set("complete")
        await self._notify(job, "complete", "Your engraving is complete.")
        return self._result(job)

    async def _blocked(self, job: EngravingJob, reason: str) -> JobResult:
        self._cancellable = False  # an end state: what follows is only telling people
        self._set("blocked", reason=reason)
        if reason == "no_inventory":
            try:
                found: n.AlternativesResult = await call.workshop(
                    job,
                    n.LIST_ALTERNATIVES,
                    n.AlternativesInput(job.job_id, job.item_id, job.text, job.font),
                    call.SHORT,
                    n.AlternativesResult,
                )
                alternatives = found.items
            except ActivityError:
                workflow.logger.warning("job %s: no alternatives listed", job.job_id)
                alternatives = ()
            await call.cloud_quietly(
                job,
                n.OFFER_ALTERNATIVES,
                OfferAlternativesInput(job.job_id, job.customer_id, job.item_id, alternatives),
            )
        else:
            await self._notify(job, "blocked", f"Your job cannot go ahead: {reason}.")
        return self._result(job)

    async def _escalate(self, job: EngravingJob, reason: str, notes: list[str]) -> JobResult:
        self._cancellable = False
        self._set("escalated", reason=reason)
        await call.cloud_quietly(
            job,
            n.ESCALATE,
            EscalateInput(job.job_id, job.customer_id, reason, self._attempt, tuple(notes)),
        )
        await self._release(job, "escalated")
        await self._notify(job, "delayed", "Your engraving needs a manager's attention.")
        return self._result(job)

    async def _fail(self, job: EngravingJob, reason: str) -> JobResult:
        self._cancellable = False
        self._set("failed", reason=reason)
        await call.cloud_quietly(
            job, n.ESCALATE, EscalateInput(job.job_id, job.customer_id, reason, self._attempt)
        )
        await self._release(job, "failed")
        return self._result(job)

    async def _cancelled(self, job: EngravingJob) -> JobResult:
        request = self._cancel or CancelRequest()
        self._set("cancelled", reason=request.reason or None)
        await self._release(job, "cancelled")
        await self._notify(job, "cancelled", "Your engraving job was cancelled.")
        return self._result(job)

    def _result(self, job: EngravingJob) -> JobResult:
        return JobResult(
            job_id=job.job_id,
            status=self._status,
            reason=self._reason,
            retry_count=self._retry_count,
            attempts=self._attempt,
            design_url=self._design_url,
        )

    # --- activities ------------------------------------------------------------------------------

    async def _notify(self, job: EngravingJob, kind: str, message: str) -> None:
        await call.cloud_quietly(
            job, n.NOTIFY_CUSTOMER, Notification(job.job_id, job.customer_id, kind, message)
        )

    async def _release(self, job: EngravingJob, reason: str) -> None:
        if not self._stock_held:
            return
        await call.workshop(
            job,
            n.RELEASE_RESERVATION,
            n.ReleaseInput(job.job_id, job.item_id, reason, engraved=self._maybe_engraved),
            call.STOCK,
        )
        self._stock_held = False

    # --- status publication ----------------------------------------------------------------------

    def _set(self, status: str, *, reason: str | None = None) -> None:
        """Enter ``status`` (or re-announce it with new details) and queue its event."""
        if status != self._status or not self._history:
            self._history.append(status)
        self._status = status
        self._reason = reason
        self._seq += 1
        self._outbox.append(
            JobStatusEvent(
                event_id=f"{self._job_id}:{self._seq}",
                job_id=self._job_id,
                seq=self._seq,
                status=status,
                at=workflow.now().isoformat(),
                shop_id=self._shop_id,
                reason=reason,
                retry_count=self._retry_count,
                queue_position=self._queue_position,
                machine_id=self._machine_id,
                progress=self._progress,
                design_url=self._design_url,
            )
        )

    async def _publisher(self) -> None:
        """Publish queued status events one by one, in order."""
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
