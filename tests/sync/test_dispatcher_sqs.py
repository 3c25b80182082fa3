"""Dispatcher against a real moto server: intake, DLQ on schema failure, redrive."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from crown_edge.cloud.dispatcher import Dispatcher
from crown_edge.models import IntakeMessage
from crown_edge.sync import queues
from crown_edge.sync.sqs import OrderQueue, ReceivedMessage

pytestmark = pytest.mark.integration

GOOD = {"job_id": "J-1", "customer_id": "C-1", "item_id": "plaque-a5", "due_date": "2026-12-01"}


@pytest.fixture
async def order_queue(sqs_queues: dict[str, str], sqs: Any) -> AsyncIterator[OrderQueue]:
    yield OrderQueue(sqs, sqs_queues)


def _dlq(sqs: Any, urls: dict[str, str]) -> list[dict[str, Any]]:
    got = sqs.receive_message(
        QueueUrl=urls[queues.DLQ_QUEUE], MaxNumberOfMessages=10, MessageAttributeNames=["All"]
    )
    return list(got.get("Messages", []))


async def test_valid_orders_start_once_rush_first(order_queue: OrderQueue) -> None:
    started: list[str] = []

    async def start(msg: IntakeMessage) -> None:
        started.append(msg.job_id)

    await order_queue.send_order(IntakeMessage.parse({**GOOD, "job_id": "std-1"}))
    await order_queue.send_order(IntakeMessage.parse({**GOOD, "job_id": "rush-1", "rush": True}))
    dispatcher = Dispatcher(order_queue, start, wait_seconds=0)
    while await dispatcher.poll_once():
        pass
    assert started == ["rush-1", "std-1"]
    # moto accepts the resend after deletion (AWS would dedup); the dispatcher does not restart it
    await order_queue.send_order(IntakeMessage.parse({**GOOD, "job_id": "std-1"}))
    while await dispatcher.poll_once():
        pass
    assert started == ["rush-1", "std-1"]


async def test_invalid_message_dead_lettered_with_reason(
    order_queue: OrderQueue, sqs: Any, sqs_queues: dict[str, str]
) -> None:
    async def start(msg: IntakeMessage) -> None:
        raise AssertionError("invalid message must not start a job")

    body = json.dumps({"job_id": "J-bad", "customer_id": 42})
    await order_queue.send_raw(queues.ENGRAVING_QUEUE, body, "J-bad", "J-bad")
    dispatcher = Dispatcher(order_queue, start, wait_seconds=0)
    assert await dispatcher.poll_once() == 1
    assert await dispatcher.poll_once() == 0  # deleted from the intake queue
    dead = _dlq(sqs, sqs_queues)
    assert len(dead) == 1
    wrapped = json.loads(dead[0]["Body"])
    assert wrapped["body"] == body
    assert "customer_id: must be a string, got int" in wrapped["reasons"]
    assert dead[0]["MessageAttributes"]["reason"]["StringValue"] == "invalid_message"


async def test_failing_start_redrives_to_dlq_after_three_receives(
    order_queue: OrderQueue, sqs: Any, sqs_queues: dict[str, str]
) -> None:
    attempts: list[str] = []

    async def start(msg: IntakeMessage) -> None:
        attempts.append(msg.job_id)
        raise RuntimeError("temporal unreachable")

    await order_queue.send_order(IntakeMessage.parse(GOOD))
    dispatcher = Dispatcher(order_queue, start, wait_seconds=0, retry_delay=0)
    for _ in range(6):
        await dispatcher.poll_once()
    assert attempts == ["J-1"] * 3
    dead = _dlq(sqs, sqs_queues)
    assert [json.loads(m["Body"])["job_id"] for m in dead] == ["J-1"]


async def test_send_event_groups_by_job(
    order_queue: OrderQueue, sqs: Any, sqs_queues: dict[str, str]
) -> None:
    event = {"event_id": "e1", "job_id": "J-1", "seq": 1, "status": "received"}
    await order_queue.send_event(event)
    await order_queue.send_event(event)  # same event id: deduplicated by SQS
    got = sqs.receive_message(
        QueueUrl=sqs_queues[queues.EVENTS_QUEUE],
        MaxNumberOfMessages=10,
        MessageSystemAttributeNames=["MessageGroupId"],
    )["Messages"]
    assert [json.loads(m["Body"]) for m in got] == [event]
    assert got[0]["Attributes"]["MessageGroupId"] == "J-1"


async def test_send_events_batches_and_returns_the_overflow(
    order_queue: OrderQueue, sqs: Any, sqs_queues: dict[str, str]
) -> None:
    events = [
        {"event_id": f"b{i}", "job_id": f"J-{i % 3}", "seq": i, "status": "queued"}
        for i in range(12)
    ]
    left = await order_queue.send_events(events)
    assert left == events[10:]  # one request carries ten at most
    assert await order_queue.send_events(left) == []
    got: list[dict[str, Any]] = []
    url = sqs_queues[queues.EVENTS_QUEUE]
    for _ in range(5):  # FIFO: a group's next message comes once the previous one is deleted
        batch = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        for m in batch:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
        got += batch
    assert sorted(json.loads(m["Body"])["event_id"] for m in got) == sorted(
        e["event_id"] for e in events
    )


async def test_a_received_batch_is_deleted_in_one_request(
    order_queue: OrderQueue, sqs: Any, sqs_queues: dict[str, str]
) -> None:
    calls: list[str] = []

    def count(model: Any, **_: Any) -> None:
        calls.append(model.name)

    sqs.meta.events.register("before-call.sqs", count)
    started: list[str] = []

    async def start(msg: IntakeMessage) -> None:
        started.append(msg.job_id)

    for i in range(4):
        await order_queue.send_order(IntakeMessage.parse({**GOOD, "job_id": f"std-{i}"}))
    calls.clear()
    dispatcher = Dispatcher(order_queue, start, wait_seconds=0)
    assert await dispatcher.poll_queue(queues.ENGRAVING_QUEUE) == 4
    assert sorted(started) == [f"std-{i}" for i in range(4)]
    assert calls == ["ReceiveMessage", "DeleteMessageBatch"]
    assert await dispatcher.poll_queue(queues.ENGRAVING_QUEUE) == 0  # all of them gone
    assert dispatcher.stats.stale_receipts == 0


async def test_delete_batch_reports_stale_receipts(
    order_queue: OrderQueue, sqs: Any, sqs_queues: dict[str, str]
) -> None:
    for i in range(2):
        await order_queue.send_order(IntakeMessage.parse({**GOOD, "job_id": f"std-{i}"}))
    got = await order_queue.receive(queues.ENGRAVING_QUEUE, 10, 0)
    assert len(got) == 2
    # a receipt SQS does not know (as after the visibility timeout gave it to someone else)
    unknown = dataclasses.replace(got[0], receipt_handle="no-such-receipt")
    stale = await order_queue.delete_batch([unknown, got[1]])
    assert stale == [unknown]
    # got[1] is deleted; got[0] is still in flight (its visibility timeout runs)
    assert await order_queue.receive(queues.ENGRAVING_QUEUE, 10, 0) == []
    assert await order_queue.delete(got[0])
    assert await order_queue.delete_batch([]) == []


async def test_delete_batch_refuses_more_than_ten_or_two_queues(order_queue: OrderQueue) -> None:
    def message(i: int, queue: str = queues.ENGRAVING_QUEUE) -> ReceivedMessage:
        return ReceivedMessage(queue, f"m{i}", f"rh-{i}", "{}")

    with pytest.raises(ValueError, match="at most ten"):
        await order_queue.delete_batch([message(i) for i in range(11)])
    with pytest.raises(ValueError, match="one queue"):
        await order_queue.delete_batch([message(1), message(2, queues.PRIORITY_QUEUE)])
