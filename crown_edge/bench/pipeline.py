"""``crown-edge bench pipeline``: orders through the whole flow on ``up``, against bare Temporal.

First a few orders one at a time on the idle workshop (``concurrency["1"]``, and how long a
walk-in customer waits from the order to the laser's first line); then N text orders POSTed
to the Order API by :data:`CONCURRENCY` customers at once and followed to ``complete`` on the full
stack with zero-time simulated lasers (motion time 0, automatic QA): SQS, dispatcher, workflow,
workshop activities, scheduler, GRBL streaming at 1 Mbaud, store, MQTT. In the same run, on the
same Temporal server, N bare workflows each run as many no-op activities as one of our jobs did
(counted from a job's history), started the way the dispatcher starts ours once the stack has
gone idle. ``throughput_ratio`` = our jobs/s ÷ bare workflows/s. The bare run is repeated on
an in-memory dev server (``bare_memory_*``): the difference is what Temporal's SQLite file
costs. ``stages`` gives p50/p99 of each gap of the jobs' timelines
(:mod:`crown_edge.workflow.timeline`).

The customers order from a process of their own (:mod:`crown_edge.bench.customers`): an
``accept`` figure is the POST's round trip as a customer sees it, not partly the customers' own
work inside the server's interpreter.

``cpu_s_while_ours`` / ``cpu_s_while_bare``: the CPU each process of the stack used during our
run and the bare one (this one, ``bench``, holds the cloud side and the bare worker;
``customers`` the customers), a figure the box's other load barely moves. ``waits``: from
the histories, how long workflow tasks and each activity waited for a worker (``queue``) and
then took (``run``).
``door``: what the Order API's answer waits on, the intake journal's commit and this process's
event-loop lag.

The job-events queue is emptied by :func:`~crown_edge.stack.consume_events`, a stand-in for the
downstream consumer, in batches as a real consumer takes them: one receive and one delete per
batch of up to ten (nearly one request per event before: 214 requests for the 155 events of 13
jobs, 69 now).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from crown_edge.bench import percentile
from crown_edge.config import MachineConfig
from crown_edge.stack import EVENTS_LINGER_S, consume_events

__all__ = ["EVENTS_LINGER_S", "consume_events"]  # re-exported: the bench's events consumer

#: customers ordering at once in the throughput run (each order is its own customer); the idle
#: run orders one at a time, each after the previous one finished
CONCURRENCY = 8
#: run the workshop daemon as its own process (see StackSettings.edge_process)
EDGE_PROCESS = True
#: seconds the stack is left alone before the bare baseline (trailing status events, timers)
SETTLE_S = 3.0


def _log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _order(i: int) -> dict[str, Any]:
    return {
        "job_id": f"BENCH-{i:05d}",
        "customer_id": f"C-{i % 13}",
        "item_id": ("plaque-a5", "trophy-plate", "plaque-small")[i % 3],
        "due_date": "2026-12-24",
        "text": ["Club Champion", f"No. {i}"],
        "rush": i % 5 == 0,
    }


def _figures(accept: list[float]) -> dict[str, Any]:
    return {
        "orders": len(accept),
        "accept_p50_ms": round(statistics.median(accept), 2),
        "accept_p99_ms": round(percentile(accept, 0.99), 2),
    }


def stage_table(timelines: list[list[dict[str, Any]]]) -> dict[str, dict[str, float]]:
    """p50/p99 ms of each gap (``previous->stage``) across the jobs' timelines."""
    from crown_edge.workflow import timeline

    per_gap: dict[str, list[float]] = {}
    for rows in timelines:
        for name, gap in timeline.gaps(rows).items():
            per_gap.setdefault(name, []).append(gap)
    return {
        name: {
            "p50_ms": round(statistics.median(values), 1),
            "p99_ms": round(percentile(values, 0.99), 1),
            "jobs": len(values),
        }
        for name, values in per_gap.items()
    }


