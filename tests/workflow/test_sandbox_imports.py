"""The workflow's own deterministic modules are imported once, not re-run in every sandbox.

Temporal's sandbox executes the workflow module afresh for each workflow it starts; the modules
``workflow.py`` imports inside ``imports_passed_through()`` must come from the worker's own
``sys.modules``. A ``from package import module`` form does not pass through (importlib fetches
the submodule behind the sandbox importer's back), so ``calls`` used to run again each time.
"""

from __future__ import annotations

import importlib._bootstrap_external as bootstrap
from collections.abc import Iterator
from typing import Any

import pytest
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner
from temporalio.workflow import _Definition

from crown_edge.workflow.workflow import EngravingWorkflow

OWN_PURE_MODULES = (
    "crown_edge.workflow.calls",
    "crown_edge.workflow.names",
    "crown_edge.workflow.data",
    "crown_edge.workflow.record",
)


@pytest.fixture
def executed(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Names of the modules whose code runs while the test runs."""
    names: list[str] = []
    original = bootstrap._LoaderBasics.exec_module

    def exec_module(self: Any, module: Any) -> None:
        names.append(module.__name__)
        original(self, module)

    monkeypatch.setattr(bootstrap._LoaderBasics, "exec_module", exec_module)
    yield names


async def test_a_new_workflow_sandbox_does_not_rerun_the_workflows_pure_modules(
    executed: list[str],
) -> None:
    runner = SandboxedWorkflowRunner()
    definition = _Definition.must_from_class(EngravingWorkflow)
    runner.prepare_workflow(definition)  # builds one sandboxed instance, as a new workflow does
    executed.clear()

    runner.prepare_workflow(definition)

    assert "crown_edge.workflow.workflow" in executed  # the sandbox did run the workflow module
    assert not set(executed) & set(OWN_PURE_MODULES)
