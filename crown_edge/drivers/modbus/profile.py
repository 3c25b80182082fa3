"""Modbus device profiles: register maps as data, parsed once into frozen objects.

A profile (TOML, see ``config/devices/rotary-io.toml``) names the points of one device — a
coil, discrete input, holding register or input register each — and says which of them are
safety interlocks. Parsing is pure: it takes the decoded TOML table and returns a
:class:`DeviceProfile`, or raises :class:`~crown_edge.errors.ConfigError` naming the section, the
key and the allowed values. Addresses are zero-based protocol (PDU) addresses, as they go on the
wire: the datasheet notation "40001" is holding register address 0.

Layout::

    [device]              name, description, unit (default slave id), timeout_s, retries
    [monitor]             poll_hz, failures_to_trip
    [points.NAME]         kind, address, unit, type, scale, access, word_order, description
    [interlocks.POINT]    safe, monitor, reason
    [simulator.initial]   POINT = value   (start values for the simulator; the driver ignores it)
"""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeVar

from crown_edge.errors import ConfigError

#: A point's engineering value: ``bool`` for coils and discrete inputs, a number for registers.
Value = bool | int | float


class PointKind(StrEnum):
    """The four Modbus data tables."""

    COIL = "coil"
    DISCRETE_INPUT = "discrete_input"
    HOLDING_REGISTER = "holding_register"
    INPUT_REGISTER = "input_register"

    @property
    def is_bit(self) -> bool:
        """True for the single-bit tables (coils, discrete inputs)."""
        return self in (PointKind.COIL, PointKind.DISCRETE_INPUT)

    @property
    def writable(self) -> bool:
        """True for the tables a client may write (coils, holding registers)."""
        return self in (PointKind.COIL, PointKind.HOLDING_REGISTER)


class ValueType(StrEnum):
    """How a point's registers encode its value."""

    BOOL = "bool"
    UINT16 = "uint16"
    INT16 = "int16"
    UINT32 = "uint32"
    INT32 = "int32"
    FLOAT32 = "float32"

    @property
    def width(self) -> int:
        """Number of registers (or bits, for ``bool``) the value occupies."""
        return 2 if self in (ValueType.UINT32, ValueType.INT32, ValueType.FLOAT32) else 1


class Access(StrEnum):
    """Whether crown-edge may write a point."""

    READ = "read"
    READ_WRITE = "read_write"


class WordOrder(StrEnum):
    """Order of the 16-bit words of a 32-bit value; ``big`` is high word first."""

    BIG = "big"
    LITTLE = "little"


class Point(StrEnum):
    """Point names the machine layer relies on; a profile may define more."""

    DOOR_CLOSED = "door_closed"
    ESTOP_RELEASED = "estop_released"
    EXHAUST_FAN = "exhaust_fan"
    AIR_ASSIST = "air_assist"
    CHUCK_CLAMP = "chuck_clamp"
    ROTARY_ENABLE = "rotary_enable"
    STEPS_PER_ROTATION = "steps_per_rotation"


@dataclass(frozen=True, slots=True)
class PointSpec:
    """One named point of a device: where it lives and how to read its value."""

    name: str
    kind: PointKind
    address: int
    unit: int
    type: ValueType
    scale: float
    access: Access
    word_order: WordOrder
    description: str

    @property
    def width(self) -> int:
        """Number of consecutive addresses the point occupies."""
        return self.type.width

    @property
    def writable(self) -> bool:
        """True if the profile allows crown-edge to write the point."""
        return self.access is Access.READ_WRITE

    def describe(self) -> str:
        """A short location for messages, e.g. ``coil 3 @ unit 1``."""
        return f"{self.kind.value} {self.address} @ unit {self.unit}"


@dataclass(frozen=True, slots=True)
class InterlockSpec:
    """A point that must hold its ``safe`` value before (and, if ``monitor``, during) a job."""

    point: str
    safe: Value
    monitor: bool
    reason: str


@dataclass(frozen=True, slots=True)
class MonitorSpec:
    """Interlock monitor settings: poll rate and how many failed polls in a row trip it."""

    poll_hz: float = 20.0
    failures_to_trip: int = 1


