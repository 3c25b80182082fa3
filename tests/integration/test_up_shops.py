"""``crown-edge up --shops 3``: three workshop daemons (each its own process and state
directory), the demo orders spread over them, each job made by its own workshop only."""

from __future__ import annotations

import json
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

SHOPS = ("shop-1", "shop-2", "shop-3")


def _jobs(db: Path) -> dict[str, str]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return dict(conn.execute("SELECT job_id, status FROM jobs").fetchall())
    finally:
        conn.close()


def test_up_with_three_shops_completes_the_demo_on_three_workshops(tmp_path: Path) -> None:
    workdir = tmp_path / "up"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "crown_edge",
            "up",
            "--shops",
            "3",
            "--lasers",
            "1",
            "--demo",
            "6",
            "--exit-when-done",
            "--json",
            "--workdir",
            str(workdir),
            "--time-scale",
            "0",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["ok"] is True
    assert sorted(summary["jobs"].values()) == ["complete"] * 6
    assert summary["shops"] == list(SHOPS)
    by_shop = summary["job_shops"]
    assert sorted(by_shop) == sorted(summary["jobs"])
    assert sorted(by_shop.values()) == sorted(SHOPS * 2)  # spread: two orders each
    # the banner: the lines tools read, then each workshop with its own socket
    for line in ("Order API  ", "MQTT broker  ", "SQS (moto)  ", "API key  ", "Mail sink  "):
        assert line in proc.stderr, line
    assert f"Workshops      3: {', '.join(SHOPS)}" in proc.stderr
    for shop in SHOPS:
        directory = workdir / "shops" / shop
        assert f"Workshop {shop}  " in proc.stderr
        assert f"CROWN_EDGE_SOCKET={directory / 'control.sock'}" in proc.stderr
        assert f"task queue crown-edge-{shop}" in proc.stderr
        # its own state directory, the user's own, holding exactly its own jobs, complete
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700
        assert stat.S_IMODE((directory / "edge.db").stat().st_mode) & 0o077 == 0
        mine = {job for job, s in by_shop.items() if s == shop}
        assert _jobs(directory / "edge.db") == dict.fromkeys(mine, "complete")
        # its own `crown-edge run` process's config and log, private too
        for name in ("edge.toml", "edge.log"):
            assert stat.S_IMODE((directory / name).stat().st_mode) & 0o077 == 0, name
    # no single-shop state next to the fleet's
    assert not (workdir / "edge.db").exists()
    pages = [ln for ln in proc.stderr.splitlines() if ln.strip().startswith("Customer page")]
    assert len(pages) == 6
    assert all("/status/" in ln and "(workshop shop-" in ln for ln in pages)


def test_up_from_a_folder_with_its_default_relative_workdir_starts_every_child(
    tmp_path: Path,
) -> None:
    """``up`` run as a user does (state under ``var/up/RUN``, a path relative to the working
    folder): the configs written for the workshop daemons and the second cloud process name
    files a child reads from the config's own folder, so they hold absolute paths."""
    up = ["up", "--shops", "2", "--cloud-processes", "2", "--lasers", "1", "--demo", "2"]
    up += ["--exit-when-done", "--json", "--time-scale", "0"]
    proc = subprocess.run(
        [sys.executable, "-m", "crown_edge", *up],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["ok"] is True
    assert sorted(summary["jobs"].values()) == ["complete"] * 2
    [run] = list((tmp_path / "var" / "up").iterdir())
    replica = (run / "cloud-replica.toml").read_text()
    assert str(run / "mqtt") in replica  # the broker's CA, named from the root
    assert not (run / "var").exists()  # nothing written under a doubled path
