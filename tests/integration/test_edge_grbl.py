"""The edge daemon against the GRBL simulator: in-process and as a real process killed mid-job."""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest

from crown_edge.config import EdgeConfig, MachineConfig, MqttConfig, TemporalConfig
from crown_edge.control import call
from crown_edge.daemon.app import EdgeDaemon
from crown_edge.daemon.binding import GrblMachine
from crown_edge.drivers.base import MachineDriver
from crown_edge.drivers.grbl.driver import GrblDriver
from crown_edge.sim.grbl import GrblSimulator

pytestmark = pytest.mark.integration


def order(job_id: str, **kw: Any) -> dict[str, Any]:
    return {
        "job_id": job_id,
        "customer_id": "C-1",
        "item_id": "plaque-a5",
        "due_date": "2026-12-01",
        "text": ["Club Champion", "2026"],
        **kw,
    }


class SimRig:
    """Daemon + one simulator per machine, simulators kept by the test for inspection."""

    def __init__(self, tmp_path: Path, n: int = 1, time_scale: float = 0.0) -> None:
        self.config = EdgeConfig(
            shop_id="rig",
            store_path=tmp_path / "edge.db",
            control_socket=tmp_path / "ctl.sock",
            machines=tuple(MachineConfig(id=f"m{i}", driver="sim") for i in range(1, n + 1)),
            temporal=TemporalConfig(enabled=False),
            mqtt=MqttConfig(enabled=False),
        )
        self.time_scale = time_scale
        self.sims: dict[str, GrblSimulator] = {}
        self.daemon = EdgeDaemon(self.config)

    async def factory(self, cfg: EdgeConfig, stack: AsyncExitStack) -> dict[str, MachineDriver]:
        machines: dict[str, MachineDriver] = {}
        for m in cfg.machines:
            sim = await stack.enter_async_context(GrblSimulator(time_scale=self.time_scale))
            self.sims[m.id] = sim
            driver = await stack.enter_async_context(
                GrblDriver.from_config(m.id, sim.device_path, m.baud)
            )
            machines[m.id] = GrblMachine(m, driver)
        return machines

    async def rpc(self, cmd: str, **args: Any) -> Any:
        return await call(self.config.control_socket, cmd, args)

    async def wait_status(self, job_id: str, *statuses: str, timeout: float = 60) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            job = await self.rpc("jobs.show", job_id=job_id)
            if job["status"] in statuses:
                return job
            if time.monotonic() > deadline:
                raise AssertionError(f"{job_id}: still {job['status']}, wanted {statuses}")
            await asyncio.sleep(0.05)


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[SimRig]:
    r = SimRig(tmp_path, n=2, time_scale=0.0)
    task = asyncio.create_task(r.daemon.run(machine_factory=r.factory))
    await asyncio.wait_for(r.daemon.ready.wait(), 30)
    try:
        yield r
    finally:
        r.daemon.stop_event.set()
        await asyncio.wait_for(task, 30)


async def test_job_engraved_once_on_the_simulator(rig: SimRig) -> None:
    await rig.rpc("jobs.submit", message=order("J-1"))
    job = await rig.wait_status("J-1", "qa_pending")
    runs = [r for sim in rig.sims.values() for r in sim.runs_of("J-1")]
    assert len(runs) == 1  # the program was executed exactly once
    assert job["acked_lines"] == job["total_lines"] > 10
    await rig.rpc("qa.verdict", job_id="J-1", passed=True)
    await rig.wait_status("J-1", "complete")


async def test_alarm_mid_job_interrupts_and_never_reruns(rig: SimRig) -> None:
    for sim in rig.sims.values():
        sim.alarm_after_line(40, code=1)
    await rig.rpc("jobs.submit", message=order("J-2"))
    job = await rig.wait_status("J-2", "interrupted")
    assert job["last_acked_line"] is not None and job["last_acked_line"] >= 1
    await asyncio.sleep(0.5)
    assert sum(len(s.runs_of("J-2")) for s in rig.sims.values()) == 1
    machines = {m["machine_id"]: m for m in await rig.rpc("machines.list")}
    assert machines[job["machine_id"]]["availability"] == "UNAVAILABLE"


async def test_ten_jobs_two_machines_never_two_at_once(rig: SimRig) -> None:
    for i in range(10):
        await rig.rpc("jobs.submit", message=order(f"P-{i}", rush=i % 3 == 0))
    for i in range(10):
        await rig.wait_status(f"P-{i}", "qa_pending")
    per_machine = {mid: [r.job_id for r in sim.programs] for mid, sim in rig.sims.items()}
    executed = [j for jobs in per_machine.values() for j in jobs]
    assert sorted(executed) == sorted(f"P-{i}" for i in range(10))  # each exactly once
    conn = sqlite3.connect(rig.config.store_path)
    try:
        spans = conn.execute(
            "SELECT machine_id, started_at, ended_at FROM runs ORDER BY machine_id, started_at"
        ).fetchall()
    finally:
        conn.close()
    for (m1, _, end1), (m2, start2, _) in itertools.pairwise(spans):
        if m1 == m2:
            assert start2 >= end1  # one job at a time per machine


def _config_file(tmp_path: Path) -> Path:
    path = tmp_path / "edge.toml"
    path.write_text(
        '[edge]\nshop_id = "kill"\n[store]\npath = "edge.db"\n[control]\nsocket = "ctl.sock"\n'
        "[temporal]\nenabled = false\n[mqtt]\nenabled = false\n"
        '[[machines]]\nid = "m1"\ndriver = "sim"\nsim_time_scale = 1.0\n'
    )
    return path


async def test_daemon_killed_mid_job_comes_back_interrupted(tmp_path: Path) -> None:
    """SIGKILL while engraving: after restart the job is interrupted and is not re-engraved."""
    config = _config_file(tmp_path)
    sock = tmp_path / "ctl.sock"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}

    def start() -> subprocess.Popen[bytes]:
        with open(tmp_path / "daemon.log", "ab") as log:
            return subprocess.Popen(
                [sys.executable, "-m", "crown_edge", "run", "--config", str(config)],
                stdout=subprocess.DEVNULL,
                stderr=log,
                env=env,
            )

    async def wait_ready() -> None:
        for _ in range(300):
            try:
                await call(sock, "ping", timeout=1.0)
                return
            except Exception:
                await asyncio.sleep(0.1)
        raise AssertionError((tmp_path / "daemon.log").read_text())

    async def show(job_id: str) -> Any:
        return await call(sock, "jobs.show", {"job_id": job_id})

    proc = start()
    try:
        await wait_ready()
        await call(sock, "jobs.submit", {"message": order("K-1")})
        for _ in range(300):
            job = await show("K-1")
            if job["status"] == "engraving" and (job["progress"] or 0) > 0:
                break
            await asyncio.sleep(0.05)
        assert job["status"] == "engraving"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    proc = start()
    try:
        await wait_ready()
        job = await show("K-1")
        assert job["status"] == "interrupted" and job["reason"] == "daemon_restart"
        await asyncio.sleep(1.0)
        job = await show("K-1")
        assert job["status"] == "interrupted"  # never re-engraved on its own
        assert len(job["runs"]) == 1
        await call(sock, "jobs.resume", {"job_id": "K-1", "mode": "scrap"})
        assert (await show("K-1"))["status"] == "failed"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