@dataclass(frozen=True, slots=True)
class DeviceProfile:
    """A parsed, validated device profile. Build with :meth:`parse`, :func:`load_profile`."""

    name: str
    description: str
    unit: int
    timeout_s: float
    retries: int
    points: Mapping[str, PointSpec]
    interlocks: tuple[InterlockSpec, ...]
    monitor: MonitorSpec
    sim_initial: Mapping[str, Value]

    def point(self, name: str) -> PointSpec:
        """The point called ``name``; a missing point is a :class:`ConfigError`."""
        try:
            return self.points[name]
        except KeyError:
            raise ConfigError(
                f"points.{name}",
                "",
                f"profile {self.name!r} defines no point {name!r}",
                ", ".join(sorted(self.points)),
            ) from None

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> DeviceProfile:
        """Validate a decoded TOML table into a profile (pure)."""
        _only(data, "", ("device", "monitor", "points", "interlocks", "simulator"))
        device = _table(data, "device", required=True)
        _only(device, "device", ("name", "description", "unit", "timeout_s", "retries"))
        name = _str(device, "device", "name", None)
        if not _NAME.fullmatch(name):
            raise ConfigError("device", "name", f"{name!r} is not a valid name", _NAME_RULE)
        unit = _int(device, "device", "unit", 1, 0, 247)
        timeout_s = _float(device, "device", "timeout_s", 0.5, 0.01, 30.0)
        retries = _int(device, "device", "retries", 1, 0, 5)

        monitor_t = _table(data, "monitor")
        _only(monitor_t, "monitor", ("poll_hz", "failures_to_trip"))
        monitor = MonitorSpec(
            poll_hz=_float(monitor_t, "monitor", "poll_hz", 20.0, 0.5, 100.0),
            failures_to_trip=_int(monitor_t, "monitor", "failures_to_trip", 1, 1, 10),
        )

        points_t = _table(data, "points", required=True)
        if not points_t:
            raise ConfigError("points", "", "a profile needs at least one point")
        points = {
            pname: _parse_point(pname, _sub(points_t, "points", pname), unit) for pname in points_t
        }
        _check_overlaps(points)

        interlocks_t = _table(data, "interlocks")
        interlocks = tuple(
            _parse_interlock(pname, _sub(interlocks_t, "interlocks", pname), points)
            for pname in interlocks_t
        )

        sim_t = _table(data, "simulator")
        _only(sim_t, "simulator", ("initial",))
        initial_t = _table(sim_t, "initial", section="simulator")
        sim_initial = {
            pname: _value_for(points, "simulator.initial", pname, raw)
            for pname, raw in initial_t.items()
        }
        return cls(
            name=name,
            description=_str(device, "device", "description", ""),
            unit=unit,
            timeout_s=timeout_s,
            retries=retries,
            points=MappingProxyType(points),
            interlocks=interlocks,
            monitor=monitor,
            sim_initial=MappingProxyType(sim_initial),
        )

    @classmethod
    def from_toml(cls, text: str, source: str = "<profile>") -> DeviceProfile:
        """Parse TOML text; a syntax error is a :class:`ConfigError` naming ``source``."""
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(source, "", f"not valid TOML: {exc}") from exc
        try:
            return cls.parse(data)
        except ConfigError as exc:
            # Say which profile: a daemon may load several.
            exc.fields["source"] = source
            exc.message = f"{exc.message} in profile {source}"
            raise


def load_profile(ref: str | Path) -> DeviceProfile:
    """Load a profile from a TOML file path, or a built-in one by name (``rotary-io``)."""
    from crown_edge.drivers.modbus.profiles import BUILTIN

    if isinstance(ref, str) and ref in BUILTIN:
        return DeviceProfile.from_toml(BUILTIN[ref], source=ref)
    path = Path(ref)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            str(path),
            "",
            f"cannot read device profile: {exc.strerror or exc}",
            "a TOML file or a built-in profile: " + ", ".join(sorted(BUILTIN)),
        ) from exc
    return DeviceProfile.from_toml(text, source=str(path))


# --- parsing helpers ---------------------------------------------------------------------------

E = TypeVar("E", bound=StrEnum)

_NAME = re.compile(r"[a-z][a-z0-9_\-]{0,63}")
_NAME_RULE = "lower-case letters, digits, '_' or '-', starting with a letter"
_POINT_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")
_POINT_NAME_RULE = "lower-case letters, digits or '_', starting with a letter"
_POINT_KEYS = ("kind", "address", "unit", "type", "scale", "access", "word_order", "description")


def _parse_point(name: str, table: Mapping[str, Any], default_unit: int) -> PointSpec:
    section = f"points.{name}"
    if not _POINT_NAME.fullmatch(name):
        raise ConfigError(section, "", f"{name!r} is not a valid point name", _POINT_NAME_RULE)
    _only(table, section, _POINT_KEYS)
    kind = _enum(table, section, "kind", PointKind, None)
    default_type = ValueType.BOOL if kind.is_bit else ValueType.UINT16
    vtype = _enum(table, section, "type", ValueType, default_type)
    if kind.is_bit and vtype is not ValueType.BOOL:
        raise ConfigError(section, "type", f"{kind.value} points hold one bit", "bool")
    if not kind.is_bit and vtype is ValueType.BOOL:
        allowed = ", ".join(t.value for t in ValueType if t is not ValueType.BOOL)
        raise ConfigError(section, "type", f"{kind.value} points hold numbers", allowed)
    address = _int(table, section, "address", None, 0, 0x10000 - vtype.width)
    default_access = Access.READ_WRITE if kind.writable else Access.READ
    access = _enum(table, section, "access", Access, default_access)
    if access is Access.READ_WRITE and not kind.writable:
        raise ConfigError(section, "access", f"{kind.value} points are read-only", "read")
    scale = _float(table, section, "scale", 1.0, None, None)
    if scale == 0 or (kind.is_bit and scale != 1.0):
        raise ConfigError(section, "scale", f"{scale!r} is not usable here", "non-zero; 1 for bits")
    return PointSpec(
        name=name,
        kind=kind,
        address=address,
        unit=_int(table, section, "unit", default_unit, 0, 247),
        type=vtype,
        scale=scale,
        access=access,
        word_order=_enum(table, section, "word_order", WordOrder, WordOrder.BIG),
        description=_str(table, section, "description", ""),
    )


