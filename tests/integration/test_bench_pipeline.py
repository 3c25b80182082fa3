"""The pipeline benchmark's own figures: per-process CPU and the waits read from histories."""

from __future__ import annotations

import asyncio
import http.server
import io
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
from temporalio.client import WorkflowHistory

from crown_edge.bench.customers import serve
from crown_edge.bench.pipeline import Customers, consume_events, history_waits, process_cpu
from crown_edge.errors import SyncError
from crown_edge.sync import queues
from crown_edge.sync.sqs import OrderQueue
from crown_edge.workflow import names as n
from tests.local_http import serving

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


async def test_the_events_consumer_empties_the_queue_in_batches(
    sqs: Any, sqs_queues: dict[str, str]
) -> None:
    orders = OrderQueue(sqs, sqs_queues)
    calls: list[str] = []

    def count(model: Any, **_: Any) -> None:
        calls.append(model.name)

    events = [
        {"event_id": f"e{i}", "job_id": f"J-{i % 4}", "seq": i, "status": "queued"}
        for i in range(25)
    ]
    for start in range(0, len(events), 10):
        assert await orders.send_events(events[start : start + 10]) == []
    sqs.meta.events.register("before-call.sqs", count)
    consumer = asyncio.create_task(consume_events(orders, linger_s=0.05))
    try:
        async with asyncio.timeout(20):
            while True:
                left = sqs.get_queue_attributes(
                    QueueUrl=sqs_queues[queues.EVENTS_QUEUE],
                    AttributeNames=["ApproximateNumberOfMessages"],
                )["Attributes"]["ApproximateNumberOfMessages"]
                if left == "0" and calls.count("DeleteMessageBatch") >= 3:
                    break
                await asyncio.sleep(0.05)
    finally:
        consumer.cancel()
        await asyncio.gather(consumer, return_exceptions=True)
    # 25 events: a few receives of up to ten, each deleted in one request (not 50 requests)
    deletes = calls.count("DeleteMessageBatch")
    assert 3 <= deletes <= 8
    assert calls.count("ReceiveMessage") <= deletes + 3


async def test_the_events_consumer_outlives_a_failing_endpoint() -> None:
    class Down:
        """An endpoint that refuses every receive, then comes back with nothing to give."""

        def __init__(self) -> None:
            self.receives = 0
            self.back = asyncio.Event()

        async def receive(self, name: str, n: int, wait: int) -> list[Any]:
            self.receives += 1
            if self.receives >= 3:
                self.back.set()
            if self.receives == 1:
                raise SyncError("sqs receive_message failed: connection refused")
            return []

        async def delete_batch(self, messages: list[Any]) -> list[Any]:
            raise AssertionError("nothing was received")

    down = Down()
    consumer = asyncio.create_task(consume_events(down, linger_s=0.01))
    try:
        async with asyncio.timeout(10):
            await down.back.wait()  # it went on after the failure (and a 1 s pause)
    finally:
        consumer.cancel()
        await asyncio.gather(consumer, return_exceptions=True)
    assert down.receives >= 3


def test_processes_are_named_by_their_role() -> None:
    from crown_edge.bench.pipeline import CLOUD_REPLICAS, _proc_name

    def name(*argv: str) -> str:
        return _proc_name("python3", [a.encode() for a in argv])

    assert name("python", "-m", "crown_edge", "cloud", "--instance", "c2") == CLOUD_REPLICAS
    assert name("python", "-m", "crown_edge", "run", "--config", "/x/cloud/edge.toml") == "edge"
    assert name("python", "-m", "moto.server", "-p", "1") == "moto"
    assert name("/usr/sbin/mosquitto", "-c", "m.conf") == "python3"
    assert name("python", "-m", "crown_edge.bench.customers") == "customers"


