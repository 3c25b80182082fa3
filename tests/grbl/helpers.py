"""Shared helpers for the GRBL tests: fast driver settings, a polling wait, a small program."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

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
