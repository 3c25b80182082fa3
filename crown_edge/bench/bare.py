"""The baseline of the pipeline benchmark: a bare workflow running N no-op activities in a row.

Kept apart and free of side effects because Temporal's sandbox re-imports workflow modules.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import activity, workflow

BARE_QUEUE = "crown-bench-bare"


@activity.defn(name="bench_noop")
async def noop(step: int) -> int:
    """Do nothing, return the step."""
    return step


@workflow.defn(name="BareWorkflow")
class BareWorkflow:
    """``steps`` activities one after the other, like a job's activities."""

    @workflow.run
    async def run(self, steps: int) -> int:
        """Run the activities; returns how many ran."""
        for step in range(steps):
            await workflow.execute_activity(
                "bench_noop", step, start_to_close_timeout=timedelta(seconds=30)
            )
        return steps
