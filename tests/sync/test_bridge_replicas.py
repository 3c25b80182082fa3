"""Two cloud replicas on a real mosquitto (and moto's SQS): a status one replica takes from its
workflow, or an order its Order API accepts, shows on the other's board and live pages; the other
neither relays it to SQS again nor publishes it back."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import pytest

from crown_edge.cloud.bridge import Bridge
from crown_edge.embedded import MqttBroker
from crown_edge.sync import queues
from crown_edge.sync.sqs import OrderQueue
from tests.brokers import needs_mosquitto
from tests.cloud.test_replicas import _ev
from tests.sync.fakes import until

pytestmark = [pytest.mark.integration, needs_mosquitto]


def _replica(broker: MqttBroker, sqs: Any, urls: dict[str, str], name: str) -> Bridge:
    settings = broker.bridge_settings(client_id=f"crown-bridge-{name}", instance=name)
    return Bridge(settings, OrderQueue(sqs, urls))


def _relayed(sqs: Any, urls: dict[str, str]) -> list[dict[str, Any]]:
    got = sqs.receive_message(
        QueueUrl=urls[queues.EVENTS_QUEUE], MaxNumberOfMessages=10, WaitTimeSeconds=0
    ).get("Messages", [])
    return [json.loads(m["Body"]) for m in got]


async def test_a_workflow_status_and_an_accepted_order_reach_the_other_replica(
    mqtt_broker: MqttBroker, sqs_queues: dict[str, str], sqs: Any
) -> None:
    tag = uuid.uuid4().hex[:6]
    job, order = f"J-{tag}", f"J-{tag}-new"  # the broker is shared: ids of our own
    a = _replica(mqtt_broker, sqs, sqs_queues, f"a-{tag}")
    b = _replica(mqtt_broker, sqs, sqs_queues, f"b-{tag}")
    async with a, b:
        async with asyncio.timeout(20):
            await a.wait_connected()
            await b.wait_connected()
        with b.subscribe(job) as live_b, a.subscribe(order) as live_a:
            # A's workflow reports "quality check", then "complete"
            assert a.publish(_ev(1, "quality_check", job))
            assert a.publish(_ev(2, "complete", job))
            async with asyncio.timeout(20):
                assert (await live_b.get())["status"] == "quality_check"
                assert (await live_b.get())["status"] == "complete"
            assert b.board.job(job) == dict(_ev(2, "complete", job), source="workflow")
            assert b.jobs.known(job) == "leeds"

            # B's Order API accepts an order: A's page shows "received" at once
            accepted = b.accept(order)
            async with asyncio.timeout(20):
                assert await live_a.get() == accepted
            assert a.board.job(order) == accepted

            await until(lambda: a.relayed == 2)
            # a marker from A after everything: once B has it, B has had every earlier message
            assert a.publish(_ev(3, "rated", job))
            await until(lambda: b.board.job(job)["seq"] == 3)  # type: ignore[index]
            await until(lambda: a.shared_sent == 3 and a.relayed == 3)
            await asyncio.sleep(0.2)  # room for an echo, if there were one, to come round
    assert (a.shared_sent, b.shared_sent) == (3, 1)  # nothing published back
    assert (a.peer_taken, b.peer_taken) == (1, 3)
    assert b.relayed == 0  # the origin replica alone relays to SQS
    assert a.relayed == 3
    assert a.board.job(job)["seq"] == 3  # type: ignore[index]
    assert sum(a.rejected.values()) + sum(b.rejected.values()) == 0
    relayed = _relayed(sqs, sqs_queues)
    assert sorted(e["seq"] for e in relayed) == [1, 2, 3]
    assert all(e["source"] == "workflow" for e in relayed)


async def test_statuses_taken_while_the_broker_is_away_reach_the_other_replica_later(
    mqtt_broker: MqttBroker, sqs_queues: dict[str, str], sqs: Any
) -> None:
    tag = uuid.uuid4().hex[:6]
    job = f"J-{tag}"
    a = _replica(mqtt_broker, sqs, sqs_queues, f"a-{tag}")
    b = _replica(mqtt_broker, sqs, sqs_queues, f"b-{tag}")
    async with b:
        async with asyncio.timeout(20):
            await b.wait_connected()
        # A has no broker session yet: its statuses wait in its queue
        assert a.publish(_ev(1, "queued", job))
        assert a.publish(_ev(2, "engraving", job))
        assert (a.share_backlog, a.connected) == (2, False)
        with b.subscribe(job) as live_b:
            async with a:
                async with asyncio.timeout(20):
                    assert (await live_b.get())["status"] == "queued"
                    assert (await live_b.get())["status"] == "engraving"
                await until(lambda: a.share_backlog == 0 and a.relayed == 2)
    assert (a.shared_sent, a.share_dropped, b.peer_taken, b.relayed) == (2, 0, 2, 0)
