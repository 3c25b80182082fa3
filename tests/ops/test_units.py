"""The systemd units: they verify, and their exposure stays low (systemd-analyze, offline)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
#: a template is checked as one of its instances (``crown-edge-cloud@a.service``)
UNITS = ["crown-edge.service", "crown-edge-cloud.service", "crown-edge-cloud@a.service"]
MAX_EXPOSURE = 3.0

analyze = shutil.which("systemd-analyze")
pytestmark = pytest.mark.skipif(
    analyze is None, reason="systemd-analyze not installed (Debian package systemd)"
)


def _source(unit: str) -> Path:
    """The unit file in ``systemd/`` (a template's for an instance)."""
    return ROOT / "systemd" / re.sub(r"@[^.]+\.service$", "@.service", unit)


def _local_copy(unit: str, tmp_path: Path) -> Path:
    """The unit with ExecStart pointing at this checkout's entry point (verify checks it runs)."""
    text = _source(unit).read_text()
    entry = Path(sys.executable).parent / "crown-edge"
    path = tmp_path / unit
    path.write_text(text.replace("/opt/crown-edge/.venv/bin/crown-edge", str(entry)))
    return path


def _instance(unit: str, tmp_path: Path) -> Path:
    """The unit file under its (instance) name, as systemd would load it."""
    path = tmp_path / "as-named" / unit
    path.parent.mkdir(exist_ok=True)
    path.write_text(_source(unit).read_text())
    return path


def test_the_template_runs_its_instance() -> None:
    text = _source("crown-edge-cloud@a.service").read_text()
    assert "--instance %i" in text
    plain = _source("crown-edge-cloud.service").read_text()
    # the same hardening as the single cloud unit
    hardening = plain[plain.index("# --- hardening") :]
    assert hardening in text


@pytest.mark.parametrize("unit", UNITS)
def test_unit_verifies(unit: str, tmp_path: Path) -> None:
    assert analyze is not None
    done = subprocess.run(
        [analyze, "verify", str(_local_copy(unit, tmp_path))],
        capture_output=True,
        text=True,
        timeout=60,
    )
    complaints = [line for line in done.stderr.splitlines() if unit in line]
    assert done.returncode == 0 and not complaints, done.stderr


@pytest.mark.parametrize("unit", UNITS)
def test_unit_exposure_is_low(unit: str, tmp_path: Path) -> None:
    assert analyze is not None
    done = subprocess.run(
        [analyze, "security", "--offline=true", str(_instance(unit, tmp_path))],
        capture_output=True,
        text=True,
        timeout=60,
    )
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", done.stdout)
    assert match is not None, done.stdout + done.stderr
    assert float(match[1]) <= MAX_EXPOSURE, done.stdout
