"""``crown-edge doctor --machines`` against the GRBL and Modbus simulators as processes, and its
refusal to open the serial ports while the daemon (a real ``crown-edge run``) owns them."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from crown_edge.cli import app
from crown_edge.commission.doctor import DAEMON_OWNS_PORTS
from crown_edge.commission.run import wait_connected
from crown_edge.control import call
from crown_edge.drivers.grbl.driver import GrblDriver
from crown_edge.errors import CrownEdgeError

pytestmark = pytest.mark.integration

runner = CliRunner()


def start(*argv: str) -> tuple[subprocess.Popen[str], str]:
    """``crown-edge sim …`` as a process; returns it and the line it prints (where to connect)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "crown_edge", "sim", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    assert line, f"sim {argv[0]} printed nothing"
    return proc, line


def stop(proc: subprocess.Popen[str]) -> None:
    proc.terminate()
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    if proc.stdout is not None:
        proc.stdout.close()


@pytest.fixture
def sims() -> Iterator[tuple[str, str]]:
    """(pty path of a GRBL simulator, URL of a rotary-io Modbus simulator)."""
    grbl, port = start("grbl", "--time-scale", "0.02")
    try:
        modbus, url = start("modbus", "--port", "0")
        try:
            yield port, url
        finally:
            stop(modbus)
    finally:
        stop(grbl)


def write_config(tmp_path: Path, port: str, url: str) -> Path:
    (tmp_path / "var").mkdir(exist_ok=True)
    path = tmp_path / "edge.toml"
    path.write_text(
        f"""
[edge]
shop_id = "shop-m"
[store]
path = "{tmp_path}/var/edge.db"
[control]
socket = "{tmp_path}/var/ctl.sock"
[[devices]]
id = "io-1"
profile = "rotary-io"
url = "{url}"
[[machines]]
id = "laser-1"
driver = "grbl"
port = "{port}"
rotary = "io-1"
[mqtt]
enabled = false
[temporal]
enabled = false
"""
    )
    return path


def rows(result: object) -> dict[str, dict[str, object]]:
    data = json.loads(result.stdout)  # type: ignore[attr-defined]
    return {c["check"]: c for c in data["checks"]}


async def _set(port: str, line: str) -> None:
    async with GrblDriver.from_config("setup", port, 115200) as drv:
        await wait_connected(drv, 30.0)
        await drv.command(line)


def test_doctor_machines_asks_each_laser(tmp_path: Path, sims: tuple[str, str]) -> None:
    port, url = sims
    asyncio.run(_set(port, "$32=0"))  # a controller someone set up for a spindle
    config = write_config(tmp_path, port, url)
    result = runner.invoke(app, ["doctor", "--machines", "--json", "-c", str(config)])
    assert result.exit_code == 1, result.stdout
    found = rows(result)
    assert found["daemon"]["ok"] and "free for --machines" in str(found["daemon"]["detail"])
    handshake = found["laser-1 handshake"]
    assert handshake["ok"] and handshake["machine"] == "laser-1"
    assert handshake["step"] == "handshake"
    assert found["laser-1 firmware"]["ok"]
    assert found["laser-1 firmware"]["figures"] == {
        "version": "1.1h",
        "build": "20190830",
        "info": None,
    }
    assert found["laser-1 buffers"]["figures"]["rx_buffer"] == 128  # type: ignore[index]
    mode = found["laser-1 laser mode"]
    assert not mode["ok"] and "$32=0" in str(mode["detail"])
    assert found["laser-1 power scale"]["ok"]
    assert not found["laser-1 homing enabled"]["ok"]  # the simulator's default: no homing
    assert not found["laser-1 soft limits"]["ok"]
    assert found["laser-1 travel"]["ok"] and found["laser-1 state"]["ok"]
    assert found["laser-1 interlocks"]["ok"]
    assert "door_closed=True" in str(found["laser-1 interlocks"]["detail"])
    # the short form never moves: no homing, frame, dry job or trips
    steps = {r["step"] for r in found.values() if "step" in r}
    assert steps.isdisjoint({"homing", "frame", "dry job", "dry job time"})
    assert not any(str(s).startswith("trip ") for s in steps)
    text = runner.invoke(app, ["doctor", "--machines", "-c", str(config)])
    assert text.exit_code == 1
    assert any(line.startswith("FAIL laser-1 laser mode") for line in text.stdout.splitlines())
    assert all(len(line) <= 80 for line in text.stdout.splitlines())


def test_doctor_machines_leaves_the_ports_to_a_running_daemon(
    tmp_path: Path, sims: tuple[str, str]
) -> None:
    port, url = sims
    config = write_config(tmp_path, port, url)
    daemon = subprocess.Popen(
        [sys.executable, "-m", "crown_edge", "run", "-c", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while True:  # until the daemon answers on its control socket
            try:
                asyncio.run(call(tmp_path / "var/ctl.sock", "ping", timeout=2))
                break
            except CrownEdgeError:
                assert daemon.poll() is None, "the daemon exited"
                assert time.monotonic() < deadline, "the daemon never answered"
                time.sleep(0.1)
        result = runner.invoke(app, ["doctor", "--machines", "--json", "-c", str(config)])
        assert result.exit_code == 1
        found = rows(result)
        assert found["daemon"]["ok"]
        assert found["machines"] == {"check": "machines", "ok": False, "detail": DAEMON_OWNS_PORTS}
        assert not any(name.startswith("laser-1 ") for name in found)
        text = runner.invoke(app, ["doctor", "--machines", "-c", str(config)])
        fails = [line for line in text.stdout.splitlines() if line.startswith("FAIL")]
        assert len(fails) == 1 and fails[0].split()[:2] == ["FAIL", "machines"]
        assert "not asked: the daemon is running" in fails[0]
        assert daemon.poll() is None  # the daemon kept its port
    finally:
        daemon.terminate()
        try:
            daemon.wait(30)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait()
