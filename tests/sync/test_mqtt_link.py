"""MqttLink against a real broker: ordered store-and-forward, retained state, commands.

No bridge runs here, so events are published (``outbox.tried``) but never acknowledged: the
end-to-end half (acks, retransmits, replays) is in ``test_delivery.py``.
"""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from crown_edge.embedded import MqttBroker
from crown_edge.sync.mqtt import MqttLink, MqttSettings
from tests.brokers import needs_mosquitto
from tests.sync.fakes import MemoryOutbox, until

pytestmark = [pytest.mark.integration, needs_mosquitto]


def _shop() -> str:
    return f"shop-{uuid.uuid4().hex[:8]}"


def _settings(broker: MqttBroker, shop: str) -> MqttSettings:
    return broker.workshop_settings(shop, poll_interval=0.5, backoff_max=0.5)


@asynccontextmanager
async def subscriber(
    broker: MqttBroker, topic: str
) -> AsyncIterator[list[tuple[str, dict[str, Any]]]]:
    """Collect (topic, json payload) received on ``topic`` (as the cloud) while the block runs."""
    received: list[tuple[str, dict[str, Any]]] = []
    async with broker.client(broker.cloud(), identifier=uuid.uuid4().hex) as client:
        await client.subscribe(topic, qos=1)

        async def collect() -> None:
            async for message in client.messages:
                assert isinstance(message.payload, bytes)
                received.append((str(message.topic), json.loads(message.payload)))

        task = asyncio.create_task(collect())
        try:
            yield received
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


async def test_drains_outbox_in_order(mqtt_broker: MqttBroker) -> None:
    shop = _shop()
    outbox = MemoryOutbox()
    for i in range(50):
        outbox.put("events", {"event_id": f"e{i}", "job_id": "j1", "seq": i + 1})
    async with (
        subscriber(mqtt_broker, f"crown/v1/{shop}/events") as got,
        MqttLink(_settings(mqtt_broker, shop), outbox) as link,
    ):
        await until(lambda: len(got) == 50)
        assert [p["seq"] for _, p in got] == list(range(1, 51))
        assert outbox.tried == list(range(1, 51))
        assert outbox.sent == []  # published is not delivered: no ack came
        outbox.put("events", {"event_id": "late", "job_id": "j1", "seq": 51})
        link.wake()
        await until(lambda: len(got) == 51)
    assert got[-1][1]["event_id"] == "late"


async def test_store_and_forward_across_broker_outage() -> None:
    shop = _shop()
    outbox = MemoryOutbox()
    with MqttBroker() as broker:
        async with MqttLink(_settings(broker, shop), outbox) as link:
            await until(lambda: link.connected)
            outbox.put("events", {"event_id": "before", "job_id": "j", "seq": 1})
            link.wake()
            await until(lambda: outbox.unsent == [])

            await broker.astop()
            await until(lambda: not link.connected)
            for i in range(2, 40):
                outbox.put("events", {"event_id": f"e{i}", "job_id": "j", "seq": i})
            link.wake()
            await asyncio.sleep(0.3)
            assert len(outbox.unsent) == 38  # nothing is marked sent without a PUBACK

            outbox.gate.clear()  # hold the drain until our subscriber is listening again
            await broker.astart()
            async with subscriber(broker, f"crown/v1/{shop}/events") as got:
                await until(lambda: link.connected)
                outbox.gate.set()
                link.wake()
                await until(lambda: len(got) == 38)
        assert [p["seq"] for _, p in got][:38] == list(range(2, 40))
        assert outbox.unsent == []
        assert outbox.tried[:39] == list(range(1, 40))
        assert link.connects >= 2


async def test_broker_killed_mid_drain_loses_nothing() -> None:
    shop = _shop()
    outbox = MemoryOutbox()
    for i in range(300):
        outbox.put("events", {"event_id": f"e{i}", "job_id": "j", "seq": i + 1})
    with MqttBroker() as broker:
        async with MqttLink(_settings(broker, shop), outbox) as link:
            await until(lambda: len(outbox.tried) >= 20)
            await broker.astop()
            await broker.astart()
            await until(lambda: outbox.unsent == [], within=60)
            assert link.connects >= 2
    firsts = list(dict.fromkeys(outbox.tried))  # each id's first send, in order
    assert firsts == list(range(1, 301))


async def test_edge_state_retained_online_then_offline(mqtt_broker: MqttBroker) -> None:
    shop = _shop()
    topic = f"crown/v1/{shop}/edge/state"
    async with MqttLink(_settings(mqtt_broker, shop), MemoryOutbox()) as link:
        await until(lambda: link.connected)
        async with subscriber(mqtt_broker, topic) as got:
            await until(lambda: len(got) >= 1)  # the retained value (QoS 1 may repeat it)
            assert all(p["online"] is True for _, p in got)
    async with subscriber(mqtt_broker, topic) as got:
        await until(lambda: len(got) >= 1)
        assert all(p["online"] is False for _, p in got)


