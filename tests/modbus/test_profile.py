"""Device profiles: the built-in one parses, and every bad value names its section and key."""

from __future__ import annotations

import copy
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from crown_edge.drivers.modbus import Access, DeviceProfile, PointKind, ValueType, load_profile
from crown_edge.drivers.modbus.profiles import ROTARY_IO
from crown_edge.errors import ConfigError

CONFIG_COPY = Path(__file__).resolve().parents[2] / "config" / "devices" / "rotary-io.toml"


def base() -> dict[str, Any]:
    return tomllib.loads(ROTARY_IO)


def test_builtin_profile_parses_with_expected_points() -> None:
    profile = load_profile("rotary-io")
    assert profile.name == "rotary-io"
    assert profile.unit == 1
    door = profile.point("door_closed")
    assert (door.kind, door.address, door.access) == (PointKind.DISCRETE_INPUT, 0, Access.READ)
    steps = profile.point("steps_per_rotation")
    assert (steps.type, steps.width, steps.writable) == (ValueType.UINT32, 2, False)
    assert profile.point("chuck_clamp").writable
    assert profile.point("air_pressure").scale == 0.01
    monitored = {i.point for i in profile.interlocks if i.monitor}
    assert monitored == {"door_closed", "estop_released"}
    assert {i.point for i in profile.interlocks} == monitored | {"exhaust_fan"}
    assert profile.monitor.poll_hz == 20
    assert profile.sim_initial["steps_per_rotation"] == 3200


def test_config_copy_is_identical_to_the_builtin() -> None:
    assert CONFIG_COPY.read_text(encoding="utf-8") == ROTARY_IO
    assert load_profile(CONFIG_COPY) == load_profile("rotary-io")


def test_defaults_fill_unit_type_access() -> None:
    profile = DeviceProfile.parse(
        {"device": {"name": "tiny"}, "points": {"lamp": {"kind": "coil", "address": 7}}}
    )
    lamp = profile.point("lamp")
    assert (lamp.unit, lamp.type, lamp.access, lamp.scale) == (
        1,
        ValueType.BOOL,
        Access.READ_WRITE,
        1.0,
    )
    assert profile.interlocks == ()
    assert profile.timeout_s == 0.5


def test_unknown_point_is_a_config_error_listing_the_points() -> None:
    with pytest.raises(ConfigError) as info:
        load_profile("rotary-io").point("laser_power")
    assert info.value.fields["section"] == "points.laser_power"
    assert "door_closed" in info.value.fields["allowed"]


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(data: dict[str, Any]) -> None:
        *parents, last = path.split("/")
        node = data
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value

    return mutate


def _delete(path: str) -> Callable[[dict[str, Any]], None]:
    def mutate(data: dict[str, Any]) -> None:
        *parents, last = path.split("/")
        node = data
        for part in parents:
            node = node[part]
        del node[last]

    return mutate


