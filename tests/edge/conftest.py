"""Fixtures for the workshop-activity tests: a real store and scheduler per test."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from crown_edge.catalog import Catalog, load_catalog
from crown_edge.config import MachineConfig
from crown_edge.daemon.activities import EdgeActivities
from crown_edge.models import Availability, Execution, MachineState
from crown_edge.scheduler import Scheduler
from crown_edge.store import Store

MACHINES = (MachineConfig(id="laser-1", driver="sim"),)


@pytest.fixture
def catalog() -> Catalog:
    """The packaged catalogue."""
    return load_catalog()


@pytest.fixture
async def store(tmp_path: Path, catalog: Catalog) -> AsyncIterator[Store]:
    """A fresh store on tmp_path with the catalogue's stock."""
    async with Store.from_path(tmp_path / "edge.db") as s:
        await s.sync_catalog(catalog, now=0.0)
        yield s


@pytest.fixture
async def scheduler(store: Store, catalog: Catalog) -> Scheduler:
    """One flat laser (no rotary), available."""
    sched = Scheduler(store, MACHINES, catalog)
    await sched.start()
    for m in MACHINES:
        await sched.set_machine_state(
            MachineState(m.id, Availability.AVAILABLE, Execution.READY), now=0.0
        )
    return sched


@pytest.fixture
def edge(store: Store, scheduler: Scheduler, catalog: Catalog) -> EdgeActivities:
    """Manual-QA workshop activities polling fast."""
    return EdgeActivities(store, scheduler, catalog, poll_s=0.01)
