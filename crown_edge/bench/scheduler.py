"""``crown-edge bench scheduler``: durable enqueue rate and pick-next latency.

10,000 validated jobs (mixed items: plates and cylinders) are enqueued one durable transaction
each (``synchronous=FULL``); then, with all of them queued, 8 machines with mixed capabilities ask
for their next job (read-only pick) and claim it (atomic write), draining part of the queue.
Finally two claimers on separate connections race for 1,000 jobs; ``claim_conflicts`` counts
jobs both got (must be 0).
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from crown_edge.bench import percentile
from crown_edge.catalog import load_catalog
from crown_edge.config import MachineConfig
from crown_edge.lifecycle import JobEvent
from crown_edge.models import Availability, Execution, IntakeMessage, MachineState
from crown_edge.scheduler import Scheduler
from crown_edge.store import Store

MACHINES = (
    MachineConfig(id="m1", driver="sim", materials=("anodised-aluminium", "brass")),
    MachineConfig(id="m2", driver="sim", materials=("anodised-aluminium", "acrylic")),
    MachineConfig(id="m3", driver="sim", materials=("anodised-aluminium", "wood", "acrylic")),
    MachineConfig(id="m4", driver="sim", materials=("brass",), speed_factor=1.5),
    MachineConfig(id="m5", driver="sim", materials=("glass", "brass"), rotary="r1"),
    MachineConfig(id="m6", driver="sim", materials=("glass",), rotary="r2"),
    MachineConfig(id="m7", driver="sim", materials=(), bed_width_mm=60, bed_height_mm=30),
    MachineConfig(id="m8", driver="sim", materials=("anodised-aluminium",), speed_factor=0.7),
)
ITEMS = (
    "plaque-a5",
    "plaque-small",
    "trophy-plate",
    "acrylic-award",
    "glass-tumbler",
    "cup-silver",
)


def _log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


async def _bench(n_jobs: int, n_picks: int, n_race: int, root: Path) -> dict[str, Any]:
    catalog = load_catalog()
    async with Store.from_path(root / "bench.db") as store:
        await store.sync_catalog(catalog, now=0.0)
        for item in ITEMS:
            await store.set_stock(item, n_jobs + n_race, now=0.0)
        sched = Scheduler(store, MACHINES, catalog)
        await sched.start()
        for m in MACHINES:
            await sched.set_machine_state(
                MachineState(m.id, Availability.AVAILABLE, Execution.READY), now=0.0
            )
        _log(f"preparing {n_jobs} validated jobs")
        for i in range(n_jobs):
            msg = IntakeMessage.parse(
                {
                    "job_id": f"B-{i:06d}",
                    "customer_id": f"C-{i % 97}",
                    "item_id": ITEMS[i % len(ITEMS)],
                    "due_date": f"2026-12-{1 + i % 28:02d}T12:00:00Z",
                    "rush": i % 10 == 0,
                    "text": ["Club Champion", "2026"],
                }
            )
            await store.submit(msg, now=1.0)
            await store.validate_and_reserve(msg.job_id, now=1.0)
        _log("enqueueing (one durable transaction per job)")
        started = time.perf_counter()
        for i in range(n_jobs):
            await sched.enqueue(f"B-{i:06d}", now=2.0, estimate_s=60.0 + i % 240, attempt=1)
        enqueue_s = time.perf_counter() - started
        _log(f"picking with {n_jobs} queued")
        picks: list[float] = []
        claims: list[float] = []
        for i in range(n_picks):
            machine = MACHINES[i % len(MACHINES)].id
            t0 = time.perf_counter()
            job_id = await sched.pick_next(machine, now=3.0)
            t1 = time.perf_counter()
            picks.append((t1 - t0) * 1000)
            job = await sched.claim_next(machine, now=3.0)
            claims.append((time.perf_counter() - t1) * 1000)
            if job is not None:
                assert job_id is None or job.job_id == job_id
                await store.transition(job.job_id, JobEvent.FINISH, now=4.0)
    conflicts, raced = await _race(root / "race.db", n_race, catalog)
    return {
        "jobs": n_jobs,
        "machines": len(MACHINES),
        "enqueue_per_s": round(n_jobs / enqueue_s, 1),
        "pick_p50_ms": round(statistics.median(picks), 3),
        "pick_p99_ms": round(percentile(picks, 0.99), 3),
        "claim_p50_ms": round(statistics.median(claims), 3),
        "claim_p99_ms": round(percentile(claims, 0.99), 3),
        "picks": len(picks),
        "race_jobs": n_race,
        "race_claimed": raced,
        "claim_conflicts": conflicts,
    }


async def _race(path: Path, n: int, catalog: Any) -> tuple[int, int]:
    machines = tuple(MachineConfig(id=f"r{i}", driver="sim") for i in range(8))
    async with Store.from_path(path) as a, Store.from_path(path) as b:
        await a.sync_catalog(catalog, now=0.0)
        await a.set_stock("plaque-a5", n, now=0.0)
        sa, sb = Scheduler(a, machines, catalog), Scheduler(b, machines, catalog)
        await sa.start()
        for m in machines:
            await sa.set_machine_state(
                MachineState(m.id, Availability.AVAILABLE, Execution.READY), now=0.0
            )
        for i in range(n):
            msg = IntakeMessage.parse(
                {
                    "job_id": f"R-{i:05d}",
                    "customer_id": "C",
                    "item_id": "plaque-a5",
                    "due_date": "2026-12-01",
                }
            )
            await a.submit(msg, now=1.0)
            await a.validate_and_reserve(msg.job_id, now=1.0)
            await sa.enqueue(msg.job_id, now=1.0)

        async def claimer(sched: Scheduler, store: Store) -> list[str]:
            got: list[str] = []
            idle = 0
            while idle < 3:
                moved = False
                for m in machines:
                    job = await sched.claim_next(m.id, now=2.0)
                    if job is not None:
                        got.append(job.job_id)
                        moved = True
                        await store.transition(job.job_id, JobEvent.FINISH, now=3.0)
                idle = 0 if moved else idle + 1
            return got

        ga, gb = await asyncio.gather(claimer(sa, a), claimer(sb, b))
    return len(set(ga) & set(gb)) + (len(ga) - len(set(ga))) + (len(gb) - len(set(gb))), len(
        set(ga) | set(gb)
    )


def run(quick: bool = False) -> dict[str, Any]:
    """Run the benchmark; ``quick`` uses 1,000 jobs."""
    n_jobs = 1_000 if quick else 10_000
    with tempfile.TemporaryDirectory(prefix="crown-bench-") as tmp:
        return asyncio.run(_bench(n_jobs, min(2_000, n_jobs), 200 if quick else 1_000, Path(tmp)))
