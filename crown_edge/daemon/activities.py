"""The workshop's Temporal activities, served by the edge daemon on ``crown-edge-{shop_id}``.

Every activity named in :mod:`crown_edge.workflow.names` as a workshop activity is a method of
:class:`EdgeActivities` registered under that exact name; :func:`edge_worker` builds the worker.
The SQLite store is the source of truth: each activity reads and writes it, so each one is
idempotent per job (and per attempt) and a retry after a worker restart or a lost heartbeat picks
up where the first try left off.

Heartbeating, not asynchronous completion
    The requirement is that a machine completion or a QA verdict given while Temporal is
    unreachable, or while the daemon restarts, is kept locally and delivered once the link is
    back. Asynchronous completion (``raise_complete_async`` plus a task token) would need a
    durable token store, a delivery loop, and the workflow-id + activity-id fallback once a
    token goes stale with the attempt that issued it. Heartbeating over the durable store needs
    none of that: the machine worker records the run outcome, and the technician CLI the verdict,
    in SQLite, whatever the link does. The running activity polls the store every ``poll_s`` and
    heartbeats; if Temporal was away (or the daemon restarted), the server retries the activity
    after its heartbeat timeout with the same input, the retry finds the outcome or verdict in
    the store and returns it. Nothing is lost, nothing runs twice: ``send_to_machine`` is keyed
    on (job_id, attempt) - it never enqueues an attempt twice and never re-runs a finished one -
    and ``quality_check`` re-delivers the stored verdict of its attempt.

Interrupted runs stay inside ``send_to_machine``: an ``interrupted`` job waits for the
technician on the workshop (``jobs resume`` moves it back to ``queued`` with the same attempt),
and the activity keeps heartbeating (reporting ``interrupted``) until the run finishes or is
scrapped. So the activity never returns ``outcome = "interrupted"``; a scrapped run returns
``failed``. Cancellation is acted on only when Temporal asked for it (``cancel_requested``): a
heartbeat timeout or a worker shutdown must not stop a job that is physically running.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from temporalio import activity
from temporalio.client import Client
from temporalio.exceptions import ApplicationError
from temporalio.worker import Worker

from crown_edge.catalog import Catalog
from crown_edge.config import EdgeConfig
from crown_edge.daemon.fit import alternative_items, fit_text
from crown_edge.daemon.jobs import JobOps
from crown_edge.daemon.programs import text_estimate
from crown_edge.daemon.report import RunReporter
from crown_edge.daemon.runs import auto_verdict, due_at_of, run_result
from crown_edge.errors import (
    ConfigError,
    IllegalTransition,
    NoInventory,
    UnknownItem,
    UnknownJob,
)
from crown_edge.lifecycle import TERMINAL, JobEvent
from crown_edge.models import IntakeMessage, JobStatus
from crown_edge.scheduler import Scheduler
from crown_edge.store import Job, Store
from crown_edge.workflow import names as n

log = logging.getLogger(__name__)

S = JobStatus
QA_MODES = ("manual", "auto")
#: ApplicationError type when the job ended on the workshop (cancelled there, scrapped...).
ERR_JOB_CLOSED = "JobClosed"
#: Due date recorded when ``validate_job`` creates the job; ``send_to_machine`` sets the real one.
UNKNOWN_DUE = "9999-12-31T00:00:00+00:00"

_RUNNING = frozenset({S.QUEUED, S.ENGRAVING, S.INTERRUPTED})
_BLOCK_TYPES = {reason: err for err, reason in n.BLOCKING_ERRORS.items()}
_RELEASE_EVENTS: dict[str, tuple[JobEvent, ...]] = {
    "cancelled": (JobEvent.CANCEL,),
    "failed": (JobEvent.FAIL,),
    "escalated": (JobEvent.ESCALATE, JobEvent.FAIL),
    "revision_requested": (JobEvent.START_DESIGN, JobEvent.DESIGN_READY, JobEvent.REJECT),
    **{reason: (JobEvent.BLOCK, JobEvent.FAIL) for reason in n.BLOCKING_ERRORS.values()},
}


#: Statuses of the jobs an activity may be waiting on (``send_to_machine``, ``quality_check``).
_WATCHED = (S.QUEUED, S.ENGRAVING, S.INTERRUPTED, S.QA_PENDING)
#: At most this many of them in one shared read; a job beyond it is read on its own.
_WATCHED_LIMIT = 5000


class ActiveJobs:
    """The jobs activities wait on, read once per store change for all of them.

    Every committed change used to wake every waiting activity (a run waiting for its machine,
    a QA waiting for its verdict), each reading its own job: with sixty jobs in flight that made
    sixty reads per commit, queued in the store's one connection thread ahead of the writes, and
    the workshop's activities (validate, enqueue, complete) waited seconds behind them. Now one
    read of every watched job follows a change, and only the waiters whose job's row differs
    from what they last saw are woken; a job not in that read (it left the watched statuses, or
    is past the limit) wakes its waiters and is read on its own. A waiter also wakes after its
    timeout (``poll_s``), and :meth:`get` never returns a read older than ``max_age_s``.
    """

    def __init__(self, store: Store, max_age_s: float) -> None:
        self.store = store
        self.max_age_s = max_age_s
        self._version = 0
        self._loaded_version = -1
        self._loaded_at = -1e18
        self._jobs: dict[str, Job] = {}
        self._refresher: asyncio.Task[None] | None = None
        self._waiters: dict[str, list[tuple[Job, asyncio.Future[None]]]] = {}
        #: resolved when the read under way (or the next one) completes, then replaced
        self._round: asyncio.Future[None] | None = None
        #: Shared reads made so far (how many store reads the waiters needed).
        self.reads = 0

    def changed(self) -> None:
        """The store committed a change: read again (now, when someone waits)."""
        self._version += 1
        if self._waiters:
            self._kick()

    def _kick(self) -> asyncio.Task[None]:
        if self._refresher is None or self._refresher.done():
            self._refresher = asyncio.create_task(self._refresh(), name="active-jobs")
        return self._refresher

    async def _refresh(self) -> None:
        """Read until the read is as new as the latest change; wake whose job changed.

        Each completed read resolves :attr:`_round`, so a caller of :meth:`get` waits for one
        read that began after its change, never for the store to fall quiet (under a steady
        stream of commits this loop may go on for a long time).
        """
        while True:
            version = self._version
            try:
                jobs = await self.store.list_jobs([str(s) for s in _WATCHED], limit=_WATCHED_LIMIT)
            except BaseException as exc:
                round_, self._round = self._round, None
                if round_ is not None and not round_.done():
                    if isinstance(exc, Exception):
                        round_.set_exception(exc)
                    else:
                        round_.cancel()
                raise
            self.reads += 1
            self._jobs = {job.job_id: job for job in jobs}
            self._loaded_version = version
            self._loaded_at = time.monotonic()
            for job_id, waiting in self._waiters.items():
                now = self._jobs.get(job_id)
                for seen, woken in waiting:
                    if (now is None or now != seen) and not woken.done():
                        woken.set_result(None)
            round_, self._round = self._round, None
            if round_ is not None and not round_.done():
                round_.set_result(None)
            if self._version == version:
                return

    def _next_read(self) -> asyncio.Future[None]:
        """A future resolved when the refresher's next read completes (it is started)."""
        if self._round is None:
            self._round = asyncio.get_running_loop().create_future()
        read = self._round
        self._kick()
        return read

    async def get(self, job_id: str) -> Job:
        """The job as of the latest change (UnknownJob when the store has none)."""
        wanted = self._version
        while self._loaded_version < wanted or time.monotonic() - self._loaded_at >= self.max_age_s:
            if self._loaded_version >= wanted:  # fresh enough by version, too old by age
                self._version += 1
                wanted = self._version
            await asyncio.shield(self._next_read())
        found = self._jobs.get(job_id)
        return found if found is not None else await self.store.get_job(job_id)

    async def wait_change(self, job_id: str, seen: Job, timeout: float) -> None:
        """Until the job's row is no longer ``seen`` (or it left the watched statuses), or
        ``timeout`` seconds pass."""
        if self._loaded_version == self._version and self._jobs.get(job_id) != seen:
            return  # the latest read already differs
        woken: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (seen, woken)
        self._waiters.setdefault(job_id, []).append(entry)
        try:
            if self._loaded_version < self._version:
                self._kick()  # a change the latest read does not hold yet
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await woken
        finally:
            waiting = self._waiters.get(job_id, [])
            if entry in waiting:
                waiting.remove(entry)
            if not waiting:
                self._waiters.pop(job_id, None)


