"""Three workshops on one box stay out of each other's way (issue 14): the scenarios of
:mod:`hil.fleet` on one fleet rig (three ``crown-edge run`` processes, one cloud), with a
short outage of shop B (the HIL default is several minutes)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from hil import fleet
from tests.brokers import needs_mosquitto

pytestmark = [
    pytest.mark.integration,
    needs_mosquitto,
    pytest.mark.asyncio(loop_scope="module"),
    pytest.mark.timeout(300),  # the fleet's start counts in the first test's time
]

#: B's outage here; ``python -m hil.fleet`` defaults to fleet.OUTAGE_S
OUTAGE_S = 25.0


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def rig(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[fleet.FleetRig]:
    async with fleet.fleet_rig(tmp_path_factory.mktemp("fleet"), shops=3, time_scale=0.0) as r:
        yield r


async def test_three_shops_each_with_its_own_process_and_state(rig: fleet.FleetRig) -> None:
    assert rig.shops == ("shop-1", "shop-2", "shop-3")
    pids = set()
    for shop in rig.shops:
        w = rig.workshop(shop)
        assert w.process is not None and w.process.running
        pids.add(w.process.proc.pid)
        assert w.directory.name == shop and w.config.store_path.parent == w.directory
        status = await rig.ctl(shop, "status")
        assert status["links"]["temporal"], status
        assert w.config.mqtt is not None and w.config.mqtt.username.endswith(shop)
        assert w.task_queue == f"crown-edge-{shop}"
    assert len(pids) == 3


async def test_orders_stay_in_their_shop(rig: fleet.FleetRig) -> None:
    await fleet.orders_stay_in_their_shop(rig)


async def test_broker_isolation_and_forged_events(rig: fleet.FleetRig) -> None:
    await fleet.broker_isolation(rig)


async def test_rush_at_b_keeps_a_queue(rig: fleet.FleetRig) -> None:
    await fleet.rush_at_b_keeps_a_queue(rig)


async def test_shop_outage_killed(rig: fleet.FleetRig) -> None:
    await fleet.shop_outage(rig, outage_s=OUTAGE_S, kill=True)
