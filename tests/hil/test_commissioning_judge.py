"""Commissioning judgements on recorded controller answers (pure: no controller, no clock)."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from crown_edge.catalog import load_catalog
from crown_edge.commission.judge import (
    Check,
    firing_lines,
    judge_buffers,
    judge_homing,
    judge_laser_mode,
    judge_settings,
    judge_soft_limits,
    judge_spindle_max,
    judge_timing,
    judge_travel,
    judge_version,
    machine_items,
    split_version,
)
from crown_edge.commission.report import Report, report_stem, rows, write_report
from crown_edge.commission.run import check_machines, machine_params, plate_of, state_check
from crown_edge.config import MachineConfig
from crown_edge.drivers.grbl import protocol as p
from crown_edge.models import EngravingArea, Item, Surface
from crown_edge.sim.grbl_core import GrblCore
from crown_edge.toolpath import dry_run, render_job

# A laser as commissioned: grbl 1.1h's `$$`, as report.c prints it, with homing, soft limits.
GOOD_DUMP = """\
$0=10
$1=25
$2=0
$3=0
$4=0
$5=0
$6=0
$10=1
$11=0.010
$12=0.002
$13=0
$20=1
$21=0
$22=1
$23=0
$24=25.000
$25=500.000
$26=250
$27=1.000
$30=1000
$31=0
$32=1
$100=80.000
$101=80.000
$102=80.000
$110=6000.000
$111=6000.000
$112=1000.000
$120=2000.000
$121=1500.000
$122=100.000
$130=400.000
$131=300.000
$132=50.000
ok
"""
GOOD_I = "[VER:1.1h.20190830:]\n[OPT:V,15,128]\nok\n"


def settings_of(dump: str, **changes: str) -> dict[int, str]:
    """``$$`` as the driver records it, parsed by the product's own protocol parser."""
    events = p.GrblProtocol().events(dump.encode())
    found = {e.number: e.value for e in events if isinstance(e, p.Setting)}
    found.update({int(k.lstrip("_")): v for k, v in changes.items()})
    return found


MACHINE = MachineConfig(id="laser-1", port="/dev/ttyUSB0", bed_width_mm=300, bed_height_mm=200)
CATALOG = load_catalog()


def by_name(checks: list[Check]) -> dict[str, Check]:
    return {c.check: c for c in checks}


def test_good_settings_pass_every_judgement() -> None:
    checks = judge_settings(MACHINE, settings_of(GOOD_DUMP), machine_items(MACHINE, []))
    assert [c.check for c in checks] == [
        "laser mode",
        "power scale",
        "homing enabled",
        "soft limits",
        "travel",
    ]
    assert all(c.ok for c in checks), [c.detail for c in checks if not c.ok]
    assert by_name(checks)["travel"].figures["$130"] == 400.0


def test_good_i_answer() -> None:
    events = p.GrblProtocol().events(GOOD_I.encode())
    ver = next(e for e in events if isinstance(e, p.Version))
    opt = next(e for e in events if isinstance(e, p.Options))
    version, build = split_version(ver.version)
    firmware = judge_version("laser-1", version, build, ver.info)
    assert firmware.ok and firmware.detail == "grbl 1.1h (build 20190830)"
    buffers = judge_buffers("laser-1", opt.codes, opt.planner_blocks, opt.rx_buffer)
    assert buffers.ok
    assert buffers.figures == {"options": "V", "planner_blocks": 15, "rx_buffer": 128}


@pytest.mark.parametrize(
    ("codes", "blocks", "rx", "needle"),
    [
        (None, None, None, "no [OPT:] line"),
        ("V", 15, None, "RX buffer not reported"),
        ("V", 15, 32, "below 64"),
        ("", 15, 128, "variable spindle"),
    ],
)
def test_bad_buffers(codes: str | None, blocks: int | None, rx: int | None, needle: str) -> None:
    check = judge_buffers("laser-1", codes, blocks, rx)
    assert not check.ok and needle in check.detail


def test_old_firmware_is_refused() -> None:
    check = judge_version("laser-1", *split_version("0.9j.20160726"))
    assert not check.ok and "speaks grbl 1.1" in check.detail
    assert not judge_version("laser-1", None, "").ok


def test_laser_mode_off() -> None:
    check = judge_laser_mode("laser-1", settings_of(GOOD_DUMP, _32="0"))
    assert not check.ok
    assert "$32=0" in check.detail and "set $32=1" in check.detail


