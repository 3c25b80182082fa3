"""Fakes for the sync tests: an in-memory outbox implementing OutboxSource."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

from crown_edge.models import OutboxEntry


class MemoryOutbox:
    """An ordered in-memory outbox. ``gate`` (set by default) can hold the link's reads."""

    def __init__(self) -> None:
        self.entries: list[OutboxEntry] = []
        self.sent: list[int] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self._next = 1

    def put(self, topic: str, payload: dict[str, Any], *, retain: bool = False) -> OutboxEntry:
        """Append a row, like a store transaction would."""
        entry = OutboxEntry(id=self._next, topic=topic, payload=payload, retain=retain)
        self._next += 1
        self.entries.append(entry)
        return entry

    async def outbox_pending(self, limit: int) -> list[OutboxEntry]:
        """Unsent rows in id order."""
        await self.gate.wait()
        done = set(self.sent)
        return [e for e in self.entries if e.id not in done][:limit]

    async def outbox_mark_sent(self, ids: Sequence[int]) -> None:
        """Record delivery."""
        self.sent.extend(ids)

    @property
    def pending(self) -> list[int]:
        """Ids not yet marked sent."""
        done = set(self.sent)
        return [e.id for e in self.entries if e.id not in done]


async def until(predicate: Callable[[], bool], within: float = 20.0) -> None:
    """Poll until ``predicate()`` holds; fail the test after ``within`` seconds."""
    async with asyncio.timeout(within):
        while not predicate():  # noqa: ASYNC110 - polling observable state is the point
            await asyncio.sleep(0.02)
