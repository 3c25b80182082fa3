"""The pieces of a simulated bench: the GRBL simulator's link, control socket and reset record,
the Modbus simulator's relays, and the bench's fake switch, each as a real pty / socket."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from crown_edge.catalog import load_catalog
from crown_edge.drivers.grbl.driver import GrblDriver
from crown_edge.drivers.modbus import ModbusDevice
from crown_edge.drivers.modbus.profile import load_profile
from crown_edge.errors import ConfigError
from crown_edge.sim import grbl_cli
from crown_edge.sim.grbl_cli import sim_control
from crown_edge.sim.modbus import ModbusSimulator
from crown_edge.sim.modbus_cli import follow_relays, parse_relays
from crown_edge.toolpath import dry_run, render_job
from hil.bench_sim import control_path, main, switch

ROOT = Path(__file__).parents[2]
PROFILE = ROOT / "hil" / "targets" / "bench-io.toml"


@contextlib.asynccontextmanager
async def served(tmp_path: Path, time_scale: float = 0.0) -> AsyncIterator[tuple[Path, Path]]:
    """``crown-edge sim grbl --link … --control …`` in this loop; (link, control)."""
    link = tmp_path / "serial" / "by-id" / "usb-sim-if00"
    control = control_path(tmp_path, "m1")
    task = asyncio.create_task(grbl_cli.serve(time_scale=time_scale, link=link, control=control))
    try:
        await _until(lambda: asyncio.to_thread(_ready, control, link))
        yield link, control
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _until(check: Callable[[], Awaitable[object]], timeout: float = 10.0) -> None:
    """Poll ``check`` until it is truthy (TimeoutError after ``timeout``)."""
    async with asyncio.timeout(timeout):
        while True:
            if await check():
                return
            await asyncio.sleep(0.01)


def _ready(control: Path, link: Path) -> bool:
    return control.exists() and link.is_symlink()


def _is_pty_link(link: Path) -> bool:
    return os.path.realpath(link).startswith("/dev/pts/")


def _program(job_id: str) -> tuple[str, ...]:
    catalog = load_catalog()
    item = catalog.item("plaque-a5")
    return render_job(item, ["Best Man"], catalog.material(item.material), job_id=job_id).gcode


def _exists(path: Path) -> bool:
    return path.exists()


async def test_link_control_and_the_reset_record(tmp_path: Path) -> None:
    async with served(tmp_path, time_scale=1.0) as (link, control):
        state = await sim_control(control, "state")
        assert state["state"] == "Idle" and state["plugged"] and not state["laser_on"]
        assert await asyncio.to_thread(_is_pty_link, link)
        program = dry_run(_program("J-1"))
        async with GrblDriver.from_config("m1", str(link), 115200) as driver:
            await driver.wait_ready(10)
            run = asyncio.create_task(driver.run_program("J-1", program))

            async def running() -> bool:
                status = driver.status
                return run.done() or (status is not None and status.state == "Run")

            await _until(running)
            await switch(tmp_path, "m1", "reset")  # the controller's reset pin, mid-job
            result = await run
            assert result.outcome == "interrupted", result
        (record,) = (await sim_control(control, "programs", job_id="J-1"))["programs"]
        assert record["job_id"] == "J-1" and record["interrupted"]
        (at,) = record["resets_at"]
        assert 0 < at < len(program) and len(record["received"]) == at  # nothing after it
        assert record["received"] == list(program[:at])
        assert (await sim_control(control, "state"))["resets"] == 1


async def test_the_fake_switch_unplugs_and_replugs(tmp_path: Path) -> None:
    async with served(tmp_path) as (link, control):
        await switch(tmp_path, "m1", "off")
        assert not (await sim_control(control, "state"))["plugged"]
        assert not await asyncio.to_thread(_exists, link)  # a by-id link dangles
        await switch(tmp_path, "m1", "on")
        assert (await sim_control(control, "state"))["plugged"]
        assert await asyncio.to_thread(_exists, link)
        await sim_control(control, "time_scale", value=0.5)
        await switch(tmp_path, "m1", "alarm")
        with pytest.raises(RuntimeError, match="unknown command"):
            await sim_control(control, "explode")


def test_the_switch_command_line_fails_in_one_line_without_a_bench(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "hil.bench_sim", "switch", "--bench", str(tmp_path), "m1", "off"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("switch m1 off:")
    with pytest.raises(SystemExit):
        main(["switch", "--bench", str(tmp_path), "m1", "smoke"])


async def test_a_relay_coil_opens_the_door_input() -> None:
    profile = load_profile(PROFILE)
    relays = parse_relays(profile, ["door_trip=door_closed", "estop_trip = estop_released"])
    assert relays == [("door_trip", "door_closed"), ("estop_trip", "estop_released")]
    async with ModbusSimulator(profile) as sim:
        wiring = asyncio.create_task(follow_relays(sim, relays))
        try:
            async with ModbusDevice.from_profile("io-1", profile, sim.url) as io:

                async def door() -> object:
                    want = not await io.read_point("door_trip")

                    async def follows() -> bool:
                        return bool(await io.read_point("door_closed") == want)

                    await _until(follows, 5)
                    return await io.read_point("door_closed")

                assert await door() is True
                await io.write_point("door_trip", True)
                assert await door() is False
                assert await io.read_point("estop_released") is True
                await io.write_point("door_trip", False)
                assert await door() is True
        finally:
            wiring.cancel()
            await asyncio.gather(wiring, return_exceptions=True)


@pytest.mark.parametrize(
    ("item", "needle"),
    [
        ("door_trip", "COIL=INPUT"),
        ("door_trip=steps_per_rotation", "not a bit"),
        ("nope=door_closed", "nope"),
    ],
)
def test_bad_relays_are_config_errors(item: str, needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        parse_relays(load_profile(PROFILE), [item])
