"""The commissioning run on the hardware path: the GRBL simulator on a real pty and the Modbus
simulator on TCP, each its own process, named in a target file exactly as hardware would be."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from crown_edge.catalog import load_catalog
from crown_edge.commission.run import wait_connected
from crown_edge.drivers.grbl.driver import GrblDriver
from crown_edge.drivers.modbus import ModbusDevice
from hil.commissioning import commission as commission_target
from hil.target import load_target, read_simulator

pytestmark = pytest.mark.integration

TIME_SCALE = 0.02
REPO = Path(__file__).resolve().parents[2]


@dataclass
class Bench:
    port: str
    url: str


async def _start(*argv: str) -> tuple[asyncio.subprocess.Process, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "crown_edge",
        "sim",
        *argv,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    assert proc.stdout is not None
    async with asyncio.timeout(60):
        line = (await proc.stdout.readline()).decode().strip()
    assert line, f"sim {argv[0]} printed nothing"
    return proc, line


async def _stop(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        proc.terminate()
        try:
            async with asyncio.timeout(20):
                await proc.wait()
        except TimeoutError:
            proc.kill()
            await proc.wait()


@pytest.fixture
async def bench() -> AsyncIterator[Bench]:
    """A laser with homing (and soft limits set as a technician would) and an I/O module whose
    door and e-stop loops have a relay each, both as processes."""
    grbl, port = await _start("grbl", "--time-scale", str(TIME_SCALE), "--homing")
    try:
        modbus, url = await _start(
            "modbus",
            "--port",
            "0",
            "--profile",
            str(REPO / "hil/targets/bench-io.toml"),
            "--relay",
            "door_trip=door_closed",
            "--relay",
            "estop_trip=estop_released",
        )
        try:
            async with GrblDriver.from_config("setup", port, 115200) as drv:
                await wait_connected(drv, 30.0)
                await drv.command("$20=1")  # soft limits on, as the workshop's technician does
            yield Bench(port, url)
        finally:
            await _stop(modbus)
    finally:
        await _stop(grbl)


def target_file(tmp_path: Path, bench: Bench, *, faults: bool = True) -> Path:
    fault_tables = (
        '[faults.door]\ndevice = "io-1"\npoint = "door_trip"\n'
        '[faults.estop]\ndevice = "io-1"\npoint = "estop_trip"\n'
    )
    path = tmp_path / "bench.toml"
    path.write_text(
        f"""
[target]
name = "acceptance-bench"

[[devices]]
id = "io-1"
profile = "{REPO / "hil/targets/bench-io.toml"}"
url = "{bench.url}"

[[machines]]
id = "laser-1"
port = "{bench.port}"
baud = 115200
rotary = "io-1"
materials = ["anodised-aluminium", "brass"]

