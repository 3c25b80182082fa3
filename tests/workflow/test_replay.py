"""Replay every recorded history against today's EngravingWorkflow: a change must not break them.

The histories in ``histories/`` were recorded from earlier versions of the workflow (see its
README); running jobs of those versions must keep replaying after a change, which is what
``workflow.patched`` is for. No server is needed: the Replayer feeds the recorded events to the
workflow code and fails on the first command that does not match them.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.converter import DataConverter
from temporalio.worker import Replayer
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

from crown_edge.workflow.workflow import EngravingWorkflow

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))
#: The v1 (21), v2 (33) and v3 (33) recordings (``python -m tests.workflow.record_histories
#: --list``).
MIN_HISTORIES = 87


def replayer() -> Replayer:
    """A Replayer set up like the real ``crown-orders`` worker.

    ``crown_edge.cloud.starter.workflow_worker`` builds its ``Worker`` with the default sandbox
    runner and interceptors, on a client from ``Client.connect`` with the default data converter.
    Should the worker ever get a codec, a converter or sandbox passthroughs, pass the same here.
    """
    return Replayer(
        workflows=[EngravingWorkflow],
        workflow_runner=SandboxedWorkflowRunner(),
        data_converter=DataConverter.default,
    )


def test_the_recorded_histories_are_all_there() -> None:
    assert len(HISTORIES) >= MIN_HISTORIES, [p.name for p in HISTORIES]


@pytest.fixture(params=HISTORIES, ids=[p.stem for p in HISTORIES])
def history(request: pytest.FixtureRequest) -> WorkflowHistory:
    """One recorded history, named after its file."""
    path: Path = request.param
    return WorkflowHistory.from_json(path.stem, path.read_text())


@pytest.mark.asyncio(loop_scope="session")
async def test_history_replays_without_nondeterminism(history: WorkflowHistory) -> None:
    assert history.events, f"{history.workflow_id} holds no events"

    result = await replayer().replay_workflow(history)

    assert result.replay_failure is None