async def test_machine_state_is_retained(mqtt_broker: MqttBroker) -> None:
    shop = _shop()
    topic = f"crown/v1/{shop}/machines/m1/state"
    async with MqttLink(_settings(mqtt_broker, shop), MemoryOutbox()) as link:
        link.set_machine_state("m1", {"machine_id": "m1", "execution": "READY"})
        link.set_machine_state("m1", {"machine_id": "m1", "execution": "ACTIVE"})
        await until(lambda: link.connected)
        async with subscriber(mqtt_broker, f"crown/v1/{shop}/machines/+/state") as got:
            await until(lambda: any(t == topic and p["execution"] == "ACTIVE" for t, p in got))


async def test_commands_dispatched_and_malformed_ignored(mqtt_broker: MqttBroker) -> None:
    shop = _shop()
    calls: list[tuple[str, dict[str, Any]]] = []

    async def handler(verb: str, payload: dict[str, Any]) -> None:
        calls.append((verb, payload))
        if verb == "explode":
            raise RuntimeError("handler bug")

    async with MqttLink(_settings(mqtt_broker, shop), MemoryOutbox(), handler) as link:
        await until(lambda: link.connected)
        async with mqtt_broker.client(mqtt_broker.cloud()) as client:
            base = f"crown/v1/{shop}/commands/"
            await client.publish(base + "cancel", b"not json", qos=1)
            await client.publish(base + "cancel", b"[1, 2]", qos=1)
            await client.publish(base + "explode", b"{}", qos=1)
            await client.publish(base + "pause", json.dumps({"machine_id": "m1"}), qos=1)
            await until(lambda: len(calls) == 2)
        assert calls == [("explode", {}), ("pause", {"machine_id": "m1"})]
        assert link.commands_received == 4
        assert link.connected


_LINK_PROCESS = """
import asyncio, sys
from pathlib import Path
from crown_edge.sync.mqtt import MqttLink, MqttSettings
from crown_edge.sync.mqtt_auth import MqttTls

class Empty:
    async def outbox_pending(self, limit):
        return []
    async def outbox_due(self, limit, now):
        return []
    async def outbox_next_due(self):
        return None
    async def outbox_mark_sent(self, ids):
        pass

async def main():
    host, port, shop, user, password_file, ca, cert, key = sys.argv[1:]
    settings = MqttSettings(
        host, int(port), shop, client_id=user, username=user,
        password=Path(password_file).read_text().strip(),
        tls=MqttTls(Path(ca), Path(cert), Path(key)), keepalive=5,
    )
    async with MqttLink(settings, Empty()) as link:
        await link.wait_connected()
        print("up", flush=True)
        await asyncio.Event().wait()

asyncio.run(main())
"""


async def test_last_will_marks_a_killed_edge_offline(mqtt_broker: MqttBroker) -> None:
    shop = _shop()
    login = mqtt_broker.workshop(shop)
    assert login.password_file is not None and login.tls.ca_file is not None
    assert login.tls.cert_file is not None and login.tls.key_file is not None
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _LINK_PROCESS,
        mqtt_broker.host,
        str(mqtt_broker.port),
        shop,
        login.username,
        str(login.password_file),
        str(login.tls.ca_file),
        str(login.tls.cert_file),
        str(login.tls.key_file),
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        async with asyncio.timeout(30):
            assert await proc.stdout.readline() == b"up\n"
        async with subscriber(mqtt_broker, f"crown/v1/{shop}/edge/state") as got:
            await until(lambda: any(p["online"] is True for _, p in got))
            proc.kill()  # no DISCONNECT: the broker must publish the Last Will
            await until(lambda: got[-1][1]["online"] is False)
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()


async def test_outbox_failure_does_not_kill_the_link(mqtt_broker: MqttBroker) -> None:
    from crown_edge.errors import StoreError

    class FlakyOutbox(MemoryOutbox):
        failures = 2

        async def outbox_due(self, limit: int, now: float) -> list[Any]:
            if self.failures:
                self.failures -= 1
                raise StoreError("database is locked")
            return await super().outbox_due(limit, now)

    outbox = FlakyOutbox()
    outbox.put("events", {"event_id": "e1", "job_id": "j", "seq": 1})
    async with MqttLink(_settings(mqtt_broker, _shop()), outbox) as link:
        await until(lambda: outbox.unsent == [])
        assert link.connects >= 3