@pytest.mark.parametrize(("s_max", "share"), [("255", "392%"), ("10000", "10%")])
def test_wrong_s_max(s_max: str, share: str) -> None:
    check = judge_spindle_max("laser-1", settings_of(GOOD_DUMP, _30=s_max))
    assert not check.ok
    assert f"$30={s_max}" in check.detail and share in check.detail
    assert "set $30=1000" in check.detail
    assert check.figures["$30"] == float(s_max) and check.figures["power_scale"] == 1000


def test_homing_and_soft_limits_off() -> None:
    off = settings_of(GOOD_DUMP, _20="0", _22="0")
    homing, soft = judge_homing("laser-1", off), judge_soft_limits("laser-1", off)
    assert not homing.ok and "$22=0" in homing.detail
    assert not soft.ok and "$20=0" in soft.detail
    assert judge_settings(MACHINE, off, [])[0].ok  # laser mode is still fine


def test_travel_smaller_than_the_bed() -> None:
    check = judge_travel(MACHINE, settings_of(GOOD_DUMP, _130="250.000"), [])
    assert not check.ok
    assert "250 x 300 mm is smaller than the configured bed 300 x 200" in check.detail


def test_travel_against_the_catalogue_items() -> None:
    big = Item("banner", "Banner", "wood", EngravingArea(width_mm=320, height_mm=40))
    cup = Item(
        "cup", "Cup", "brass", EngravingArea(60, 250), surface=Surface.CYLINDER, diameter_mm=80
    )
    plain = MachineConfig(id="laser-1", port="x", bed_width_mm=300, bed_height_mm=200)
    assert machine_items(plain, [big, cup]) == [big]  # a cylinder needs a rotary
    check = judge_travel(plain, settings_of(GOOD_DUMP), [big])
    assert not check.ok and "banner" in check.detail
    assert check.figures["items_too_big"] == "banner"
    rotary = MachineConfig(id="laser-2", port="x", rotary="io-1", materials=("brass",))
    mine = machine_items(rotary, [big, cup])
    assert mine == [cup]  # only its materials; the cup wraps round the rotary
    assert judge_travel(rotary, settings_of(GOOD_DUMP), mine).ok
    short = settings_of(GOOD_DUMP, _130="200.000")
    short_bed = MachineConfig(id="laser-2", port="x", rotary="io-1", bed_width_mm=150)
    assert not judge_travel(short_bed, short, [cup]).ok  # 250 mm along the axis


def test_settings_missing_from_the_dump() -> None:
    empty: dict[int, str] = {}
    checks = judge_settings(MACHINE, empty, [])
    assert not any(c.ok for c in checks)
    assert all("missing" in c.detail for c in checks)


def test_state_check() -> None:
    assert state_check("laser-1", "Idle").ok
    assert state_check("laser-1", "Alarm", homing_lock=True).ok
    alarm = state_check("laser-1", "Alarm")
    assert not alarm.ok and "home it" in alarm.detail
    assert not state_check("laser-1", "Door").ok


def test_firing_guard() -> None:
    assert firing_lines(["G21 G90", "M5", "G1 X1.000 F3000", "M4 S0", "G1 S0 X2"]) == []
    assert firing_lines(["M4 S400"]) == [0]
    assert firing_lines(["S300", "G1 X1 F100", "M3"]) == [0, 2]  # S is modal in grbl
    assert firing_lines(["(M4 S400 in a comment)", "G1 X1 F100 ; S9"]) == []


def test_a_rendered_plate_is_dry_after_dry_run() -> None:
    plate = plate_of(machine_items(MACHINE, CATALOG.items.values()))
    assert plate is not None
    material = CATALOG.material(plate.material)
    result = render_job(plate, ["CROWN EDGE"], material, job_id="commission-laser-1")
    assert firing_lines(result.gcode)  # the real program fires...
    assert firing_lines(dry_run(result.gcode)) == []  # ...its dry form never does


def test_machine_params_read_the_controller() -> None:
    params = machine_params(settings_of(GOOD_DUMP), 15)
    assert params.acceleration_mm_s2 == 1500.0  # the slower of $120/$121
    assert params.max_rate_mm_min == 6000.0 and params.junction_deviation_mm == 0.01
    assert params.planner_blocks == 15
    odd = machine_params({120: "x", 11: "0"}, None)
    assert odd.acceleration_mm_s2 == 500.0 and odd.planner_blocks == 15


