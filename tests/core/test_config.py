"""Config parsing: good files load, every bad value is one line naming section and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from crown_edge.config import load_config, parse_config
from crown_edge.errors import ConfigError

ROOT = Path(__file__).parents[2]


def test_example_config_loads() -> None:
    cfg = load_config(ROOT / "config" / "edge.example.toml")
    assert cfg.shop_id == "shop-1"
    assert [m.id for m in cfg.machines] == ["laser-1", "laser-2"]
    assert cfg.machines[1].has_rotary and not cfg.machines[0].has_rotary
    assert cfg.task_queue == "crown-edge-shop-1"


def test_relative_paths_resolve_against_the_file(tmp_path: Path) -> None:
    (tmp_path / "e.toml").write_text('[store]\npath = "data/e.db"\n')
    assert load_config(tmp_path / "e.toml").store_path == tmp_path / "data" / "e.db"


@pytest.mark.parametrize(
    ("data", "section", "key", "needle"),
    [
        (
            {"machines": [{"id": "m", "driver": "grbl", "port": "/dev/x", "baud": 12}]},
            "machines.m",
            "baud",
            "115200",
        ),
        ({"machines": [{"id": "m", "driver": "laser9000"}]}, "machines.m", "driver", "grbl, sim"),
        ({"machines": [{"id": "m", "driver": "grbl"}]}, "machines.m", "port", "pyserial"),
        (
            {"machines": [{"id": "m", "driver": "sim", "rotary": "r9"}]},
            "machines.m",
            "rotary",
            "unknown device",
        ),
        (
            {"machines": [{"id": "m", "driver": "sim", "bed_width_mm": -3}]},
            "machines.m",
            "bed_width_mm",
            "10..5000",
        ),
        ({"machines": [{"id": "bad id!", "driver": "sim"}]}, "machines[0]", "id", "letters"),
        (
            {"machines": [{"id": "m", "driver": "sim", "stall_timeout_s": -1}]},
            "machines.m",
            "stall_timeout_s",
            "0..600",
        ),
        ({"mqtt": {"port": 70000}}, "mqtt", "port", "1..65535"),
        ({"qa": {"mode": "sometimes"}}, "qa", "mode", "manual, auto"),
        ({"edge": {"shop_id": ""}}, "edge", "shop_id", "non-empty"),
        ({"edge": {"shop": "x"}}, "edge", "shop", "unknown key"),
        ({"temporal": {"enabled": "yes"}}, "temporal", "enabled", "true, false"),
        (
            {"devices": [{"id": "d", "profile": "p", "url": "http://x"}]},
            "devices.d",
            "url",
            "tcp://",
        ),
    ],
)
def test_bad_values_name_section_key_and_allowed(
    data: dict[str, object], section: str, key: str, needle: str
) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(data, Path("/tmp"))
    err = info.value
    assert err.fields["section"] == section and err.fields["key"] == key
    text = str(err)
    assert "\n" not in text and needle in text and f"[{section}] {key}" in text


def test_unreadable_and_invalid_toml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.toml")
    (tmp_path / "bad.toml").write_text("[edge\n")
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_config(tmp_path / "bad.toml")


def test_cli_run_with_bad_config_is_one_line(tmp_path: Path) -> None:
    import subprocess
    import sys

    (tmp_path / "bad.toml").write_text('[qa]\nmode = "never"\n')
    proc = subprocess.run(
        [sys.executable, "-m", "crown_edge", "run", "--config", str(tmp_path / "bad.toml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        "crown-edge: config error: [qa] mode: got 'never' (allowed: manual, auto)"
    ]


def test_stall_timeout_defaults_and_reaches_the_machine() -> None:
    cfg = parse_config({"machines": [{"id": "m", "driver": "sim"}]}, Path("/tmp"))
    assert cfg.machines[0].stall_timeout_s == 10.0
    off = parse_config(
        {"machines": [{"id": "m", "driver": "sim", "stall_timeout_s": 0}]}, Path("/tmp")
    )
    assert off.machines[0].stall_timeout_s == 0.0
