"""The cloud scales out (issue 14): two cloud processes — each an Order API, SQS dispatcher,
MQTT bridge and workflow worker — behind one port, two workshops; one cloud process is
SIGKILLed mid-run and nothing is lost, stuck or done twice (:func:`hil.fleet.cloud_failover`)."""

from __future__ import annotations

import stat
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from hil import fleet
from tests.brokers import needs_mosquitto

pytestmark = [
    pytest.mark.integration,
    needs_mosquitto,
    pytest.mark.asyncio(loop_scope="module"),
    pytest.mark.timeout(420),  # the rig's start counts in the first test's time
]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def rig(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[fleet.FleetRig]:
    workdir = tmp_path_factory.mktemp("scale-out")
    async with fleet.fleet_rig(workdir, shops=2, time_scale=0.0, cloud_processes=2) as r:
        yield r


async def test_two_cloud_processes_share_the_port_and_the_work(rig: fleet.FleetRig) -> None:
    stack = rig.stack
    assert list(stack.cloud_replicas) == ["c2"]
    replica = stack.cloud_replicas["c2"]
    assert replica.running
    assert f":{stack.cloud.api.server.port}" in stack.api_url
    assert replica.argv()[-2:] == ["--http-port", str(stack.cloud.api.server.port)]
    workdir = stack.settings.workdir
    # each its own journal (held), the replica's config private: it names the key files
    for name in ("intake-c1.db", "intake-c2.db", "cloud-replica.toml", "cloud-api-key"):
        assert stat.S_IMODE((workdir / name).stat().st_mode) & 0o077 == 0, name
    assert "token_secret_file" in (workdir / "cloud-replica.toml").read_text()
    assert stack.api_key not in (workdir / "cloud-replica.toml").read_text()


async def test_one_cloud_process_killed_mid_run(rig: fleet.FleetRig) -> None:
    await fleet.cloud_failover(rig)
    assert not rig.stack.cloud_replicas["c2"].running
