"""Leak check for the sync tests: no task may outlive the test that started it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest


@pytest.fixture(autouse=True)
async def no_leaked_tasks() -> AsyncIterator[None]:
    """Fail a test that leaves asyncio tasks running behind it."""
    yield
    current = asyncio.current_task()
    for _ in range(3):  # let cancelled tasks finish unwinding
        await asyncio.sleep(0)
    leftover = [t for t in asyncio.all_tasks() if t is not current and not t.done()]
    assert not leftover, f"leaked tasks: {leftover}"