def _check_overlaps(points: Mapping[str, PointSpec]) -> None:
    taken: dict[tuple[int, PointKind, int], str] = {}
    for spec in points.values():
        for addr in range(spec.address, spec.address + spec.width):
            other = taken.setdefault((spec.unit, spec.kind, addr), spec.name)
            if other != spec.name:
                raise ConfigError(
                    f"points.{spec.name}",
                    "address",
                    f"{spec.describe()} overlaps point {other!r}",
                    "an address range no other point of the same kind and unit uses",
                )


def _parse_interlock(
    name: str, table: Mapping[str, Any], points: Mapping[str, PointSpec]
) -> InterlockSpec:
    section = f"interlocks.{name}"
    if name not in points:
        raise ConfigError(section, "", f"no point {name!r} to interlock", ", ".join(sorted(points)))
    _only(table, section, ("safe", "monitor", "reason"))
    if "safe" not in table:
        raise ConfigError(section, "safe", "missing", "the point's safe value, e.g. true")
    monitor = table.get("monitor", True)
    if not isinstance(monitor, bool):
        raise ConfigError(section, "monitor", f"{monitor!r} is not a boolean", "true, false")
    return InterlockSpec(
        point=name,
        safe=_value_for(points, section, "safe", table["safe"], point=name),
        monitor=monitor,
        reason=_str(table, section, "reason", f"{name}_unsafe"),
    )


def _value_for(
    points: Mapping[str, PointSpec], section: str, key: str, raw: object, point: str | None = None
) -> Value:
    spec = points.get(point or key)
    if spec is None:
        raise ConfigError(section, key, f"no point {key!r}", ", ".join(sorted(points)))
    if spec.kind.is_bit:
        if not isinstance(raw, bool):
            raise ConfigError(section, key, f"{raw!r} is not a boolean", "true, false")
        return raw
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        raise ConfigError(section, key, f"{raw!r} is not a number", "a number")
    return raw


def _table(
    data: Mapping[str, Any], key: str, *, required: bool = False, section: str = ""
) -> Mapping[str, Any]:
    if key not in data:
        if required:
            raise ConfigError(section or key, "" if not section else key, "missing table")
        return {}
    value = data[key]
    if not isinstance(value, Mapping):
        raise ConfigError(section or key, "" if not section else key, "must be a table")
    return value


def _sub(data: Mapping[str, Any], section: str, key: str) -> Mapping[str, Any]:
    value = data[key]
    if not isinstance(value, Mapping):
        raise ConfigError(f"{section}.{key}", "", "must be a table")
    return value


def _only(data: Mapping[str, Any], section: str, allowed: tuple[str, ...]) -> None:
    for key in data:
        if key not in allowed:
            raise ConfigError(section or "(top level)", key, "unknown key", ", ".join(allowed))


def _str(data: Mapping[str, Any], section: str, key: str, default: str | None) -> str:
    value = data.get(key, default)
    if value is None:
        raise ConfigError(section, key, "missing", "a string")
    if not isinstance(value, str):
        raise ConfigError(section, key, f"{value!r} is not a string", "a string")
    return value


def _int(
    data: Mapping[str, Any], section: str, key: str, default: int | None, lo: int, hi: int
) -> int:
    value = data.get(key, default)
    allowed = f"an integer {lo}..{hi}"
    if value is None:
        raise ConfigError(section, key, "missing", allowed)
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ConfigError(section, key, f"{value!r} is out of range", allowed)
    return value


def _float(
    data: Mapping[str, Any],
    section: str,
    key: str,
    default: float,
    lo: float | None,
    hi: float | None,
) -> float:
    value = data.get(key, default)
    allowed = "a number" if lo is None or hi is None else f"a number {lo}..{hi}"
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(section, key, f"{value!r} is not a number", allowed)
    if (
        not math.isfinite(value)
        or (lo is not None and value < lo)
        or (hi is not None and value > hi)
    ):
        raise ConfigError(section, key, f"{value!r} is out of range", allowed)
    return float(value)


def _enum(data: Mapping[str, Any], section: str, key: str, enum: type[E], default: E | None) -> E:
    value = data.get(key, default)
    allowed = ", ".join(member.value for member in enum)
    if value is None:
        raise ConfigError(section, key, "missing", allowed)
    try:
        return enum(value)
    except ValueError:
        raise ConfigError(section, key, f"{value!r} is not allowed", allowed) from None
