"""Machine I/O helpers on a :class:`ModbusDevice`: rotary chuck, air assist, exhaust.

They use the well-known point names of :class:`~crown_edge.drivers.modbus.profile.Point`; a
profile without the point raises :class:`~crown_edge.errors.ConfigError` naming it.
"""

from __future__ import annotations

from crown_edge.drivers.modbus.client import ModbusDevice
from crown_edge.drivers.modbus.profile import Point
from crown_edge.errors import DeviceError


async def clamp_chuck(device: ModbusDevice, clamped: bool = True) -> None:
    """Close (``True``) or open the rotary chuck jaws."""
    await device.write_point(Point.CHUCK_CLAMP, clamped)


async def enable_rotary(device: ModbusDevice, enabled: bool = True) -> None:
    """Energise (``True``) or release the rotary stepper driver."""
    await device.write_point(Point.ROTARY_ENABLE, enabled)


async def read_steps_per_rotation(device: ModbusDevice) -> int:
    """Motor steps per full chuck turn; a non-positive or fractional value is a DeviceError."""
    value = await device.read_point(Point.STEPS_PER_ROTATION)
    if isinstance(value, bool) or value <= 0 or value != int(value):
        raise DeviceError(
            f"modbus device {device.device_id}: steps_per_rotation reads {value!r}",
            device_id=device.device_id,
            point=Point.STEPS_PER_ROTATION.value,
            reason="bad_value",
            value=value,
        )
    return int(value)


async def prepare_rotary(device: ModbusDevice) -> int:
    """Clamp the chuck, enable the rotary and return its steps per rotation."""
    await clamp_chuck(device, True)
    await enable_rotary(device, True)
    return await read_steps_per_rotation(device)


async def release_rotary(device: ModbusDevice) -> None:
    """Disable the rotary, then open the chuck (so the item is held until the motor is off)."""
    await enable_rotary(device, False)
    await clamp_chuck(device, False)


async def set_air_assist(device: ModbusDevice, on: bool) -> None:
    """Switch air assist on or off."""
    await device.write_point(Point.AIR_ASSIST, on)


async def set_exhaust(device: ModbusDevice, on: bool) -> None:
    """Switch the fume exhaust fan on or off."""
    await device.write_point(Point.EXHAUST_FAN, on)