def history_waits(events: Any, into: dict[str, list[float]]) -> None:
    """Append to ``into`` the ms each workflow task and activity of one history waited to be
    picked up (``wt queue``, ``{activity} queue``) and then took (``wt run``, ``{name} run``)."""
    scheduled: dict[int, tuple[str, float]] = {}
    started: dict[int, tuple[str, float]] = {}
    for event in events:
        kind = event.WhichOneof("attributes")
        at = event.event_time.ToMicroseconds() / 1000
        if kind == "workflow_task_scheduled_event_attributes":
            scheduled[event.event_id] = ("wt", at)
        elif kind == "activity_task_scheduled_event_attributes":
            name = event.activity_task_scheduled_event_attributes.activity_type.name
            scheduled[event.event_id] = (name, at)
        elif kind in (
            "workflow_task_started_event_attributes",
            "activity_task_started_event_attributes",
        ):
            attrs = getattr(event, kind)
            name, then = scheduled.get(attrs.scheduled_event_id, ("", at))
            if name:
                into.setdefault(f"{name} queue", []).append(at - then)
                started[attrs.scheduled_event_id] = (name, at)
        elif kind in (
            "workflow_task_completed_event_attributes",
            "activity_task_completed_event_attributes",
        ):
            attrs = getattr(event, kind)
            name, then = started.get(attrs.scheduled_event_id, ("", at))
            if name:
                into.setdefault(f"{name} run", []).append(at - then)


async def _timeline(
    stack: Any, job_id: str, accepted_at: float, waits: dict[str, list[float]] | None = None
) -> list[dict[str, Any]]:
    """The job's stages: the POST's answer, the workflow's history and the workshop's events."""
    from crown_edge.cloud.jobs import history_marks
    from crown_edge.control import call
    from crown_edge.workflow import names, timeline

    history = await stack.client.get_workflow_handle(names.workflow_id(job_id)).fetch_history()
    if waits is not None:
        history_waits(history.events, waits)
    cloud = history_marks(history.events)
    shown = await call(stack.config.control_socket, "jobs.show", {"job_id": job_id})
    edge = timeline.edge_marks(shown.get("events") or [], shown.get("runs") or [])
    # the workshop's own record of a stage comes first, but the job is complete when the
    # workflow recorded it (its mark_complete activity), after the workshop's QA verdict
    edge.pop(timeline.COMPLETE, None)
    marks = {timeline.ACCEPTED: accepted_at, **cloud, **edge}
    if timeline.COMPLETE in cloud:
        marks[timeline.COMPLETE] = cloud[timeline.COMPLETE]
    return timeline.timeline(marks)


class Customers:
    """The customers' process (:mod:`crown_edge.bench.customers`), as an async context manager.

    Started, and ready to post, before the first order is timed: its start-up is not an order's.
    """

    def __init__(self, url: str, key: str) -> None:
        self.url = url
        self.key = key
        self._proc: asyncio.subprocess.Process | None = None

    async def __aenter__(self) -> Customers:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "crown_edge.bench.customers",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        self._proc = proc
        await self._say({"url": self.url, "key": self.key})
        if (await self._next_answer()).get("ready") is not True:
            raise RuntimeError("the customers' process did not start")
        return self

    async def __aexit__(self, *exc: object) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            async with asyncio.timeout(10):
                await proc.wait()
        except TimeoutError:
            proc.kill()
            await proc.wait()

    async def _say(self, message: dict[str, Any]) -> None:
        assert self._proc is not None and self._proc.stdin is not None
        try:
            self._proc.stdin.write((json.dumps(message) + "\n").encode())
            await self._proc.stdin.drain()
        except (BrokenPipeError, ConnectionResetError) as exc:
            raise RuntimeError("the customers' process ended early") from exc

    async def _next_answer(self) -> dict[str, Any]:
        assert self._proc is not None and self._proc.stdout is not None
        line = await self._proc.stdout.readline()
        if not line:
            raise RuntimeError("the customers' process ended early")
        answer: dict[str, Any] = json.loads(line)
        return answer

    async def order(
        self, orders: list[dict[str, Any]], concurrency: int, accept: list[float]
    ) -> list[tuple[str, float]]:
        """POST ``orders``, ``concurrency`` customers at once; (job id, epoch seconds of the
        202) each, in ``orders``' order. Each POST's ms go to ``accept``; a refused order
        raises RuntimeError."""
        await self._say({"orders": orders, "concurrency": concurrency})
        accepted_at: dict[str, float] = {}
        while "done" not in (answer := await self._next_answer()):
            if answer["status"] != 202:
                raise RuntimeError(f"order refused: {answer['status']} {answer['body']}")
            accept.append(float(answer["accept_ms"]))
            accepted_at[str(answer["job_id"])] = float(answer["accepted_at"])
        return [(str(o["job_id"]), accepted_at[str(o["job_id"])]) for o in orders]


