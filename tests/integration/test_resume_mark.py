"""The resume mark against a daemon SIGKILLed mid-run, with the controller in another process.

The simulator lives in the test process (like a real controller it keeps executing its buffers
when the host dies); the daemon is a real process driving it over the pty. After the kill the
durable mark must cover every line the controller executed, a default resume must engrave no
line twice, and a job whose every line was sent can go to QA instead of the bin.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from crown_edge.control import call
from crown_edge.sim.grbl import GrblSimulator
from crown_edge.sim.grbl_core import ProgramRecord

pytestmark = pytest.mark.integration


def order(job_id: str, text: list[str] | None = None) -> dict[str, Any]:
    return {
        "job_id": job_id,
        "customer_id": "C-1",
        "item_id": "plaque-a5",
        "due_date": "2026-12-01",
        "text": text or ["Club Champion", "Season 2026", "Runner-up"],
    }


class Daemon:
    """``crown-edge run`` as a child process on a config naming the simulator's port."""

    def __init__(self, tmp_path: Path, port: str) -> None:
        self.tmp = tmp_path
        self.sock = tmp_path / "ctl.sock"
        self.config = tmp_path / "edge.toml"
        self.config.write_text(
            '[edge]\nshop_id = "mark"\n[store]\npath = "edge.db"\n[control]\nsocket = "ctl.sock"\n'
            "[temporal]\nenabled = false\n[mqtt]\nenabled = false\n"
            f'[[machines]]\nid = "m1"\ndriver = "grbl"\nport = "{port}"\n'
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.tmp / "daemon.log", "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "crown_edge", "run", "--config", str(self.config)],
                stdout=subprocess.DEVNULL,
                stderr=log,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )

    def stop(self, sig: signal.Signals) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=30)
        self.proc = None

    async def ready(self) -> None:
        for _ in range(300):
            try:
                await call(self.sock, "ping", timeout=1.0)
                return
            except Exception:
                await asyncio.sleep(0.1)
        raise AssertionError((self.tmp / "daemon.log").read_text())

    async def rpc(self, cmd: str, **args: Any) -> Any:
        return await call(self.sock, cmd, args, timeout=30.0)

    async def until(self, job_id: str, test: Callable[[Any], bool], timeout: float = 60) -> Any:
        for _ in range(int(timeout / 0.02)):
            job = await self.rpc("jobs.show", job_id=job_id)
            if test(job):
                return job
            await asyncio.sleep(0.02)
        raise AssertionError(f"{job_id}: condition not reached; last {job}")


