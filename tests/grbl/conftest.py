"""Fixtures: a fast GRBL simulator and a driver connected to it."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator

import pytest

from crown_edge.drivers.grbl.driver import GrblDriver
from crown_edge.sim.grbl import GrblSimulator
from tests.grbl.helpers import FAST


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
