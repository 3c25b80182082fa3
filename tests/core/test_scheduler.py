"""Scheduler: ordering, capability matching, claims, positions, ETA."""

from __future__ import annotations

import asyncio
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from crown_edge.catalog import load_catalog
from crown_edge.config import MachineConfig
from crown_edge.lifecycle import JobEvent
from crown_edge.models import Availability, Execution, JobStatus, MachineState
from crown_edge.scheduler import MachineSlot, QueuedJob, Scheduler, can_do, plan
from crown_edge.store import Store

from .conftest import MACHINES, queued

CATALOG = load_catalog()


async def test_rush_first_then_due_date_then_arrival(store: Store, scheduler: Scheduler) -> None:
    await queued(store, scheduler, "late", due_date="2026-12-20T00:00:00Z")
    await queued(store, scheduler, "early-a", due_date="2026-12-02T00:00:00Z")
    await queued(store, scheduler, "early-b", due_date="2026-12-02T00:00:00Z")
    await queued(store, scheduler, "rush", due_date="2026-12-30T00:00:00Z", rush=True)
    order = [job.job_id for job, _ in await scheduler.snapshot(now=10.0)]
    assert order == ["rush", "early-a", "early-b", "late"]
    assert await scheduler.position("rush") == 1
    assert await scheduler.position("late") == 4


async def test_move_to_top(store: Store, scheduler: Scheduler) -> None:
    for i in range(3):
        await queued(store, scheduler, f"J-{i}")
    await queued(store, scheduler, "R", rush=True)
    await scheduler.move_to_top("J-2", now=5.0)
    assert await scheduler.position("J-2") == 1
    assert await scheduler.position("R") == 2


async def test_capability_matching() -> None:
    flat, _, rotary = MACHINES
    assert can_do(flat, CATALOG.item("plaque-a5"))
    assert not can_do(flat, CATALOG.item("glass-tumbler"))  # no rotary, wrong material
    assert can_do(rotary, CATALOG.item("glass-tumbler"))
    assert not can_do(rotary, CATALOG.item("plaque-a5"))  # aluminium not in its materials
    small_bed = MachineConfig(id="tiny", driver="sim", bed_width_mm=40, bed_height_mm=40)
    assert not can_do(small_bed, CATALOG.item("plaque-a5"))


async def test_machine_only_gets_jobs_it_can_do(store: Store, scheduler: Scheduler) -> None:
    await queued(store, scheduler, "glass", item_id="glass-tumbler")
    await queued(store, scheduler, "plate", item_id="plaque-a5")
    job = await scheduler.claim_next("rotary-1", now=2.0)
    assert job is not None and job.job_id == "glass"
    assert await scheduler.claim_next("rotary-1", now=2.0) is None  # busy: one job at a time
    job = await scheduler.claim_next("flat-2", now=2.0)
    assert job is not None and job.job_id == "plate"
    assert job.status is JobStatus.ENGRAVING and job.machine_id == "flat-2"


async def test_paused_and_unavailable_machines_get_nothing(
    store: Store, scheduler: Scheduler
) -> None:
    await queued(store, scheduler, "J-1")
    await scheduler.set_paused("flat-1", True)
    assert await scheduler.claim_next("flat-1", now=2.0) is None
    await scheduler.set_machine_state(
        MachineState("flat-2", Availability.UNAVAILABLE, Execution.STOPPED, alarm="ALARM:1"),
        now=2.0,
    )
    assert await scheduler.claim_next("flat-2", now=2.0) is None
    await scheduler.set_paused("flat-1", False)
    job = await scheduler.claim_next("flat-1", now=3.0)
    assert job is not None and job.job_id == "J-1"


async def test_earliest_finish_prefers_the_faster_machine() -> None:
    slots = [
        MachineSlot("slow", 0, free_at=0.0, speed_factor=0.5),
        MachineSlot("fast", 1, free_at=0.0, speed_factor=2.0),
    ]
    planned = plan([QueuedJob("J", 100.0, 0b11)], slots)
    assert planned[0].machine_id == "fast" and planned[0].finish_at == 50.0
    # the fast machine is busy for a long time: the slow one finishes earlier
    slots[1] = MachineSlot("fast", 1, free_at=500.0, speed_factor=2.0)
    assert plan([QueuedJob("J", 100.0, 0b11)], slots)[0].machine_id == "slow"


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.floats(1, 1000), st.integers(0, 7)), min_size=1, max_size=30))
def test_plan_respects_eligibility_and_positions(jobs: list[tuple[float, int]]) -> None:
    slots = [MachineSlot(f"m{i}", i, 0.0) for i in range(3)]
    planned = plan([QueuedJob(f"J{i}", est, mask) for i, (est, mask) in enumerate(jobs)], slots)
    assert [p.position for p in planned] == list(range(1, len(jobs) + 1))
    for p, (_, mask) in zip(planned, jobs, strict=True):
        if mask == 0:
            assert p.machine_id is None
        else:
            assert p.machine_id is not None and (mask >> int(p.machine_id[1])) & 1


async def test_snapshot_gives_eta_per_job(store: Store, scheduler: Scheduler) -> None:
    for i in range(4):
        await queued(store, scheduler, f"J-{i}")
    snap = await scheduler.snapshot(now=100.0)
    assert all(p.finish_at is not None and p.finish_at > 100.0 for _, p in snap)
    assert {p.machine_id for _, p in snap} <= {"flat-1", "flat-2"}


async def test_cancel_a_queued_job(store: Store, scheduler: Scheduler) -> None:
    await queued(store, scheduler, "J-1")
    await store.transition("J-1", JobEvent.CANCEL, now=3.0)
    assert await scheduler.claim_next("flat-1", now=4.0) is None


async def test_two_concurrent_claimers_never_share_a_job(tmp_path: Path) -> None:
    """Two stores (two connections, two threads) race for 1,000 jobs on 4 machines each."""
    path = tmp_path / "race.db"
    machines = tuple(MachineConfig(id=f"m{i}", driver="sim") for i in range(8))
    async with Store.from_path(path) as a, Store.from_path(path) as b:
        await a.sync_catalog(CATALOG, now=0.0)
        await a.set_stock("plaque-a5", 2000, now=0.0)
        sa, sb = Scheduler(a, machines, CATALOG), Scheduler(b, machines, CATALOG)
        await sa.start()
        for m in machines:
            await sa.set_machine_state(
                MachineState(m.id, Availability.AVAILABLE, Execution.READY), now=0.0
            )
        for i in range(1000):
            await queued(a, sa, f"J-{i:04d}")

        async def claimer(sched: Scheduler, store: Store, mids: list[str]) -> list[str]:
            got: list[str] = []
            idle_rounds = 0
            while idle_rounds < 3:
                progress = False
                for mid in mids:
                    job = await sched.claim_next(mid, now=2.0)
                    if job is None:
                        continue
                    got.append(job.job_id)
                    progress = True
                    await store.transition(job.job_id, JobEvent.FINISH, now=3.0)
                idle_rounds = 0 if progress else idle_rounds + 1
            return got

        # both claimers compete for the same machines too
        ga, gb = await asyncio.gather(
            claimer(sa, a, [f"m{i}" for i in range(8)]),
            claimer(sb, b, [f"m{i}" for i in reversed(range(8))]),
        )
    assert not set(ga) & set(gb)
    assert len(ga) + len(gb) == 1000
    assert len(set(ga) | set(gb)) == 1000
