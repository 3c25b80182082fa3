"""Target files: the shipped ones load; every bad key or value is one line naming file,
section and key."""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

from hil.target import TargetError, load_target, parse_target

ROOT = Path(__file__).parents[2]
TARGETS = ROOT / "hil" / "targets"
SIM_VARS = {"bench": "/tmp/bench", "url.io-1": "tcp://127.0.0.1:5020"}


def test_the_example_bench_loads() -> None:
    t = load_target(TARGETS / "example-bench.toml")
    assert t.name == "example-bench" and not t.simulated
    assert [m.id for m in t.machines] == ["laser-1", "rotary-laser"]
    assert all(m.driver == "grbl" and m.port.startswith("/dev/serial/by-id/") for m in t.machines)
    assert all(m.laser == "armed" for m in t.machines)  # the rig decides: dry unless armed
    (io,) = t.devices
    assert io.url.startswith("rtu:///dev/serial/by-id/") and Path(io.profile).is_file()
    assert t.machine("rotary-laser").rotary == "io-1"
    assert [(i.device, i.point, i.safe) for i in t.safety.interlocks] == [
        ("io-1", "door_closed", True),
        ("io-1", "estop_released", True),
    ]
    assert t.faults["door"].by_modbus and t.faults["door"].point == "door_trip"
    assert t.faults["door"].machines == ("rotary-laser",)
    assert t.faults["unplug"].argv("inject", "rotary-laser") == [
        "uhubctl", "--location", "1-1", "--ports", "3", "--action", "off",
    ]  # fmt: skip
    assert t.faults["unplug"].argv("clear", "laser-1")[-1] == "on"
    assert t.cannot_inject("controller_reset", "rotary-laser")
    assert t.cannot_inject("controller_reset", "laser-1") is None
    assert "no [faults.alarm]" in (t.cannot_inject("alarm") or "")


def test_the_simulated_target_loads_with_the_launchers_variables() -> None:
    t = load_target(TARGETS / "simulated.toml", SIM_VARS)
    assert t.simulated and t.simulator is not None
    assert t.machines[0].port == "/tmp/bench/serial/by-id/usb-Crown_Sim_GRBL_laser-1-if00-port0"
    assert t.devices[0].url == "tcp://127.0.0.1:5020"
    assert t.faults["unplug"].argv("inject", "laser-1") == [
        sys.executable, "-m", "hil.bench_sim", "switch", "--bench", "/tmp/bench", "laser-1", "off",
    ]  # fmt: skip
    assert {d.id: d.relays for d in t.simulator.devices} == {
        "io-1": (("door_trip", "door_closed"), ("estop_trip", "estop_released"))
    }
    assert set(t.faults) == {"door", "estop", "unplug", "controller_reset", "alarm"}


def test_a_missing_variable_is_one_line() -> None:
    with pytest.raises(TargetError) as err:
        load_target(TARGETS / "simulated.toml")
    text = str(err.value)
    assert "\n" not in text and "simulated.toml" in text and "is not set" in text


def _base() -> dict[str, Any]:
    return tomllib.loads((TARGETS / "example-bench.toml").read_text())


def _set(data: dict[str, Any], dotted: str, value: Any) -> dict[str, Any]:
    *parents, last = dotted.split(".")
    node: Any = data
    for part in parents:
        node = node[int(part)] if part.isdigit() else node[part]
    node[last] = value
    return data


BAD: list[tuple[str, Any, str, str, str]] = [
    # (dotted key, value, section in the error, key in the error, allowed/problem needle)
    ("target.name", "", "target", "name", "non-empty"),
    ("target.colour", "red", "target", "colour", "unknown key"),
    ("safety.interlocks", ["io-1:exhaust"], "safety", "interlocks", "door_closed"),
    ("safety.interlocks", ["io-9:door_closed"], "safety", "interlocks", "names no device"),
    ("safety.allow_armed", "yes", "safety", "allow_armed", "true, false"),
    ("machines.0.baud", 12, "machines.laser-1", "baud", "115200"),
    ("machines.0.driver", "sim", "machines.laser-1", "driver", "grbl"),
    ("machines.0.laser", "armed", "machines.laser-1", "laser", "--laser-armed"),
    ("machines.1.rotary", "io-9", "machines.rotary-laser", "rotary", "unknown device"),
    ("machines.0.port", "", "machines.laser-1", "port", "pyserial"),
    ("devices.0.url", "http://x", "devices.io-1", "url", "tcp://"),
    ("devices.0.profile", "no-such.toml", "devices.io-1", "profile", "cannot read"),
    ("faults.door.point", "door_closed", "faults.door", "point", "door_trip"),
    ("faults.door.device", "io-9", "faults.door", "device", "io-1"),
    ("faults.door.value", 3, "faults.door", "value", "true, false"),
    ("faults.door.machines", ["laser-9"], "faults.door", "machines", "laser-1"),
    ("faults.smoke", {"inject": ["x"]}, "faults", "smoke", "unknown fault"),
    ("faults.unplug.inject", "uhubctl", "faults.unplug", "inject", "array of strings"),
    ("faults.unplug.inject", ["uhubctl", "{hubb}"], "faults.unplug", "inject", "{hubb}"),
    ("faults.unplug.vars.laser-9", {"hub": "1"}, "faults.unplug.vars", "laser-9", "no such"),
    ("faults.unplug.device", "io-1", "faults.unplug", "", "one way to inject"),
    ("faults.controller_reset.device", "io-1", "faults.controller_reset", "", "one way"),
    ("faults.alarm", {"device": "io-1", "point": "door_trip"}, "faults.alarm", "device", "argv"),
    ("simulator", {"machines": {"laser-9": {}}}, "simulator.machines.laser-9", "", "no such"),
    (
        "simulator",
        {"machines": {"laser-1": {"axes": "XY"}}},
        "simulator.machines.laser-1",
        "axes",
        "XYZA",
    ),
]


@pytest.mark.parametrize(("dotted", "value", "section", "key", "needle"), BAD)
def test_each_bad_value_is_one_line_naming_file_section_and_key(
    dotted: str, value: Any, section: str, key: str, needle: str
) -> None:
    path = TARGETS / "example-bench.toml"
    with pytest.raises(TargetError) as err:
        parse_target(_set(_base(), dotted, value), path)
    text = str(err.value)
    assert "\n" not in text, text
    assert text.startswith(f"target error: {path}: [{section}] {key or '(section)'}:"), text
    assert needle in text, text


def test_no_machines_and_bad_toml(tmp_path: Path) -> None:
    with pytest.raises(TargetError, match=r"\[machines\] \(section\): no \[\[machines\]\]"):
        parse_target({"target": {"name": "x"}}, tmp_path / "t.toml")
    (tmp_path / "bad.toml").write_text("[target\n")
    with pytest.raises(TargetError, match="invalid TOML") as err:
        load_target(tmp_path / "bad.toml")
    assert str(tmp_path / "bad.toml") in str(err.value)
    with pytest.raises(TargetError, match="cannot read"):
        load_target(tmp_path / "missing.toml")
