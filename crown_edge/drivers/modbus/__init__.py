"""Modbus devices (rotary chuck, air assist, exhaust, door and e-stop) driven from profiles.

Register maps are data (:mod:`.profile`); :class:`ModbusDevice` reads and writes named points;
:mod:`.interlocks` checks and monitors the safety points; :mod:`.machine_io` has the rotary, air
and exhaust helpers.
"""

from __future__ import annotations

from crown_edge.drivers.modbus.client import ModbusDevice
from crown_edge.drivers.modbus.endpoint import Endpoint, Transport
from crown_edge.drivers.modbus.interlocks import InterlockMonitor, OnTrip, check_interlocks
from crown_edge.drivers.modbus.machine_io import (
    clamp_chuck,
    enable_rotary,
    prepare_rotary,
    read_steps_per_rotation,
    release_rotary,
    set_air_assist,
    set_exhaust,
)
from crown_edge.drivers.modbus.profile import (
    Access,
    DeviceProfile,
    InterlockSpec,
    MonitorSpec,
    Point,
    PointKind,
    PointSpec,
    Value,
    ValueType,
    WordOrder,
    load_profile,
)

__all__ = [
    "Access",
    "DeviceProfile",
    "Endpoint",
    "InterlockMonitor",
    "InterlockSpec",
    "ModbusDevice",
    "MonitorSpec",
    "OnTrip",
    "Point",
    "PointKind",
    "PointSpec",
    "Transport",
    "Value",
    "ValueType",
    "WordOrder",
    "check_interlocks",
    "clamp_chuck",
    "enable_rotary",
    "load_profile",
    "prepare_rotary",
    "read_steps_per_rotation",
    "release_rotary",
    "set_air_assist",
    "set_exhaust",
]
