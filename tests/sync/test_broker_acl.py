"""The embedded mosquitto's door, attacked for real: TLS, passwords and per-workshop ACLs.

MQTT 3.1.1 acknowledges a publish the ACL refuses and drops it, so "refused" is proven by a
subscriber that is entitled to the topic and sees nothing: the forbidden message is published
first (its PUBACK means the broker has handled it), then a legitimate marker; the subscriber
receives the marker and nothing before it.
"""

from __future__ import annotations

import asyncio
import gc
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiomqtt
import pytest

from crown_edge.embedded import BrokerLogin, MqttBroker
from crown_edge.sync.mqtt import MqttLink
from crown_edge.sync.mqtt_auth import MqttTls
from tests.brokers import needs_mosquitto
from tests.sync.fakes import MemoryOutbox, until

pytestmark = [pytest.mark.integration, needs_mosquitto]

# a refused TLS handshake or CONNACK ends the attempt long before this
QUICK = 5.0


def _shop() -> str:
    return f"shop-{uuid.uuid4().hex[:8]}"


@asynccontextmanager
async def listening(
    broker: MqttBroker, login: BrokerLogin, *patterns: str
) -> AsyncIterator[list[tuple[str, bytes]]]:
    """Collect (topic, payload) received as ``login`` on ``patterns`` while the block runs."""
    got: list[tuple[str, bytes]] = []
    async with broker.client(login, identifier=uuid.uuid4().hex) as client:
        for pattern in patterns:
            await client.subscribe(pattern, qos=1)

        async def collect() -> None:
            async for message in client.messages:
                assert isinstance(message.payload, bytes)
                got.append((str(message.topic), message.payload))

        task = asyncio.create_task(collect())
        try:
            yield got
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


async def _cannot_connect(client: aiomqtt.Client) -> None:
    with pytest.raises(aiomqtt.MqttError):
        async with client:
            pass


# -- who may connect ---------------------------------------------------------------------------


async def test_anonymous_client_cannot_connect_even_with_a_valid_certificate(
    mqtt_broker: MqttBroker,
) -> None:
    shop = mqtt_broker.workshop(_shop())
    # no certificate at all: the TLS handshake fails
    await _cannot_connect(mqtt_broker.client(None, timeout=QUICK))
    # a workshop's certificate but no username: allow_anonymous false refuses the CONNECT
    anonymous = aiomqtt.Client(
        mqtt_broker.host,
        mqtt_broker.port,
        identifier="anon",
        tls_context=shop.tls.context(),
        timeout=QUICK,
    )
    await _cannot_connect(anonymous)


async def test_anonymous_command_publish_never_reaches_the_workshop(
    mqtt_broker: MqttBroker,
) -> None:
    demo = mqtt_broker.workshop("demo")
    async with listening(mqtt_broker, demo, "crown/v1/demo/commands/#") as got:
        anonymous = aiomqtt.Client(
            mqtt_broker.host,
            mqtt_broker.port,
            identifier="anon-pause",
            tls_context=demo.tls.context(),
            timeout=QUICK,
        )
        with pytest.raises(aiomqtt.MqttError):
            async with anonymous:
                await anonymous.publish("crown/v1/demo/commands/pause", b"{}", qos=1)
        async with mqtt_broker.client(mqtt_broker.cloud()) as cloud:
            await cloud.publish("crown/v1/demo/commands/resume", b'{"mark": 1}', qos=1)
        await until(lambda: len(got) >= 1)
    assert got[0] == ("crown/v1/demo/commands/resume", b'{"mark": 1}')
    assert all(topic.endswith("/resume") for topic, _ in got)


async def test_wrong_password_cannot_connect(mqtt_broker: MqttBroker) -> None:
    login = mqtt_broker.workshop(_shop())
    await _cannot_connect(
        mqtt_broker.client(BrokerLogin(login.username, "guess", login.tls), timeout=QUICK)
    )
    other = mqtt_broker.workshop(_shop())  # a valid password, but another workshop's
    await _cannot_connect(
        mqtt_broker.client(BrokerLogin(login.username, other.password, login.tls), timeout=QUICK)
    )


async def test_plain_tcp_is_refused(mqtt_broker: MqttBroker) -> None:
    login = mqtt_broker.workshop(_shop())
    plain = aiomqtt.Client(
        mqtt_broker.host,
        mqtt_broker.port,
        identifier="plain",
        username=login.username,
        password=login.password,
        timeout=QUICK,
    )
    await _cannot_connect(plain)


# paho (under aiomqtt) does not close the socket when our side rejects the server certificate
# during the handshake; the garbage collector does, with a ResourceWarning
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
async def test_a_broker_with_another_ca_is_not_trusted(
    mqtt_broker: MqttBroker, tmp_path: Any
) -> None:
    from crown_edge.embedded.pki import LocalCa

    login = mqtt_broker.workshop(_shop())
    stranger = LocalCa(tmp_path / "other-ca")
    tls = MqttTls(stranger.cert_file, login.tls.cert_file, login.tls.key_file)
    await _cannot_connect(
        mqtt_broker.client(BrokerLogin(login.username, login.password, tls), timeout=QUICK)
    )
    gc.collect()  # the leaked socket's warning belongs to this test


