"""Fixtures: a fast GRBL simulator and a driver connected to it."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable

import pytest

from crown_edge.drivers.grbl.driver import GrblDriver
from crown_edge.sim.grbl import GrblSimulator

FAST = {
    "poll_interval": 0.2,
    "silence_timeout": 1.0,
    "open_timeout": 1.0,
    "banner_wait": 0.05,
    "backoff": (0.05, 0.2),
    "lost_ack_timeout": 0.8,
    "hold_timeout": 0.5,
}


async def eventually(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    """Poll ``predicate`` until it holds; fail the test after ``timeout``."""
    for _ in range(int(timeout / 0.005)):
        if predicate():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("condition not reached in time")


def plate_program(job_id: str = "J-1", moves: int = 200) -> list[str]:
    """A small engraving program: header, laser setup, zig-zag strokes, laser off."""
    lines = [f"(job {job_id})", "G21", "G90", "M4 S600", "F3000"]
    for i in range(moves):
        lines.append(f"G1 X{(i % 10) * 2 + 1:.3f} Y{(i % 7) * 1.5:.3f}")
    lines.append("M5")
    return lines


def _open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else set()


@pytest.fixture(autouse=True)
async def no_leaks() -> AsyncIterator[None]:
    """After every test: no task left running and no file descriptor left open."""
    before = _open_fds()
    yield
    current = asyncio.current_task()
    for _ in range(100):  # closing serial ports finishes in executor threads: allow a moment
        tasks = [t for t in asyncio.all_tasks() if t is not current and not t.done()]
        leaked = _open_fds() - before
        if not tasks and not leaked:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"leaked tasks {tasks} / file descriptors {sorted(leaked)}")


@pytest.fixture
async def sim() -> AsyncIterator[GrblSimulator]:
    """A simulator running 100x faster than real time, at 115200 baud."""
    async with GrblSimulator(time_scale=0.01) as simulator:
        yield simulator


@pytest.fixture
async def driver(sim: GrblSimulator) -> AsyncIterator[GrblDriver]:
    """A driver connected and ready on ``sim``."""
    async with GrblDriver.from_config("laser-1", sim.device_path, 115200, **FAST) as drv:
        await drv.wait_ready(timeout=5)
        yield drv
