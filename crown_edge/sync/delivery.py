"""End-to-end delivery of workshop events: the ack / replay protocol and its timing. Pure: no I/O.

"Sent to the broker" is not "delivered": a broker PUBACK only says the broker has the message,
and with nobody subscribed (a bridge still backing off, a session the broker forgot) it goes
nowhere. So an outbox row of a workshop event is done only when the cloud says it has it::

    workshop                           broker                              bridge (cloud)
    outbox row ── events {…, acked_seq} ──►  ──────────────────────────►  sequencer: in order per
       │          (QoS 1; again after the                                  job, duplicates dropped
       │           ack timeout, backing off)                                 │
       │                                                                     ▼
       │                                                      status board + SQS job-events
       │                                                      (group = job, dedup id = event id)
       ▼                                                                     │
    row done  ◄──── acks {"event_ids": [...]} ◄──────────────────────────────┘  only after SQS
    rows re-queued ◄ replay {"job_id", "from_seq", "to_seq"} ◄── a gap in a job's seq persists

Why an ack topic rather than withholding the MQTT PUBACK until the relay: a PUBACK is per
connection and per hop — it cannot outlive the bridge's session, cannot tell the workshop (a
different client) anything, and AWS IoT Core sends it itself. An application ack from the cloud
identity on ``crown/v1/{shop_id}/acks`` survives any number of reconnects on either side and works
on every broker. Acks carry event ids, so they are idempotent and need no order.

``acked_seq`` (added to each event as it is sent): the highest ``seq`` of the event's job up to
which the workshop holds an ack for every event. A bridge that has never seen the job (a cloud
restart, another bridge of a shared subscription) starts its sequence there instead of asking
for events the cloud already has; the bridge strips it before relaying.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from crown_edge.sync import wire
from crown_edge.sync.backoff import capped_delay

#: Field a sent event carries: the job's seq acknowledged without a hole (module docstring).
ACKED_SEQ = "acked_seq"
#: Event ids per ack message (an ack payload stays far below the broker's message size).
MAX_ACK_IDS = 500
#: Events one replay request may ask for (a job has a few dozen status changes).
MAX_REPLAY_SPAN = 1000
MAX_EVENT_ID_CHARS = 128


@dataclass(frozen=True, slots=True)
class RetransmitSchedule:
    """When an unacknowledged event is sent again: ``timeout`` after a send, doubling per send,
    at most ``maximum`` — a cloud that is away is not flooded, one that is back is not kept
    waiting longer than ``maximum``."""

    timeout: float = 10.0
    maximum: float = 120.0
    factor: float = 2.0

    def __post_init__(self) -> None:
        if not 0 < self.timeout <= self.maximum or self.factor < 1:
            raise ValueError("retransmit needs 0 < timeout <= maximum and factor >= 1")

    def delay(self, attempts: int) -> float:
        """Seconds to wait for the ack after the ``attempts``-th send (1 = the first send)."""
        return capped_delay(self.timeout, self.maximum, self.factor, attempts)

    def next_at(self, now: float, attempts: int) -> float:
        """When to send again if no ack came for the ``attempts``-th send made at ``now``."""
        return now + self.delay(attempts)


@dataclass(frozen=True, slots=True)
class ReplayRequest:
    """Send the job's events ``from_seq`` … ``to_seq`` (inclusive) again."""

    job_id: str
    from_seq: int
    to_seq: int


def ack_payloads(event_ids: list[str]) -> list[dict[str, Any]]:
    """Ack messages for ``event_ids`` (in chunks of :data:`MAX_ACK_IDS`)."""
    return [
        {"event_ids": event_ids[i : i + MAX_ACK_IDS]} for i in range(0, len(event_ids), MAX_ACK_IDS)
    ]


def parse_ack(raw: object) -> list[str] | wire.Rejected:
    """The event ids of an ack message, or why it is not one. Never raises."""
    payload = wire.decode_object(raw)
    if isinstance(payload, wire.Rejected):
        return payload
    ids = payload.get("event_ids")
    if not isinstance(ids, list) or len(ids) > MAX_ACK_IDS:
        return wire.Rejected(f"event_ids: a list of at most {MAX_ACK_IDS} ids")
    if not all(isinstance(i, str) and 0 < len(i) <= MAX_EVENT_ID_CHARS for i in ids):
        return wire.Rejected("event_ids: non-empty strings")
    return list(ids)


def replay_payload(request: ReplayRequest) -> dict[str, Any]:
    """The wire form of a replay request."""
    return {"job_id": request.job_id, "from_seq": request.from_seq, "to_seq": request.to_seq}


def parse_replay(raw: object) -> ReplayRequest | wire.Rejected:
    """A replay request, or why it is not one (bad types, an empty or too wide span)."""
    payload = wire.decode_object(raw)
    if isinstance(payload, wire.Rejected):
        return payload
    job_id, first, last = payload.get("job_id"), payload.get("from_seq"), payload.get("to_seq")
    if not isinstance(job_id, str) or not 0 < len(job_id) <= 128:
        return wire.Rejected("job_id: a non-empty string")
    for name, value in (("from_seq", first), ("to_seq", last)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            return wire.Rejected(f"{name}: a positive integer")
    assert isinstance(first, int) and isinstance(last, int)
    if last < first or last - first >= MAX_REPLAY_SPAN:
        return wire.Rejected(f"from_seq..to_seq: 1 to {MAX_REPLAY_SPAN} events")
    return ReplayRequest(job_id, first, last)


def with_acked_seq(payload: dict[str, Any], acked_seq: int | None) -> dict[str, Any]:
    """``payload`` as sent: with the job's ``acked_seq`` when the row is an event of a job."""
    if acked_seq is None:
        return payload
    return {**payload, ACKED_SEQ: acked_seq}