# -- what an identity may publish --------------------------------------------------------------


async def test_a_workshop_cannot_publish_another_workshops_events(
    mqtt_broker: MqttBroker,
) -> None:
    attacker, victim = _shop(), _shop()
    mqtt_broker.workshop(victim)
    async with listening(mqtt_broker, mqtt_broker.cloud(), "crown/v1/+/events") as got:
        async with mqtt_broker.client(mqtt_broker.workshop(attacker)) as evil:
            await evil.publish(f"crown/v1/{victim}/events", b'{"forged": true}', qos=1)
            await evil.publish("crown/v1/evilshop/events", b'{"forged": true}', qos=1)
            await evil.publish(f"crown/v1/{attacker}/events", b'{"own": true}', qos=1)
        await until(lambda: len(got) >= 1)
    assert got == [(f"crown/v1/{attacker}/events", b'{"own": true}')]


async def test_a_workshop_cannot_publish_commands(mqtt_broker: MqttBroker) -> None:
    attacker, victim = _shop(), _shop()
    async with (
        listening(mqtt_broker, mqtt_broker.workshop(victim), f"crown/v1/{victim}/commands/#") as v,
        listening(
            mqtt_broker, mqtt_broker.workshop(attacker), f"crown/v1/{attacker}/commands/#"
        ) as a,
    ):
        async with mqtt_broker.client(mqtt_broker.workshop(attacker)) as evil:
            await evil.publish(f"crown/v1/{victim}/commands/cancel", b'{"job_id": "J"}', qos=1)
            await evil.publish(f"crown/v1/{attacker}/commands/pause", b"{}", qos=1)
        async with mqtt_broker.client(mqtt_broker.cloud()) as cloud:
            await cloud.publish(f"crown/v1/{victim}/commands/resume", b"{}", qos=1)
            await cloud.publish(f"crown/v1/{attacker}/commands/resume", b"{}", qos=1)
        await until(lambda: len(v) >= 1 and len(a) >= 1)
    assert v == [(f"crown/v1/{victim}/commands/resume", b"{}")]
    assert a == [(f"crown/v1/{attacker}/commands/resume", b"{}")]


async def test_a_workshop_cannot_read_another_workshops_commands(mqtt_broker: MqttBroker) -> None:
    snoop, victim = _shop(), _shop()
    mqtt_broker.workshop(victim)
    async with listening(
        mqtt_broker,
        mqtt_broker.workshop(snoop),
        f"crown/v1/{victim}/commands/#",
        "crown/v1/+/events",
        f"crown/v1/{snoop}/commands/#",
    ) as got:
        async with mqtt_broker.client(mqtt_broker.cloud()) as cloud:
            await cloud.publish(f"crown/v1/{victim}/commands/cancel", b'{"job_id": "J"}', qos=1)
            await cloud.publish(f"crown/v1/{snoop}/commands/resume", b"{}", qos=1)
        await until(lambda: len(got) >= 1)
    assert got == [(f"crown/v1/{snoop}/commands/resume", b"{}")]


async def test_the_workshop_will_and_state_topics_are_allowed(mqtt_broker: MqttBroker) -> None:
    shop = _shop()
    async with listening(mqtt_broker, mqtt_broker.cloud(), f"crown/v1/{shop}/#") as got:
        link = MqttLink(mqtt_broker.workshop_settings(shop, poll_interval=0.5), MemoryOutbox())
        async with link:
            link.set_machine_state("m1", {"machine_id": "m1", "execution": "READY"})
            await until(lambda: any(t.endswith("/machines/m1/state") for t, _ in got))
    topics = {t for t, _ in got}
    assert f"crown/v1/{shop}/edge/state" in topics


# -- commands down, across an outage ---------------------------------------------------------------


async def test_the_cloud_commands_and_the_workshop_link_receives(mqtt_broker: MqttBroker) -> None:
    shop = _shop()
    calls: list[tuple[str, dict[str, Any]]] = []

    async def handler(verb: str, payload: dict[str, Any]) -> None:
        calls.append((verb, payload))

    link = MqttLink(mqtt_broker.workshop_settings(shop), MemoryOutbox(), handler)
    async with link:
        await until(lambda: link.connected)
        async with mqtt_broker.client(mqtt_broker.cloud()) as cloud:
            await cloud.publish(
                f"crown/v1/{shop}/commands/pause", json.dumps({"machine_id": "m1"}), qos=1
            )
        await until(lambda: len(calls) == 1)
    assert calls == [("pause", {"machine_id": "m1"})]


