"""One worker per machine: claim the next job, check interlocks, stream it, record the outcome.

The worker is the only writer of a machine's runs. The machine returns a typed
:class:`~crown_edge.drivers.base.RunResult`; :func:`crown_edge.daemon.outcome.run_ending` maps
it onto the lifecycle:

- ``completed``  -> ``finish`` (``qa_pending``)
- ``interrupted`` (alarm, lost port, silent controller, door/e-stop, shutdown) -> ``interrupt``;
  the job waits for a technician (``jobs resume``) and is never re-run automatically
- ``failed`` (``error:n``: the controller refused a line) -> ``machine_error`` (``failed``)
- ``cancelled`` (a cancel request from a technician or the workflow, see
  :mod:`crown_edge.store.workshop`) -> the machine is stopped and the job is cancelled
- a fault before the first line was acknowledged -> ``requeue`` so another eligible machine
  takes it (the seed's MACHINE_ERROR handler), and this machine goes UNAVAILABLE.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any

from crown_edge import logs
from crown_edge.catalog import Catalog
from crown_edge.config import MachineConfig
from crown_edge.daemon.outcome import SHUTDOWN, run_ending
from crown_edge.daemon.programs import render_program
from crown_edge.drivers.base import MachineDriver, RunOutcome, RunResult
from crown_edge.errors import CrownEdgeError
from crown_edge.lifecycle import JobEvent
from crown_edge.models import Availability, Execution, MachineState, Surface
from crown_edge.scheduler import Scheduler
from crown_edge.store import Job, RunEnd, Store
from crown_edge.sync.backoff import capped_delay

log = logging.getLogger(__name__)

CANCEL_POLL_S = 0.5  # how often a running job's cancel request is looked for
FAULT_BACKOFF_S = (5.0, 120.0)  # first and longest hold-off after a fault before a job starts
HEARTBEAT_S = 30.0  # an unchanged machine state is re-published this often (its heartbeat)


class MachineWorker:
    """Runs jobs on one machine, one at a time."""

    def __init__(
        self,
        config: MachineConfig,
        machine: MachineDriver,
        store: Store,
        scheduler: Scheduler,
        catalog: Catalog,
        *,
        clock: Callable[[], float] = time.time,
        idle_poll_s: float = 0.5,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        self.config = config
        self.machine = machine
        self.store = store
        self.scheduler = scheduler
        self.catalog = catalog
        self.clock = clock
        self.idle_poll_s = idle_poll_s
        self.on_change = on_change
        self.wake = asyncio.Event()
        self.current: Job | None = None
        self._last_state: MachineState | None = None
        self._last_progress_at = 0.0
        self._first_line: str | None = None  # the job whose first acknowledged line is awaited
        self._last_published = 0.0
        self._pending: set[asyncio.Task[None]] = set()
        self.fault: str | None = None
        self.fault_until = 0.0
        self._faults = 0

    async def publish_state(self, force: bool = False) -> None:
        """Store the machine's state (and queue it for MQTT) when it changed, or as heartbeat."""
        state = self.machine.state()
        if self.clock() < self.fault_until:
            # a fault before the last job could start: keep others' jobs away for a while
            state = MachineState(
                self.config.id,
                Availability.UNAVAILABLE,
                Execution.STOPPED,
                alarm=self.fault,
                progress=state.progress,
            )
        key = (state.availability, state.execution, state.alarm, state.paused)
        last = self._last_state
        now = self.clock()
        unchanged = last is not None and key == (
            last.availability,
            last.execution,
            last.alarm,
            last.paused,
        )
        if not force and unchanged and now - self._last_published < HEARTBEAT_S:
            return
        self._last_state = state
        self._last_published = now
        stamped = MachineState(
            machine_id=self.config.id,
            availability=state.availability,
            execution=state.execution,
            alarm=state.alarm,
            heartbeat_at=self.clock(),
            job_id=self.current.job_id if self.current else None,
            progress=state.progress,
        )
        await self.scheduler.set_machine_state(stamped, self.clock())

    async def run_forever(self) -> None:
        """Claim and run jobs until cancelled."""
        logs.bind(machine_id=self.config.id)  # this worker's log lines name its machine
        await self.publish_state(force=True)
        while True:
            await self.publish_state()
            job = None
            if self.clock() >= self.fault_until:
                job = await self.scheduler.claim_next(self.config.id, self.clock())
            if job is None:
                self.wake.clear()
                # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation
                # that races with the wake-up, and the worker would never stop
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.idle_poll_s):
                        await self.wake.wait()
                continue
            await self.run_job(job)

    async def run_job(self, job: Job) -> None:
        """Run one claimed job to an outcome and record it."""
        self.current = job
        self._first_line = job.job_id
        logs.bind(job_id=job.job_id)
        log.info("job %s: engraving on %s (attempt %s)", job.job_id, self.config.id, job.attempt)
        try:
            try:
                program = await asyncio.to_thread(render_program, job, self.catalog, self.config)
            except CrownEdgeError as exc:
                failed = RunResult(job.job_id, RunOutcome.FAILED, 0, 0, 0, error_text=str(exc))
                await self._finish(job, failed)
                return
            run = asyncio.create_task(
                self.machine.run_program(
                    job.job_id,
                    program.lines,
                    start_line=job.start_line,
                    on_progress=lambda p: self._progress(job, p.last_acked_line, p.total_lines),
                    cylinder=self._is_cylinder(job),
                    on_reserve=lambda line: self.store.mark_sent(job.job_id, line),
                ),
                name=f"run-{self.config.id}-{job.job_id}",
            )
            try:
                cancel_reason = await self._watch_cancel(job, run)
                result = await run
            except asyncio.CancelledError:
                run.cancel()
                raise
            if cancel_reason is not None:
                await self._finish(job, result, cancelled=cancel_reason)
            else:
                await self._finish(job, result)
        except asyncio.CancelledError:
            # daemon shutdown: stop the laser, record an interruption, never re-run it
            with contextlib.suppress(Exception):
                await asyncio.shield(self.machine.stop())
            stopped = RunResult(job.job_id, RunOutcome.INTERRUPTED, 0, 0, 0, reason=SHUTDOWN)
            await asyncio.shield(self._finish(job, stopped))
            raise
        finally:
            self.current = None
            logs.unbind("job_id")
            if self.on_change:
                self.on_change()

    async def _watch_cancel(self, job: Job, run: asyncio.Task[RunResult]) -> str | None:
        """While the run goes on, honour a cancel request (a technician's or the workflow's)."""
        while not run.done():
            await asyncio.wait({run}, timeout=CANCEL_POLL_S)
            if run.done():
                return None
            reason = await self.store.cancel_requested(job.job_id)
            if reason is not None:
                log.warning(
                    "job %s: cancel requested (%s): stopping %s", job.job_id, reason, self.config.id
                )
                await self.machine.stop()
                return reason
        return None

    def _is_cylinder(self, job: Job) -> bool:
        item = self.catalog.items.get(job.item_id)
        return item is not None and item.surface is Surface.CYLINDER

    def _set_fault(self, reason: str, now: float) -> None:
        """Hold this machine out of the queue for a growing while after a start-up fault."""
        self._faults += 1
        hold_off = capped_delay(*FAULT_BACKOFF_S, 2.0, self._faults)
        self.fault = reason
        self.fault_until = now + hold_off
        log.warning("machine %s: %s; taking no jobs for %.0f s", self.config.id, reason, hold_off)

    def _clear_fault(self) -> None:
        self.fault = None
        self.fault_until = 0.0
        self._faults = 0

    def _progress(self, job: Job, acked: int, total: int) -> None:
        now = self.clock()
        if self._first_line == job.job_id and acked > job.start_line:
            self._first_line = None  # the laser fired: the job's timeline keeps when, once
            self._keep(self.store.mark_first_line(job.job_id, now))
        if now - self._last_progress_at < 1.0 and acked < total:
            return
        self._last_progress_at = now
        self._keep(self._store_progress(job.job_id, acked, total, now))

    def _keep(self, write: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(write)
        self._pending.add(task)  # the loop only keeps weak references to tasks
        task.add_done_callback(self._progress_done)

    def _progress_done(self, task: asyncio.Task[None]) -> None:
        self._pending.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("job progress not stored: %s", task.exception())

    async def _store_progress(self, job_id: str, acked: int, total: int, now: float) -> None:
        await self.store.save_progress(job_id, acked, total, now)

    async def _finish(self, job: Job, result: RunResult, cancelled: str | None = None) -> None:
        now = self.clock()
        ending = run_ending(result, cancelled=cancelled)
        sets: dict[str, Any] = {
            "acked_lines": ending.acked_lines,
            "total_lines": ending.total_lines,
            "last_acked_line": ending.last_acked_line,
            "progress": ending.progress,
        }
        if ending.sent_line is not None:
            sets["sent_line"] = ending.sent_line  # exact now that the run is over
        if ending.reason is not None:
            sets["reason"] = ending.reason
        if ending.event is JobEvent.FINISH:
            self._clear_fault()
        elif ending.event is JobEvent.REQUEUE:
            sets["machine_id"] = None  # nothing was engraved: another machine may take it
            self._set_fault(ending.fault or "machine fault", now)
        end = RunEnd(
            ending.outcome,
            ending.acked_lines,
            ending.total_lines,
            ending.last_acked_line,
            ending.detail,
            ending.sent_line,
        )
        # one transaction: the run row, the job's event and outbox row, the cancel request
        try:
            recorded = await self.store.end_run(
                job.job_id,
                self.config.id,
                end,
                ending.event,
                now,
                sets=sets,
                data=ending.payload,
            )
        except CrownEdgeError as exc:
            log.warning("job %s: could not record outcome %s: %s", job.job_id, ending.event, exc)
        else:
            if recorded is None:
                log.info("job %s: no longer engraving; run ended %s", job.job_id, ending.outcome)
        why = ending.reason or ending.fault
        log.info(
            "job %s: %s on %s (%s/%s lines)%s",
            job.job_id,
            ending.outcome,
            self.config.id,
            ending.acked_lines,
            ending.total_lines,
            f": {why}" if why else "",
        )
        await self.publish_state(force=True)
