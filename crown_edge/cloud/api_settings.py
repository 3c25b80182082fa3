"""What the Order API is given: its settings, where accepted orders go, where contacts go."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from crown_edge.cloud.auth import Credentials
from crown_edge.cloud.notify_words import Contact
from crown_edge.models import IntakeMessage


class OrderSender(Protocol):
    """Where accepted orders go (:class:`~crown_edge.sync.sqs.OrderQueue`)."""

    async def send_order(self, message: IntakeMessage) -> str:
        """Queue the message; return the queue's message id."""
        ...


class ContactBook(Protocol):
    """Where an order's customer contact is kept (:class:`~crown_edge.cloud.notify.Notifier`)."""

    async def remember(self, contact: Contact) -> None:
        """Keep the contact durably before the order is queued."""
        ...


@dataclass(frozen=True, slots=True)
class ApiSettings:
    """How the Order API answers.

    ``shops`` lists the workshops an order may name (None: any); ``public_url`` is the base of
    the links handed to customers (None: the address the request came to); ``allowed_origins``
    are pages besides the API's own that may open the status WebSocket; ``metrics_open`` serves
    ``/metrics`` without a key (set when it listens on its own, private address).
    """

    credentials: Credentials = field(repr=False)
    designs_dir: Path | None = None
    shops: frozenset[str] | None = None
    public_url: str | None = None
    allowed_origins: tuple[str, ...] = ()
    metrics_open: bool = False