@pytest.fixture(params=[0.25])
async def rig(
    tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[tuple[GrblSimulator, Daemon]]:
    # a real-time-ish controller so the kill lands mid-program
    async with GrblSimulator(time_scale=request.param) as sim:
        daemon = Daemon(tmp_path, sim.device_path)
        daemon.start()
        try:
            await daemon.ready()
            yield sim, daemon
        finally:
            daemon.stop(signal.SIGTERM)


async def settle(sim: GrblSimulator) -> None:
    """Let the orphaned controller run out what it had buffered."""
    for _ in range(1000):
        if sim.state in ("Idle", "Alarm"):
            await asyncio.sleep(0.3)
            if sim.state in ("Idle", "Alarm"):
                return
        await asyncio.sleep(0.02)
    raise AssertionError(f"controller still {sim.state}")


def last_executed(record: ProgramRecord, program: list[str]) -> int:
    """The number of the last program line the controller executed.

    The simulator's record starts at the ``(job ID)`` comment, which is not line 1.
    """
    header = next(i for i, line in enumerate(program) if line.strip() == record.executed[0])
    return header + len(record.executed)


async def test_kill_mid_run_then_continue_engraves_no_line_twice(
    rig: tuple[GrblSimulator, Daemon],
) -> None:
    sim, daemon = rig
    await daemon.rpc("jobs.submit", message=order("R-1"))
    job = await daemon.until(
        "R-1", lambda j: j["status"] == "engraving" and (j["acked_lines"] or 0) > 20
    )
    total = job["total_lines"]
    daemon.stop(signal.SIGKILL)
    await settle(sim)
    first = sim.runs_of("R-1")[0]
    program = await rendered(daemon, "R-1")
    assert len(program) == total
    executed = last_executed(first, program)
    assert 0 < executed < total

    daemon.start()
    await daemon.ready()
    job = await daemon.rpc("jobs.show", job_id="R-1")
    assert job["status"] == "interrupted" and job["reason"] == "daemon_restart"
    mark = job["sent_line"]
    assert mark is not None and mark >= executed  # every executed line is at or below the mark
    run = job["runs"][-1]
    assert run["sent_line"] == mark and run["last_acked_line"] is not None  # not "0/?" and "-"
    advice = job["resume"]
    assert advice["default_from_line"] == mark and not advice["all_sent"]
    assert "--continue" in advice["hint"]

    with pytest.raises(Exception, match="before the last line sent"):
        await daemon.rpc("jobs.resume", job_id="R-1", mode="from_line", line=max(0, mark - 5))
    assert (await daemon.rpc("jobs.show", job_id="R-1"))["status"] == "interrupted"

    await daemon.rpc("jobs.resume", job_id="R-1", mode="from_line")  # --continue
    await daemon.until("R-1", lambda j: j["status"] == "qa_pending", timeout=120)
    runs = sim.runs_of("R-1")
    assert len(runs) == 2
    assert sorted(first.executed) == sorted(line.strip() for line in program[:executed])
    # the resumed run: a restore preamble, then exactly lines mark+1..total, each once
    # (``received`` keeps wire order; ``executed`` lists comments when read, moves when done)
    assert runs[1].received[-(total - mark) :] == [line.strip() for line in program[mark:]]
    assert sorted(runs[1].executed) == sorted(runs[1].received)
    preamble = runs[1].received[: len(runs[1].received) - (total - mark)]
    assert all(not line.startswith("G1") for line in preamble)  # nothing cut in the preamble
    assert executed <= mark  # lines 1..executed, then mark+1..total: no line engraved twice


async def rendered(daemon: Daemon, job_id: str) -> list[str]:
    """The program the daemon streams for the job (rendering is a pure function of the job)."""
    from crown_edge.catalog import load_catalog
    from crown_edge.config import MachineConfig
    from crown_edge.daemon.programs import render_program
    from crown_edge.store import Store

    async with Store.from_path(daemon.tmp / "edge.db") as store:
        job = await store.get_job(job_id)
    program = render_program(job, load_catalog(None), MachineConfig(id="m1"))
    return list(program.lines)


@pytest.mark.parametrize("rig", [1.0], indirect=True)  # real time: the planner drains slowly
async def test_all_lines_sent_before_the_kill_can_go_to_qa(
    rig: tuple[GrblSimulator, Daemon],
) -> None:
    sim, daemon = rig
    await daemon.rpc("jobs.submit", message=order("R-2", ["CROWN"]))
    # every line acknowledged (so sent) while the controller still works through its planner
    job = await daemon.until(
        "R-2",
        lambda j: (
            j["status"] == "engraving"
            and j["total_lines"] is not None
            and j["last_acked_line"] == j["total_lines"]
        ),
    )
    daemon.stop(signal.SIGKILL)
    await settle(sim)
    program = await rendered(daemon, "R-2")
    assert last_executed(sim.runs_of("R-2")[0], program) == job["total_lines"]  # ran to the end

    daemon.start()
    await daemon.ready()
    job = await daemon.until("R-2", lambda j: (j.get("resume") or {}).get("at_program_end"))
    advice = job["resume"]
    assert advice["all_sent"] and "--to-qa" in advice["hint"]
    assert "idle at the program's end" in advice["hint"]
    done = await daemon.rpc("jobs.resume", job_id="R-2", mode="to_qa")
    assert done["status"] == "qa_pending"
    passed = await daemon.rpc("qa.verdict", job_id="R-2", passed=True, notes="looks finished")
    assert passed["status"] == "complete"
    assert len(sim.runs_of("R-2")) == 1  # never engraved again