{fault_tables if faults else ""}
"""
    )
    return path


async def commission(*args: str, module: str = "hil.commissioning") -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        module,
        *args,
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    async with asyncio.timeout(150):
        out, _ = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode()


async def test_commissioning_accepts_a_well_set_machine(tmp_path: Path, bench: Bench) -> None:
    reports = tmp_path / "reports"
    target = target_file(tmp_path, bench)
    code, out = await commission(
        "--target", str(target), "--report-dir", str(reports), "--shop", "shop-7"
    )
    files = sorted(reports.iterdir())
    assert [f.suffix for f in files] == [".json", ".txt"], out
    for f in files:
        assert f.name.startswith("commissioning-shop-7-")
        assert stat.S_IMODE(os.stat(f).st_mode) == 0o600
    data = json.loads(files[0].read_text())
    checks = {c["check"]: c for c in data["checks"]}
    timing = checks.pop("dry job time")  # wall-clock: its figures are checked, not its verdict
    assert all(c["ok"] for c in checks.values()), {k: c["detail"] for k, c in checks.items()}
    assert list(checks) == [
        "handshake",
        "firmware",
        "buffers",
        "laser mode",
        "power scale",
        "homing enabled",
        "soft limits",
        "travel",
        "state",
        "homing",
        "frame",
        "dry job",
        "interlocks",
        "trip door_closed",
        "trip estop_released",
    ]
    assert {c["machine"] for c in data["checks"]} == {"laser-1"}
    assert data["shop"] == "shop-7" and data["source"] == str(target)
    assert checks["firmware"]["figures"]["version"] == "1.1h"
    assert checks["buffers"]["figures"] == {
        "options": "V",
        "planner_blocks": 15,
        "rx_buffer": 128,
    }
    assert checks["state"]["figures"] == {"state": "Alarm", "homing_lock": True}
    assert checks["frame"]["figures"]["item"] == "plaque-a5"
    dry = checks["dry job"]["figures"]
    assert dry["acked_lines"] == dry["lines"] and dry["lines"] > 50
    assert timing["figures"]["estimate_s"] == dry["estimate_s"] > 0
    assert timing["figures"]["time_scale"] == 1.0  # a target of hardware: no simulator scale
    assert timing["figures"]["measured_s"] > 0
    assert "door_closed opened: monitor tripped and stopped grbl" in str(
        checks["trip door_closed"]["detail"]
    )
    assert code == (0 if timing["ok"] else 1), out
    summary = files[1].read_text()
    assert summary in out
    assert "workshop shop-7" in summary and "machine laser-1:" in summary


async def test_what_the_bench_cannot_do_is_reported_not_run(tmp_path: Path, bench: Bench) -> None:
    reports = tmp_path / "reports"
    code, out = await commission(
        "--target", str(target_file(tmp_path, bench, faults=False)), "--report-dir", str(reports)
    )
    assert code == 1, out
    data = json.loads(next(reports.glob("*.json")).read_text())
    trips = [c for c in data["checks"] if c["check"].startswith("trip ")]
    assert [c["ok"] for c in trips] == [False, False]
    assert all(c["detail"].startswith("not run: this bench cannot cause") for c in trips)
    assert "NOT ACCEPTED" in out


async def test_a_technician_trips_what_the_bench_cannot(tmp_path: Path, bench: Bench) -> None:
    """``--ask``: no relay on the safety loops, so the technician is asked; here the "technician"
    works the loops through the I/O module, as their hand on the door would."""
    target = load_target(target_file(tmp_path, bench, faults=False))
    asked: list[str] = []
    loops = {"door": "door_trip", "e-stop": "estop_trip"}

    async with ModbusDevice.from_config(target.devices[0]) as io:

        async def technician(text: str) -> None:
            asked.append(text)
            loop = next(coil for word, coil in loops.items() if f"the {word} " in text + " ")
            await io.write_point(loop, "open the" in text or "press the" in text)

        report = await commission_target(target, load_catalog(), ask=technician)
    assert asked == [
        "laser-1: open the door now",
        "laser-1: close the door again now",
        "laser-1: press the e-stop now",
        "laser-1: release the e-stop now",
    ]
    trips = {c.check: c for c in report.checks if c.check.startswith("trip ")}
    assert all(c.ok for c in trips.values()), [c.detail for c in trips.values()]
    assert set(trips) == {"trip door_closed", "trip estop_released"}


async def test_the_simulated_target_gets_its_report(tmp_path: Path) -> None:
    """hil/targets/simulated.toml: the bench's simulators started for it, as the rig does; run
    as the README says, through the runner."""
    reports = tmp_path / "reports"
    code, out = await commission(
        "--target",
        "hil/targets/simulated.toml",
        "--commissioning",
        "--report-dir",
        str(reports),
        "--workdir",
        str(tmp_path / "work"),
        module="hil.runner",
    )
    data = json.loads(next(reports.glob("commissioning-simulated-*.json")).read_text())
    assert code == (0 if data["ok"] else 1), out
    simulator = read_simulator(REPO / "hil/targets/simulated.toml")
    assert simulator is not None
    machines = {m.id for m in simulator.machines}
    assert set(data["machines"]) == machines
    for machine in machines:
        mine = {c["check"]: c for c in data["checks"] if c["machine"] == machine}
        for name in ("handshake", "firmware", "buffers", "laser mode", "power scale"):
            assert mine[name]["ok"], (machine, mine[name])
        assert mine["frame"]["ok"] and mine["dry job"]["ok"], out
    assert "report: " in out and "summary: " in out
