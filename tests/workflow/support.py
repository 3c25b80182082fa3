"""Helpers shared by the workflow tests: the harness, messages, starting jobs, waiting."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from crown_edge.cloud.starter import start_job
from crown_edge.models import IntakeMessage
from crown_edge.workflow.data import JobResult, JobView
from crown_edge.workflow.workflow import EngravingWorkflow
from tests.workflow.fakes import SHOP_ID, FakeWorkshop

_ids = itertools.count(1)


@dataclass
class CloudEvents:
    """Everything the cloud activities sent to their sink, by kind."""

    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def __call__(self, kind: str, payload: dict[str, Any]) -> None:
        self.events.append((kind, payload))

    def of(self, kind: str, job_id: str) -> list[dict[str, Any]]:
        """Payloads of one kind for one job, in order."""
        return [p for k, p in self.events if k == kind and p.get("job_id") == job_id]


@dataclass
class Harness:
    """What a workflow test needs: the client, the fake workshop and the cloud's events."""

    client: Client
    env: WorkflowEnvironment
    workshop: FakeWorkshop
    events: CloudEvents
    designs_dir: Path


def unique(prefix: str) -> str:
    """An id no other test in the session uses."""
    return f"{prefix}-{next(_ids)}"


def message(job_id: str, item_id: str, **kw: Any) -> IntakeMessage:
    """A valid intake message for ``item_id`` with overrides."""
    data: dict[str, Any] = {
        "job_id": job_id,
        "customer_id": "C-1",
        "item_id": item_id,
        "due_date": "2026-12-01T12:00:00Z",
        "text": ["Champion", "2026"],
    }
    data.update(kw)
    return IntakeMessage.parse(data)


async def start(client: Client, msg: IntakeMessage) -> WorkflowHandle[EngravingWorkflow, JobResult]:
    """Start the job on the test workshop (it names no shop, so the default applies)."""
    return await start_job(client, msg, default_shop_id=SHOP_ID)


async def wait_for(
    handle: WorkflowHandle[EngravingWorkflow, JobResult],
    predicate: Callable[[JobView], bool],
    *,
    tries: int = 800,
) -> JobView:
    """Query ``status`` until ``predicate`` holds (polling, no time assertions)."""
    view: JobView | None = None
    for _ in range(tries):
        view = await handle.query(EngravingWorkflow.status)
        if predicate(view):
            return view
        await asyncio.sleep(0.025)
    raise AssertionError(f"state never reached; last view {view}")


#: End states after which the workflow returns at once (complete waits for a rating first).
_CLOSING = frozenset({"escalated", "failed", "cancelled", "revision_requested"})


async def outcome(
    handle: WorkflowHandle[EngravingWorkflow, JobResult], *, tries: int = 1200
) -> JobView:
    """The job's view once it settled: closed, or waiting for a rating or for stock.

    A complete job stays open for its rating and an out-of-stock one waits for an alternative,
    so ``handle.result()`` is no way to wait for them; this is.
    """
    view: JobView | None = None
    for _ in range(tries):
        view = await handle.query(EngravingWorkflow.status)
        if view.awaiting in ("rating", "alternative"):
            return view
        ended = view.status in _CLOSING or (
            view.status == "blocked" and view.reason != "no_inventory"
        )
        if ended:
            await handle.result()
            return await handle.query(EngravingWorkflow.status)
        await asyncio.sleep(0.025)
    raise AssertionError(f"job never settled; last view {view}")
