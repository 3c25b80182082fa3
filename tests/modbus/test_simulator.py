"""The simulator itself: it serves only the profile's map, and its CLI runs until signalled."""

from __future__ import annotations

import asyncio
import signal
import sys

import pytest

from crown_edge.drivers.modbus import DeviceProfile, ModbusDevice
from crown_edge.errors import ConfigError, DeviceError
from crown_edge.sim.modbus import ModbusSimulator
from crown_edge.sim.modbus_cli import modbus, parse_assignments

from .conftest import TIMEOUT_S

WIDER = DeviceProfile.from_toml(
    """
[device]
name = "wider"

[points.door_closed]
kind = "discrete_input"
address = 0

[points.unmapped]
kind = "discrete_input"
address = 9

[points.steps_per_rotation]
kind = "holding_register"
address = 0
type = "uint32"
access = "read_write"

[points.other_unit]
kind = "coil"
address = 0
unit = 7
"""
)


@pytest.fixture
async def wide(sim: ModbusSimulator) -> ModbusDevice:
    """A driver whose profile claims more than the simulated device has (closed by the test)."""
    return ModbusDevice.from_profile("wide-1", WIDER, sim.url, timeout_s=TIMEOUT_S, retries=0)


@pytest.mark.parametrize(
    ("action", "code"),
    [
        ("read unmapped", 2),
        ("write read-only", 2),
        ("read other unit", 2),
    ],
)
async def test_serves_only_the_profile_map(wide: ModbusDevice, action: str, code: int) -> None:
    async with wide:
        assert await wide.read_point("door_closed") is True
        with pytest.raises(DeviceError) as info:
            if action == "read unmapped":
                await wide.read_point("unmapped")
            elif action == "write read-only":
                await wide.write_point("steps_per_rotation", 1)
            else:
                await wide.read_point("other_unit")
        assert info.value.fields["code"] == code


def test_start_values_layer_profile_then_arguments(profile: DeviceProfile) -> None:
    sim = ModbusSimulator(profile, initial={"steps_per_rotation": 6400, "chuck_clamp": True})
    assert sim.get_point("steps_per_rotation") == 6400
    assert sim.get_point("chuck_clamp") is True
    assert sim.get_point("door_closed") is True  # from [simulator.initial]
    assert sim.get_point("air_assist") is False  # default
    sim.set_point("air_pressure", 4.25)
    assert sim.get_point("air_pressure") == pytest.approx(4.25)
    with pytest.raises(RuntimeError):
        _ = sim.url
    with pytest.raises(ValueError):
        sim.fail_point("door_closed", 99)
    with pytest.raises(ConfigError):
        sim.silence_point("nope")


async def test_stop_is_idempotent_and_releases_held_requests(profile: DeviceProfile) -> None:
    sim = ModbusSimulator(profile)
    await sim.start()
    async with ModbusDevice.from_profile("r", profile, sim.url, timeout_s=TIMEOUT_S) as dev:
        sim.silence()
        with pytest.raises(DeviceError):
            await dev.read_point("door_closed")
        await sim.stop()
        await sim.stop()
    assert sim.disconnect_clients() == 0


def test_parse_assignments(profile: DeviceProfile) -> None:
    values = parse_assignments(
        profile,
        [
            "door_closed=false",
            "estop_released = TRUE",
            "steps_per_rotation=6400",
            "air_pressure=5.5",
        ],
    )
    assert values == {
        "door_closed": False,
        "estop_released": True,
        "steps_per_rotation": 6400,
        "air_pressure": 5.5,
    }


@pytest.mark.parametrize(
    "item", ["door_closed", "door_closed=maybe", "steps_per_rotation=lots", "ghost=1"]
)
def test_parse_assignments_rejects(profile: DeviceProfile, item: str) -> None:
    with pytest.raises(ConfigError):
        parse_assignments(profile, [item])


def test_cli_rejects_unknown_framer() -> None:
    with pytest.raises(ConfigError) as info:
        modbus(framer="ascii")
    assert info.value.fields["key"] == "framer"


@pytest.mark.integration
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
async def test_cli_prints_url_and_stops_on_signal(profile: DeviceProfile, sig: int) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "from crown_edge.cli import main; main()",
        "sim",
        "modbus",
        "--port",
        "0",
        "--set",
        "door_closed=false",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        async with asyncio.timeout(60):
            url = (await proc.stdout.readline()).decode().strip()
        assert url.startswith("tcp://127.0.0.1:")
        async with ModbusDevice.from_profile("cli-1", profile, url, timeout_s=1.0) as dev:
            assert await dev.read_point("door_closed") is False
            assert await dev.read_point("steps_per_rotation") == 3200
        proc.send_signal(sig)
        async with asyncio.timeout(30):
            _, err = await proc.communicate()
        assert proc.returncode == 0, err.decode()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