BAD: list[tuple[str, Callable[[dict[str, Any]], None], str, str]] = [
    ("no device table", _delete("device"), "device", ""),
    ("no name", _delete("device/name"), "device", "name"),
    ("bad name", _set("device/name", "Rotary IO"), "device", "name"),
    ("unit too big", _set("device/unit", 300), "device", "unit"),
    ("zero timeout", _set("device/timeout_s", 0), "device", "timeout_s"),
    ("retries a string", _set("device/retries", "x"), "device", "retries"),
    ("unknown device key", _set("device/colour", "red"), "device", "colour"),
    ("unknown top-level table", _set("devices", {}), "(top level)", "devices"),
    ("poll too fast", _set("monitor/poll_hz", 1000), "monitor", "poll_hz"),
    ("failures zero", _set("monitor/failures_to_trip", 0), "monitor", "failures_to_trip"),
    ("no points", _set("points", {}), "points", ""),
    ("point not a table", _set("points/door_closed", 5), "points.door_closed", ""),
    ("bad point name", _set("points/Door", {"kind": "coil", "address": 9}), "points.Door", ""),
    ("bad kind", _set("points/door_closed/kind", "coyl"), "points.door_closed", "kind"),
    ("no kind", _delete("points/door_closed/kind"), "points.door_closed", "kind"),
    ("negative address", _set("points/door_closed/address", -1), "points.door_closed", "address"),
    ("address too big", _set("points/door_closed/address", 65536), "points.door_closed", "address"),
    (
        "uint32 past the end",
        _set("points/steps_per_rotation/address", 65535),
        "points.steps_per_rotation",
        "address",
    ),
    ("float address", _set("points/door_closed/address", 1.5), "points.door_closed", "address"),
    (
        "bit with a word type",
        _set("points/door_closed/type", "uint16"),
        "points.door_closed",
        "type",
    ),
    (
        "register typed bool",
        _set("points/air_pressure/type", "bool"),
        "points.air_pressure",
        "type",
    ),
    ("unknown type", _set("points/air_pressure/type", "int8"), "points.air_pressure", "type"),
    (
        "writable input",
        _set("points/door_closed/access", "read_write"),
        "points.door_closed",
        "access",
    ),
    ("unknown access", _set("points/chuck_clamp/access", "write"), "points.chuck_clamp", "access"),
    ("zero scale", _set("points/air_pressure/scale", 0), "points.air_pressure", "scale"),
    ("scaled bit", _set("points/chuck_clamp/scale", 2), "points.chuck_clamp", "scale"),
    ("misspelt key", _set("points/chuck_clamp/adress", 3), "points.chuck_clamp", "adress"),
    ("bad unit", _set("points/door_closed/unit", 248), "points.door_closed", "unit"),
    (
        "bad word order",
        _set("points/steps_per_rotation/word_order", "middle"),
        "points.steps_per_rotation",
        "word_order",
    ),
    ("overlap", _set("points/rotary_enable/address", 0), "points.rotary_enable", "address"),
    (
        "32-bit overlap",
        _set("points/extra", {"kind": "holding_register", "address": 1}),
        "points.extra",
        "address",
    ),
    ("interlock on no point", _set("interlocks/ghost", {"safe": True}), "interlocks.ghost", ""),
    (
        "interlock without safe",
        _delete("interlocks/door_closed/safe"),
        "interlocks.door_closed",
        "safe",
    ),
    (
        "interlock safe not bool",
        _set("interlocks/door_closed/safe", 1),
        "interlocks.door_closed",
        "safe",
    ),
    (
        "monitor not bool",
        _set("interlocks/door_closed/monitor", "yes"),
        "interlocks.door_closed",
        "monitor",
    ),
    (
        "unknown interlock key",
        _set("interlocks/door_closed/when", "x"),
        "interlocks.door_closed",
        "when",
    ),
    (
        "sim value wrong type",
        _set("simulator/initial/door_closed", 5),
        "simulator.initial",
        "door_closed",
    ),
    ("sim value no point", _set("simulator/initial/ghost", 1), "simulator.initial", "ghost"),
    (
        "sim number is bool",
        _set("simulator/initial/air_pressure", True),
        "simulator.initial",
        "air_pressure",
    ),
]


@pytest.mark.parametrize(
    ("mutate", "section", "key"), [b[1:] for b in BAD], ids=[b[0] for b in BAD]
)
def test_bad_profile_names_section_and_key(
    mutate: Callable[[dict[str, Any]], None], section: str, key: str
) -> None:
    data = copy.deepcopy(base())
    mutate(data)
    with pytest.raises(ConfigError) as info:
        DeviceProfile.parse(data)
    assert (info.value.fields["section"], info.value.fields["key"]) == (section, key)
    assert f"[{section}]" in str(info.value)


def test_bad_kind_lists_the_allowed_kinds() -> None:
    data = base()
    data["points"]["door_closed"]["kind"] = "coyl"
    with pytest.raises(ConfigError) as info:
        DeviceProfile.parse(data)
    assert info.value.fields["allowed"] == "coil, discrete_input, holding_register, input_register"


def test_toml_syntax_error_names_the_source(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text("[device\nname = 1\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_profile(path)
    assert info.value.fields["section"] == str(path)


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_profile(tmp_path / "nope.toml")
    assert "rotary-io" in info.value.fields["allowed"]


def test_errors_from_a_file_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "lathe-io.toml"
    path.write_text(ROTARY_IO.replace("address = 3\n", 'address = "three"\n'), encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_profile(path)
    assert info.value.fields["section"] == "points.exhaust_fan"
    assert info.value.fields["source"] == str(path)
    assert str(path) in str(info.value)
