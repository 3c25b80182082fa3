"""``crown-edge bench pipeline``: orders through the whole flow on ``up``, against bare Temporal.

N text orders are POSTed to the Order API (one at a time, while earlier ones are being made)
and followed to ``complete`` on the full
stack with zero-time simulated lasers (motion time 0, automatic QA): SQS, dispatcher, workflow,
workshop activities, scheduler, GRBL streaming at 1 Mbaud, store, MQTT. In the same run, on the
same Temporal server, N bare workflows each run as many no-op activities as one of our jobs did
(counted from a job's history). ``throughput_ratio`` = our jobs/s ÷ bare workflows/s.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from crown_edge.config import MachineConfig

#: orders in flight at the Order API at once (customers order independently of each other)
CONCURRENCY = 1
#: run the workshop daemon as its own process (see StackSettings.edge_process)
EDGE_PROCESS = True


def _log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _bench(n: int, workdir: Path) -> dict[str, Any]:
    from temporalio.worker import Worker

    from crown_edge.bench.bare import BARE_QUEUE, BareWorkflow, noop
    from crown_edge.stack import FullStack, StackSettings
    from crown_edge.workflow import names

    lasers = tuple(
        MachineConfig(
            id=f"fast-{i}",
            driver="sim",
            baud=1000000,
            materials=("anodised-aluminium", "brass", "acrylic", "wood"),
        )
        for i in range(1, 5)
    )
    settings = StackSettings(
        workdir=workdir,
        lasers=0,
        rotary=False,
        time_scale=0.0,
        qa_mode="auto",
        extra_machines=lasers,
    )
    async with FullStack(settings) as stack:
        _log(f"pipeline: {n} orders through the Order API")
        accept: list[float] = []
        sem = asyncio.Semaphore(CONCURRENCY)

        async def post(i: int) -> str:
            order = {
                "job_id": f"BENCH-{i:05d}",
                "customer_id": f"C-{i % 13}",
                "item_id": ("plaque-a5", "trophy-plate", "plaque-small")[i % 3],
                "due_date": "2026-12-24",
                "text": ["Club Champion", f"No. {i}"],
                "rush": i % 5 == 0,
            }
            async with sem:
                t0 = time.perf_counter()
                status, body = await stack.post_order(order)
                accept.append((time.perf_counter() - t0) * 1000)
            if status != 202:
                raise RuntimeError(f"order refused: {status} {body}")
            return str(order["job_id"])

        started = time.perf_counter()
        jobs = await asyncio.gather(*(post(i) for i in range(n)))
        results = await asyncio.gather(*(_finished(stack, j) for j in jobs))
        ours_s = time.perf_counter() - started
        complete = sum(1 for r in results if r["status"] == "complete")
        handle = stack.client.get_workflow_handle(names.workflow_id(jobs[0]))
        history = await handle.fetch_history()
        steps = sum(
            1
            for e in history.events
            if e.WhichOneof("attributes")
            in ("activity_task_scheduled_event_attributes", "marker_recorded_event_attributes")
        )
        _log(f"bare: {n} workflows of {steps} no-op activities each")
        async with Worker(
            stack.client, task_queue=BARE_QUEUE, workflows=[BareWorkflow], activities=[noop]
        ):
            t0 = time.perf_counter()
            handles = [
                await stack.client.start_workflow(
                    BareWorkflow.run, steps, id=f"bare-{i}-{time.time_ns()}", task_queue=BARE_QUEUE
                )
                for i in range(n)
            ]
            await asyncio.gather(*(h.result() for h in handles))
            bare_s = time.perf_counter() - t0
    ours = n / ours_s
    bare = n / bare_s
    return {
        "jobs": n,
        "complete": complete,
        "activities_per_job": steps,
        "accept_p50_ms": round(statistics.median(accept), 2),
        "accept_p99_ms": round(_pct(accept, 0.99), 2),
        "ours_jobs_per_s": round(ours, 3),
        "bare_workflows_per_s": round(bare, 3),
        "throughput_ratio": round(ours / bare, 3),
        "ours_wall_s": round(ours_s, 2),
        "bare_wall_s": round(bare_s, 2),
    }


#: Status words after which a job does no more work (a complete job's workflow stays open for
#: the customer's rating, so the workflow's result is not the end of the work).
FINISHED = frozenset({"complete", "escalated", "cancelled", "failed"})


async def _finished(stack: Any, job_id: str, timeout: float = 900.0) -> dict[str, Any]:
    """The job's view once it reached a :data:`FINISHED` status (the workflow's query)."""
    async with asyncio.timeout(timeout):
        while True:
            view = await stack.job_view(job_id)
            if view is not None and view.get("status") in FINISHED:
                return dict(view)
            await asyncio.sleep(0.2)


def run(quick: bool = False) -> dict[str, Any]:
    """Run the benchmark; ``quick`` uses 10 jobs instead of 60."""
    import logging

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory(prefix="crown-bench-pipeline-") as tmp:
        return asyncio.run(_bench(10 if quick else 60, Path(tmp)))
