"""What the sync links need from the rest of the edge, as protocols (the store implements them)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from crown_edge.models import OutboxEntry


@runtime_checkable
class OutboxSource(Protocol):
    """A durable, ordered outbox: rows written in the same transaction as the change they report.

    The MQTT link reads pending rows in id order and marks them sent only once the broker has
    acknowledged them (QoS 1 PUBACK), so delivery is at least once and in order.
    """

    async def outbox_pending(self, limit: int) -> list[OutboxEntry]:
        """Up to ``limit`` undelivered entries, oldest first."""
        ...

    async def outbox_mark_sent(self, ids: Sequence[int]) -> None:
        """Record that the entries ``ids`` reached the broker."""
        ...
