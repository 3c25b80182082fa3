"""ModbusDevice against the simulator: points, helpers, faults -> DeviceError, reconnects."""

from __future__ import annotations

import asyncio

import pytest

from crown_edge.drivers.modbus import (
    DeviceProfile,
    ModbusDevice,
    prepare_rotary,
    read_steps_per_rotation,
    release_rotary,
    set_air_assist,
    set_exhaust,
)
from crown_edge.errors import ConfigError, DeviceError, ValidationError
from crown_edge.sim.modbus import ModbusSimulator

from .conftest import TIMEOUT_S

NUMBERS = DeviceProfile.from_toml(
    """
[device]
name = "numbers"
unit = 3

[points.temp]
kind = "holding_register"
address = 10
type = "int16"
scale = 0.1

[points.count]
kind = "holding_register"
address = 11
type = "uint32"
word_order = "little"

[points.ratio]
kind = "input_register"
address = 0
type = "float32"

[points.lamp]
kind = "coil"
address = 17
unit = 4

[points.setpoint]
kind = "holding_register"
address = 20
access = "read"
"""
)


async def test_reads_points_in_engineering_units(device: ModbusDevice) -> None:
    values = await device.read_points("door_closed", "estop_released", "steps_per_rotation")
    assert values == {"door_closed": True, "estop_released": True, "steps_per_rotation": 3200}
    assert await device.read_point("air_pressure") == pytest.approx(6.0)
    assert await device.read_point("chuck_clamp") is False


async def test_writes_reach_the_device(device: ModbusDevice, sim: ModbusSimulator) -> None:
    await set_air_assist(device, True)
    await set_exhaust(device, True)
    assert sim.get_point("air_assist") is True
    assert sim.get_point("exhaust_fan") is True
    assert await device.read_point("exhaust_fan") is True
    await set_exhaust(device, False)
    assert sim.get_point("exhaust_fan") is False


async def test_rotary_setup_and_release(device: ModbusDevice, sim: ModbusSimulator) -> None:
    assert await prepare_rotary(device) == 3200
    assert sim.get_point("chuck_clamp") is True
    assert sim.get_point("rotary_enable") is True
    await release_rotary(device)
    assert (sim.get_point("chuck_clamp"), sim.get_point("rotary_enable")) == (False, False)


async def test_nonsense_steps_per_rotation_is_a_device_error(
    device: ModbusDevice, sim: ModbusSimulator
) -> None:
    sim.set_point("steps_per_rotation", 0)
    with pytest.raises(DeviceError) as info:
        await read_steps_per_rotation(device)
    assert info.value.fields["reason"] == "bad_value"


async def test_numeric_types_units_and_word_order_round_trip() -> None:
    async with (
        ModbusSimulator(NUMBERS, initial={"ratio": 0.5, "setpoint": 42}) as sim,
        ModbusDevice.from_profile("num-1", NUMBERS, sim.url, timeout_s=TIMEOUT_S) as dev,
    ):
        await dev.write_point("temp", -12.3)
        await dev.write_point("count", 70000)
        await dev.write_point("lamp", True)
        assert sim.get_point("temp") == pytest.approx(-12.3)
        assert sim.get_point("count") == 70000
        values = await dev.read_points("temp", "count", "ratio", "lamp", "setpoint")
        assert values["temp"] == pytest.approx(-12.3)
        assert values == {**values, "count": 70000, "ratio": 0.5, "lamp": True, "setpoint": 42}


@pytest.mark.parametrize(
    ("point", "value"),
    [("chuck_clamp", 1), ("steps_per_rotation", 4000), ("door_closed", True)],
)
async def test_bad_writes_are_refused_before_the_wire(
    device: ModbusDevice, sim: ModbusSimulator, point: str, value: bool | int
) -> None:
    before = sim.requests
    with pytest.raises(ValidationError) as info:
        await device.write_point(point, value)
    assert info.value.fields == {"device_id": "rotary-1", "point": point}
    assert sim.requests == before


async def test_unknown_point_is_a_config_error(device: ModbusDevice) -> None:
    with pytest.raises(ConfigError) as info:
        await device.read_point("laser_power")
    assert info.value.fields["section"] == "points.laser_power"


@pytest.mark.parametrize("code", [2, 4, 6])
async def test_exception_response_names_device_point_and_code(
    device: ModbusDevice, sim: ModbusSimulator, code: int
) -> None:
    sim.fail_point("estop_released", code)
    with pytest.raises(DeviceError) as info:
        await device.read_point("estop_released")
    fields = info.value.fields
    assert (fields["device_id"], fields["point"], fields["reason"]) == (
        "rotary-1",
        "estop_released",
        "exception",
    )
    assert fields["code"] == code
    assert "rotary-1" in str(info.value) and "estop_released" in str(info.value)
    assert await device.read_point("door_closed") is True  # other points still answer


