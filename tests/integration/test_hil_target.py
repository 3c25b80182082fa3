"""The HIL rig through a target file: ``hil/targets/simulated.toml``.

The GRBL simulators run as their own processes on pseudo-terminals reached through by-id-style
symlinks, the Modbus I/O module as its own process on TCP, the workshop daemon as its own
``crown-edge run`` — the code path a real bench uses. Every machine runs dry. Faults go the
target's way: a Modbus coil write (door), the fake USB power switch command (unplug), the
controller's reset pin (through the same switch command).
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from crown_edge.toolpath import fires_laser
from hil.rig import Rig, rig
from hil.runner import run_on
from hil.scenarios import ALL

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]

ROOT = Path(__file__).parents[2]
SIMULATED = ROOT / "hil" / "targets" / "simulated.toml"


def _is_pty_link(port: Path) -> bool:
    """A symlink (like udev's by-id names) that leads to a pseudo-terminal."""
    return port.is_symlink() and os.path.realpath(port).startswith("/dev/pts/")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def target_rig(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Rig]:
    workdir: Path = tmp_path_factory.mktemp("hil-target")
    async with rig(workdir, SIMULATED) as r:
        yield r


async def test_the_target_path_is_the_hardware_path(target_rig: Rig) -> None:
    r = target_rig
    assert r.stack.daemon is None  # the daemon is its own process
    assert r.target is not None and r.target.simulated and r.bench is not None
    config = tomllib.loads((r.stack.settings.workdir / "edge.toml").read_text())
    machines = {m["id"]: m for m in config["machines"]}
    assert set(machines) == {"laser-1", "rotary-laser"}
    for m in machines.values():
        assert m["driver"] == "grbl" and m["laser"] == "dry"
        port = Path(m["port"])
        assert port.parent == r.bench.bench / "serial" / "by-id", port
        assert _is_pty_link(port), port
    (device,) = config["devices"]
    assert device["url"].startswith("tcp://127.0.0.1:") and device["profile"].endswith(
        "bench-io.toml"
    )
    assert machines["rotary-laser"]["rotary"] == "io-1"


@pytest.mark.parametrize("name", ["happy_path_text_only", "design_approval_flow"])
async def test_acceptance_through_the_target(target_rig: Rig, name: str) -> None:
    await ALL[name](target_rig)


async def test_a_dry_machine_moves_without_firing(target_rig: Rig) -> None:
    job = await target_rig.order()
    assert (await target_rig.result(job))["status"] == "complete"
    (record,) = await target_rig.engraved(job) or []
    received = record["received"]
    motion = [line for line in received if line.startswith("G1")]
    assert len(motion) > 50 and "M5" in received  # every cut move, the laser held off
    assert not any(line.startswith(("M3", "M4")) for line in received)
    assert not fires_laser(received)


@pytest.mark.parametrize(
    "name", ["door_open_stops_the_laser", "usb_unplugged_mid_job", "controller_reset_mid_job"]
)
async def test_hardware_faults_through_the_target(target_rig: Rig, name: str) -> None:
    await ALL[name](target_rig)


async def test_a_fault_the_target_cannot_inject_is_a_skip_line(
    target_rig: Rig, capsys: pytest.CaptureFixture[str]
) -> None:
    r = target_rig
    assert r.target is not None
    full = r.target
    r.target = dataclasses.replace(
        full, faults={k: v for k, v in full.faults.items() if k != "alarm"}
    )
    try:
        counts = await run_on(r, ["alarm_mid_job_waits_for_technician"])
    finally:
        r.target = full
    assert counts == (0, 0, 1)
    assert capsys.readouterr().out.splitlines() == [
        "SKIP alarm_mid_job_waits_for_technician "
        "(target 'simulated' cannot inject alarm: no [faults.alarm])"
    ]
