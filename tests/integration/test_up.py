"""``crown-edge up`` end to end, as a user runs it: demo orders through the whole flow."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from crown_edge.cloud.mail_sink import read_eml

pytestmark = pytest.mark.integration


def test_up_runs_demo_orders_to_complete(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "crown_edge",
            "up",
            "--demo",
            "4",
            "--exit-when-done",
            "--json",
            "--workdir",
            str(tmp_path / "up"),
            "--time-scale",
            "0",
        ],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["ok"] is True
    assert sorted(summary["jobs"].values()) == ["complete"] * 4
    for line in ("Order API  ", "MQTT broker  ", "SQS (moto)  ", "API key  ", "Mail sink  "):
        assert line in proc.stderr, line  # the banner tools read
    (line,) = [ln for ln in proc.stderr.splitlines() if ln.strip().startswith("Mail sink  ")]
    directory = Path(line.split()[2])
    assert directory == tmp_path / "up" / "mail"
    assert summary["mail_sink"] == str(directory)
    # every demo order carries an email: four "ready", and the artwork order's design
    sink = [read_eml(p) for p in sorted(directory.glob("*.eml"))]
    subjects = sorted(str(m["Subject"]).split(" (")[0] for m in sink)
    assert subjects == ["Your design is ready for your approval"] + ["Your order is ready"] * 4
    links = [ln for ln in proc.stderr.splitlines() if ln.strip().startswith("Customer page")]
    assert len(links) == 4
    # the table's last line, then the summary on a line of its own (stderr is a pipe here)
    assert "4/4 demo jobs complete in " in proc.stderr
    assert any(ln.startswith("4/4 demo jobs complete in ") for ln in proc.stderr.splitlines())
    assert all("/status/" in ln and "?token=" in ln for ln in links)
    assert sorted(summary["links"]) == sorted(summary["jobs"])
