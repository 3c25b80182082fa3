"""The pipeline benchmark's own figures: per-process CPU and the waits read from histories."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from temporalio.client import WorkflowHistory

from crown_edge.bench.pipeline import history_waits, process_cpu
from crown_edge.workflow import names as n

HISTORY = Path(__file__).parents[1] / "workflow" / "histories" / "v3-text-complete.json"


def test_waits_name_each_workflow_task_and_activity_of_a_history() -> None:
    history = WorkflowHistory.from_json("job", HISTORY.read_text())
    waits: dict[str, list[float]] = {}

    history_waits(history.events, waits)

    assert len(waits["wt queue"]) == len(waits["wt run"]) >= 2
    for name in (n.VALIDATE_JOB, n.SEND_TO_MACHINE, n.QUALITY_CHECK, n.MARK_COMPLETE):
        assert len(waits[f"{name} queue"]) == len(waits[f"{name} run"]) == 1
    assert len(waits[f"{n.REPORT_STATUS} run"]) >= 1
    assert all(ms >= 0 for values in waits.values() for ms in values)


def test_process_cpu_counts_this_process_and_its_children() -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE
    )
    try:
        cpu = process_cpu()
    finally:
        assert child.stdin is not None
        child.stdin.close()
        child.wait(timeout=30)

    assert cpu["bench"] > 0
    assert "python" in cpu or any(name.startswith("python") for name in cpu)
