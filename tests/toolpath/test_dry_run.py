"""The dry-run form: every motion kept, the laser held at zero; wired to ``laser = "dry"``."""

from __future__ import annotations

import tomllib
from pathlib import Path
from types import SimpleNamespace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crown_edge.catalog import Catalog
from crown_edge.config import EdgeConfig, MachineConfig, load_config, parse_config
from crown_edge.daemon.programs import render_program
from crown_edge.errors import ConfigError, TextDoesNotFit
from crown_edge.models import MaterialProfile
from crown_edge.stack import edge_config_toml
from crown_edge.toolpath import GRAMMAR, dry_run, fires_laser, grammar_violations, render_job
from tests.toolpath.conftest import cylinder_item, flat_item

MATERIAL = MaterialProfile(name="test", power=600, feed_mm_min=1200, passes=2, air_assist=True)
MOTION = ("G0", "G1")


def _motion(lines: tuple[str, ...] | list[str]) -> list[str]:
    return [line for line in lines if line.startswith(MOTION)]


def test_a_rendered_plate_keeps_its_motion_and_loses_its_power() -> None:
    program = render_job(flat_item(120, 50), ["Club Champion", "2026"], MATERIAL, job_id="J-7")
    wet = program.gcode
    dry = dry_run(wet)
    assert len(dry) == len(wet)  # line for line: resume marks and progress keep their meaning
    assert _motion(dry) == _motion(wet) and len(_motion(dry)) > 100
    assert any(line.startswith("M4 S600") for line in wet) and fires_laser(wet)
    assert not any(line.startswith(("M3", "M4")) for line in dry)
    assert not fires_laser(dry)
    assert grammar_violations(dry) == []
    for before, after in zip(wet, dry, strict=True):
        assert after == ("M5" if before.startswith("M4") else before)


def test_a_cylinder_program_too() -> None:
    from crown_edge.toolpath import RotaryConfig

    rotary = RotaryConfig(axis="A", per_rotation=360.0)
    wet = render_job(cylinder_item(), ["Best Man"], MATERIAL, job_id="J-8", rotary=rotary).gcode
    dry = dry_run(wet)
    assert _motion(dry) == _motion(wet) and any(" A" in line for line in _motion(dry))
    assert grammar_violations(dry) == [] and not fires_laser(dry)


@pytest.mark.parametrize(
    ("line", "dry"),
    [
        ("M4 S1000", "M5"),
        ("M3 S250", "M5"),
        ("m03 s250", "M5"),
        ("M4", "M5"),
        ("M4 S0", "M5"),
        ("G1 X1.000 Y2.000 F300 S500", "G1 X1.000 Y2.000 F300 S0"),
        ("S800", "S0"),
        ("G1 X1.000 S 12.5", "G1 X1.000 S0"),
        ("M5", "M5"),
        ("M8", "M8"),
        ("M9", "M9"),
        ("G0 X10.000", "G0 X10.000"),
        ("(job S-1)", "(job S-1)"),
        ("M30", "M30"),  # not a laser word: M3 must not match the start of M30
        ("G21 G90", "G21 G90"),
    ],
)
def test_dry_line_forms(line: str, dry: str) -> None:
    assert dry_run([line]) == (dry,)
    assert not fires_laser(dry_run([line]))


def test_fires_laser_reads_power_words() -> None:
    assert fires_laser(["M4 S1"]) and fires_laser(["G1 X1 S2"]) and fires_laser(["M3"])
    assert not fires_laser(["M4 S0", "M5", "G1 X1.000 F100", "(job S9)"])


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.from_regex(GRAMMAR, fullmatch=True), max_size=40))
def test_property_any_grammar_program_dries_to_a_grammar_program_without_power(
    lines: list[str],
) -> None:
    dry = dry_run(lines)
    assert grammar_violations(dry) == []
    assert not fires_laser(dry)
    assert all(not (line.startswith(("M3", "M4")) and "S" in line) for line in dry)
    assert _motion(dry) == _motion(lines)


GCODE_WORD = st.builds(
    lambda letter, number: f"{letter}{number}",
    st.sampled_from("GMSXYAFsm"),
    st.one_of(
        st.integers(-5, 9999).map(str),
        st.floats(0, 5000, allow_nan=False).map(lambda f: f"{f:.3f}"),
    ),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(GCODE_WORD, max_size=5).map(" ".join), max_size=20))
def test_property_no_dry_program_fires_whatever_the_input(lines: list[str]) -> None:
    dry = dry_run(lines)
    assert len(dry) == len(lines)
    assert not fires_laser(dry), dry


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ 0123456789", max_size=20), max_size=3))
def test_property_rendered_programs_dry_clean(text: list[str]) -> None:
    try:
        wet = render_job(flat_item(150, 60), text, MATERIAL, job_id="J-1").gcode
    except TextDoesNotFit:
        return
    dry = dry_run(wet)
    assert grammar_violations(dry) == [] and not fires_laser(dry)
    assert _motion(dry) == _motion(wet)


# --- the machine setting ---------------------------------------------------------------------


def _machines(**fields: object) -> dict[str, object]:
    return {"machines": [{"id": "m", "driver": "sim", **fields}]}


def test_laser_defaults_to_armed_and_reads_dry() -> None:
    assert parse_config(_machines(), Path(".")).machines[0].laser == "armed"
    assert parse_config(_machines(laser="dry"), Path(".")).machines[0].laser == "dry"


def test_a_bad_laser_value_is_one_line_naming_section_and_key() -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(_machines(laser="wet"), Path("."))
    text = str(err.value)
    assert "\n" not in text
    assert "[machines.m] laser" in text and "armed, dry" in text and "'wet'" in text


def test_edge_config_toml_writes_the_laser_setting(tmp_path: Path) -> None:
    cfg = EdgeConfig(
        shop_id="s",
        store_path=tmp_path / "e.db",
        control_socket=tmp_path / "c.sock",
        machines=(
            MachineConfig(id="a", driver="grbl", port="/dev/x", laser="dry", stall_timeout_s=3),
            MachineConfig(id="b", driver="sim"),
        ),
    )
    text = edge_config_toml(cfg)
    tomllib.loads(text)
    (tmp_path / "edge.toml").write_text(text)
    back = load_config(tmp_path / "edge.toml")
    assert [m.laser for m in back.machines] == ["dry", "armed"]
    assert back.machines[0].stall_timeout_s == 3


def _job(job_id: str = "J-9") -> SimpleNamespace:
    intake = SimpleNamespace(text=("Club Champion",), font=None, material=None, artwork_url=None)
    return SimpleNamespace(job_id=job_id, item_id="plaque-a5", intake=intake)


def test_the_daemon_streams_the_dry_form_on_a_dry_machine(catalog: Catalog) -> None:
    wet = render_program(_job(), catalog, MachineConfig(id="m", driver="sim"))  # type: ignore[arg-type]
    dry = render_program(  # type: ignore[arg-type]
        _job(), catalog, MachineConfig(id="m", driver="sim", laser="dry")
    )
    assert fires_laser(wet.lines) and not fires_laser(dry.lines)
    assert dry.lines == dry_run(wet.lines)
    assert dry.estimate_s == wet.estimate_s  # the same motion, the same time
    unbound = render_program(_job(), catalog)  # type: ignore[arg-type]
    assert unbound.lines == wet.lines
