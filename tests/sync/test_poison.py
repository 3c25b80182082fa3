"""Poison messages: the total decoder, and every consumer serving the next good message.

``decode_object`` and ``classify`` are property-tested on arbitrary bytes and hostile JSON; each
consumer (dispatcher, bridge, workshop command link) then gets poison followed by a good message.
"""

from __future__ import annotations

import json
import math
import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crown_edge.cloud.dispatcher import Dispatcher, SeenJobs, classify
from crown_edge.embedded import MqttBroker
from crown_edge.models import IntakeMessage
from crown_edge.sync import queues
from crown_edge.sync.commands import parse_command
from crown_edge.sync.mqtt import MqttLink
from crown_edge.sync.sqs import (
    MAX_DLQ_BYTES,
    OrderQueue,
    ReceivedMessage,
    dead_letter_body,
    dlq_group_id,
)
from crown_edge.sync.wire import MAX_DEPTH, Rejected, decode_object
from tests.brokers import needs_mosquitto
from tests.sync.fakes import MemoryOutbox, until

GOOD_ORDER = {
    "job_id": "J-1",
    "customer_id": "C-1",
    "item_id": "plaque-a5",
    "due_date": "2026-12-01",
}

#: Hand-picked poison: each must be refused, never raise.
POISON: list[bytes] = [
    b"",
    b"\xff\xfe\xfd",
    b'{"job_id": "\xc3"}',
    b"not json",
    b"[1, 2]",
    b'"a string"',
    b"null",
    b"[" * 50_000 + b"]" * 50_000,
    b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
    b'{"a": ' + b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1) + b"}",
    b'{"seq": ' + b"9" * 10_000 + b"}",
    b'{"seq": ' + b"9" * 4_000 + b"}",
    b'{"seq": 9223372036854775808}',
    b'{"seq": -9223372036854775809}',
    b'{"price_cents": NaN}',
    b'{"price_cents": Infinity}',
    b'{"price_cents": -Infinity}',
    b'{"price_cents": 1e999}',
    b'{"text": "' + b"x" * 300_000 + b'"}',
    b'{"a": 1} trailing',
]


def test_hand_picked_poison_is_rejected_with_a_reason() -> None:
    for raw in POISON:
        for form in (raw, bytearray(raw), raw.decode("utf-8", "surrogateescape")):
            result = decode_object(form)
            assert isinstance(result, Rejected), raw[:40]
            assert result.reason and len(result.reason) < 200


def test_limits_are_the_callers() -> None:
    assert decode_object(b'{"a": "xxxx"}', max_bytes=8) == Rejected("payload larger than 8 bytes")
    nested = json.dumps({"a": [[[1]]]})
    assert isinstance(decode_object(nested, max_depth=3), Rejected)
    assert decode_object(nested, max_depth=4) == {"a": [[[1]]]}
    assert decode_object(b'{"n": 9223372036854775807}') == {"n": 2**63 - 1}
    assert decode_object(b'{"n": -9223372036854775808}') == {"n": -(2**63)}
    assert decode_object(b'{"x": 1.5e300}') == {"x": 1.5e300}
    assert isinstance(decode_object(12), Rejected)
    assert isinstance(decode_object(None), Rejected)


@given(st.binary(max_size=2048))
def test_any_bytes_decode_to_an_object_or_a_rejection(raw: bytes) -> None:
    result = decode_object(raw)
    assert isinstance(result, dict | Rejected)


_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=10**30, max_value=10**40)
    | st.floats()
    | st.text(max_size=20)
)
_hostile = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=30,
)


def _nested(depth: int) -> str:
    return '{"a":' * depth + "0" + "}" * depth


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(_hostile | st.integers(1, 3000).map(_nested))
def test_hostile_json_decodes_only_to_safe_values(value: Any) -> None:
    text = value if isinstance(value, str) and value.startswith("{") else json.dumps(value)
    result = decode_object(text.encode())
    assert isinstance(result, dict | Rejected)
    if isinstance(result, dict):
        json.dumps(result, allow_nan=False)  # re-encodable: no NaN, no infinity
        _assert_safe(result, depth=1)


