"""Which workshop makes each job, as the cloud's trusted sources know it (the bridge's directory).

A workshop's events arrive on ``crown/v1/{shop}/events``; the broker's ACL decides who may
publish there, and the bridge accepts an event only when ``{shop}`` is the workshop that makes
the job. That answer never comes from the message itself (a forged event would simply claim the
right shop); it comes from the workflow, the job's durable record:

1. **The start.** The dispatcher's :func:`~crown_edge.cloud.starter.start_job` teaches the
   directory the workshop of every job whose workflow it created: the input it just started
   the workflow with. In steady state the directory knows a job before its workshop does (the
   workflow's first status is published only once the workshop validated the job, so the
   workshop's own events come first).
2. **Workflow statuses.** Every status the workflow publishes (``publish_status`` → the cloud
   activities' sink → :meth:`~crown_edge.cloud.bridge.Bridge.publish` with source ``workflow``)
   carries the workflow input's workshop (``EngravingJob.workshop``); the bridge
   :meth:`learns <JobDirectory.learn>` it.
3. **Temporal, for a job the bridge has not heard of** — the bridge restarted, another cloud
   process started the job, or the start attached to a workflow that was already running.
   :class:`TemporalShopLookup` reads the *input* of workflow ``job-{job_id}`` (the first event of
   its history). The input rather than a memo or a query: every workflow ever started has it,
   it is immutable, and it is the very value the workflow routes its workshop activities by
   (``crown-edge-{shop}``), so it cannot disagree with where the job is made; a memo would be
   missing on workflows started before it was added, and a query needs a live worker.

An unknown job (no workflow) or another shop's job is rejected by the bridge. Lookups are
bounded: answers are cached (misses for ``miss_ttl`` seconds, so a stream of forged events for
made-up jobs costs one Temporal call per job per minute), each call has a timeout, and after a
failed call lookups pause for ``pause_after_error`` seconds, so an unreachable Temporal makes the
bridge reject unknown jobs quickly rather than stall every workshop's events.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

from temporalio.service import RPCError, RPCStatusCode

from crown_edge.workflow.data import EngravingJob
from crown_edge.workflow.names import workflow_id

log = logging.getLogger(__name__)

#: ``await lookup(job_id)`` → the job's workshop, or None when no such job exists.
ShopLookup = Callable[[str], Awaitable[str | None]]


class JobDirectory:
    """job id → shop id, learnt from trusted sources, else looked up (module docstring)."""

    def __init__(
        self,
        lookup: ShopLookup | None = None,
        *,
        capacity: int = 100_000,
        miss_ttl: float = 60.0,
        lookup_timeout: float = 5.0,
        pause_after_error: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.lookup = lookup
        self.capacity = capacity
        self.miss_ttl = miss_ttl
        self.lookup_timeout = lookup_timeout
        self.pause_after_error = pause_after_error
        self._clock = clock
        self._shops: OrderedDict[str, str] = OrderedDict()
        self._misses: OrderedDict[str, float] = OrderedDict()
        self._paused_until = 0.0
        self.lookups = 0
        self.lookup_errors = 0

    def __len__(self) -> int:
        return len(self._shops)

    def learn(self, job_id: str, shop_id: str) -> None:
        """Record that ``shop_id`` makes ``job_id`` (call only with trusted, cloud-side facts)."""
        self._shops[job_id] = shop_id
        self._shops.move_to_end(job_id)
        self._misses.pop(job_id, None)
        while len(self._shops) > self.capacity:
            self._shops.popitem(last=False)

    def known(self, job_id: str) -> str | None:
        """The shop of ``job_id`` if already known; never looks anything up."""
        return self._shops.get(job_id)

    async def shop_of(self, job_id: str) -> str | None:
        """The shop of ``job_id``: known, else looked up; None for an unknown job or no answer."""
        shop = self._shops.get(job_id)
        if shop is not None or self.lookup is None:
            return shop
        now = self._clock()
        missed_at = self._misses.get(job_id)
        if missed_at is not None and now - missed_at < self.miss_ttl:
            return None
        if now < self._paused_until:
            return None
        self.lookups += 1
        try:
            async with asyncio.timeout(self.lookup_timeout):
                shop = await self.lookup(job_id)
        except Exception as exc:  # Temporal down or slow: no answer now, and a pause
            self.lookup_errors += 1
            self._paused_until = now + self.pause_after_error
            log.warning("job directory: lookup of job %.80r failed: %r", job_id, exc)
            return None
        if shop is None:
            self._misses[job_id] = now
            self._misses.move_to_end(job_id)
            while len(self._misses) > self.capacity:
                self._misses.popitem(last=False)
            return None
        self.learn(job_id, shop)
        return shop


class TemporalShopLookup:
    """A :data:`ShopLookup` reading the workshop from the input of workflow ``job-{job_id}``."""

    def __init__(self, client: Any) -> None:
        self.client = client

    async def __call__(self, job_id: str) -> str | None:
        handle = self.client.get_workflow_handle(workflow_id(job_id))
        try:
            async for event in handle.fetch_history_events(page_size=1):
                if not event.HasField("workflow_execution_started_event_attributes"):
                    return None
                payloads = event.workflow_execution_started_event_attributes.input.payloads
                decoded = await self.client.data_converter.decode(payloads, [EngravingJob])
                job = decoded[0] if decoded else None
                return job.workshop if isinstance(job, EngravingJob) else None
        except RPCError as exc:
            if exc.status in (RPCStatusCode.NOT_FOUND, RPCStatusCode.INVALID_ARGUMENT):
                return None
            raise
        return None