def refuse(err_type: str, message: str) -> ApplicationError:
    """A non-retryable ApplicationError of ``err_type`` with a human-readable reason."""
    return ApplicationError(message, message, type=err_type, non_retryable=True)


def closed(job: Job) -> ApplicationError:
    """The refusal for a job that ended on the workshop.

    A cancelled job is ``JobCancelled`` with the technician's reason as the message (the workflow
    ends the job ``cancelled`` with it); any other end is ``JobClosed``.
    """
    if job.status is S.CANCELLED:
        return refuse(n.ERR_JOB_CANCELLED, job.reason or "cancelled on the workshop")
    return refuse(ERR_JOB_CLOSED, f"job {job.job_id} is {job.status} on the workshop")


class EdgeActivities:
    """The workshop activities over one store, scheduler and catalogue.

    ``qa_mode`` ``manual`` waits for the technician's verdict; ``auto`` passes a run whose every
    line was acknowledged without alarm or interlock. ``poll_s`` is how often waiting activities
    read the store (and heartbeat). ``jobs``: the daemon's job service (cancels go through it);
    one of its own when not given.
    """

    def __init__(
        self,
        store: Store,
        scheduler: Scheduler,
        catalog: Catalog,
        *,
        jobs: JobOps | None = None,
        qa_mode: str = "manual",
        poll_s: float = 0.5,
        signal_every_s: float = 5.0,
        position_every_s: float = 5.0,
        cancel_wait_s: float = 30.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if qa_mode not in QA_MODES:
            raise ConfigError("edge", "qa_mode", f"got {qa_mode!r}", ", ".join(QA_MODES))
        if poll_s <= 0:
            raise ConfigError("edge", "poll_s", f"got {poll_s!r}", "a number > 0")
        self.store = store
        self.scheduler = scheduler
        self.catalog = catalog
        self.jobs = jobs or JobOps(store, scheduler, catalog, standalone=False, clock=clock)
        self.qa_mode = qa_mode
        self.poll_s = poll_s
        self.signal_every_s = signal_every_s
        self.position_every_s = position_every_s
        self.cancel_wait_s = cancel_wait_s
        self._clock = clock
        # a waiting activity wakes when its job's row changed (one read, shared by all of them,
        # after each committed change) or after poll_s
        self.active = ActiveJobs(store, poll_s)
        store.on_commit.append(self._on_commit)

    @classmethod
    def from_config(
        cls,
        config: EdgeConfig,
        store: Store,
        scheduler: Scheduler,
        catalog: Catalog,
        jobs: JobOps,
        **options: Any,
    ) -> EdgeActivities:
        """The workshop activities as the edge config sets them up (``qa_mode``)."""
        return cls(store, scheduler, catalog, jobs=jobs, qa_mode=config.qa_mode, **options)

    def _on_commit(self) -> None:
        self.active.changed()

    def activities(self) -> list[Callable[..., Any]]:
        """The workshop activities for ``Worker(activities=...)``."""
        return [
            self.validate_job,
            self.list_alternatives,
            self.release_reservation,
            self.send_to_machine,
            self.quality_check,
            self.mark_complete,
        ]

    # --- validate and stock --------------------------------------------------------------------

    @activity.defn(name=n.VALIDATE_JOB)
    async def validate_job(self, req: n.ValidateJobInput) -> n.ValidateResult:
        """Record the job, check item and text fit, reserve one unit (idempotent per job)."""
        now = self._clock()
        job = await self.store.submit(self._intake(req), now)
        if job.status in TERMINAL:
            raise closed(job)
        if job.item_id != req.item_id:  # the customer took an alternative: the workflow's item
            job = await self.store.switch_item(req.job_id, req.item_id, now)
        item = self.catalog.items.get(req.item_id)
        fit = None if item is None else await asyncio.to_thread(fit_text, item, req.lines, req.font)
        if job.status not in (S.RECEIVED, S.BLOCKED):  # validated before: the same answer
            cap = fit.cap_height_mm if fit is not None else None
            return await self._validated(req, item.material if item else "", cap)
        if item is None or fit is None:
            await self._block(job, "unknown_item", now)
            raise refuse(n.ERR_UNKNOWN_ITEM, f"unknown item {req.item_id!r}")
        if not fit.fits:
            await self._block(job, "text_does_not_fit", now)
            raise refuse(n.ERR_TEXT_DOES_NOT_FIT, fit.reason or "the text does not fit")
        try:
            job = await self.store.validate_and_reserve(req.job_id, now)
        except NoInventory:
            raise refuse(n.ERR_NO_INVENTORY, f"no unit of {req.item_id!r} available") from None
        except UnknownItem:
            await self._block(job, "unknown_item", now)
            raise refuse(n.ERR_UNKNOWN_ITEM, f"item {req.item_id!r} has no stock record") from None
        if job.status is S.BLOCKED:
            err = _BLOCK_TYPES.get(job.reason or "", ERR_JOB_CLOSED)
            raise refuse(err, f"job {req.job_id} is blocked on the workshop ({job.reason})")
        return await self._validated(req, item.material, fit.cap_height_mm)

    async def _validated(
        self, req: n.ValidateJobInput, item_material: str, cap: float | None
    ) -> n.ValidateResult:
        return n.ValidateResult(
            job_id=req.job_id,
            item_id=req.item_id,
            material=req.material or item_material,
            cap_height_mm=cap,
            remaining=await self.store.available_units(req.item_id),
        )

    def _intake(self, req: n.ValidateJobInput) -> IntakeMessage:
        # The validate input carries no customer or due date (names.py); later inputs fill in.
        return IntakeMessage(
            job_id=req.job_id,
            customer_id=req.customer_id or "unknown",
            item_id=req.item_id,
            due_date=req.due_date or UNKNOWN_DUE,
            text=tuple(req.lines),
            rush=req.rush,
            font=req.font,
            material=req.material,
            shop_id=req.shop_id,
            requires_design=req.requires_design,
        )

    async def _block(self, job: Job, reason: str, now: float) -> None:
        if job.status is S.RECEIVED:  # a held reservation is never blocked here
            await self.store.apply_if_allowed(job.job_id, (JobEvent.BLOCK,), now, reason=reason)

    @activity.defn(name=n.LIST_ALTERNATIVES)
    async def list_alternatives(self, req: n.AlternativesInput) -> n.AlternativesResult:
        """In-stock items whose engraving area takes the same text, best first."""
        stock = {row.item_id: row.available for row in await self.store.list_stock()}
        found = await asyncio.to_thread(
            alternative_items, self.catalog, req.item_id, stock, req.lines, req.font, req.limit
        )
        return n.AlternativesResult(
            tuple(n.Alternative(i.item_id, i.name, i.material, count) for i, count in found)
        )

    @activity.defn(name=n.RELEASE_RESERVATION)
    async def release_reservation(self, req: n.ReleaseInput) -> None:
        """Give the unit back (write it off when engraved) and end the job as ``reason`` says."""
        reason = req.reason.strip().lower().replace(" ", "_")
        events = _RELEASE_EVENTS.get(reason, ())
        job = await self.store.release(
            req.job_id, self._clock(), engraved=req.engraved, events=events, reason=reason
        )
        if job is not None and not events and job.status is not S.ENGRAVING:
            log.info("job %s: released (%s), state %s kept", req.job_id, reason, job.status)

    @activity.defn(name=n.MARK_COMPLETE)
    async def mark_complete(self, req: n.CompleteInput) -> None:
        """Consume the reserved unit and mark the job complete (one idempotent transaction)."""
        job = await self.store.apply_if_allowed(
            req.job_id, (JobEvent.COMPLETE,), self._clock(), settle="consumed"
        )
        if job.status is not S.COMPLETE:
            log.warning("job %s: mark_complete in state %s", req.job_id, job.status)

    # --- machine run ---------------------------------------------------------------------------

    @activity.defn(name=n.SEND_TO_MACHINE)
    async def send_to_machine(self, req: n.MachineRunInput) -> n.MachineRunResult:
        """Queue the job once per (job_id, attempt), wait for the run, return its outcome."""
        try:
            done = await self._begin_run(req)
            return done if done is not None else await self._watch_run(req)
        except asyncio.CancelledError:
            details = activity.cancellation_details()
            if details is not None and details.cancel_requested:
                await self._cancel_run(req)
            raise

    async def _begin_run(self, req: n.MachineRunInput) -> n.MachineRunResult | None:
        """Enqueue this attempt unless it is queued or done already; a result when done."""
        for _ in range(5):
            try:
                job = await self.store.get_job(req.job_id)
            except UnknownJob:
                raise refuse(ERR_JOB_CLOSED, f"job {req.job_id} unknown on the workshop") from None
            if job.attempt > req.attempt:
                return await self._result(req, job)
            if job.attempt == req.attempt and job.status not in (S.VALIDATED, S.APPROVED):
                return None if job.status in _RUNNING else await self._result(req, job)
            event = self._start_event(req, job)
            if event is None:
                return await self._result(req, job)
            now = self._clock()
            if event is JobEvent.ENQUEUE:
                due_at = due_at_of(req.due_date)
                if due_at is not None:
                    await self.store.set_schedule_details(
                        req.job_id,
                        due_date=req.due_date,
                        due_at=due_at,
                        artwork_url=req.artwork_url,
                    )
            estimate = await self._estimate(req)
            try:
                await self.scheduler.enqueue(
                    req.job_id, now, event=event, attempt=req.attempt, estimate_s=estimate
                )
            except IllegalTransition:
                continue  # another try of this activity moved the job meanwhile: look again
            log.info("job %s: attempt %s queued (%s)", req.job_id, req.attempt, event)
            return None
        raise ApplicationError(f"job {req.job_id}: state keeps changing", type="Busy")

    def _start_event(self, req: n.MachineRunInput, job: Job) -> JobEvent | None:
        """The event that queues a new attempt from the job's state; None when it is over."""
        if job.status in (S.VALIDATED, S.APPROVED, S.QA_FAILED, S.INTERRUPTED):
            if self._eligible(job.item_id):
                return {
                    S.QA_FAILED: JobEvent.REENGRAVE,
                    S.INTERRUPTED: JobEvent.RESTART,
                }.get(job.status, JobEvent.ENQUEUE)
            raise refuse(n.ERR_NO_ELIGIBLE_MACHINE, f"no machine can engrave {job.item_id!r}")
        if job.status in (S.QUEUED, S.ENGRAVING):
            raise ApplicationError(
                f"job {req.job_id}: attempt {job.attempt} still runs", type="AttemptRunning"
            )
        if job.status is S.BLOCKED:
            err = _BLOCK_TYPES.get(job.reason or "", ERR_JOB_CLOSED)
            raise refuse(err, f"job {req.job_id} is blocked ({job.reason})")
        if job.status is S.RECEIVED:
            raise ApplicationError(f"job {req.job_id} is not validated yet", type="NotValidated")
        return None

    async def _estimate(self, req: n.MachineRunInput) -> float | None:
        item = self.catalog.items.get(req.item_id)
        if item is None:
            return None
        material = self.catalog.material(req.material or item.material)
        return await asyncio.to_thread(
            text_estimate, item, req.lines, req.font, material, req.job_id
        )

    def _eligible(self, item_id: str) -> bool:
        try:
            return self.scheduler.mask_for(item_id) != 0
        except UnknownItem:
            return False

    async def _watch_run(self, req: n.MachineRunInput) -> n.MachineRunResult:
        """Heartbeat (and signal) the run's progress until this attempt leaves the machines."""
        reporter = RunReporter(req.job_id, req.attempt, signal_every_s=self.signal_every_s)
        position: int | None = None
        position_at = -1e18
        last_status: JobStatus | None = None
        while True:
            job = await self.active.get(req.job_id)
            if job.attempt != req.attempt or job.status not in _RUNNING:
                job = await self.store.get_job(req.job_id)  # its own read: the way out
                if job.status is S.CANCELLED and job.attempt == req.attempt:
                    await self._cancelled_here(req, job, reporter)
                return await self._result(req, job)
            if job.status is S.QUEUED:
                tick = time.monotonic()
                if last_status is not S.QUEUED or tick - position_at >= self.position_every_s:
                    position = await self.scheduler.position(req.job_id)
                    position_at = tick
            else:
                position = None
            last_status = job.status
            await reporter.report(
                str(job.status),
                queue_position=position,
                machine_id=job.machine_id,
                progress=job.progress,
                reason=job.reason if job.status is S.INTERRUPTED else None,
            )
            await self.active.wait_change(req.job_id, job, self.poll_s)

    async def _cancelled_here(
        self, req: n.MachineRunInput, job: Job, reporter: RunReporter
    ) -> None:
        """A technician cancelled the job on the workshop: have the workflow cancel too.

        Once the ``cancel`` signal is delivered the workflow cancels this activity (and ends the
        job ``cancelled``); meanwhile keep heartbeating. Without a link, fall through to a
        ``failed`` result naming the cancellation.
        """
        if not await reporter.ask_cancel(job.reason or "cancelled on the workshop"):
            return
        waited = 0.0
        while waited < self.cancel_wait_s:
            activity.heartbeat({"status": "cancelled", "attempt": req.attempt})
            await asyncio.sleep(self.poll_s)  # a bounded wait for the workflow's cancel
            waited += self.poll_s

    async def _result(self, req: n.MachineRunInput, job: Job) -> n.MachineRunResult:
        return run_result(job, await self.store.runs(req.job_id), req.attempt)

    async def _cancel_run(self, req: n.MachineRunInput) -> None:
        """Stop this attempt: cancel it, or ask the machine worker and wait a while for it (the
        workflow settles the unit itself, with ``release_reservation``)."""
        await self.jobs.cancel(
            req.job_id,
            "cancelled by the workflow",
            settle_stock=False,
            strict=False,
            wait_s=self.cancel_wait_s,
            on_wait=lambda: activity.heartbeat({"status": "cancelling", "attempt": req.attempt}),
        )

    # --- QA ------------------------------------------------------------------------------------

    @activity.defn(name=n.QUALITY_CHECK)
    async def quality_check(self, req: n.QaInput) -> n.QaResult:
        """Wait for (or, in auto mode, give) the verdict of (job_id, attempt) and deliver it.

        Between full looks (the verdict, the job, its runs) it waits until the job's row
        changes (a verdict moves the job on in the same transaction) or ``poll_s`` passes.
        """
        while True:
            found = await self.store.deliver_verdict(req.job_id, req.attempt, self._clock())
            if found is not None:
                return n.QaResult(found.passed, found.notes, found.by)
            job = await self.store.get_job(req.job_id)
            current = job.attempt == req.attempt
            auto = (
                auto_verdict(await self.store.runs(req.job_id), req.attempt)
                if self.qa_mode == "auto" and current and job.status is S.QA_PENDING
                else None
            )
            if auto is not None:  # None: a technician sent it to QA and gives the verdict
                passed, notes = auto
                await self.store.record_verdict(
                    req.job_id, req.attempt, passed, notes, "auto", self._clock()
                )
                continue
            if current and job.status is S.COMPLETE:
                return n.QaResult(True, "complete on the workshop", "workshop")
            if current and job.status is S.QA_FAILED:
                return n.QaResult(False, job.reason or "failed on the workshop", "workshop")
            if job.status in TERMINAL:
                raise closed(job)
            await self._wait_job_change(req, job)

    async def _wait_job_change(self, req: n.QaInput, job: Job) -> None:
        """Heartbeat, then wait until ``job``'s row changes or ``poll_s`` passes."""
        activity.heartbeat(
            {"status": str(job.status), "attempt": req.attempt, "waiting": "qa_verdict"}
        )
        await self.active.wait_change(req.job_id, job, self.poll_s)


def edge_worker(
    client: Client,
    activities: EdgeActivities,
    task_queue: str,
    *,
    max_concurrent_activities: int = 1000,
    **worker_options: Any,
) -> Worker:
    """The worker serving the workshop activities on ``task_queue`` (``crown-edge-{shop_id}``).

    Every queued job holds one waiting ``send_to_machine`` and every engraved one a waiting
    ``quality_check``, so the activity slot limit is far above the SDK's default.
    """
    return Worker(
        client,
        task_queue=task_queue,
        activities=activities.activities(),
        max_concurrent_activities=max_concurrent_activities,
        **worker_options,
    )


__all__ = ["EdgeActivities", "edge_worker", "refuse"]
