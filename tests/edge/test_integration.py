"""The real EngravingWorkflow on the time-skipping test server with the real edge activities.

Cloud activities run on ``crown-orders``, the workshop activities of :class:`EdgeActivities` on
``crown-edge-{shop}`` over a real store and scheduler; a fake machine worker claims and finishes
the queued job as the daemon would, and a technician passes QA in the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from temporalio.testing import WorkflowEnvironment

from crown_edge.catalog import Catalog
from crown_edge.cloud.activities import CloudActivities
from crown_edge.cloud.starter import start_job, workflow_worker
from crown_edge.daemon.activities import EdgeActivities, edge_worker
from crown_edge.lifecycle import JobEvent
from crown_edge.models import IntakeMessage, JobStatus
from crown_edge.scheduler import Scheduler
from crown_edge.store import Store
from crown_edge.workflow import names as n
from tests.edge.support import FakeMachine, wait_status

SHOP = "edge-it"
_THROTTLE = timedelta(milliseconds=50)


def _test_server() -> str:
    path = Path(sys.executable).parent / "temporal-test-server"
    if not path.exists():
        pytest.skip(f"temporal-test-server not found at {path}")
    return str(path)


async def machine_worker(machine: FakeMachine) -> None:
    """Claim every queued job and finish it cleanly, forever (cancelled by the test)."""
    while True:
        job = await machine.scheduler.claim_next(machine.machine_id, time.time())
        if job is None:
            await asyncio.sleep(0.02)
            continue
        await asyncio.sleep(0.1)  # engraving
        await machine.end(job.job_id, acked=20, total=20)


async def qa_pass(store: Store, job_id: str) -> None:
    """The technician's ``qa pass`` for attempt 1."""
    await store.record_verdict(job_id, 1, True, "looks right", "tech-1", time.time())


@pytest.mark.integration
async def test_workflow_completes_on_the_edge(
    store: Store, scheduler: Scheduler, catalog: Catalog, tmp_path: Path
) -> None:
    events: list[tuple[str, dict[str, Any]]] = []
    cloud = CloudActivities(tmp_path / "designs", catalog, sink=lambda k, p: events.append((k, p)))
    edge = EdgeActivities(store, scheduler, catalog, poll_s=0.02, signal_every_s=0.1)
    throttle: dict[str, Any] = {
        "max_heartbeat_throttle_interval": _THROTTLE,
        "default_heartbeat_throttle_interval": _THROTTLE,
    }
    msg = IntakeMessage.parse(
        {
            "job_id": "IT-1",
            "customer_id": "C-9",
            "item_id": "plaque-a5",
            "due_date": "2026-12-24T12:00:00Z",
            "text": ["Club Champion", "2026"],
        }
    )
    env = await WorkflowEnvironment.start_time_skipping(test_server_existing_path=_test_server())
    machine = asyncio.create_task(machine_worker(FakeMachine(store, scheduler)))
    try:
        async with (
            workflow_worker(env.client, cloud, **throttle),
            edge_worker(env.client, edge, n.workshop_task_queue(SHOP), **throttle),
        ):
            handle = await start_job(env.client, msg, default_shop_id=SHOP)
            await wait_status(store, "IT-1", JobStatus.QA_PENDING)
            await qa_pass(store, "IT-1")
            result = await handle.result()
            # a technician cancels a queued job on the workshop: the workflow ends cancelled
            await scheduler.set_paused("laser-1", True)
            other = await start_job(env.client, replace(msg, job_id="IT-2"), default_shop_id=SHOP)
            await wait_status(store, "IT-2", JobStatus.QUEUED)
            await store.transition("IT-2", JobEvent.CANCEL, time.time(), sets={"reason": "phone"})
            cancelled = await other.result()
    finally:
        machine.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await machine
        await env.shutdown()
    assert (result.status, result.attempts, result.retry_count) == ("complete", 1, 0)
    job = await store.get_job("IT-1")
    assert job.status is JobStatus.COMPLETE
    row = next(r for r in await store.list_stock() if r.item_id == "plaque-a5")
    assert (row.reserved, row.consumed) == (0, 1)
    runs = await store.runs("IT-1")
    assert [(r.attempt, r.outcome) for r in runs] == [(1, "completed")]
    notes = [p for kind, p in events if kind == "notification" and p["job_id"] == "IT-1"]
    assert [p["kind"] for p in notes] == ["complete"]
    statuses = [p["status"] for kind, p in events if kind == "status" and p["job_id"] == "IT-1"]
    assert statuses[0] == "received" and statuses[-1] == "complete"
    assert {"validated", "queued", "qa_pending"} <= set(statuses)
    assert (cancelled.status, cancelled.reason) == ("cancelled", "phone")
    row = next(r for r in await store.list_stock() if r.item_id == "plaque-a5")
    assert (row.reserved, row.consumed) == (0, 1), "the cancelled job's unit is back"
