"""Child process for the crash-safety test: drives job transitions until SIGKILLed."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from crown_edge.catalog import load_catalog
from crown_edge.config import MachineConfig
from crown_edge.lifecycle import JobEvent
from crown_edge.models import Availability, Execution, IntakeMessage, MachineState
from crown_edge.scheduler import Scheduler
from crown_edge.store import Store


async def main(path: Path, prefix: str) -> None:
    catalog = load_catalog()
    machines = (MachineConfig(id="m1", driver="sim"), MachineConfig(id="m2", driver="sim"))
    async with Store.from_path(path) as store:
        await store.sync_catalog(catalog, now=0.0)
        await store.set_stock("plaque-a5", 1_000_000, now=0.0)
        sched = Scheduler(store, machines, catalog)
        await sched.start()
        for m in machines:
            await sched.set_machine_state(
                MachineState(m.id, Availability.AVAILABLE, Execution.READY), now=0.0
            )
        print("ready", flush=True)
        i = 0
        while True:
            job_id = f"{prefix}-{i}"
            msg = IntakeMessage.parse(
                {
                    "job_id": job_id,
                    "customer_id": "C",
                    "item_id": "plaque-a5",
                    "due_date": "2026-12-01",
                }
            )
            await store.submit(msg, now=1.0)
            await store.validate_and_reserve(job_id, now=1.0)
            await sched.enqueue(job_id, now=1.0)
            job = await sched.claim_next("m1", now=2.0)
            if job is not None:
                await store.transition(job.job_id, JobEvent.FINISH, now=3.0)
                await store.transition(job.job_id, JobEvent.QA_PASS, now=4.0)
            i += 1


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), sys.argv[2]))
