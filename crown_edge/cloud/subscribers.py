"""Live subscribers of the bridge: one bounded queue each, latest-wins.

A WebSocket (:mod:`crown_edge.cloud.live`) subscribes to one job or to every job; the bridge
offers each status it takes to that job's subscribers and to the "all jobs" ones. A slow
subscriber loses its oldest pending updates rather than slowing the bridge (status is
latest-wins: the newest update says everything the dropped ones did).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from types import TracebackType
from typing import Any, Self


class Subscription:
    """Live updates for one job (or all jobs): an async iterator of event dicts."""

    def __init__(self, owner: Subscribers, job_id: str | None, size: int) -> None:
        self.job_id = job_id
        self._owner = owner
        self._queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(size)
        self.dropped = 0

    def offer(self, event: dict[str, Any]) -> None:
        """Queue an update; drop the oldest if the subscriber is behind."""
        if self._queue.full():
            self._queue.get_nowait()
            self.dropped += 1
        self._queue.put_nowait(event)

    async def get(self) -> dict[str, Any]:
        """The next update."""
        return await self._queue.get()

    def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        return self

    async def __anext__(self) -> dict[str, Any]:
        return await self._queue.get()

    def close(self) -> None:
        """Stop receiving updates."""
        self._owner.remove(self)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class Subscribers:
    """Every live :class:`Subscription`, by job (``None``: all jobs)."""

    def __init__(self) -> None:
        self._subs: dict[str | None, set[Subscription]] = {}

    def add(self, job_id: str | None, size: int) -> Subscription:
        """A new subscription to ``job_id`` holding at most ``size`` pending updates."""
        sub = Subscription(self, job_id, size)
        self._subs.setdefault(job_id, set()).add(sub)
        return sub

    def remove(self, sub: Subscription) -> None:
        """Forget ``sub`` (closing it twice is harmless)."""
        subs = self._subs.get(sub.job_id)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self._subs[sub.job_id]

    def __len__(self) -> int:
        return sum(len(s) for s in self._subs.values())

    def fan_out(self, event: dict[str, Any]) -> None:
        """Offer ``event`` to its job's subscribers and to the "all jobs" ones."""
        for key in (event["job_id"], None):
            for sub in list(self._subs.get(key, ())):
                sub.offer(event)
