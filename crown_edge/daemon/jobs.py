"""One job service for every way a command reaches the workshop.

The control socket (:mod:`crown_edge.daemon.handlers`), MQTT commands (through the same handler
table), the Temporal activities (:mod:`crown_edge.daemon.activities`) and standalone mode all
change jobs through :class:`JobOps`, so each change has one path:

- **cancel**: a job that is not ``engraving`` is cancelled at once (its unit settled in the same
  transaction); an ``engraving`` one is cancelled by its machine worker, never under it: a cancel
  request is written and the worker stops the machine and ends the run (see
  :mod:`crown_edge.store.workshop`);
- **QA**: one verdict writer (:meth:`~crown_edge.store.Store.record_verdict`), then, for jobs the
  daemon runs itself (standalone, walk-in), the workflow's retry policy (:func:`after_qa_fail`);
- **resume** of an interrupted job: one transaction per choice.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from crown_edge.catalog import Catalog
from crown_edge.config import MachineConfig
from crown_edge.daemon.programs import render_program
from crown_edge.daemon.resume import ResumeAdvice, at_program_end, check_to_qa, choose_from_line
from crown_edge.drivers.base import MachineDriver
from crown_edge.drivers.grbl.streamer import position_after
from crown_edge.errors import CrownEdgeError, IllegalTransition, UnknownItem, ValidationError
from crown_edge.lifecycle import JobEvent
from crown_edge.models import Execution, IntakeMessage, JobStatus
from crown_edge.scheduler import Scheduler
from crown_edge.scheduler.queue import queue_columns
from crown_edge.store import Job, Store
from crown_edge.workflow.names import MAX_ATTEMPTS

log = logging.getLogger(__name__)

#: How long a cancel waits for the machine worker to stop an engraving job.
CANCEL_WAIT_S = 30.0
#: How often the wait looks.
CANCEL_POLL_S = 0.1
#: The reason of a job escalated after its last failed QA (the workflow's rule, run locally).
ESCALATED_REASON = f"qa_failed_{MAX_ATTEMPTS}_times"
RESUME_MODES = ("restart", "from_line", "to_qa", "scrap")


def after_qa_fail(attempt: int) -> JobEvent:
    """What follows a failed QA of run ``attempt``: another run, or escalation after
    :data:`~crown_edge.workflow.names.MAX_ATTEMPTS` runs (the order workflow's rule)."""
    return JobEvent.ESCALATE if attempt >= MAX_ATTEMPTS else JobEvent.REENGRAVE


class JobOps:
    """Job operations over one store, scheduler and catalogue.

    ``machines``: the daemon's machine drivers by id (read when a resume locates the head;
    filled once the machines are up). ``wake``: tells idle machine workers to look at the queue.
    ``standalone``: the daemon runs every job's QA policy itself (no workflow).
    """

    def __init__(
        self,
        store: Store,
        scheduler: Scheduler,
        catalog: Catalog,
        *,
        machines: Mapping[str, MachineDriver] | None = None,
        machine_configs: Sequence[MachineConfig] = (),
        standalone: bool = True,
        clock: Callable[[], float] = time.time,
        wake: Callable[[], None] = lambda: None,
        cancel_wait_s: float = CANCEL_WAIT_S,
    ) -> None:
        self.store = store
        self.scheduler = scheduler
        self.catalog = catalog
        self.machines: Mapping[str, MachineDriver] = machines if machines is not None else {}
        self.machine_configs = {m.id: m for m in machine_configs}
        self.standalone = standalone
        self.clock = clock
        self.wake = wake
        self.cancel_wait_s = cancel_wait_s

    # --- intake --------------------------------------------------------------------------------

    async def intake_local(self, msg: IntakeMessage) -> Job:
        """Walk-in intake (no cloud): record, check fit, reserve, queue."""
        now = self.clock()
        # walk-in jobs have no workflow: the daemon applies the QA policy to them itself
        msg = dataclasses.replace(msg, extra={**msg.extra, "origin": "local"})
        job = await self.store.submit(msg, now)
        if job.status is JobStatus.RECEIVED:
            try:
                estimate = (await asyncio.to_thread(render_program, job, self.catalog)).estimate_s
            except CrownEdgeError as exc:
                reason = "unknown_item" if isinstance(exc, UnknownItem) else "text_does_not_fit"
                await self.store.transition(
                    msg.job_id, JobEvent.BLOCK, now, sets={"reason": reason}
                )
                raise
            # validated, unit reserved and queued in one transaction: no workflow would queue it
            job = await self.scheduler.admit(msg.job_id, now, estimate_s=estimate, attempt=1)
            self.wake()
        return job

    # --- cancel --------------------------------------------------------------------------------

    async def cancel(
        self,
        job_id: str,
        reason: str,
        *,
        settle_stock: bool = True,
        strict: bool = True,
        wait: bool = True,
        wait_s: float | None = None,
        on_wait: Callable[[], None] | None = None,
    ) -> Job:
        """Cancel a job; an ``engraving`` one through its machine worker.

        ``settle_stock``: settle the held unit with the cancel (False when the workflow settles
        it itself). ``strict``: a job that cannot be cancelled raises IllegalTransition.
        ``wait``: wait (at most ``wait_s``, default ``cancel_wait_s``) until the worker has
        stopped an engraving job, calling ``on_wait`` at each look (an activity heartbeats);
        without it the job comes back still ``engraving``, its cancel requested.
        """
        deadline = time.monotonic() + (self.cancel_wait_s if wait_s is None else wait_s)
        while True:
            job = await self.store.cancel(
                job_id, reason, self.clock(), settle_stock=settle_stock, strict=strict
            )
            if job.status is not JobStatus.ENGRAVING or not wait:
                return job
            # the worker polls its cancel request; once the run ends the job has moved on
            while job.status is JobStatus.ENGRAVING:
                if time.monotonic() >= deadline:
                    log.warning("job %s: machine has not stopped yet; request left", job_id)
                    return job
                if on_wait is not None:
                    on_wait()
                await asyncio.sleep(CANCEL_POLL_S)
                job = await self.store.get_job(job_id)
            if job.status is JobStatus.CANCELLED:
                return job
            # the run ended some other way first (finished, interrupted): cancel that job now

    # --- QA ------------------------------------------------------------------------------------

    async def record_qa(self, job_id: str, passed: bool, notes: str, by: str) -> Job:
        """A technician's verdict on a ``qa_pending`` job (delivered to the workflow by the QA
        activity); a job the daemon runs itself goes on by the retry policy in the same
        transaction."""
        _, job = await self.store.record_verdict(
            job_id, None, passed, notes, by, self.clock(), after_fail=self._after_qa_fail
        )
        if job.status is JobStatus.QUEUED:
            self.wake()
        return job

    def _after_qa_fail(self, job: Job) -> tuple[JobEvent, dict[str, Any]] | None:
        """The retry policy for jobs without a workflow (standalone, walk-in); pure."""
        if not (self.standalone or job.message.get("origin") == "local"):
            return None  # the workflow decides
        event = after_qa_fail(job.attempt)
        if event is JobEvent.ESCALATE:
            return event, {"reason": ESCALATED_REASON}
        columns = queue_columns(attempt=job.attempt + 1)
        columns["eligible_mask"] = self.scheduler.eligible(job.item_id)
        return event, columns

    # --- resume --------------------------------------------------------------------------------

    async def resume(
        self,
        job_id: str,
        mode: object,
        *,
        line: object = None,
        force: bool = False,
        by: str = "technician",
    ) -> Job:
        """A technician's choice for an interrupted job (``jobs resume``), one transaction."""
        now = self.clock()
        job = await self.store.get_job(job_id)
        if job.status is not JobStatus.INTERRUPTED:
            raise IllegalTransition(job_id, str(job.status), "resume")
        if mode == "restart":
            # the partly engraved unit is scrapped; a fresh one is reserved for the new run
            job = await self.scheduler.enqueue(
                job_id, now, event=JobEvent.RESTART, start_line=0, fresh_unit=True
            )
        elif mode == "from_line":
            if line is not None and not isinstance(line, int):
                raise ValidationError("--from-line needs a line number >= 0")
            advice = await self.resume_advice(job, locate=False)
            start = choose_from_line(advice, line, force=force)
            job = await self.scheduler.enqueue(
                job_id, now, event=JobEvent.RESUME_FROM_LINE, start_line=start
            )
        elif mode == "to_qa":
            check_to_qa(await self.resume_advice(job), force=force)
            job = await self.store.send_to_qa(job_id, now, by=by)
        elif mode == "scrap":
            job = await self.store.scrap(job_id, now)
        else:
            raise ValidationError(
                "an interrupted job needs an explicit choice: "
                "--restart, --from-line [N], --to-qa or --scrap"
            )
        self.wake()
        return job

    async def resume_advice(self, job: Job, *, locate: bool = True) -> ResumeAdvice:
        """The resume facts of an interrupted job: its mark, and whether the machine stands
        idle where the program ends (rendered again: the program is a pure function of the job).

        ``locate`` False skips that last check (and the rendering it needs) where only the
        mark matters."""
        at_end: bool | None = None
        machine = self.machines.get(job.machine_id or "") if locate else None
        cfg = self.machine_configs.get(job.machine_id or "")
        if machine is not None and cfg is not None and job.total_lines:
            position = machine.work_position()
            if position is not None:
                try:
                    program = await asyncio.to_thread(render_program, job, self.catalog, cfg)
                except CrownEdgeError:
                    program = None
                if program is not None and len(program.lines) == job.total_lines:
                    state = machine.state()
                    idle = state.execution in (Execution.READY, Execution.INTERRUPTED)
                    end = position_after(program.lines, len(program.lines))
                    at_end = at_program_end(end, position, idle)
        return ResumeAdvice(job.sent_line, job.last_acked_line, job.total_lines, at_end)