class _OrderApi(http.server.BaseHTTPRequestHandler):
    """202 for an order with the right key, 400 for one whose job id says so, else 401."""

    seen: ClassVar[list[tuple[str, str | None]]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        _OrderApi.seen.append((body["job_id"], self.headers.get("Authorization")))
        if self.headers.get("Authorization") != "Bearer k-1":
            status, answer = 401, {"error": "unauthorized"}
        elif body["job_id"] == "GARBLED":
            data = b"<html>bad gateway</html>"
            self.send_response(502)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        elif body["job_id"] == "BAD":
            status, answer = 400, {"error": "validation_failed"}
        else:
            status, answer = 202, {"job_id": body["job_id"], "status": "accepted"}
        data = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def order_api() -> Iterator[str]:
    _OrderApi.seen = []
    with serving(http.server.ThreadingHTTPServer(("127.0.0.1", 0), _OrderApi)) as url:
        yield f"{url}/orders"


async def test_the_customers_process_posts_orders_and_reports_each_answer(order_api: str) -> None:
    orders = [{"job_id": f"J-{i}", "text": ["A"]} for i in range(12)]
    accept: list[float] = []

    async with Customers(order_api, "k-1") as customers:
        posted = await customers.order(orders, 4, accept)
        one = await customers.order([{"job_id": "J-X"}], 1, accept)

    assert [job for job, _ in posted] == [f"J-{i}" for i in range(12)]
    assert one[0][0] == "J-X"
    assert len(accept) == 13 and all(ms > 0 for ms in accept)
    assert all(at > 0 for _, at in posted)
    # the key went in the Authorization header of every order (and not on a command line)
    assert sorted(_OrderApi.seen) == sorted(
        (o["job_id"], "Bearer k-1") for o in [*orders, {"job_id": "J-X"}]
    )


async def test_a_refused_order_stops_the_benchmark_with_the_api_answer(order_api: str) -> None:
    async with Customers(order_api, "k-1") as customers:
        with pytest.raises(RuntimeError, match=r"order refused: 400 .*validation_failed"):
            await customers.order([{"job_id": "J-1"}, {"job_id": "BAD"}], 2, [])


async def test_an_answer_that_is_not_json_stops_the_benchmark_saying_so(order_api: str) -> None:
    async with Customers(order_api, "k-1") as customers:
        with pytest.raises(RuntimeError, match=r"order refused: 0 .*JSONDecodeError"):
            await customers.order([{"job_id": "GARBLED"}], 1, [])


async def test_a_customers_process_that_died_is_an_error_not_a_hang(order_api: str) -> None:
    async with Customers(order_api, "k-1") as customers:
        assert customers._proc is not None
        customers._proc.kill()
        await customers._proc.wait()
        with pytest.raises(RuntimeError, match="the customers' process ended early"):
            await customers.order([{"job_id": "J-1"}], 1, [])


async def test_a_wrong_key_is_refused_not_posted_as_accepted(order_api: str) -> None:
    async with Customers(order_api, "wrong") as customers:
        with pytest.raises(RuntimeError, match="order refused: 401"):
            await customers.order([{"job_id": "J-1"}], 1, [])


def test_customers_answer_line_by_line_and_report_a_connection_failure() -> None:
    calls: list[tuple[str, str, str | None]] = []

    def post(method: str, url: str, body: Any, key: str | None) -> tuple[int, dict[str, Any]]:
        calls.append((method, url, key))
        if body["job_id"] == "DOWN":
            raise ConnectionRefusedError("connection refused")
        return 202, {"job_id": body["job_id"]}

    lines = [
        json.dumps({"url": "http://api/orders", "key": "k"}),
        json.dumps({"orders": [{"job_id": "A"}, {"job_id": "B"}], "concurrency": 2}),
        "",
        json.dumps({"orders": [{"job_id": "DOWN"}], "concurrency": 1}),
    ]
    out = io.StringIO()

    serve(lines, out, post)

    answers = [json.loads(line) for line in out.getvalue().splitlines()]
    assert answers[0] == {"ready": True}
    assert sorted(a["job_id"] for a in answers[1:3]) == ["A", "B"]
    assert all(a["status"] == 202 and a["accept_ms"] >= 0 for a in answers[1:3])
    assert answers[3] == {"done": 2}
    assert answers[4]["status"] == 0 and "ConnectionRefusedError" in answers[4]["body"]["error"]
    assert answers[5] == {"done": 1}
    assert set(calls) == {("POST", "http://api/orders", "k")}


class _Board:
    def __init__(self, jobs: dict[str, dict[str, Any]]) -> None:
        self.jobs = jobs

    def job(self, job_id: str) -> dict[str, Any] | None:
        return self.jobs.get(job_id)


class _Stack:
    """What ``all_reported`` reads: the bridge's board and the workflow's ``status`` query."""

    def __init__(self, board: dict[str, dict[str, Any]], views: dict[str, str]) -> None:
        self.cloud = type("Cloud", (), {"bridge": type("Bridge", (), {"board": _Board(board)})})
        self.views = views
        self.asked: list[str] = []

    async def job_view(self, job_id: str) -> dict[str, Any] | None:
        self.asked.append(job_id)
        status = self.views.get(job_id)
        return None if status is None else {"job_id": job_id, "status": status}


async def test_the_clock_stops_on_the_workflows_own_report_without_asking_temporal() -> None:
    from crown_edge.bench.pipeline import all_reported

    stack = _Stack({"J-1": {"status": "complete", "source": "workflow"}}, {})
    await all_reported(stack, ["J-1"], timeout=5)
    assert stack.asked == []


async def test_a_job_only_the_workshop_reported_is_asked_once_its_workflow_report_is_late(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from crown_edge.bench import pipeline

    monkeypatch.setattr(pipeline, "ASK_AFTER_S", 0.0)
    stack = _Stack({"J-1": {"status": "complete", "source": "edge:demo"}}, {"J-1": "complete"})
    await pipeline.all_reported(stack, ["J-1"], timeout=5)
    assert stack.asked == ["J-1"]


async def test_a_job_nobody_reported_finished_is_a_timeout_not_a_result() -> None:
    from crown_edge.bench.pipeline import all_reported

    stack = _Stack({"J-1": {"status": "engraving", "source": "workflow"}}, {"J-1": "engraving"})
    with pytest.raises(TimeoutError):
        await all_reported(stack, ["J-1"], timeout=0.2)
    assert stack.asked == []
