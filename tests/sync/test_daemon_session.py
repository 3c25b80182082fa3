"""The workshop daemon's MQTT session survives its own restart: a command the cloud sends while
the daemon is down is carried out when it comes back (fixed client id, ``clean_session=False``,
QoS 1), over the locked-down broker with the workshop's own TLS identity from its config."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest

from crown_edge.config import EdgeConfig, MachineConfig, TemporalConfig
from crown_edge.control import call
from crown_edge.daemon.app import EdgeDaemon
from crown_edge.embedded import MqttBroker
from tests.brokers import needs_mosquitto
from tests.fakes import FakeMachine

pytestmark = [pytest.mark.integration, needs_mosquitto]


@contextlib.asynccontextmanager
async def running(config: EdgeConfig) -> AsyncIterator[EdgeDaemon]:
    async def factory(cfg: EdgeConfig, stack: AsyncExitStack) -> dict[str, Any]:
        return {m.id: FakeMachine(m.id) for m in cfg.machines}

    daemon = EdgeDaemon(config)
    task = asyncio.create_task(daemon.run(machine_factory=factory, install_signals=False))
    try:
        async with asyncio.timeout(30):
            await daemon.ready.wait()
        yield daemon
    finally:
        daemon.stop_event.set()
        async with asyncio.timeout(30):
            await task


async def _link_up(daemon: EdgeDaemon) -> bool:
    status = await call(daemon.config.control_socket, "status", timeout=2.0)
    return bool(status["links"].get("mqtt"))


async def _paused(daemon: EdgeDaemon, machine_id: str) -> bool:
    rows = await call(daemon.config.control_socket, "machines.list", timeout=2.0)
    return any(r["machine_id"] == machine_id and r["paused"] for r in rows)


async def _eventually(check: Callable[[], Any], within: float = 30.0) -> None:
    async with asyncio.timeout(within):
        while not await check():  # noqa: ASYNC110 - polling the control socket is the point
            await asyncio.sleep(0.1)


async def test_a_command_sent_while_the_daemon_is_down_is_carried_out_after_restart(
    mqtt_broker: MqttBroker, tmp_path: Path
) -> None:
    shop = "session-test"
    config = EdgeConfig(
        shop_id=shop,
        store_path=tmp_path / "edge.db",
        control_socket=tmp_path / "ctl.sock",
        machines=(MachineConfig(id="m1", driver="sim"),),
        temporal=TemporalConfig(enabled=False),
        mqtt=mqtt_broker.workshop_config(shop),
    )
    async with running(config) as daemon:
        await _eventually(lambda: _link_up(daemon))
        assert not await _paused(daemon, "m1")
    # the daemon is down; the cloud pauses m1 anyway
    async with mqtt_broker.client(mqtt_broker.cloud()) as cloud:
        await cloud.publish(
            f"crown/v1/{shop}/commands/pause", json.dumps({"machine_id": "m1"}), qos=1
        )
    async with running(config) as daemon:
        await _eventually(lambda: _paused(daemon, "m1"))