@pytest.mark.parametrize(
    ("measured", "estimate", "scale", "ok", "needle"),
    [
        (10.4, 10.0, 1.0, True, "10.40 s against 10.00 s expected"),
        (20.0, 10.0, 1.0, False, "slower"),
        (5.0, 10.0, 1.0, False, "faster"),
        (0.6, 10.0, 0.05, True, "x 0.05"),
    ],
)
def test_timing(measured: float, estimate: float, scale: float, ok: bool, needle: str) -> None:
    check = judge_timing("laser-1", "dry job time", measured, estimate, scale)
    assert check.ok is ok and needle in check.detail
    assert check.figures["expected_s"] == round(estimate * scale, 3)


def test_report_files_are_private_and_named_by_shop_and_date(tmp_path: Path) -> None:
    checks = (
        Check("laser-1", "laser mode", True, "$32=1", {"$32": 1.0}),
        Check("laser-1", "power scale", False, "$30=255 but material powers run 0..1000"),
        Check("laser-2", "handshake", True, "ok"),
    )
    at = 1_795_000_000.0  # 2026-11-18 11:06:40 UTC
    report = Report("shop 7/b", "commissioning", at, at + 60, checks, source="bench.toml")
    assert report_stem(report) == "commissioning-shop_7_b-20261118T110640Z"
    json_path, text_path = write_report(report, tmp_path / "reports")
    assert json_path.name == "commissioning-shop_7_b-20261118T110640Z.json"
    assert text_path.name == "commissioning-shop_7_b-20261118T110640Z.txt"
    for path in (json_path, text_path):
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(tmp_path / "reports").st_mode) == 0o700
    data = json.loads(json_path.read_text())
    assert data["ok"] is False and data["shop"] == "shop 7/b"
    assert data["machines"] == {"laser-1": False, "laser-2": True}
    assert data["checks"][0] == {
        "machine": "laser-1",
        "check": "laser mode",
        "ok": True,
        "detail": "$32=1",
        "figures": {"$32": 1.0},
    }
    text = text_path.read_text()
    assert "NOT ACCEPTED (2/3 checks passed)" in text
    assert "machine laser-1: FAIL" in text and "machine laser-2: ok" in text
    assert all(len(line) <= 80 for line in text.splitlines())
    row = rows(checks)[1]
    assert row["check"] == "laser-1 power scale" and row["ok"] is False
    assert row["machine"] == "laser-1" and row["step"] == "power scale"


def test_the_simulator_answers_as_grbl_for_the_commissioning_checks() -> None:
    """What doctor --machines reads from the simulator is what grbl 1.1h prints."""
    core = GrblCore()
    info = core.execute("$I")
    assert info == ["[VER:1.1h.20190830:]", "[OPT:V,15,128]", "ok"]
    dump = "\n".join(core.execute("$$")) + "\n"
    settings = settings_of(dump)
    assert settings[32] == "1" and settings[30] == "1000" and settings[130] == "400.000"
    # settings.c: soft limits need homing (error:10), then they are accepted
    assert core.execute("$20=1") == ["error:10"]
    assert core.execute("$22=1") == ["ok"] and core.execute("$20=1") == ["ok"]
    checks = by_name(judge_settings(MACHINE, settings_of("\n".join(core.execute("$$"))), []))
    assert checks["homing enabled"].ok and checks["soft limits"].ok


async def test_builtin_simulator_machines_have_nothing_to_commission() -> None:
    sim = MachineConfig(id="sim-1", driver="sim")
    found = await check_machines([sim], [], [], {})
    assert [(c.machine, c.check, c.ok) for c in found] == [("sim-1", "driver", True)]


async def test_a_missing_port_fails_at_once_and_the_next_machine_still_runs(
    tmp_path: Path,
) -> None:
    gone = MachineConfig(id="laser-9", port=str(tmp_path / "ttyUSB9"))
    sim = MachineConfig(id="sim-1", driver="sim")
    found = await check_machines([gone, sim], [], [], {})
    assert [(c.machine, c.check, c.ok) for c in found] == [
        ("laser-9", "handshake", False),
        ("laser-9", "interlocks", True),
        ("sim-1", "driver", True),
    ]
    assert "no such device" in found[0].detail
