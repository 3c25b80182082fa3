"""The pipeline benchmark's own figures: per-process CPU and the waits read from histories."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path
from typing import Any

from temporalio.client import WorkflowHistory

from crown_edge.bench.pipeline import consume_events, history_waits, process_cpu
from crown_edge.errors import SyncError
from crown_edge.sync import queues
from crown_edge.sync.sqs import OrderQueue
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