def _assert_safe(value: Any, depth: int) -> None:
    assert depth <= MAX_DEPTH
    if isinstance(value, dict):
        for child in value.values():
            _assert_safe(child, depth + 1)
    elif isinstance(value, list):
        for child in value:
            _assert_safe(child, depth + 1)
    elif isinstance(value, float):
        assert math.isfinite(value)
    elif isinstance(value, int) and not isinstance(value, bool):
        assert -(2**63) <= value < 2**63


# --- the workshop's command link (real broker) -----------------------------------------------


@pytest.mark.integration
@needs_mosquitto
async def test_command_link_survives_poison_and_serves_the_next_command(
    mqtt_broker: MqttBroker, caplog: pytest.LogCaptureFixture
) -> None:
    shop = f"shop-{uuid.uuid4().hex[:8]}"
    calls: list[tuple[str, Any]] = []

    async def on_command(verb: str, payload: dict[str, Any]) -> None:
        command = parse_command(verb, payload)  # what the daemon's handler does first
        calls.append((verb, command))

    settings_ = mqtt_broker.workshop_settings(shop, poll_interval=0.5)
    poison = [p for p in POISON if len(p) < 250_000] + [
        json.dumps({"job_id": 1}).encode(),
        json.dumps({"machine_id": "m1", "extra": True}).encode(),
    ]
    async with MqttLink(settings_, MemoryOutbox(), on_command) as link:
        await until(lambda: link.connected)
        async with mqtt_broker.client(mqtt_broker.cloud()) as client:
            base = f"crown/v1/{shop}/commands/"
            for raw in poison:
                await client.publish(base + "pause", raw, qos=1)
            await client.publish(base + "pause", json.dumps({"machine_id": "laser-1"}), qos=1)
            await until(lambda: len(calls) == 3)
        assert link.commands_received == len(poison) + 1
        assert link.commands_rejected == len(poison) - 2
        assert [type(c).__name__ for _, c in calls] == ["Rejected", "Rejected", "PauseMachine"]
        assert link.connected
    assert "payload nests deeper" in caplog.text


# --- the dispatcher's intake ------------------------------------------------------------------

_bodies = (
    st.text(max_size=500)
    | st.binary(max_size=500).map(lambda b: b.decode("utf-8", "surrogateescape"))
    | _hostile.map(json.dumps)
    | st.dictionaries(
        st.sampled_from([*sorted(GOOD_ORDER), "text", "rush", "price_cents"]), _hostile
    ).map(lambda d: json.dumps({**GOOD_ORDER, **d}))
    | st.sampled_from(POISON).map(lambda b: b.decode("utf-8", "surrogateescape"))
)


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(_bodies)
def test_classify_is_total_and_every_reject_has_a_reason(body: str) -> None:
    verdict = classify(body, SeenJobs())
    assert verdict.action in ("start", "reject")
    if verdict.action == "reject":
        assert verdict.reasons and all(isinstance(r, str) and r for r in verdict.reasons)
        wrapped = dead_letter_body(_received(body), verdict.reasons)
        assert len(wrapped) <= MAX_DLQ_BYTES and wrapped.isascii()
        assert json.loads(wrapped)["reasons"] == verdict.reasons
        assert dlq_group_id(verdict.job_id).isascii()
    else:
        assert verdict.message is not None


def _received(body: str, mid: str = "m1", queue: str = queues.PRIORITY_QUEUE) -> ReceivedMessage:
    return ReceivedMessage(queue=queue, message_id=mid, receipt_handle=f"rh-{mid}", body=body)


