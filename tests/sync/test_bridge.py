"""Bridge against a real broker and moto: relay to job-events, dedup by seq, live fan-out."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import pytest

from crown_edge.cloud.bridge import Bridge
from crown_edge.embedded import MqttBroker
from crown_edge.sync import queues
from crown_edge.sync.mqtt import MqttLink
from crown_edge.sync.sqs import OrderQueue
from tests.sync.fakes import MemoryOutbox, until

pytestmark = pytest.mark.integration


def _ev(seq: int, status: str, job: str = "J-1") -> dict[str, Any]:
    return {"event_id": f"{job}-{seq}", "job_id": job, "seq": seq, "status": status, "at": 1.0}


def _events_queue(sqs: Any, urls: dict[str, str]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    while True:
        got = sqs.receive_message(
            QueueUrl=urls[queues.EVENTS_QUEUE], MaxNumberOfMessages=10, WaitTimeSeconds=0
        ).get("Messages", [])
        if not got:
            return out
        for m in got:
            out.append(json.loads(m["Body"]))
            sqs.delete_message(QueueUrl=urls[queues.EVENTS_QUEUE], ReceiptHandle=m["ReceiptHandle"])


async def test_workshop_events_reach_sqs_and_subscribers(
    mqtt_broker: MqttBroker, sqs_queues: dict[str, str], sqs: Any
) -> None:
    shop = f"shop-{uuid.uuid4().hex[:6]}"
    settings = mqtt_broker.bridge_settings(client_id=uuid.uuid4().hex)
    outbox = MemoryOutbox()
    async with Bridge(settings, OrderQueue(sqs, sqs_queues)) as bridge:
        for job in ("J-1", "J-2"):  # the workflow made them known (test_bridge_trust.py)
            bridge.jobs.learn(job, shop)
        async with asyncio.timeout(20):
            await bridge.wait_connected()
        with bridge.subscribe("J-1") as live, bridge.subscribe() as everything:
            outbox.put("events", _ev(1, "received"))
            outbox.put("events", _ev(2, "queued"))
            outbox.put("events", _ev(2, "queued"))  # resent duplicate
            outbox.put("events", _ev(1, "received"))  # stale
            outbox.put("events", _ev(1, "received", job="J-2"))
            outbox.put("machines/m1/state", {"execution": "ACTIVE"}, retain=True)
            mqtt = mqtt_broker.workshop_settings(shop, poll_interval=0.5)
            async with MqttLink(mqtt, outbox) as link:
                await until(lambda: outbox.pending == [] and bridge.relayed == 3)
                await until(lambda: shop in bridge.board.edges)
                assert bridge.board.edges[shop]["online"] is True
                assert link.connected
            async with asyncio.timeout(10):
                assert (await live.get())["status"] == "received"
                assert (await live.get())["status"] == "queued"
                assert {(await everything.get())["job_id"] for _ in range(3)} == {"J-1", "J-2"}
            await until(lambda: bridge.board.edges[shop]["online"] is False)
        assert bridge.subscriber_count == 0
        assert bridge.board.machines[(shop, "m1")]["execution"] == "ACTIVE"
        assert bridge.board.job("J-1")["status"] == "queued"  # type: ignore[index]
        assert bridge.dropped == 2
    relayed = _events_queue(sqs, sqs_queues)
    assert sorted((e["job_id"], e["seq"]) for e in relayed) == [("J-1", 1), ("J-1", 2), ("J-2", 1)]
    assert all(e["shop_id"] == shop and e["source"] == f"edge:{shop}" for e in relayed)


async def test_malformed_mqtt_payloads_ignored(mqtt_broker: MqttBroker) -> None:
    settings = mqtt_broker.bridge_settings(client_id=uuid.uuid4().hex)
    async with Bridge(settings) as bridge:
        bridge.jobs.learn("J-1", "s")
        async with asyncio.timeout(20):
            await bridge.wait_connected()
        async with mqtt_broker.client(mqtt_broker.workshop("s")) as client:
            await client.publish("crown/v1/s/events", b"garbage", qos=1)
            await client.publish("crown/v1/s/events", json.dumps({"job_id": "x"}), qos=1)
            await client.publish("crown/v1/s/events", json.dumps(_ev(1, "received")), qos=1)
        await until(lambda: bridge.board.job("J-1") is not None)
        assert bridge.dropped == 2
        assert bridge.rejected == {"malformed": 2}
        assert bridge.connected


async def test_cloud_sink_feeds_workflow_statuses() -> None:
    async with Bridge(None) as bridge:
        with bridge.subscribe("J-1") as live:
            await bridge.cloud_sink("status", _ev(1, "validated"))
            await bridge.cloud_sink("design_ready", {"job_id": "J-1"})
            assert (await live.get())["source"] == "workflow"
        assert bridge.board.job("J-1")["status"] == "validated"  # type: ignore[index]


async def test_relay_retries_until_sink_recovers() -> None:
    from crown_edge.errors import SyncError

    class FlakySink:
        def __init__(self) -> None:
            self.calls = 0
            self.sent: list[dict[str, Any]] = []

        async def send_event(self, event: dict[str, Any]) -> str:
            self.calls += 1
            if self.calls < 3:
                raise SyncError("sqs down")
            self.sent.append(event)
            return "ok"

    sink = FlakySink()
    async with Bridge(None, sink) as bridge:
        assert bridge.publish(_ev(1, "received"))
        await until(lambda: bridge.relayed == 1)
    assert sink.sent == [{**_ev(1, "received"), "source": "workflow"}]


class _BatchSink:
    """A batching sink that records the size of every request and the events it took, and can
    be held shut (``open`` cleared: SQS down)."""

    def __init__(self) -> None:
        self.batches: list[int] = []
        self.sent: list[dict[str, Any]] = []
        self.open = asyncio.Event()
        self.open.set()

    async def send_event(self, event: dict[str, Any]) -> str:
        raise AssertionError("a batching sink gets batches")

    async def send_events(self, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        await self.open.wait()
        self.batches.append(len(events))
        self.sent.extend(events)
        return []


@pytest.mark.parametrize(("linger", "expected"), [(0.5, [3]), (0.0, [1, 2])])
async def test_the_relay_waits_a_moment_for_company(linger: float, expected: list[int]) -> None:
    """Events a few milliseconds apart go out in one request when the relay lingers; without a
    linger the first goes alone (SQS counts requests)."""
    sink = _BatchSink()
    async with Bridge(None, sink, relay_linger=linger) as bridge:
        assert bridge.publish(_ev(1, "received"))
        await asyncio.sleep(0.05)  # the relay has taken the first one
        assert bridge.publish(_ev(2, "validated"))
        assert bridge.publish(_ev(3, "queued"))
        await until(lambda: bridge.relayed == 3)
    assert sink.batches == expected


async def test_workflow_statuses_that_echo_the_workshop_stay_off_the_queue() -> None:
    """Each transition reaches the queue once: the workflow's ``queued`` and ``engraving``
    follow the workshop's, which went to the relay first; ``validated`` (the workshop did not
    say it) and ``designing`` (only the workflow knows it) are relayed. Every one reaches the
    board."""
    sink = _BatchSink()
    async with Bridge(None, sink, relay_linger=0.0) as bridge:
        bridge.jobs.learn("J-1", "s1")
        assert bridge.publish(_ev(1, "queued"), source="edge:s1")
        assert bridge.publish(_ev(2, "engraving"), source="edge:s1")
        await until(lambda: bridge.relayed == 2)
        for seq, status in enumerate(("validated", "designing", "queued", "engraving"), 1):
            assert bridge.publish(_ev(seq, status), source="workflow")
        await until(lambda: bridge.relayed == 4)
        await asyncio.sleep(0.05)
        assert bridge.board.job("J-1")["status"] == "engraving"  # type: ignore[index]
    assert [(e["source"], e["status"]) for e in sink.sent] == [
        ("edge:s1", "queued"),
        ("edge:s1", "engraving"),
        ("workflow", "validated"),
        ("workflow", "designing"),
    ]
    assert bridge.echoes.skipped == 2


async def test_an_echo_is_left_out_while_its_twin_waits_for_sqs() -> None:
    """The workshop's ``queued`` waits for SQS (down, say): the workflow's ``queued`` is still
    an echo, since the workshop keeps its event until SQS took it. A workflow status that comes
    before the workshop's goes to the queue, and so does the workshop's."""
    sink = _BatchSink()
    sink.open.clear()
    async with Bridge(None, sink, relay_linger=0.0) as bridge:
        bridge.jobs.learn("J-1", "s1")
        assert bridge.publish(_ev(1, "queued"), source="edge:s1")
        assert bridge.publish(_ev(1, "queued"), source="workflow")
        assert bridge.publish(_ev(2, "engraving"), source="workflow")
        assert bridge.publish(_ev(2, "engraving"), source="edge:s1")
        sink.open.set()
        await until(lambda: bridge.relayed == 3)
    assert [(e["source"], e["status"]) for e in sink.sent] == [
        ("edge:s1", "queued"),
        ("workflow", "engraving"),
        ("edge:s1", "engraving"),
    ]
    assert bridge.echoes.skipped == 1