async def _bench(n: int, idle_n: int, workdir: Path) -> dict[str, Any]:
    from crown_edge.stack import FullStack, StackSettings
    from crown_edge.workflow import names, timeline

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
        edge_process=EDGE_PROCESS,
        drain_events=False,  # consume_events below takes them off, in batches
    )
    async with (
        FullStack(settings) as stack,
        _consuming_events(stack.cloud.orders),
        Customers(stack.api_url + "/orders", stack.api_key) as customers,
    ):
        _log(f"pipeline: {idle_n} orders one at a time on an idle workshop")
        idle_accept: list[float] = []
        idle_timelines = []
        first_line: list[float] = []
        for i in range(n, n + idle_n):
            posted = time.time()
            [(job_id, accepted_at)] = await customers.order([_order(i)], 1, idle_accept)
            await _finished(stack, job_id)
            rows = await _timeline(stack, job_id, accepted_at)
            idle_timelines.append(rows)
            at = {r["stage"]: r["at"] for r in rows}
            if at.get(timeline.FIRST_LINE) is not None:
                first_line.append((at[timeline.FIRST_LINE] - posted) * 1000)

        _log(f"pipeline: {n} orders through the Order API, {CONCURRENCY} customers at once")
        accept: list[float] = []
        stack.cloud.intake.commit_ms.clear()
        lags: list[float] = []
        lag_task = asyncio.create_task(_loop_lag(lags))
        cpu_before = process_cpu()
        started = time.perf_counter()
        posted_jobs = await customers.order([_order(i) for i in range(n)], CONCURRENCY, accept)
        accept_lags = list(lags)
        await all_reported(stack, [j for j, _ in posted_jobs])
        ours_s = time.perf_counter() - started
        cpu_after = process_cpu()
        lag_task.cancel()
        results = await confirmed(stack, [j for j, _ in posted_jobs])
        commits = list(stack.cloud.intake.commit_ms)
        complete = sum(1 for r in results if r["status"] == "complete")
        waits: dict[str, list[float]] = {}
        timelines = [await _timeline(stack, j, at, waits) for j, at in posted_jobs]
        await asyncio.sleep(SETTLE_S)  # the jobs' last activities (status, notice) settle
        counts = []
        for job_id, _ in posted_jobs[:10]:
            handle = stack.client.get_workflow_handle(names.workflow_id(job_id))
            history = await handle.fetch_history()
            counts.append(
                sum(
                    1
                    for e in history.events
                    if e.WhichOneof("attributes") == "activity_task_scheduled_event_attributes"
                )
            )
        steps = max(counts)
        _log(f"bare: {n} workflows of {steps} no-op activities each, {CONCURRENCY} starts at once")
        bare_cpu_before = process_cpu()
        bare_s = await _bare(stack.client, n, steps)
        bare_cpu_after = process_cpu()
    # the same bare run on an in-memory dev server: how much the SQLite file costs Temporal
    from temporalio.client import Client

    from crown_edge.embedded import TemporalDevServer

    _log("bare: the same on an in-memory Temporal dev server")
    with TemporalDevServer() as memory:
        memory_s = await _bare(await Client.connect(memory.target), n, steps)
    ours = n / ours_s
    bare_rate = n / bare_s
    fig = _figures(accept)
    return {
        "jobs": n,
        "complete": complete,
        "activities_per_job": steps,
        "accept_p50_ms": fig["accept_p50_ms"],
        "accept_p99_ms": fig["accept_p99_ms"],
        "ours_jobs_per_s": round(ours, 3),
        "bare_workflows_per_s": round(bare_rate, 3),
        "throughput_ratio": round(ours / bare_rate, 3),
        "ours_wall_s": round(ours_s, 2),
        "bare_wall_s": round(bare_s, 2),
        "bare_memory_wall_s": round(memory_s, 2),
        "bare_memory_workflows_per_s": round(n / memory_s, 3),
        "concurrency": {"1": _figures(idle_accept), str(CONCURRENCY): fig},
        "order_to_first_line_p50_ms": (
            round(statistics.median(first_line), 1) if first_line else None
        ),
        "order_to_first_line_p99_ms": round(percentile(first_line, 0.99), 1)
        if first_line
        else None,
        "stages": stage_table(timelines),
        "stages_idle": stage_table(idle_timelines),
        "waits": {
            name: {"p50_ms": _ms(values, 0.5), "p99_ms": _ms(values, 0.99), "n": len(values)}
            for name, values in sorted(waits.items())
        },
        "cpu_s_while_ours": {
            name: round(cpu_after[name] - cpu_before.get(name, 0.0), 2)
            for name in sorted(cpu_after)
        },
        "cpu_s_while_bare": {
            name: round(bare_cpu_after[name] - bare_cpu_before.get(name, 0.0), 2)
            for name in sorted(bare_cpu_after)
        },
        "door": {
            "intake_commit_p50_ms": _ms(commits, 0.5),
            "intake_commit_p99_ms": _ms(commits, 0.99),
            "loop_lag_while_ordering_p50_ms": _ms(accept_lags, 0.5),
            "loop_lag_while_ordering_p99_ms": _ms(accept_lags, 0.99),
            "loop_lag_p99_ms": _ms(lags, 0.99),
        },
    }


