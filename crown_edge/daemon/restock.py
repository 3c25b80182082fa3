"""Tell waiting workflows that an item is back in stock (signal ``restocked`` on ``job-{id}``).

A job whose item was out of stock waits in its workflow (``blocked``, ``no_inventory``) for the
customer to take an alternative, for this signal, or for its own periodic re-validation. The
daemon sends the signal when a technician's ``inventory set`` makes units available, to every
job the workshop store holds as blocked on that item. Delivery is best effort: without a link to
Temporal, or for a workflow that is gone, the signal is skipped and logged, and the workflow's
re-validation timer picks the stock up later.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import Any

from temporalio.service import RPCError

from crown_edge.models import JobStatus
from crown_edge.store import Job, Store
from crown_edge.workflow.data import Restock
from crown_edge.workflow.names import RESTOCKED, workflow_id

log = logging.getLogger(__name__)

SIGNAL_RPC_TIMEOUT = timedelta(seconds=5)


def waiting_for(jobs: list[Job], item_id: str) -> list[str]:
    """Ids of the jobs blocked for ``no_inventory`` on ``item_id``, oldest first."""
    waiting = [
        j
        for j in jobs
        if j.status is JobStatus.BLOCKED and j.reason == "no_inventory" and j.item_id == item_id
    ]
    return [j.job_id for j in sorted(waiting, key=lambda j: j.received_at)]


async def signal_restock(client: Any, store: Store, item_id: str, available: int) -> list[str]:
    """Signal ``restocked`` to each job waiting for ``item_id``; the ids reached.

    ``client`` is the daemon's Temporal client, or None while Temporal is unreachable.
    """
    if available <= 0:
        return []
    job_ids = waiting_for(await store.list_jobs([str(JobStatus.BLOCKED)], limit=1000), item_id)
    if not job_ids or client is None:
        if job_ids:
            log.info(
                "restock of %s: no Temporal link, %d jobs wait for their timer",
                item_id,
                len(job_ids),
            )
        return []
    restock = Restock(item_id=item_id, available=available)

    async def one(job_id: str) -> str | None:
        handle = client.get_workflow_handle(workflow_id(job_id))
        try:
            await handle.signal(RESTOCKED, restock, rpc_timeout=SIGNAL_RPC_TIMEOUT)
        except (RPCError, RuntimeError, OSError, TimeoutError) as exc:
            log.info("job %s: restock signal not delivered (%s)", job_id, exc)
            return None
        return job_id

    reached = await asyncio.gather(*(one(j) for j in job_ids))
    return [j for j in reached if j is not None]