def test_dead_letters_fit_sqs_whatever_the_body() -> None:
    for body in ("é" * 250_000, "\x00" * 250_000, "x" * 250_000, "\ud800" * 1000):
        text = dead_letter_body(_received(body), ["r" * 10_000] * 100)
        wrapped = json.loads(text)
        assert len(text) <= MAX_DLQ_BYTES
        assert len(wrapped["reasons"]) == 20 and len(wrapped["reasons"][0]) == 300
        assert body.startswith(wrapped["body"])
        assert wrapped.get("body_truncated") is (len(wrapped["body"]) < len(body) or None)
    assert "body_truncated" not in json.loads(dead_letter_body(_received("{}"), ["r"]))


def test_dlq_group_id_is_a_valid_fifo_group() -> None:
    assert dlq_group_id("A-G2") == "A-G2"
    for bad in (None, "", "x" * 129, "a b", "é", "a\nb"):
        assert dlq_group_id(bad) == "invalid"


async def test_dispatcher_dead_letters_poison_then_starts_the_next_order() -> None:
    class Queues:
        def __init__(self, bodies: list[str]) -> None:
            self.waiting = [_received(b, f"m{i}") for i, b in enumerate(bodies)]
            self.dead: list[tuple[str, list[str]]] = []
            self.deleted: list[str] = []

        async def receive(self, name: str, n: int, wait: int) -> list[ReceivedMessage]:
            got, self.waiting = self.waiting[:1], self.waiting[1:]  # one group, in order
            return got if name == queues.PRIORITY_QUEUE else []

        async def delete(self, message: ReceivedMessage) -> bool:
            self.deleted.append(message.message_id)
            return True

        async def dead_letter(
            self, message: ReceivedMessage, reasons: list[str], job_id: str | None = None
        ) -> None:
            self.dead.append((message.message_id, reasons))

        async def retry_later(self, message: ReceivedMessage, delay: int) -> None:
            raise AssertionError("nothing is retried")

    poison = [p.decode("utf-8", "surrogateescape") for p in POISON]
    fake = Queues([*poison, json.dumps(GOOD_ORDER)])
    started: list[str] = []

    async def start(msg: IntakeMessage) -> None:
        started.append(msg.job_id)

    dispatcher = Dispatcher(fake, start)
    while await dispatcher.poll_once(0):
        pass
    assert started == ["J-1"]
    assert [mid for mid, _ in fake.dead] == [f"m{i}" for i in range(len(poison))]
    assert all(reasons for _, reasons in fake.dead)
    assert len(fake.deleted) == len(poison) + 1
    assert dispatcher.stats.rejected == len(poison)


@pytest.mark.integration
async def test_deep_nested_intake_message_reaches_the_dlq_and_the_next_order_starts(
    sqs_queues: dict[str, str], sqs: Any
) -> None:
    orders = OrderQueue(sqs, sqs_queues)
    deep = "[" * 50_000 + "]" * 50_000
    huge = '{"job_id": "J-h", "price_cents": ' + "9" * 10_000 + "}"
    for i, body in enumerate((deep, huge)):
        await orders.send_raw(queues.PRIORITY_QUEUE, body, "poison", f"p{i}")
    await orders.send_raw(queues.PRIORITY_QUEUE, json.dumps(GOOD_ORDER), "poison", "good")
    started: list[str] = []

    async def start(msg: IntakeMessage) -> None:
        started.append(msg.job_id)

    dispatcher = Dispatcher(orders, start, wait_seconds=0)
    for _ in range(10):
        if started:
            break
        await dispatcher.poll_once()
    assert started == ["J-1"]
    got = sqs.receive_message(QueueUrl=sqs_queues[queues.DLQ_QUEUE], MaxNumberOfMessages=10)
    dead = [json.loads(m["Body"]) for m in got.get("Messages", [])]
    assert sorted(d["reasons"][0] for d in dead) == [
        "payload nests deeper than 32 levels",
        "payload refused: integer outside the 64-bit range",
    ]
    assert {d["body"][:1] for d in dead} == {"[", "{"}
