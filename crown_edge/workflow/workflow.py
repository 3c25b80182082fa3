"""EngravingWorkflow: one engraving job from intake to complete (deterministic code only).

Flow (docs/architecture.md shows the whole data path)::

    received -> validate_job (reserves a unit) -> validated
        -> [requires_design] designing -> pending_approval -> approved
                             ^-- revision_requested <--+ (changes asked, at most 3 revisions)
        -> queued -> engraving -> qa_pending -> complete (open for a rating, 14 days)
                                            -> qa_failed -> queued ... (3 runs in all) -> escalated
    blocked / no_inventory waits (alternative chosen or restock -> validated; 7 days -> cancelled);
    blocked for another reason, cancelled and failed end the job from wherever it is.

Decisions
    - Live machine details (queue position, machine, progress, interruption reason) come from
      the edge through the ``machine_update`` signal: a workflow cannot read a running
      activity's heartbeats. Updates for another attempt, or outside a run, are ignored.
    - Every status change is published once, in order; progress ticks only update the
      ``status`` query view. Since ``PATCH_BATCHED_STATUS`` one ``report_status`` activity
      carries every status queued while the previous report was on its way, and the customer's
      notice rides with the status that caused it (before: one ``publish_status`` per change
      and a ``notify_customer`` of its own). ``received`` waits for the first ``validate_job``
      and leaves with ``validated`` and ``queued``: on the happy path 4 reports instead of 6-7
      publishes and a notice. Nothing is lost: the run ends only once the outbox is empty.
    - Alternatives for ``no_inventory`` come from the workshop activity ``list_alternatives``
      (the workshop owns stock); ``offer_alternatives`` only sends them.
    - ``cancel`` (signal) and Temporal cancellation both end the job ``cancelled``: the
      running activity is cancelled (a machine run waits for the edge to confirm the stop),
      then the reservation is released, as written off when engraving may have started.
      Once the job reaches an end state, or ``mark_complete`` has begun, cancel is ignored.
    - A run that comes back ``interrupted`` waits for the ``resume`` signal; each physical run
      has its own ``attempt`` and at most ``MAX_ATTEMPTS`` runs are made in all.
    - A job cancelled on the workshop ends ``cancelled`` with the technician's reason.
    - Out of stock, the job waits for the customer's choice among the offered alternatives, for
      the workshop's ``restocked`` signal, or re-validates every ``RESTOCK_RECHECK`` on its own:
      the signal is fast, the timer makes a lost signal (workshop offline when the shelf was
      filled, daemon restarted) only a delay. After ``BLOCKED_WAIT`` the job is cancelled.
    - The rating lives in this workflow: it stays open ``RATING_WINDOW`` after ``complete``
      (status stays ``complete``), takes one ``rate`` update, shows it in ``status`` and
      publishes it with ``record_rating``. The workflow is the job's one durable record in the
      cloud (the Order API keeps no database), so the rating needs no second store, and "rated
      once, only when complete" is decided where the status is known. The cost: the workflow's
      result arrives when the window closes; wait for the ``complete`` status instead.
    - Behaviour added after the v1 histories sits behind ``workflow.patched`` (ids in
      :mod:`crown_edge.workflow.names`): jobs started before it replay unchanged.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

# deterministic modules of our own, imported once and not re-run in every workflow's sandbox
# (re-running the job record's was a sixth of the workflow worker's time under load). Modules
# by their full name: ``from crown_edge.workflow import calls`` is not passed through (importlib
# loads the submodule behind the sandbox's importer) and ran calls.py again for every workflow.
with workflow.unsafe.imports_passed_through():
    import crown_edge.workflow.calls as call
    import crown_edge.workflow.names as n
    from crown_edge.workflow.data import (
        ApprovalDecision,
        CancelRequest,
        DesignInput,
        DesignResult,
        EngravingJob,
        EscalateInput,
        JobResult,
        Notification,
        OfferAlternativesInput,
        RatingEvent,
        RevisionInput,
    )
    from crown_edge.workflow.record import JobRecord


@workflow.defn(name=n.WORKFLOW_NAME)
class EngravingWorkflow(JobRecord):
    """One engraving job; see the module docstring for the states and the contract."""

    # --- entry point -----------------------------------------------------------------------------

    @workflow.run
    async def run(self, job: EngravingJob) -> JobResult:
        """Run the job to an end state and return it."""
        self._job_id = job.job_id
        self._job = job
        self._shop_id = job.workshop
        self._batched = workflow.patched(n.PATCH_BATCHED_STATUS)
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
        self._closing = True  # lets waiting updates answer
        await workflow.wait_condition(lambda: not self._outbox and not self._publishing)
        publisher.cancel()
        return result

    # --- the flow --------------------------------------------------------------------------------

    async def _flow(self, job: EngravingJob) -> JobResult:
        self._stock_held = True  # from here on a reservation may exist; releasing is idempotent
        try:
            # batched: ``received`` waits for the answer and leaves with what follows it
            self._holding = self._batched
            try:
                await self._validate(job, call.VALIDATE)
            finally:
                self._holding = False
        except ActivityError as err:
            if call.was_cancelled(err):
                raise
            ended = await self._workshop_cancelled(job, err)
            if ended is not None:
                return ended
            reason = n.BLOCKING_ERRORS.get(call.error_type(err) or "")
            if reason is None:
                return await self._fail(job, f"validation failed: {err.cause or err}")
            self._stock_held = False
            if reason != "no_inventory":
                return await self._blocked(job, reason)
            unblocked = await self._out_of_stock(job)
            if isinstance(unblocked, JobResult):
                return unblocked
            job = self._job = unblocked
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
            ended = await self._workshop_cancelled(job, err)
            if ended is not None:
                return ended
            return await self._fail(job, f"activity failed: {err.cause or err}")

    async def _validate(self, job: EngravingJob, options: call.ActivityOptions) -> None:
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
            options,
            n.ValidateResult,
        )

    async def _design(self, job: EngravingJob) -> JobResult | None:
        """Design and approval, revised on request; returns a result when the job ends here."""
        comments: list[str] = []
        revise: bool | None = None
        while True:
            self._set("designing")
            try:
                design: DesignResult = await call.cloud(
                    job,
                    n.CREATE_DESIGN,
                    self._design_input(job, comments),
                    call.DESIGN,
                    DesignResult,
                )
            except ActivityError as err:
                if call.was_cancelled(err):
                    raise
                return await self._fail(job, f"design failed: {err.cause or err}")
            self._design_url = design.design_url
            self._set("pending_approval")
            self._await(n.AWAITING_APPROVAL, n.DESIGN_TIMEOUT)
            try:
                await workflow.wait_condition(
                    lambda: self._decision is not None, timeout=n.DESIGN_TIMEOUT
                )
            except TimeoutError:
                self._decision = ApprovalDecision(
                    True, "no answer in 24 h: auto-approved", "timeout"
                )
            self._awaiting = None
            decision = self._decision
            assert decision is not None
            if decision.approved:
                self._set("approved")
                self._decisions_done += 1
                return None
            if revise is None:
                revise = workflow.patched(n.PATCH_DESIGN_REVISIONS)
            if not revise:
                return await self._rejected(job, decision)
            comments.append(decision.comment[: n.COMMENT_MAX])
            if self._revision >= n.MAX_DESIGN_REVISIONS:
                self._decisions_done += 1
                why = f"design rejected {len(comments)} times"
                return await self._escalate(job, why, comments)
            self._revision += 1
            self._set("revision_requested", reason=comments[-1] or None)
            self._decision = None
            self._decisions_done += 1
            await call.cloud_quietly(
                job,
                n.REQUEST_REVISION,
                RevisionInput(
                    job.job_id, job.customer_id, self._design_url, comments[-1], self._revision
                ),
            )

    def _design_input(self, job: EngravingJob, comments: list[str]) -> DesignInput:
        return DesignInput(
            job_id=job.job_id,
            customer_id=job.customer_id,
            item_id=job.item_id,
            lines=job.text,
            font=job.font,
            material=job.material,
            artwork_url=job.artwork_url,
            revision=self._revision,
            comment=comments[-1] if comments else "",
        )

    async def _rejected(self, job: EngravingJob, decision: ApprovalDecision) -> JobResult:
        """Before design revisions: a rejection ends the job ``revision_requested``."""
        self._decisions_done += 1
        self._cancellable = False
        await call.cloud_quietly(
            job,
            n.REQUEST_REVISION,
            RevisionInput(job.job_id, job.customer_id, self._design_url, decision.comment),
        )
        await self._release(job, "revision requested")
        self._set("revision_requested", reason=decision.comment or None)
        return self._result(job)

    # --- out of stock ----------------------------------------------------------------------------

    async def _out_of_stock(self, job: EngravingJob) -> EngravingJob | JobResult:
        """Offer alternatives, then wait for a choice, a restock or the timeout.

        Returns the job to go on with (its item possibly replaced, one unit reserved), or the
        result when it ends here.
        """
        self._cancellable = False
        self._set("blocked", reason="no_inventory")
        alternatives = await self._offer(job)
        if not workflow.patched(n.PATCH_WAIT_FOR_STOCK):
            return self._result(job)
        self._cancellable = True
        self._alternatives = alternatives
        deadline = workflow.now() + n.BLOCKED_WAIT
        self._await(n.AWAITING_ALTERNATIVE, n.BLOCKED_WAIT)
        while True:
            left = deadline - workflow.now()
            if left > timedelta(0):
                with contextlib.suppress(TimeoutError):
                    await workflow.wait_condition(
                        lambda: self._choice is not None or self._restock,
                        timeout=min(n.RESTOCK_RECHECK, left),
                    )
            choice, self._choice, self._restock = self._choice, None, False
            if choice is not None and choice.cancel:
                self._choices_done += 1
                request = CancelRequest(n.REASON_CUSTOMER_CANCELLED, choice.by)
                return await self._cancelled(job, request)
            if choice is None and workflow.now() >= deadline:
                return await self._cancelled(job, CancelRequest(n.REASON_STOCK_TIMEOUT, "timeout"))
            candidate = job
            if choice is not None and choice.item_id:
                candidate = dataclasses.replace(job, item_id=choice.item_id)
            self._stock_held = True
            try:
                await self._validate(candidate, call.REVALIDATE)
            except ActivityError as err:
                if call.was_cancelled(err):
                    raise
                ended = await self._workshop_cancelled(job, err)
                if ended is not None:
                    return ended
                if call.error_type(err) in n.BLOCKING_ERRORS:
                    self._stock_held = False
                workflow.logger.info("job %s: still blocked: %s", job.job_id, err.cause or err)
                if choice is not None:  # the chosen item went too: offer what is left
                    self._alternatives = await self._offer(job)
                    self._set("blocked", reason="no_inventory")
                    self._choices_done += 1
                continue
            self._awaiting = None
            self._alternatives = ()
            if choice is not None:
                self._choices_done += 1  # the update answers once `validated` is set
            return candidate

    async def _offer(self, job: EngravingJob) -> tuple[n.Alternative, ...]:
        """List in-stock alternatives on the workshop and offer them to the customer."""
        try:
            found: n.AlternativesResult = await call.workshop(
                job,
                n.LIST_ALTERNATIVES,
                n.AlternativesInput(job.job_id, job.item_id, job.text, job.font),
                call.SHORT,
                n.AlternativesResult,
            )
            alternatives = found.items
        except ActivityError as err:
            if call.was_cancelled(err):
                raise
            workflow.logger.warning("job %s: no alternatives listed", job.job_id)
            alternatives = ()
        await call.cloud_quietly(
            job,
            n.OFFER_ALTERNATIVES,
            OfferAlternativesInput(job.job_id, job.customer_id, job.item_id, alternatives),
        )
        return alternatives

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
                ended = await self._workshop_cancelled(job, err)
                if ended is not None:
                    return ended
                reason = n.BLOCKING_ERRORS.get(call.error_type(err) or "")
                if reason is not None:
                    await self._release(job, reason)
                    return await self._blocked(job, reason)
                return await self._fail(job, f"machine run failed: {err.cause or err}")
            self._run_active = False
            self._machine_id = run.machine_id or self._machine_id
            self._queue_position = None
            if run.cancel_reason is not None and workflow.patched(n.PATCH_WORKSHOP_CANCEL):
                self._maybe_engraved = self._maybe_engraved or run.acked_lines > 0
                return await self._cancelled(job, CancelRequest(run.cancel_reason, "workshop"))
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
        if workflow.patched(n.PATCH_RATING_WINDOW):
            await self._rating_window(job)
        return self._result(job)

    async def _rating_window(self, job: EngravingJob) -> None:
        """Stay open for the customer's rating; record it when it comes."""
        self._await(n.AWAITING_RATING, n.RATING_WINDOW)
        with contextlib.suppress(TimeoutError):
            await workflow.wait_condition(lambda: self._rating is not None, timeout=n.RATING_WINDOW)
        self._awaiting = None
        rating = self._rating
        if rating is not None:
            await call.cloud_quietly(
                job,
                n.RECORD_RATING,
                RatingEvent(
                    job_id=job.job_id,
                    customer_id=job.customer_id,
                    shop_id=job.workshop,
                    item_id=job.item_id,
                    stars=rating.stars,
                    comment=rating.comment,
                    at=rating.at or "",
                ),
            )
        self._rating_done = True

    async def _blocked(self, job: EngravingJob, reason: str) -> JobResult:
        self._cancellable = False  # an end state: what follows is only telling people
        self._set("blocked", reason=reason)
        if reason == "no_inventory":  # from a machine run: the unit is gone, offer others
            await self._offer(job)
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

    async def _cancelled(
        self, job: EngravingJob, request: CancelRequest | None = None
    ) -> JobResult:
        self._cancellable = False
        self._awaiting = None
        request = request or self._cancel or CancelRequest()
        self._set("cancelled", reason=request.reason or None)
        await self._release(job, "cancelled")
        await self._notify(job, "cancelled", "Your engraving job was cancelled.")
        return self._result(job)

    async def _workshop_cancelled(self, job: EngravingJob, err: ActivityError) -> JobResult | None:
        """End the job ``cancelled`` when a workshop activity says it was cancelled there."""
        if call.error_type(err) != n.ERR_JOB_CANCELLED:
            return None
        if not workflow.patched(n.PATCH_WORKSHOP_CANCEL):
            return None
        cause = err.cause
        reason = cause.message if isinstance(cause, ApplicationError) else ""
        reason = reason or "cancelled on the workshop"
        return await self._cancelled(job, CancelRequest(reason, "workshop"))

    # --- activities ------------------------------------------------------------------------------

    async def _notify(self, job: EngravingJob, kind: str, message: str) -> None:
        note = Notification(job.job_id, job.customer_id, kind, message)
        if self._batched:  # leaves with the status that caused it (the run waits for it)
            self._outbox.append(note)
            return
        await call.cloud_quietly(job, n.NOTIFY_CUSTOMER, note)

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