async def test_exception_on_a_write(device: ModbusDevice, sim: ModbusSimulator) -> None:
    sim.fail_point("air_assist", 4)
    with pytest.raises(DeviceError) as info:
        await set_air_assist(device, True)
    assert (info.value.fields["point"], info.value.fields["code"]) == ("air_assist", 4)
    assert sim.get_point("air_assist") is False


async def test_no_response_is_a_timeout_then_recovers(
    device: ModbusDevice, sim: ModbusSimulator
) -> None:
    sim.silence_point("door_closed")
    with pytest.raises(DeviceError) as info:
        await device.read_point("door_closed")
    assert info.value.fields["reason"] == "timeout"
    assert info.value.fields["point"] == "door_closed"
    assert isinstance(info.value.__cause__, Exception)
    await sim.clear_faults()
    assert await device.read_point("door_closed") is True


async def test_silent_device_times_out_every_point(
    device: ModbusDevice, sim: ModbusSimulator
) -> None:
    sim.silence()
    with pytest.raises(DeviceError) as info:
        await device.write_point("chuck_clamp", True)
    assert (info.value.fields["reason"], info.value.fields["point"]) == ("timeout", "chuck_clamp")


async def test_disconnect_between_requests_reconnects(
    device: ModbusDevice, sim: ModbusSimulator
) -> None:
    assert await device.read_point("door_closed") is True
    assert sim.disconnect_clients() == 1
    for _ in range(100):  # the client learns of the close on a later loop turn
        if not device.connected:
            break
        await asyncio.sleep(0.01)
    assert await device.read_point("door_closed") is True
    assert device.connected


async def test_disconnect_during_a_request(device: ModbusDevice, sim: ModbusSimulator) -> None:
    sim.silence_point("door_closed")
    before = sim.requests
    read = asyncio.create_task(device.read_point("door_closed"))
    await sim.wait_requests(before + 1)
    sim.disconnect_clients()
    with pytest.raises(DeviceError) as info:
        await read
    assert info.value.fields["reason"] == "disconnected"
    await sim.clear_faults()
    assert await device.read_point("door_closed") is True


async def test_device_gone_is_unreachable(device: ModbusDevice, sim: ModbusSimulator) -> None:
    await sim.stop()
    with pytest.raises(DeviceError) as info:
        await device.read_point("door_closed")
    assert info.value.fields["reason"] in ("unreachable", "disconnected")
    assert info.value.fields["device_id"] == "rotary-1"


async def test_connect_to_nothing_raises_unreachable(profile: DeviceProfile) -> None:
    async with ModbusSimulator(profile) as sim:
        url = sim.url
    dev = ModbusDevice.from_profile("rotary-9", profile, url, timeout_s=TIMEOUT_S)
    with pytest.raises(DeviceError) as info:
        async with dev:
            pass
    assert (info.value.fields["reason"], info.value.fields["device_id"]) == (
        "unreachable",
        "rotary-9",
    )
    await dev.close()


async def test_missing_serial_port_is_unreachable(profile: DeviceProfile) -> None:
    dev = ModbusDevice.from_profile(
        "rotary-s", profile, "rtu:///dev/crown-edge-no-such-port?baud=9600", timeout_s=TIMEOUT_S
    )
    with pytest.raises(DeviceError) as info:
        await dev.connect()
    assert info.value.fields["reason"] == "unreachable"
    await dev.close()


async def test_rtu_framing_over_tcp(profile: DeviceProfile) -> None:
    async with (
        ModbusSimulator(profile, framer="rtu") as sim,
        ModbusDevice.from_profile("rotary-r", profile, sim.url, timeout_s=TIMEOUT_S) as dev,
    ):
        assert sim.url.startswith("rtu+tcp://")
        assert await dev.read_point("steps_per_rotation") == 3200
        await dev.write_point("chuck_clamp", True)
        assert sim.get_point("chuck_clamp") is True


async def test_closed_device_refuses_requests(device: ModbusDevice) -> None:
    await device.close()
    await device.close()
    with pytest.raises(DeviceError) as info:
        await device.read_point("door_closed")
    assert info.value.fields["reason"] == "disconnected"


async def test_from_config_takes_an_edge_config_entry(sim: ModbusSimulator) -> None:
    from crown_edge.config import DeviceConfig

    entry = DeviceConfig(id="rotary-c", profile="rotary-io", url=sim.url)
    async with ModbusDevice.from_config(entry) as dev:
        assert dev.device_id == "rotary-c"
        assert await dev.read_point("door_closed") is True
