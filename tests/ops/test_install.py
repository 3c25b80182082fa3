"""scripts/install in a scratch root: what it writes, its modes, and that a rerun keeps it."""

from __future__ import annotations

import stat
import subprocess
from pathlib import Path

ROOT = Path(__file__).parents[2]


def install(root: Path, *extra: str) -> str:
    done = subprocess.run(
        ["bash", str(ROOT / "scripts" / "install"), "--root", str(root), "--skip-venv", *extra],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_install_writes_config_rule_unit_and_code(tmp_path: Path) -> None:
    out = install(tmp_path)
    config = tmp_path / "etc/crown-edge/edge.toml"
    assert config.read_text() == (ROOT / "config/edge.example.toml").read_text()
    assert mode(config) == 0o640
    rule = (tmp_path / "etc/udev/rules.d/70-crown-edge.rules").read_text()
    assert 'GROUP="dialout"' in rule and "serial/by-id" in rule
    unit = (tmp_path / "etc/systemd/system/crown-edge.service").read_text()
    assert "ExecStart=/opt/crown-edge/.venv/bin/crown-edge run" in unit
    code = tmp_path / "opt/crown-edge"
    assert (code / "crown_edge/__init__.py").is_file() and (code / "requirements.lock").is_file()
    assert not (code / ".venv").exists() and not (code / ".git").exists()
    # system commands are only printed in a scratch root
    for command in ("useradd --system", "udevadm control --reload", "systemctl enable --now"):
        assert f"would run: {command}" in out or command in out


def test_rerun_keeps_the_config_and_a_prefix_moves_everything(tmp_path: Path) -> None:
    install(tmp_path)
    config = tmp_path / "etc/crown-edge/edge.toml"
    config.write_text('[edge]\nshop_id = "leeds"\n')
    out = install(tmp_path, "--prefix", "/srv/crown", "--no-start")
    assert "kept the existing" in out
    assert config.read_text() == '[edge]\nshop_id = "leeds"\n'
    unit = (tmp_path / "etc/systemd/system/crown-edge.service").read_text()
    assert "ExecStart=/srv/crown/.venv/bin/crown-edge run" in unit and "/opt/" not in unit
    assert "systemctl enable crown-edge.service" in out and "--now" not in out
    assert (tmp_path / "srv/crown/crown_edge/__init__.py").is_file()


def test_unknown_option_is_one_clear_line(tmp_path: Path) -> None:
    done = subprocess.run(
        ["bash", str(ROOT / "scripts" / "install"), "--root", str(tmp_path), "--frobnicate"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and "unknown option --frobnicate" in done.stderr
