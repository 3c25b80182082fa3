"""What the sync links need from the rest of the edge, as protocols (the store implements them)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from crown_edge.models import OutboxEntry

if TYPE_CHECKING:
    from crown_edge.store.outbox import OutboxTrim


@runtime_checkable
class OutboxSource(Protocol):
    """A durable, ordered outbox: rows written in the same transaction as the change they report.

    Rows stay until they are done: rows that need no ack once the broker has them (QoS 1 PUBACK),
    workshop events once the cloud acknowledged them (:class:`DeliveryOutbox`).
    """

    async def outbox_pending(self, limit: int) -> list[OutboxEntry]:
        """Up to ``limit`` entries not done yet, oldest first."""
        ...

    async def outbox_mark_sent(self, ids: Sequence[int]) -> None:
        """Record that the entries ``ids`` are done."""
        ...


@runtime_checkable
class DeliveryOutbox(OutboxSource, Protocol):
    """The outbox of end-to-end delivery (:mod:`crown_edge.sync.delivery`): event rows are kept
    until the cloud acknowledges them and are sent again when their ack is late."""

    async def outbox_due(self, limit: int, now: float) -> list[OutboxEntry]:
        """Entries to send now, in id order; event payloads carry ``acked_seq``."""
        ...

    async def outbox_next_due(self) -> float | None:
        """When the next entry is due (``-inf``: now), None when nothing waits."""
        ...

    async def outbox_tried(
        self, ids: Sequence[int], now: float, delay: Callable[[int], float]
    ) -> None:
        """Entries ``ids`` went out at ``now``; resend after ``delay(attempts)`` without an ack."""
        ...

    async def outbox_acked(self, event_ids: Sequence[str], now: float) -> int:
        """The cloud has these events; returns how many entries that finished."""
        ...

    async def outbox_replay(self, job_id: str, first: int, last: int, now: float) -> int:
        """Queue the job's events ``first`` … ``last`` again; returns how many."""
        ...


@runtime_checkable
class BoundedOutbox(Protocol):
    """An outbox that can apply its age and size bounds (the store; the link calls it)."""

    async def outbox_enforce(
        self, now: float, *, max_rows: int, max_age_s: float, keep_done_s: float
    ) -> OutboxTrim:
        """Give up rows beyond the bounds and delete old done rows; report what was done."""
        ...
