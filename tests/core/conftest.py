"""Fixtures for edge-core tests: a fresh store and scheduler per test."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from crown_edge.catalog import load_catalog
from crown_edge.config import MachineConfig
from crown_edge.models import Availability, Execution, IntakeMessage, MachineState
from crown_edge.scheduler import Scheduler
from crown_edge.store import Store

MACHINES = (
    MachineConfig(id="flat-1", driver="sim", materials=("anodised-aluminium", "brass", "acrylic")),
    MachineConfig(id="flat-2", driver="sim", materials=("anodised-aluminium", "wood")),
    MachineConfig(id="rotary-1", driver="sim", materials=("glass", "brass"), rotary="chuck"),
)


def message(job_id: str, **kw: object) -> IntakeMessage:
    """A valid intake message with overrides."""
    data: dict[str, object] = {
        "job_id": job_id,
        "customer_id": "C-1",
        "item_id": "plaque-a5",
        "due_date": "2026-12-01T12:00:00Z",
        "text": ["Champion 2026"],
    }
    data.update(kw)
    return IntakeMessage.parse(data)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    async with Store.from_path(tmp_path / "edge.db") as s:
        await s.sync_catalog(load_catalog(), now=0.0)
        yield s


@pytest.fixture
async def scheduler(store: Store) -> Scheduler:
    sched = Scheduler(store, MACHINES, load_catalog())
    await sched.start()
    for m in MACHINES:
        await sched.set_machine_state(
            MachineState(m.id, Availability.AVAILABLE, Execution.READY), now=0.0
        )
    return sched


async def queued(
    store: Store, sched: Scheduler, job_id: str, now: float = 1.0, **kw: object
) -> None:
    """Submit, validate and enqueue a job."""
    await store.submit(message(job_id, **kw), now=now)
    await store.validate_and_reserve(job_id, now=now)
    await sched.enqueue(job_id, now=now)
