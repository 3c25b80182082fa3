"""Interlocks: the pre-job check per point, and the monitor tripping during a job."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from crown_edge.drivers.modbus import ModbusDevice, set_exhaust
from crown_edge.errors import DeviceError, DriverError, InterlockOpen
from crown_edge.sim.modbus import ModbusSimulator

SAFETY_TIMEOUT_S = 10  # guards a hung test only; no test measures time


class Recorder:
    """An ``on_trip`` callback that records its calls."""

    def __init__(self) -> None:
        self.calls: list[DriverError] = []

    async def __call__(self, reason: DriverError) -> None:
        self.calls.append(reason)


async def test_check_passes_when_everything_is_safe(device: ModbusDevice) -> None:
    await set_exhaust(device, True)
    await device.check_interlocks()


@pytest.mark.parametrize(
    ("unsafe", "point", "reason"),
    [
        (lambda sim: sim.open_door(), "door_closed", "door_open"),
        (lambda sim: sim.press_estop(), "estop_released", "estop_pressed"),
        (lambda sim: sim.set_point("exhaust_fan", False), "exhaust_fan", "exhaust_off"),
    ],
    ids=["door", "estop", "exhaust"],
)
async def test_check_names_the_open_point(
    device: ModbusDevice,
    sim: ModbusSimulator,
    unsafe: Callable[[ModbusSimulator], None],
    point: str,
    reason: str,
) -> None:
    await set_exhaust(device, True)
    unsafe(sim)
    with pytest.raises(InterlockOpen) as info:
        await device.check_interlocks()
    fields = info.value.fields
    assert (fields["device_id"], fields["point"], fields["reason"]) == ("rotary-1", point, reason)
    assert fields["open_points"] == [point]
    assert point in str(info.value)


async def test_check_lists_every_open_point(device: ModbusDevice, sim: ModbusSimulator) -> None:
    sim.open_door()
    sim.press_estop()
    with pytest.raises(InterlockOpen) as info:
        await device.check_interlocks()
    assert info.value.fields["point"] == "door_closed"
    assert set(info.value.fields["open_points"]) == {"door_closed", "estop_released", "exhaust_fan"}


async def test_check_on_an_unreadable_device_never_passes(
    device: ModbusDevice, sim: ModbusSimulator
) -> None:
    sim.fail_point("door_closed", 4)
    with pytest.raises(DeviceError) as info:
        await device.check_interlocks()
    assert "door_closed" in info.value.fields["point"]


async def test_monitor_stays_quiet_while_safe(device: ModbusDevice, sim: ModbusSimulator) -> None:
    on_trip = Recorder()
    async with device.monitor(on_trip, poll_hz=100) as monitor:
        await sim.wait_requests(sim.requests + 5)
        assert monitor.running
    assert on_trip.calls == []
    assert monitor.tripped is None
    assert not monitor.running


@pytest.mark.parametrize(
    ("unsafe", "point", "reason"),
    [
        (lambda sim: sim.open_door(), "door_closed", "door_open"),
        (lambda sim: sim.press_estop(), "estop_released", "estop_pressed"),
    ],
    ids=["door", "estop"],
)
async def test_monitor_trips_once_on_the_next_poll(
    device: ModbusDevice,
    sim: ModbusSimulator,
    unsafe: Callable[[ModbusSimulator], None],
    point: str,
    reason: str,
) -> None:
    on_trip = Recorder()
    async with device.monitor(on_trip, poll_hz=100) as monitor:
        await sim.wait_requests(sim.requests + 3)
        unsafe(sim)
        polls_before = sim.requests
        async with asyncio.timeout(SAFETY_TIMEOUT_S):
            tripped = await monitor.wait_tripped()
        # Promptly: the first poll after the change tripped it, and polling stopped.
        assert sim.requests == polls_before + 1
        assert not monitor.running
    assert len(on_trip.calls) == 1
    assert on_trip.calls[0] is tripped
    assert isinstance(tripped, InterlockOpen)
    assert (tripped.fields["point"], tripped.fields["reason"]) == (point, reason)
    assert tripped.fields["device_id"] == "rotary-1"


async def test_monitor_ignores_pre_job_only_interlocks(
    device: ModbusDevice, sim: ModbusSimulator
) -> None:
    on_trip = Recorder()
    sim.set_point("exhaust_fan", False)  # monitor = false in the profile
    async with device.monitor(on_trip, poll_hz=100):
        await sim.wait_requests(sim.requests + 3)
    assert on_trip.calls == []


async def test_silent_device_trips_after_consecutive_failures(
    device: ModbusDevice, sim: ModbusSimulator
) -> None:
    on_trip = Recorder()
    async with device.monitor(on_trip, poll_hz=100, failures_to_trip=2) as monitor:
        await sim.wait_requests(sim.requests + 2)
        sim.silence()
        async with asyncio.timeout(SAFETY_TIMEOUT_S):
            tripped = await monitor.wait_tripped()
    assert on_trip.calls == [tripped]
    assert isinstance(tripped, DeviceError)
    assert tripped.fields["reason"] == "timeout"
    assert "door_closed" in tripped.fields["point"]


async def test_one_missed_poll_does_not_trip_when_two_are_needed(
    device: ModbusDevice, sim: ModbusSimulator
) -> None:
    on_trip = Recorder()
    async with device.monitor(on_trip, poll_hz=100, failures_to_trip=2) as monitor:
        sim.silence_point("door_closed")
        await sim.wait_requests(sim.requests + 1)
        await sim.clear_faults()  # the held poll is dropped: one failure
        await sim.wait_requests(sim.requests + 3)
        assert monitor.tripped is None
    assert on_trip.calls == []


async def test_monitor_rides_through_a_reconnect(
    device: ModbusDevice, sim: ModbusSimulator
) -> None:
    on_trip = Recorder()
    async with device.monitor(on_trip, poll_hz=100) as monitor:
        await sim.wait_requests(sim.requests + 2)
        sim.disconnect_clients()
        await sim.wait_requests(sim.requests + 3)
        assert monitor.tripped is None
    assert on_trip.calls == []


async def test_monitor_trips_when_the_device_goes_away(
    device: ModbusDevice, sim: ModbusSimulator
) -> None:
    on_trip = Recorder()
    async with device.monitor(on_trip, poll_hz=100, failures_to_trip=1) as monitor:
        await sim.wait_requests(sim.requests + 2)
        await sim.stop()
        async with asyncio.timeout(SAFETY_TIMEOUT_S):
            tripped = await monitor.wait_tripped()
    assert isinstance(tripped, DeviceError)
    assert tripped.fields["reason"] in ("unreachable", "disconnected", "timeout")
    assert len(on_trip.calls) == 1


async def test_a_failing_on_trip_is_raised_by_the_monitor_block(
    device: ModbusDevice, sim: ModbusSimulator
) -> None:
    async def on_trip(reason: DriverError) -> None:
        raise RuntimeError("grbl link down")

    with pytest.raises(RuntimeError, match="grbl link down"):
        async with device.monitor(on_trip, poll_hz=100) as monitor:
            sim.open_door()
            async with asyncio.timeout(SAFETY_TIMEOUT_S):
                await monitor.wait_tripped()


async def test_leaving_the_block_does_not_cancel_a_running_on_trip(
    device: ModbusDevice, sim: ModbusSimulator
) -> None:
    entered = asyncio.Event()
    release = asyncio.Event()
    finished: list[DriverError] = []

    async def slow_stop(reason: DriverError) -> None:
        entered.set()
        await release.wait()
        finished.append(reason)

    async with device.monitor(slow_stop, poll_hz=100):
        sim.press_estop()
        async with asyncio.timeout(SAFETY_TIMEOUT_S):
            await entered.wait()
        asyncio.get_running_loop().call_soon(release.set)
    assert len(finished) == 1


async def test_monitor_trips_on_a_door_already_open(
    device: ModbusDevice, sim: ModbusSimulator
) -> None:
    sim.open_door()
    on_trip = Recorder()
    async with device.monitor(on_trip) as monitor:
        async with asyncio.timeout(SAFETY_TIMEOUT_S):
            await monitor.wait_tripped()
    assert monitor.polls == 1
    assert len(on_trip.calls) == 1


async def test_a_poll_that_crashes_trips_instead_of_dying_quietly(
    device: ModbusDevice, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*names: str) -> dict[str, bool]:
        raise RuntimeError("decoder bug")

    monkeypatch.setattr(device, "read_points", broken)
    on_trip = Recorder()
    async with device.monitor(on_trip) as monitor:
        async with asyncio.timeout(SAFETY_TIMEOUT_S):
            tripped = await monitor.wait_tripped()
    assert isinstance(tripped, DeviceError)
    assert tripped.fields["reason"] == "monitor_error"
    assert isinstance(tripped.__cause__, RuntimeError)
    assert on_trip.calls == [tripped]
