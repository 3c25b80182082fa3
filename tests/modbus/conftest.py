"""Fixtures: a simulated rotary-io device and a connected driver, with a task-leak check."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator

import pytest

from crown_edge.drivers.modbus import DeviceProfile, ModbusDevice, load_profile
from crown_edge.sim.modbus import ModbusSimulator

#: Short request timeouts keep the fault tests quick; no test asserts a duration.
TIMEOUT_S = 0.25


@pytest.fixture(autouse=True)
async def no_leaked_tasks() -> AsyncIterator[None]:
    """Fail a test that leaves a task running or a socket unclosed (a ResourceWarning)."""
    yield
    await asyncio.sleep(0)
    gc.collect()  # unclosed transports warn now, inside the test that leaked them
    current = asyncio.current_task()
    leaked = [t for t in asyncio.all_tasks() if t is not current and not t.done()]
    assert not leaked, f"tasks left running: {leaked}"


@pytest.fixture
def profile() -> DeviceProfile:
    """The built-in rotary-io profile."""
    return load_profile("rotary-io")


@pytest.fixture
async def sim(profile: DeviceProfile) -> AsyncIterator[ModbusSimulator]:
    """A running simulator of ``profile`` on an ephemeral loopback port."""
    async with ModbusSimulator(profile) as simulator:
        yield simulator


@pytest.fixture
async def device(sim: ModbusSimulator) -> AsyncIterator[ModbusDevice]:
    """A driver connected to ``sim``: timeout 0.25 s, no retries."""
    dev = ModbusDevice.from_profile(
        "rotary-1", sim.profile, sim.url, timeout_s=TIMEOUT_S, retries=0
    )
    async with dev:
        yield dev
