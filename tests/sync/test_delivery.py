"""End-to-end delivery against real mosquitto (TLS, ACLs, persistent sessions), moto's SQS and the
workshop's store + link: nothing lost between workshop and ``crown-trophy-job-events.fifo``."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from crown_edge.cloud.bridge import Bridge
from crown_edge.embedded import MotoServer, MqttBroker
from crown_edge.store import Store
from crown_edge.sync.mqtt import MqttLink
from crown_edge.sync.sqs import OrderQueue
from tests.brokers import needs_mosquitto
from tests.sync.fakes import until
from tests.sync.outage import (
    bridge_settings,
    in_order_once,
    produce,
    read_events_queue,
    run_outage,
    wait_drained,
)

pytestmark = [pytest.mark.integration, needs_mosquitto]


@pytest.mark.parametrize("lose_session", [False, True], ids=["session-kept", "session-lost"])
async def test_outage_longer_than_backoff_bridge_back_last(
    tmp_path: Path, moto_server: MotoServer, lose_session: bool
) -> None:
    """The broker away longer than any back-off, the workshop back before the bridge: every
    event reaches SQS once, in order per job — also when the broker forgot the bridge's
    session (the incident: then only the workshop's retransmits bring them)."""
    figures = await run_outage(
        tmp_path, moto_server, jobs=9, events=6, outage_s=2.0, lose_session=lose_session
    )
    assert figures.produced == 54
    assert figures.delivered == figures.produced
    assert figures.copies_in_queue == figures.produced
    assert figures.in_order


class StuckQueue(OrderQueue):
    """SQS that takes ``limit`` events, then hangs inside the next request: the bridge is
    killed while relaying, with events in its queue and in flight."""

    def __init__(self, client: Any, urls: dict[str, str], limit: int) -> None:
        super().__init__(client, urls)
        self.limit = limit
        self.taken = 0

    async def send_events(self, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if self.taken >= self.limit:
            await asyncio.Event().wait()
        self.taken += len(events)
        return await super().send_events(events)


async def test_bridge_killed_while_relaying_loses_nothing(
    tmp_path: Path, mqtt_broker: MqttBroker, sqs_queues: dict[str, str], sqs: Any
) -> None:
    shop = f"shop-{uuid.uuid4().hex[:6]}"
    identity = f"crown-bridge-{uuid.uuid4().hex[:6]}"
    jobs = [f"K-{i:02d}" for i in range(12)]
    settings = mqtt_broker.workshop_settings(
        shop, poll_interval=0.2, ack_timeout=0.5, ack_timeout_max=1.0
    )
    async with Store.from_path(tmp_path / "edge.db") as store, MqttLink(settings, store) as link:
        store.on_commit.append(link.wake)
        first = Bridge(bridge_settings(mqtt_broker, identity), StuckQueue(sqs, sqs_queues, 20))
        async with first:
            for job in jobs:
                first.jobs.learn(job, shop)
            async with asyncio.timeout(20):
                await first.wait_connected()
            for job in jobs:
                await produce(store, job, 6, time.time())
            await until(lambda: first.relayed >= 20 and first.relay_backlog > 0)
        # killed mid-request: its relay queue and the acks it had not sent are gone
        assert first.relayed < 72
        second = Bridge(bridge_settings(mqtt_broker, identity), OrderQueue(sqs, sqs_queues))
        async with second:
            for job in jobs:
                second.jobs.learn(job, shop)
            await wait_drained(store, 60)
        history = {j: [e["event_id"] for e in await store.events(j)] for j in jobs}
    relayed = read_events_queue(sqs, sqs_queues)
    assert len({e["event_id"] for e in relayed}) == 72
    assert in_order_once(relayed, history)


async def test_a_gap_in_seq_is_replayed(
    tmp_path: Path, mqtt_broker: MqttBroker, sqs_queues: dict[str, str], sqs: Any
) -> None:
    """The row of seq 2 was marked sent without reaching the cloud (what a broker PUBACK did
    before): the bridge holds seq 3.., asks for 2, the workshop replays it from its history."""
    shop = f"shop-{uuid.uuid4().hex[:6]}"
    async with Store.from_path(tmp_path / "edge.db") as store:
        await produce(store, "G-1", 5, time.time())
        with contextlib.closing(sqlite3.connect(store.path)) as db, db:  # damage on purpose
            db.execute("UPDATE outbox SET sent_at = 1 WHERE job_id = 'G-1' AND seq = 2")
        bridge = Bridge(bridge_settings(mqtt_broker, uuid.uuid4().hex), OrderQueue(sqs, sqs_queues))
        async with bridge:
            bridge.jobs.learn("G-1", shop)
            async with asyncio.timeout(20):
                await bridge.wait_connected()
            settings = mqtt_broker.workshop_settings(shop, poll_interval=0.2, ack_timeout=5.0)
            async with MqttLink(settings, store) as link:
                store.on_commit.append(link.wake)
                await wait_drained(store, 60)
                assert link.replays >= 1 and link.replayed >= 1
            assert bridge.replays_requested >= 1
        history = {"G-1": [e["event_id"] for e in await store.events("G-1")]}
    relayed = read_events_queue(sqs, sqs_queues)
    assert in_order_once(relayed, history)


async def test_moto_takes_a_duplicate_once_the_original_is_deleted(
    sqs_queues: dict[str, str], sqs: Any
) -> None:
    """Unlike AWS (five-minute window), moto deduplicates only against messages still queued:
    the tests above read the queue after the run, so a duplicate the bridge let through would
    show; the bridge's own dedup (by job and seq) is what they check."""
    queue = OrderQueue(sqs, sqs_queues)
    event = {"event_id": "dup-1", "job_id": "D-1", "seq": 1, "status": "x"}
    assert await queue.send_events([event]) == []
    assert await queue.send_events([event]) == []
    assert len(read_events_queue(sqs, sqs_queues)) == 1  # deduplicated while queued
    assert await queue.send_events([event]) == []
    assert len(read_events_queue(sqs, sqs_queues)) == 1  # AWS would drop this one
