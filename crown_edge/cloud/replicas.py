"""Live statuses shared between cloud replicas over the broker. Pure: no I/O.

The cloud side runs as several identical ``crown-edge cloud --instance NAME`` processes. Every
replica's bridge sees every workshop event (its own, non-shared subscriptions), but two kinds of
status are born inside one replica: what the workflow reports through that replica's cloud
activities (:meth:`~crown_edge.cloud.bridge.Bridge.cloud_sink`), and the Order API's
``received`` when it takes an order (:meth:`~crown_edge.cloud.bridge.Bridge.accept`). A customer
page served by another replica would never see them, so the replica that takes one also
publishes it on :data:`~crown_edge.sync.topics.CLOUD_STATUS` (QoS 1, not retained)::

    {"v": 1, "origin": "<instance>", "kind": "status" | "accepted", "event": {...}}

``status`` carries a fresh workflow status event as the board took it; ``accepted`` the
``received`` event of an accepted order (its ``at`` is the origin's time). Every replica applies
what *another* one published to its board and live subscribers, and publishes nothing back: its
own messages (the broker echoes them to it) are ignored by ``origin``, and what it applies from a
peer is never shared again, so a status crosses the broker once.

These messages feed only the live board. The durable status lives in Temporal (the job's view)
and on the job-events queue, which the origin replica alone relays to. So the outgoing queue is
bounded (:class:`Outgoing`: beyond the cap the oldest message goes, counted), and a replica that
misses some shows an older live status until the next one — never a wrong durable one.

A peer message is untrusted input like any other (the broker lets only the cloud identity read or
write the topic; this is defence in depth): :func:`decode` is total and size-capped, and returns
a :class:`~crown_edge.sync.wire.Rejected` for anything but exactly the shape above.
"""

from __future__ import annotations

import json
import logging
import re
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from crown_edge.cloud.board import event_problem
from crown_edge.sync import wire

log = logging.getLogger(__name__)
#: Format version of a shared message (the ``v`` key).
VERSION = 1
#: Largest shared message (a status event is well under 1 KiB).
MAX_BYTES = 16 * 1024
#: An instance name: it goes into client ids (``crown-bridge-{instance}``) and logs verbatim.
INSTANCE_PATTERN = wire.IDENT_PATTERN
#: Messages waiting for the broker, per replica, before the oldest are dropped.
DEFAULT_QUEUE = 1000

Kind = Literal["status", "accepted"]
KINDS: tuple[Kind, ...] = get_args(Kind)
#: Keys of an ``accepted`` event that the board sets itself (the rest travel as extras).
ACCEPTED_FIELDS = frozenset({"event_id", "job_id", "seq", "status", "at", "source"})


def valid_instance(name: object) -> bool:
    """Whether ``name`` can name a replica (:data:`INSTANCE_PATTERN`)."""
    return isinstance(name, str) and re.fullmatch(INSTANCE_PATTERN, name) is not None


@dataclass(frozen=True, slots=True)
class Shared:
    """One decoded message from replica ``origin``."""

    origin: str
    kind: Kind
    event: dict[str, Any]

    def accepted_extras(self) -> dict[str, Any]:
        """An ``accepted`` event's fields beyond those the board sets (what ``accept`` got)."""
        return {k: v for k, v in self.event.items() if k not in ACCEPTED_FIELDS}


def encode(origin: str, kind: Kind, event: dict[str, Any]) -> bytes | wire.Rejected:
    """The message for ``event``, or why it cannot be shared (never raises).

    An event a peer would refuse (too big, not JSON) is refused here, where it can be counted.
    """
    message = {"v": VERSION, "origin": origin, "kind": kind, "event": event}
    try:  # compact like topics.encode, and NaN refused here as the peer's decoder would
        text = json.dumps(message, separators=(",", ":"), sort_keys=True, allow_nan=False)
        payload = text.encode()
    except (TypeError, ValueError) as exc:  # a value json cannot write, NaN, a circular one
        return wire.Rejected(f"event is not JSON ({type(exc).__name__})")
    if len(payload) > MAX_BYTES:
        return wire.Rejected(f"message larger than {MAX_BYTES} bytes")
    return payload


def decode(raw: object) -> Shared | wire.Rejected:
    """The message in ``raw``, or why it is refused (never raises)."""
    value = wire.decode_object(raw, max_bytes=MAX_BYTES)
    if isinstance(value, wire.Rejected):
        return value
    version = value.get("v")
    if isinstance(version, bool) or version != VERSION:
        return wire.Rejected(f"v: must be {VERSION}, got {str(version)[:20]!r}")
    origin = value.get("origin")
    if not valid_instance(origin):
        return wire.Rejected(f"origin: not an instance name: {str(origin)[:80]!r}")
    assert isinstance(origin, str)
    kind = value.get("kind")
    if kind not in KINDS:
        return wire.Rejected(f"kind: must be one of {', '.join(KINDS)}")
    event = value.get("event")
    if not isinstance(event, dict):
        return wire.Rejected("event: must be an object")
    problem = event_problem(event)
    if problem is None and not re.fullmatch(wire.JOB_ID_PATTERN, event["job_id"]):
        problem = "job_id: not a job id"
    if problem is None and kind == "accepted":
        problem = _accepted_problem(event)
    if problem is not None:
        return wire.Rejected(f"event: {problem}")
    return Shared(origin, "status" if kind == "status" else "accepted", event)


def _accepted_problem(event: dict[str, Any]) -> str | None:
    """Why ``event`` is not an order's ``received`` event (as the board's accept makes it)."""
    if event["status"] != "received" or event["seq"] != 0:
        return "an accepted order is status 'received' at seq 0"
    at = event.get("at")
    if isinstance(at, bool) or not isinstance(at, int | float):
        return "at: must be a number (POSIX seconds)"
    return None


@dataclass(slots=True)
class Outgoing:
    """Messages waiting for the broker: first in, first out, at most ``cap`` (the oldest go)."""

    cap: int = DEFAULT_QUEUE
    #: messages dropped to make room, or refused by :func:`encode` (module docstring: only the
    #: live boards of the other replicas lose them)
    dropped: int = 0
    _items: deque[bytes] = field(default_factory=deque)

    def __post_init__(self) -> None:
        if self.cap < 1:
            raise ValueError(f"an outgoing queue holds at least 1 message, got {self.cap}")

    def offer(self, origin: str, kind: Kind, event: dict[str, Any]) -> bool:
        """Encode ``event`` and queue it; whether it was queued (a refusal is logged, counted)."""
        payload = encode(origin, kind, event)
        if isinstance(payload, wire.Rejected):
            self.dropped += 1
            job_id = str(event.get("job_id"))[:80]
            log.warning(
                "not sharing %s event of job %r: %s",
                kind,
                job_id,
                payload.reason,
                extra={"job_id": job_id},
            )
            return False
        self.put(payload)
        return True

    def put(self, payload: bytes) -> None:
        """Queue ``payload``, dropping the oldest message when full."""
        if len(self._items) >= self.cap:
            self._items.popleft()
            self.dropped += 1
        self._items.append(payload)

    def peek(self) -> bytes | None:
        """The oldest message, left queued until :meth:`done` (a failed publish keeps it)."""
        return self._items[0] if self._items else None

    def done(self, payload: bytes) -> None:
        """``payload`` (from :meth:`peek`) is published: forget it, unless :meth:`put` already
        dropped it to make room while it was on its way."""
        if self._items and self._items[0] is payload:
            self._items.popleft()

    def __len__(self) -> int:
        return len(self._items)
