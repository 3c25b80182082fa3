"""MQTT topic names and payload decoding (docs/architecture.md, "MQTT"). Pure: no I/O.

Every topic lives under ``crown/v1/{shop_id}/``::

    crown/v1/{shop}/edge/state              up    retained, also the Last Will
    crown/v1/{shop}/machines/{id}/state     up    retained
    crown/v1/{shop}/events                  up    QoS 1
    crown/v1/{shop}/commands/{verb}         down  QoS 1
    crown/v1/{shop}/acks                    down  QoS 1, the cloud has these events
    crown/v1/{shop}/replay                  down  QoS 1, send these events again

``acks`` and ``replay`` are the delivery protocol of :mod:`crown_edge.sync.delivery`; only the
cloud identity may publish them, and a workshop reads only its own.

The cloud's replicas (several ``crown-edge cloud --instance NAME`` processes) also talk among
themselves, on a tree of their own that no workshop topic, subscription or ACL grant matches
(its second level is ``cloud``, never ``v1``)::

    crown/cloud/v1/status                   cloud ↔ cloud   QoS 1, not retained

It carries the live statuses one replica produced (the workflow's, the Order API's "received")
to the others' boards and WebSocket subscribers (:mod:`crown_edge.cloud.replicas`). Only the
cloud identity may read or write it; :func:`parse` returns ``None`` for it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from crown_edge.sync import wire

ROOT = "crown/v1"
EDGE_STATE = "edge/state"
EVENTS = "events"
ACKS = "acks"
REPLAY = "replay"

#: The cloud replicas' own tree (module docstring); outside ``ROOT`` on purpose.
CLOUD_ROOT = "crown/cloud/v1"
#: Live statuses shared between cloud replicas.
CLOUD_STATUS = f"{CLOUD_ROOT}/status"

TopicKind = Literal["edge_state", "machine_state", "events", "command", "acks", "replay"]

#: Subscriptions of the cloud bridge (every workshop).
BRIDGE_SUBSCRIPTIONS = (
    f"{ROOT}/+/{EVENTS}",
    f"{ROOT}/+/machines/+/state",
    f"{ROOT}/+/{EDGE_STATE}",
)


def bridge_subscriptions(share_group: str | None = None) -> tuple[str, ...]:
    """The bridge's subscriptions; with ``share_group`` the events go to one bridge of the group.

    Only ``events`` is shared (``$share/{group}/…``, MQTT 5 and mosquitto ≥ 2 also for 3.1.1
    clients): each event needs one relay. Retained states stay plain subscriptions, because a
    broker sends no retained messages to a shared subscription and every bridge keeps a board.
    """
    if share_group is None:
        return BRIDGE_SUBSCRIPTIONS
    if not share_group or any(c in share_group for c in "/+#$"):
        raise ValueError(f"invalid shared subscription group: {share_group!r}")
    return (f"$share/{share_group}/{ROOT}/+/{EVENTS}", *BRIDGE_SUBSCRIPTIONS[1:])


def prefix(shop_id: str) -> str:
    """``crown/v1/{shop_id}/`` (with the trailing slash)."""
    if not shop_id or any(c in shop_id for c in "/+#"):
        raise ValueError(f"invalid shop_id for an MQTT topic: {shop_id!r}")
    return f"{ROOT}/{shop_id}/"


def machine_state(machine_id: str) -> str:
    """Relative topic of a machine's retained state."""
    return f"machines/{machine_id}/state"


def command(verb: str) -> str:
    """Relative topic of a command addressed to a workshop."""
    return f"commands/{verb}"


@dataclass(frozen=True, slots=True)
class Topic:
    """A parsed absolute topic: which workshop, which kind, and the machine id or command verb."""

    shop_id: str
    kind: TopicKind
    name: str | None = None


def parse(topic: str) -> Topic | None:
    """Parse an absolute crown topic; ``None`` for anything that is not one of ours."""
    parts = topic.split("/")
    if len(parts) < 4 or f"{parts[0]}/{parts[1]}" != ROOT or not parts[2]:
        return None
    shop, rest = parts[2], parts[3:]
    if rest == ["edge", "state"]:
        return Topic(shop, "edge_state")
    if rest == [EVENTS]:
        return Topic(shop, "events")
    if len(rest) == 3 and rest[0] == "machines" and rest[2] == "state" and rest[1]:
        return Topic(shop, "machine_state", rest[1])
    if len(rest) == 2 and rest[0] == "commands" and rest[1]:
        return Topic(shop, "command", rest[1])
    if rest == [ACKS]:
        return Topic(shop, "acks")
    if rest == [REPLAY]:
        return Topic(shop, "replay")
    return None


def encode(payload: dict[str, Any]) -> bytes:
    """Compact JSON bytes for a payload."""
    return json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()


def decode(raw: bytes | bytearray | str | None) -> dict[str, Any] | None:
    """A JSON object from a payload, or ``None`` for anything else (never raises).

    The same total decoder every consumer uses (:func:`crown_edge.sync.wire.decode_object`:
    size, depth and number limits), without the reason.
    """
    value = wire.decode_object(raw)
    return None if isinstance(value, wire.Rejected) else value