def process_cpu() -> dict[str, float]:
    """CPU seconds (user + system) of this process and of each of its descendants, by name
    (``bench`` for this one: the cloud side, the bench's customers; the edge daemon, Temporal's
    dev server, moto, mosquitto and further cloud processes are children). Same-named processes
    add up. Linux ``/proc``.
    """
    tick = os.sysconf("SC_CLK_TCK")
    parents: dict[int, int] = {}
    stats: dict[int, tuple[str, float]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        head, _, rest = raw.rpartition(")")
        fields = rest.split()
        pid = int(entry.name)
        parents[pid] = int(fields[1])
        stats[pid] = (
            _proc_name(head.partition("(")[2], cmdline),
            (int(fields[11]) + int(fields[12])) / tick,
        )
    me = os.getpid()
    out: dict[str, float] = {"bench": stats.get(me, ("", 0.0))[1]}
    for pid, (name, cpu) in stats.items():
        ancestor = parents.get(pid)
        while ancestor not in (None, 0, 1, me):
            ancestor = parents.get(ancestor)
        if ancestor == me and pid != me:
            out[name] = out.get(name, 0.0) + cpu
    return out


#: :func:`process_cpu`'s name for cloud processes beyond the bench's own (``crown-edge cloud``)
CLOUD_REPLICAS = "cloud-replicas"


def _proc_name(comm: str, cmdline: list[bytes]) -> str:
    """``cloud-replicas`` for a ``crown-edge cloud`` process, ``edge`` for the workshop
    daemon's Python, ``moto`` for moto's, else the command name."""
    args = [a.decode(errors="replace") for a in cmdline]
    text = " ".join(args)
    if "moto" in text:
        return "moto"
    if "crown_edge.bench.customers" in text:
        return "customers"
    if "crown_edge" in text or "crown-edge" in text:
        return CLOUD_REPLICAS if "cloud" in args else "edge"
    return comm


def _ms(values: list[float], q: float) -> float | None:
    return round(percentile(values, q), 1) if values else None


@contextlib.asynccontextmanager
async def _consuming_events(orders: Any) -> AsyncIterator[None]:
    """:func:`consume_events` runs while this is entered."""
    task = asyncio.create_task(consume_events(orders), name="events-consumer")
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def _loop_lag(lags: list[float], every_s: float = 0.005) -> None:
    """How late this process's event loop wakes a task that sleeps ``every_s`` (ms each)."""
    while True:
        t0 = time.perf_counter()
        await asyncio.sleep(every_s)
        lags.append(max(0.0, (time.perf_counter() - t0 - every_s) * 1000))


async def _bare(client: Any, n: int, steps: int) -> float:
    """Seconds for ``n`` bare workflows of ``steps`` no-op activities, started as the
    dispatcher starts ours (one start call per order, :data:`CONCURRENCY` at once) and run
    by a worker that runs workflows as ours does
    (:func:`~crown_edge.cloud.starter.workflow_runner`)."""
    from temporalio.worker import Worker

    from crown_edge.bench.bare import BARE_QUEUE, BareWorkflow, noop
    from crown_edge.cloud.starter import workflow_runner

    async with Worker(
        client,
        task_queue=BARE_QUEUE,
        workflows=[BareWorkflow],
        activities=[noop],
        workflow_runner=workflow_runner(),  # as ours run
    ):
        starts = asyncio.Semaphore(CONCURRENCY)

        async def bare(i: int) -> None:
            async with starts:
                handle = await client.start_workflow(
                    BareWorkflow.run, steps, id=f"bare-{i}-{time.time_ns()}", task_queue=BARE_QUEUE
                )
            await handle.result()

        t0 = time.perf_counter()
        await asyncio.gather(*(bare(i) for i in range(n)))
        return time.perf_counter() - t0


#: Status words after which a job does no more work (a complete job's workflow stays open for
#: the customer's rating, so the workflow's result is not the end of the work).
FINISHED = frozenset({"complete", "escalated", "cancelled", "failed"})


async def all_finished(
    stack: Any, job_ids: list[str], timeout: float = 900.0
) -> list[dict[str, Any]]:
    """Each job's view once its workflow reported a :data:`FINISHED` status, in ``job_ids``' order:
    :func:`all_reported`, then :func:`confirmed`."""
    await all_reported(stack, job_ids, timeout)
    return await confirmed(stack, job_ids)


#: A job the workshop reported finished whose workflow's own report has not reached the board
#: this long after is asked once (then again as often): another cloud replica ran its activity
#: and the status it shares did not arrive. Never needed in a single cloud process.
ASK_AFTER_S = 5.0


async def all_reported(stack: Any, job_ids: list[str], timeout: float = 900.0) -> None:
    """Return once the workflow of every job in ``job_ids`` reported a :data:`FINISHED` status.

    One watcher looks at the bridge's board (in this process: free to look at) for all of them
    every 50 ms, and takes the workflow's own report (source ``workflow``: what the customer's
    page shows), not the workshop's: the workshop says ``complete`` before the workflow has
    recorded it. Temporal is asked (a workflow query) only for a job whose workflow report is
    :data:`ASK_AFTER_S` late: a query per job while the clock ran loaded the server and the
    workflow worker the benchmark measures.
    """
    pending = set(job_ids)
    late: dict[str, float] = {}  # job → when it is next asked
    async with asyncio.timeout(timeout):
        while pending:
            now = time.monotonic()
            for job_id in list(pending):
                latest = stack.cloud.bridge.board.job(job_id)
                if latest is None or latest.get("status") not in FINISHED:
                    continue
                if latest.get("source") == "workflow":
                    pending.discard(job_id)
                elif now >= late.setdefault(job_id, now + ASK_AFTER_S):
                    late[job_id] = now + ASK_AFTER_S
                    view = await stack.job_view(job_id)
                    if view is not None and view.get("status") in FINISHED:
                        pending.discard(job_id)
            if pending:
                await asyncio.sleep(0.05)


async def confirmed(stack: Any, job_ids: list[str]) -> list[dict[str, Any]]:
    """Each job's view from its workflow (the ``status`` query), in ``job_ids``' order; a job
    with no workflow is ``{"status": "missing"}``. Asked after the clock has stopped."""
    views = []
    for job_id in job_ids:
        view = await stack.job_view(job_id)
        views.append(dict(view) if view is not None else {"job_id": job_id, "status": "missing"})
    return views


async def _finished(stack: Any, job_id: str, timeout: float = 900.0) -> dict[str, Any]:
    """The job's view once its workflow reported a :data:`FINISHED` status."""
    [view] = await all_finished(stack, [job_id], timeout)
    return view


def run(quick: bool = False) -> dict[str, Any]:
    """Run the benchmark; ``quick`` uses 10 jobs (3 on the idle workshop) instead of 60 (10)."""
    import logging

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory(prefix="crown-bench-pipeline-") as tmp:
        return asyncio.run(_bench(10 if quick else 60, 3 if quick else 10, Path(tmp)))