async def test_a_command_sent_while_the_link_is_down_runs_once_after_it_reconnects(
    mqtt_broker: MqttBroker,
) -> None:
    shop = _shop()
    calls: list[tuple[str, dict[str, Any]]] = []

    async def handler(verb: str, payload: dict[str, Any]) -> None:
        calls.append((verb, payload))

    settings = mqtt_broker.workshop_settings(shop, poll_interval=0.5)
    assert settings.client_id == f"crown-edge-{shop}"  # fixed: the broker keeps the session
    first = MqttLink(settings, MemoryOutbox(), handler)
    async with first:
        await until(lambda: first.connected)
    # the workshop is offline now; the cloud sends a command anyway
    async with mqtt_broker.client(mqtt_broker.cloud()) as cloud:
        await cloud.publish(
            f"crown/v1/{shop}/commands/pause", json.dumps({"machine_id": "m1"}), qos=1
        )
    again = MqttLink(settings, MemoryOutbox(), handler)
    async with again:
        await until(lambda: len(calls) >= 1)
        # a marker after the reconnect: any redelivery of the first would arrive before it
        async with mqtt_broker.client(mqtt_broker.cloud()) as cloud:
            await cloud.publish(f"crown/v1/{shop}/commands/resume", b'{"machine_id": "m1"}', qos=1)
        await until(lambda: any(verb == "resume" for verb, _ in calls))
    assert calls == [("pause", {"machine_id": "m1"}), ("resume", {"machine_id": "m1"})]


# -- end-to-end delivery: acks and replay requests -----------------------------------------------


async def test_only_the_cloud_acks_and_a_workshop_reads_only_its_own(
    mqtt_broker: MqttBroker,
) -> None:
    """A workshop forging an ack (its own or another's) or a replay request changes nothing; a
    workshop cannot listen to another workshop's acks."""
    own, other = _shop(), _shop()
    me, them = mqtt_broker.workshop(own), mqtt_broker.workshop(other)
    async with (
        listening(mqtt_broker, me, f"crown/v1/{own}/acks", f"crown/v1/{own}/replay") as got,
        listening(mqtt_broker, me, f"crown/v1/{other}/acks") as snooped,
    ):
        for login in (me, them):
            async with mqtt_broker.client(login) as client:
                await client.publish(f"crown/v1/{own}/acks", b'{"event_ids": ["forged"]}', qos=1)
                await client.publish(f"crown/v1/{own}/replay", b'{"job_id": "J"}', qos=1)
        async with mqtt_broker.client(mqtt_broker.cloud()) as cloud:
            await cloud.publish(f"crown/v1/{other}/acks", b'{"event_ids": ["theirs"]}', qos=1)
            await cloud.publish(f"crown/v1/{own}/acks", b'{"event_ids": ["real"]}', qos=1)
            await cloud.publish(f"crown/v1/{own}/replay", b'{"mark": 2}', qos=1)
        await until(lambda: len(got) >= 2)
        await asyncio.sleep(0.2)
    assert got == [
        (f"crown/v1/{own}/acks", b'{"event_ids": ["real"]}'),
        (f"crown/v1/{own}/replay", b'{"mark": 2}'),
    ]
    assert snooped == []


async def test_bridges_share_the_events_of_a_shared_subscription(mqtt_broker: MqttBroker) -> None:
    """Two cloud clients in one ``$share`` group: each workshop event reaches exactly one."""
    from crown_edge.sync import topics

    shop, group = _shop(), f"g{uuid.uuid4().hex[:6]}"
    shared = topics.bridge_subscriptions(group)[0]
    cloud = mqtt_broker.cloud()
    async with (
        listening(mqtt_broker, cloud, shared) as a,
        listening(mqtt_broker, cloud, shared) as b,
    ):
        async with mqtt_broker.client(mqtt_broker.workshop(shop)) as client:
            for i in range(10):
                await client.publish(f"crown/v1/{shop}/events", json.dumps({"i": i}), qos=1)
        await until(lambda: len(a) + len(b) >= 10)
        await asyncio.sleep(0.2)
    seen = sorted(json.loads(p)["i"] for _, p in a + b)
    assert seen == list(range(10))
    assert a and b  # both members took some


# -- the cloud replicas' own topic ---------------------------------------------------------------


async def test_a_workshop_can_neither_write_nor_read_the_cloud_replicas_topic(
    mqtt_broker: MqttBroker,
) -> None:
    """A workshop forging a status onto every replica's board, or listening to every shop's
    statuses there, gets nothing: the tree ``crown/cloud/v1/#`` is the cloud identity's alone."""
    from crown_edge.sync import topics

    shop = _shop()
    forged = b'{"v":1,"origin":"evil","kind":"status","event":{}}'
    async with (
        listening(mqtt_broker, mqtt_broker.cloud(), topics.CLOUD_STATUS) as got,
        listening(
            mqtt_broker, mqtt_broker.workshop(shop), topics.CLOUD_STATUS, "crown/cloud/#", "#"
        ) as snooped,
    ):
        async with mqtt_broker.client(mqtt_broker.workshop(shop)) as evil:
            await evil.publish(topics.CLOUD_STATUS, forged, qos=1)
            await evil.publish(f"{topics.CLOUD_ROOT}/other", forged, qos=1)
        async with mqtt_broker.client(mqtt_broker.cloud()) as cloud:
            await cloud.publish(topics.CLOUD_STATUS, b'{"mark": 3}', qos=1)
        await until(lambda: len(got) >= 1)
        await asyncio.sleep(0.2)
    assert got == [(topics.CLOUD_STATUS, b'{"mark": 3}')]
    assert snooped == []
