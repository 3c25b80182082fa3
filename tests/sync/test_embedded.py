"""The embedded launchers start real services on loopback ports and stop them cleanly."""

from __future__ import annotations

import asyncio
import json
import stat
from pathlib import Path
from typing import Any

import pytest

from crown_edge.embedded import MotoServer, MqttBroker, TemporalDevServer
from crown_edge.embedded._proc import port_open
from crown_edge.errors import SyncError
from crown_edge.sync import queues
from tests.brokers import needs_mosquitto
from tests.sync.fakes import until

pytestmark = pytest.mark.integration


async def test_broker_round_trip(mqtt_broker: MqttBroker) -> None:
    async with (
        mqtt_broker.client(mqtt_broker.cloud()) as cloud,
        mqtt_broker.client(mqtt_broker.workshop("rt")) as shop,
    ):
        await cloud.subscribe("crown/v1/+/events", qos=1)
        await shop.publish("crown/v1/rt/events", b"hello", qos=1)
        async with asyncio.timeout(10):
            async for message in cloud.messages:
                assert message.payload == b"hello"
                break


@needs_mosquitto
def test_broker_restart_keeps_port() -> None:
    with MqttBroker() as broker:
        port = broker.port
        assert port_open(broker.host, port)
        broker.stop()
        assert not port_open(broker.host, port)
        broker.start()
        assert broker.port == port
        assert port_open(broker.host, port)
    assert not port_open(broker.host, port)


@needs_mosquitto
async def test_state_dir_keeps_ca_and_identities_private_and_reused(tmp_path: Path) -> None:
    state = tmp_path / "mqtt"
    with MqttBroker(state_dir=state, shops=("demo",)) as broker:
        first = broker.workshop("demo")
        ca = broker.ca_file.read_bytes()
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    for name in ("ca.key", "server.key", "crown-edge-demo.key", "crown-edge-demo.password"):
        assert stat.S_IMODE((state / name).stat().st_mode) == 0o600, name
    async with MqttBroker(state_dir=state) as again:
        assert again.ca_file.read_bytes() == ca
        login = again.workshop("demo")
        assert login.password == first.password  # what a workshop's config points at still works
        async with again.client(login, identifier="reuse"):
            pass


def test_without_mosquitto_the_error_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    import crown_edge.embedded.broker as broker_module

    monkeypatch.setattr(broker_module, "find_mosquitto", lambda: None)
    with pytest.raises(SyncError, match="apt-get install mosquitto"):
        MqttBroker().start()


def test_queues_created_with_design_attributes(sqs_queues: dict[str, str], sqs: Any) -> None:
    assert set(sqs_queues) == {
        queues.ENGRAVING_QUEUE,
        queues.PRIORITY_QUEUE,
        queues.DLQ_QUEUE,
        queues.EVENTS_QUEUE,
    }
    attrs = sqs.get_queue_attributes(
        QueueUrl=sqs_queues[queues.ENGRAVING_QUEUE], AttributeNames=["All"]
    )["Attributes"]
    assert attrs["FifoQueue"] == "true"
    assert attrs["VisibilityTimeout"] == "300"
    assert attrs["MessageRetentionPeriod"] == "1209600"
    redrive = json.loads(attrs["RedrivePolicy"])
    assert redrive["deadLetterTargetArn"].endswith(queues.DLQ_QUEUE)
    assert int(redrive["maxReceiveCount"]) == 3
    prio = sqs.get_queue_attributes(
        QueueUrl=sqs_queues[queues.PRIORITY_QUEUE], AttributeNames=["VisibilityTimeout"]
    )["Attributes"]
    assert prio["VisibilityTimeout"] == "180"


def test_moto_stops_cleanly() -> None:
    with MotoServer() as server:
        urls = server.create_queues()
        assert queues.DLQ_QUEUE in urls
        port = server.port
    assert not port_open("127.0.0.1", port)


async def test_temporal_restart_keeps_state(tmp_path: Path) -> None:
    from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
    from temporalio.client import Client

    async with TemporalDevServer(db_filename=tmp_path / "t.db", namespaces=("crown-test",)) as srv:
        target = srv.target
        client = await Client.connect(target, namespace="crown-test")
        await srv.arestart()
        assert srv.target == target
        request = DescribeNamespaceRequest(namespace="crown-test")
        desc = await client.workflow_service.describe_namespace(request)
        assert desc.namespace_info.name == "crown-test"
    assert not srv.running


_OWNER = """
import asyncio
from crown_edge.embedded import MqttBroker

async def main():
    async with MqttBroker() as broker:  # started from a worker thread (asyncio.to_thread)
        print(broker._proc.pid, flush=True)
        await asyncio.Event().wait()

asyncio.run(main())
"""


@needs_mosquitto
async def test_children_die_with_a_killed_parent() -> None:
    import os
    import sys

    owner = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _OWNER, stdout=asyncio.subprocess.PIPE
    )
    try:
        assert owner.stdout is not None
        async with asyncio.timeout(30):
            child = int(await owner.stdout.readline())
        os.kill(child, 0)  # alive
        owner.kill()  # SIGKILL: no cleanup code runs in the owner
        await owner.wait()
        await until(lambda: not _alive(child), within=10)  # the parent-death signal
    finally:
        if owner.returncode is None:
            owner.kill()
            await owner.wait()


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_moto_child_moves_on_when_its_port_was_taken(monkeypatch: pytest.MonkeyPatch) -> None:
    """A port found free can be taken by another service before moto binds it: the taker
    answers on the port, moto exits, and the server starts again on another port instead of
    reporting the other service as moto."""
    import socket

    from crown_edge.embedded import sqs as sqs_module
    from crown_edge.embedded._proc import free_port

    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    ports = iter([taken.getsockname()[1]])
    monkeypatch.setattr(sqs_module, "free_port", lambda host: next(ports, None) or free_port(host))
    server = sqs_module.MotoServer(process=True)
    try:
        server.start()
        assert server.port != taken.getsockname()[1]
        assert sorted(server.create_queues()) == sorted(s.name for s in sqs_module.ALL_QUEUES)
    finally:
        server.stop()
        taken.close()
