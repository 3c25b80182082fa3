"""``python -m hil.runner``: what it says before any stack starts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[2]


def _runner(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hil.runner", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )


def test_a_bad_target_file_is_one_line_and_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "bench.toml"
    text = (ROOT / "hil" / "targets" / "example-bench.toml").read_text()
    bad.write_text(text.replace("baud = 115200\nbed_width_mm", "baud = 1234\nbed_width_mm"))
    proc = _runner("--target", str(bad), "--workdir", str(tmp_path / "w"))
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    (line,) = proc.stderr.splitlines()
    assert line.startswith(f"target error: {bad}: [machines.laser-1] baud: got 1234"), line


def test_laser_armed_needs_a_target() -> None:
    proc = _runner("--laser-armed")
    assert proc.returncode == 2
    assert "--laser-armed needs --target" in proc.stderr


def test_a_controller_not_plugged_in_is_one_line_and_exit_2(tmp_path: Path) -> None:
    target = ROOT / "hil" / "targets" / "example-bench.toml"  # no such ports on this machine
    proc = _runner("--target", str(target), "--workdir", str(tmp_path / "w"))
    assert proc.returncode == 2, proc.stderr
    (line,) = proc.stderr.splitlines()
    assert line == (
        f"target error: {target}: [machines.laser-1] port: no such device: "
        "/dev/serial/by-id/usb-1a86_USB_Serial-if00-port0 (allowed: a connected device)"
    )
