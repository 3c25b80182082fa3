"""Fakes for the sync tests: an in-memory outbox implementing DeliveryOutbox."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

from crown_edge.models import OutboxEntry
from crown_edge.sync.delivery import with_acked_seq


class MemoryOutbox:
    """An ordered in-memory outbox. ``gate`` (set by default) can hold the link's reads.

    ``sent``: ids done (acknowledged events, other rows at their PUBACK), in the order they
    finished; ``tried``: ids as they went out (retransmits repeat them).
    """

    def __init__(self) -> None:
        self.entries: list[OutboxEntry] = []
        self.sent: list[int] = []
        self.tried: list[int] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self._next = 1
        self._next_at: dict[int, float] = {}
        self._attempts: dict[int, int] = {}

    def put(self, topic: str, payload: dict[str, Any], *, retain: bool = False) -> OutboxEntry:
        """Append a row, like a store transaction would."""
        entry = OutboxEntry(id=self._next, topic=topic, payload=payload, retain=retain)
        self._next += 1
        self.entries.append(entry)
        return entry

    def _open(self) -> list[OutboxEntry]:
        done = set(self.sent)
        return [e for e in self.entries if e.id not in done]

    async def outbox_pending(self, limit: int) -> list[OutboxEntry]:
        """Rows not done, in id order."""
        await self.gate.wait()
        return self._open()[:limit]

    def _acked_seq(self, entry: OutboxEntry) -> int | None:
        job, seq = entry.payload.get("job_id"), entry.payload.get("seq")
        if entry.topic != "events" or not isinstance(seq, int):
            return None
        open_seqs = [
            e.payload["seq"]
            for e in self._open()
            if e.payload.get("job_id") == job and isinstance(e.payload.get("seq"), int)
        ]
        return min(open_seqs, default=seq) - 1

    async def outbox_due(self, limit: int, now: float) -> list[OutboxEntry]:
        """Rows due now, in id order, events with ``acked_seq``."""
        await self.gate.wait()
        due = [e for e in self._open() if self._next_at.get(e.id, float("-inf")) <= now][:limit]
        return [
            OutboxEntry(
                e.id, e.topic, with_acked_seq(e.payload, self._acked_seq(e)), e.qos, e.retain
            )
            for e in due
        ]

    async def outbox_next_due(self) -> float | None:
        """The earliest retransmit time of an open row."""
        open_rows = self._open()
        if not open_rows:
            return None
        return min(self._next_at.get(e.id, float("-inf")) for e in open_rows)

    async def outbox_tried(
        self, ids: Sequence[int], now: float, delay: Callable[[int], float]
    ) -> None:
        """Record the sends and schedule retransmits."""
        for i in ids:
            self._attempts[i] = self._attempts.get(i, 0) + 1
            self._next_at[i] = now + delay(self._attempts[i])
        self.tried.extend(ids)

    async def outbox_mark_sent(self, ids: Sequence[int]) -> None:
        """Record rows done at their PUBACK."""
        self.tried.extend(ids)
        self.sent.extend(ids)

    async def outbox_acked(self, event_ids: Sequence[str], now: float) -> int:
        """The cloud has these events."""
        wanted = set(event_ids)
        done = [e.id for e in self._open() if e.payload.get("event_id") in wanted]
        self.sent.extend(done)
        return len(done)

    async def outbox_replay(self, job_id: str, first: int, last: int, now: float) -> int:
        """Make the job's events ``first`` … ``last`` open again."""
        ids = {
            e.id
            for e in self.entries
            if e.payload.get("job_id") == job_id and first <= e.payload.get("seq", 0) <= last
        }
        self.sent = [i for i in self.sent if i not in ids]
        for i in ids:
            self._next_at.pop(i, None)
        return len(ids)

    @property
    def pending(self) -> list[int]:
        """Ids not done yet."""
        return [e.id for e in self._open()]

    @property
    def unsent(self) -> list[int]:
        """Ids never published."""
        out = set(self.tried)
        return [e.id for e in self.entries if e.id not in out]


async def until(predicate: Callable[[], bool], within: float = 20.0) -> None:
    """Poll until ``predicate()`` holds; fail the test after ``within`` seconds."""
    async with asyncio.timeout(within):
        while not predicate():  # noqa: ASYNC110 - polling observable state is the point
            await asyncio.sleep(0.02)
