"""An in-memory workshop: real activity functions under the workshop activity names.

It keeps stock and reservations like the edge store does (reserve on validate, release, consume
on complete, each idempotent per job), runs "machines" that report through the ``machine_update``
signal, and answers QA from a per-job script of verdicts.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from crown_edge.workflow import names as n
from crown_edge.workflow.data import MachineUpdate

SHOP_ID = "test"
TASK_QUEUE = n.workshop_task_queue(SHOP_ID)


@dataclass
class MachineScript:
    """How the fake machine runs one job: gates to hold it, outcomes, or run until cancelled."""

    hold_queued: asyncio.Event | None = None
    hold: asyncio.Event | None = None
    until_cancelled: bool = False
    outcomes: list[str] = field(default_factory=list)
    queue_position: int = 1
    machine_id: str = "laser-1"
    #: A technician cancels the job on the workshop during the run (the run reports it).
    cancelled_here: str | None = None


@dataclass
class FakeWorkshop:
    """Stock, reservations, machine runs and QA verdicts of one pretend workshop."""

    stock: dict[str, int] = field(default_factory=dict)
    max_lines: dict[str, int] = field(default_factory=dict)
    reservations: dict[str, str] = field(default_factory=dict)
    consumed: list[str] = field(default_factory=list)
    released: list[n.ReleaseInput] = field(default_factory=list)
    qa_verdicts: dict[str, list[bool]] = field(default_factory=dict)
    machines: dict[str, MachineScript] = field(default_factory=dict)
    runs: list[n.MachineRunInput] = field(default_factory=list)
    machine_started: dict[str, asyncio.Event] = field(default_factory=dict)
    machine_stopped: list[str] = field(default_factory=list)
    #: Jobs cancelled on the workshop before QA: quality_check refuses them (JobCancelled).
    qa_cancelled: dict[str, str] = field(default_factory=dict)

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

    def started(self, job_id: str) -> asyncio.Event:
        """Set once the machine run of ``job_id`` reports ``engraving``."""
        return self.machine_started.setdefault(job_id, asyncio.Event())

    @activity.defn(name=n.VALIDATE_JOB)
    async def validate_job(self, req: n.ValidateJobInput) -> n.ValidateResult:
        """Check the item and the fit, reserve one unit (once per job)."""
        if req.item_id not in self.stock:
            raise ApplicationError(req.item_id, type=n.ERR_UNKNOWN_ITEM, non_retryable=True)
        if len(req.lines) > self.max_lines.get(req.item_id, 4):
            raise ApplicationError(
                "too many lines", type=n.ERR_TEXT_DOES_NOT_FIT, non_retryable=True
            )
        if req.job_id not in self.reservations:
            if self.stock[req.item_id] < 1:
                raise ApplicationError(req.item_id, type=n.ERR_NO_INVENTORY, non_retryable=True)
            self.stock[req.item_id] -= 1
            self.reservations[req.job_id] = req.item_id
        return n.ValidateResult(req.job_id, req.item_id, "brass", remaining=self.stock[req.item_id])

    @activity.defn(name=n.LIST_ALTERNATIVES)
    async def list_alternatives(self, req: n.AlternativesInput) -> n.AlternativesResult:
        """Other in-stock items that take at least as many lines, newest stock first."""
        need = len(req.lines)
        found = [
            n.Alternative(item_id, item_id.title(), "brass", count)
            for item_id, count in reversed(self.stock.items())  # newest first
            if item_id != req.item_id and count > 0 and self.max_lines.get(item_id, 4) >= need
        ]
        return n.AlternativesResult(tuple(found[: req.limit]))

    @activity.defn(name=n.RELEASE_RESERVATION)
    async def release_reservation(self, req: n.ReleaseInput) -> None:
        """Give the unit back (or write it off when engraved); a no-op without a reservation."""
        item_id = self.reservations.pop(req.job_id, None)
        if item_id is None:
            return
        self.released.append(req)
        if not req.engraved:
            self.stock[item_id] += 1

    @activity.defn(name=n.SEND_TO_MACHINE)
    async def send_to_machine(self, req: n.MachineRunInput) -> n.MachineRunResult:
        """Queue, engrave, report through ``machine_update``; hold or block when scripted."""
        self.runs.append(req)
        script = self.machines.setdefault(req.job_id, MachineScript())
        handle = activity.client().get_workflow_handle(n.workflow_id(req.job_id))
        await handle.signal(
            n.MACHINE_UPDATE,
            MachineUpdate("queued", req.attempt, queue_position=script.queue_position),
        )
        if script.hold_queued is not None:
            await script.hold_queued.wait()
        await handle.signal(
            n.MACHINE_UPDATE,
            MachineUpdate("engraving", req.attempt, machine_id=script.machine_id, progress=0.5),
        )
        self.started(req.job_id).set()
        if script.until_cancelled:
            try:
                while True:
                    activity.heartbeat(req.attempt)
                    await asyncio.sleep(0.05)
            except asyncio.CancelledError:
                self.machine_stopped.append(req.job_id)
                raise
        if script.hold is not None:
            await script.hold.wait()
        if script.cancelled_here is not None:
            message = f"cancelled on the workshop: {script.cancelled_here}"
            return n.MachineRunResult(
                n.OUTCOME_FAILED,
                script.machine_id,
                3,
                10,
                message=message,
                cancel_reason=script.cancelled_here,
            )
        outcome = script.outcomes.pop(0) if script.outcomes else n.OUTCOME_COMPLETED
        return n.MachineRunResult(outcome, script.machine_id, 10, 10, alarm=None)

    @activity.defn(name=n.QUALITY_CHECK)
    async def quality_check(self, req: n.QaInput) -> n.QaResult:
        """The scripted verdict for this job (pass when none is left)."""
        if req.job_id in self.qa_cancelled:
            reason = self.qa_cancelled[req.job_id]
            raise ApplicationError(reason, reason, type=n.ERR_JOB_CANCELLED, non_retryable=True)
        verdicts = self.qa_verdicts.get(req.job_id, [])
        passed = verdicts.pop(0) if verdicts else True
        return n.QaResult(passed, "" if passed else f"smudged, attempt {req.attempt}", "tech-1")

    @activity.defn(name=n.MARK_COMPLETE)
    async def mark_complete(self, req: n.CompleteInput) -> None:
        """Consume the reservation (once)."""
        if self.reservations.pop(req.job_id, None) is not None:
            self.consumed.append(req.job_id)
