"""Dispatcher logic without SQS: verdicts, duplicates, stale receipts, failures (moto quirks)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from typing import Any

import pytest
from botocore.exceptions import ClientError

from crown_edge.cloud.dispatcher import Dispatcher, SeenJobs, classify
from crown_edge.errors import SyncError
from crown_edge.models import IntakeMessage
from crown_edge.sync import queues
from crown_edge.sync.backoff import Backoff
from crown_edge.sync.sqs import OrderQueue, ReceivedMessage, dead_letter_body
from tests.sync.fakes import until

GOOD = {"job_id": "J-1", "customer_id": "C-1", "item_id": "plaque-a5", "due_date": "2026-12-01"}


def _msg(body: Any, mid: str = "m1", queue: str = queues.ENGRAVING_QUEUE) -> ReceivedMessage:
    text = body if isinstance(body, str) else json.dumps(body)
    return ReceivedMessage(queue=queue, message_id=mid, receipt_handle=f"rh-{mid}", body=text)


class FakeQueues:
    """In-memory IntakeQueues: queued messages per name, records deletes and dead letters."""

    def __init__(self) -> None:
        self.waiting: dict[str, list[ReceivedMessage]] = {
            queues.PRIORITY_QUEUE: [],
            queues.ENGRAVING_QUEUE: [],
        }
        self.deleted: list[str] = []
        self.dead: list[tuple[str, list[str], str | None]] = []
        self.retries: list[tuple[str, int]] = []
        self.stale: set[str] = set()

    async def receive(self, name: str, max_messages: int, wait_seconds: int) -> list[Any]:
        got, self.waiting[name] = (
            self.waiting[name][:max_messages],
            self.waiting[name][max_messages:],
        )
        return got

    async def delete(self, message: ReceivedMessage) -> bool:
        if message.receipt_handle in self.stale:
            return False
        self.deleted.append(message.message_id)
        return True

    async def dead_letter(
        self, message: ReceivedMessage, reasons: list[str], job_id: str | None = None
    ) -> None:
        self.dead.append((message.message_id, reasons, job_id))

    async def retry_later(self, message: ReceivedMessage, delay_seconds: int) -> None:
        self.retries.append((message.message_id, delay_seconds))


def test_classify_verdicts() -> None:
    seen = SeenJobs()
    assert classify(json.dumps(GOOD), seen).action == "start"
    seen.add("J-1")
    assert classify(json.dumps(GOOD), seen).action == "duplicate"
    bad = classify(json.dumps({**GOOD, "rush": "yes", "item_id": 3}), seen)
    assert bad.action == "reject"
    assert bad.job_id == "J-1"
    assert any(r.startswith("rush:") for r in bad.reasons)
    assert any(r.startswith("item_id:") for r in bad.reasons)
    assert classify("{not json", seen).action == "reject"
    assert classify("[1, 2]", seen).action == "reject"


def test_seen_jobs_is_bounded() -> None:
    seen = SeenJobs(capacity=3)
    for i in range(5):
        seen.add(f"j{i}")
    assert len(seen) == 3
    assert "j0" not in seen
    assert "j4" in seen


async def test_duplicate_after_delete_starts_once() -> None:
    """moto accepts a resend after the original was deleted (AWS dedups for 5 min)."""
    fake = FakeQueues()
    started: list[str] = []

    async def start(msg: IntakeMessage) -> None:
        started.append(msg.job_id)

    dispatcher = Dispatcher(fake, start)
    fake.waiting[queues.ENGRAVING_QUEUE].append(_msg(GOOD, "m1"))
    await dispatcher.poll_once()
    fake.waiting[queues.ENGRAVING_QUEUE].append(_msg(GOOD, "m2"))
    await dispatcher.poll_once()
    assert started == ["J-1"]
    assert fake.deleted == ["m1", "m2"]
    assert dispatcher.stats.duplicates == 1


async def test_stale_receipt_on_delete_is_not_fatal() -> None:
    fake = FakeQueues()
    fake.stale.add("rh-m1")
    starts = 0

    async def start(msg: IntakeMessage) -> None:
        nonlocal starts
        starts += 1

    dispatcher = Dispatcher(fake, start)
    await dispatcher.handle(_msg(GOOD, "m1"))
    assert dispatcher.stats.stale_receipts == 1
    await dispatcher.handle(_msg(GOOD, "m1b"))  # the redelivery
    assert starts == 1
    assert fake.deleted == ["m1b"]


async def test_invalid_goes_to_dlq_and_is_deleted() -> None:
    fake = FakeQueues()

    async def start(msg: IntakeMessage) -> None:
        raise AssertionError("must not start")

    dispatcher = Dispatcher(fake, start)
    await dispatcher.handle(_msg({"job_id": "J-9"}, "m9"))
    assert fake.dead[0][0] == "m9"
    assert fake.dead[0][2] == "J-9"
    assert "customer_id: required" in fake.dead[0][1]
    assert fake.deleted == ["m9"]


async def test_start_failure_leaves_message_then_already_started_counts_as_done() -> None:
    from temporalio.exceptions import WorkflowAlreadyStartedError

    fake = FakeQueues()
    outcomes: list[BaseException] = [RuntimeError("temporal down")]

    async def start(msg: IntakeMessage) -> None:
        if outcomes:
            raise outcomes.pop()
        raise WorkflowAlreadyStartedError("job-J-1", "EngravingWorkflow")

    dispatcher = Dispatcher(fake, start, retry_delay=5)
    await dispatcher.handle(_msg(GOOD, "m1"))
    assert fake.deleted == []
    assert fake.retries == [("m1", 5)]
    await dispatcher.handle(_msg(GOOD, "m1"))
    assert fake.deleted == ["m1"]
    assert "J-1" in dispatcher.seen


async def test_priority_queue_first() -> None:
    fake = FakeQueues()
    order: list[str] = []

    async def start(msg: IntakeMessage) -> None:
        order.append(msg.job_id)

    fake.waiting[queues.ENGRAVING_QUEUE].append(_msg({**GOOD, "job_id": "std"}, "a"))
    fake.waiting[queues.PRIORITY_QUEUE].append(_msg({**GOOD, "job_id": "rush", "rush": True}, "b"))
    dispatcher = Dispatcher(fake, start)
    await dispatcher.poll_once()
    await dispatcher.poll_once()
    assert order == ["rush", "std"]


class StubSqs:
    """A boto3-like client whose delete fails like AWS does for a stale receipt handle."""

    def __init__(self, code: str) -> None:
        self.code = code

    def delete_message(self, **kwargs: Any) -> None:
        raise ClientError({"Error": {"Code": self.code, "Message": "nope"}}, "DeleteMessage")


async def test_order_queue_translates_stale_receipt() -> None:
    q = OrderQueue(StubSqs("ReceiptHandleIsInvalid"), {queues.ENGRAVING_QUEUE: "url"})
    assert await q.delete(_msg(GOOD)) is False
    q = OrderQueue(StubSqs("AccessDenied"), {queues.ENGRAVING_QUEUE: "url"})
    with pytest.raises(SyncError) as info:
        await q.delete(_msg(GOOD))
    assert info.value.fields["code"] == "AccessDenied"


def test_dead_letter_body_keeps_reason_and_body() -> None:
    wrapped = json.loads(dead_letter_body(_msg("garbage", "m7"), ["body is not JSON"]))
    assert wrapped["reason"] == "invalid_message"
    assert wrapped["body"] == "garbage"
    assert wrapped["message_id"] == "m7"


async def test_same_group_in_one_batch_is_handled_in_order_and_started_once() -> None:
    fake = FakeQueues()
    started: list[str] = []
    release = asyncio.Event()

    async def start(msg: IntakeMessage) -> None:
        started.append(msg.job_id)
        if msg.job_id == "slow":
            await release.wait()

    def grouped(body: dict[str, Any], mid: str) -> ReceivedMessage:
        return ReceivedMessage(
            queue=queues.ENGRAVING_QUEUE,
            message_id=mid,
            receipt_handle=f"rh-{mid}",
            body=json.dumps(body),
            attributes={"MessageGroupId": body["job_id"]},
        )

    fake.waiting[queues.ENGRAVING_QUEUE] += [
        grouped({**GOOD, "job_id": "slow"}, "a"),
        grouped(GOOD, "b"),
        grouped(GOOD, "c"),  # the same job again, in the same batch
    ]
    dispatcher = Dispatcher(fake, start)
    poll = asyncio.create_task(dispatcher.poll_once())
    await until(lambda: started == ["slow", "J-1"])  # the other group is not held up
    release.set()
    assert await poll == 3
    assert sorted(fake.deleted) == ["a", "b", "c"]
    assert dispatcher.stats.duplicates == 1


class FlakyQueues(FakeQueues):
    """SQS that is unreachable for the first ``outage`` receives."""

    def __init__(self, outage: int) -> None:
        super().__init__()
        self.outage = outage

    async def receive(self, name: str, max_messages: int, wait_seconds: int) -> list[Any]:
        if self.outage > 0:
            self.outage -= 1
            raise SyncError("sqs unreachable")
        await asyncio.sleep(0.01)  # a long poll waits; the fake's parent answers at once
        return await super().receive(name, max_messages, wait_seconds)


async def test_failed_polls_back_off_and_intake_resumes() -> None:
    fake = FlakyQueues(outage=3)
    fake.waiting[queues.ENGRAVING_QUEUE].append(_msg(GOOD, "m1"))
    delays: list[float] = []
    backoff = Backoff(0.01, 0.04, rand=lambda: 1.0)
    started: list[str] = []

    async def start(msg: IntakeMessage) -> None:
        started.append(msg.job_id)

    next_delay = backoff.next

    def recorded() -> float:
        delays.append(next_delay())
        return delays[-1]

    backoff.next = recorded  # type: ignore[method-assign]
    async with Dispatcher(fake, start, wait_seconds=0, backoff=backoff) as dispatcher:
        await until(lambda: fake.deleted == ["m1"])
    assert started == ["J-1"]
    assert dispatcher.stats.poll_failures == 3
    assert delays == [0.01, 0.02, 0.04]  # doubling, capped, from the one Backoff


class BatchQueues(FakeQueues):
    """FakeQueues that also delete in batches (as OrderQueue does), recording each batch."""

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[list[str]] = []
        self.fail_batches = False

    async def delete_batch(self, messages: list[ReceivedMessage]) -> list[ReceivedMessage]:
        if self.fail_batches:
            raise SyncError("sqs delete_message_batch failed: endpoint down")
        self.batches.append([m.message_id for m in messages])
        stale = [m for m in messages if m.receipt_handle in self.stale]
        self.deleted += [m.message_id for m in messages if m not in stale]
        return stale


def _order(job_id: str, mid: str) -> ReceivedMessage:
    message = _msg({**GOOD, "job_id": job_id}, mid)
    return dataclasses.replace(message, attributes={"MessageGroupId": job_id})


async def test_a_batch_is_deleted_together_and_only_what_was_started() -> None:
    fake = BatchQueues()
    fake.stale.add("rh-m3")

    async def start(msg: IntakeMessage) -> None:
        if msg.job_id == "J-2":
            raise RuntimeError("temporal unreachable")

    fake.waiting[queues.ENGRAVING_QUEUE] = [
        _order("J-1", "m1"),
        _order("J-2", "m2"),
        _order("J-3", "m3"),
        _msg("{not json", "m4"),
    ]
    dispatcher = Dispatcher(fake, start)
    assert await dispatcher.poll_queue(queues.ENGRAVING_QUEUE) == 4
    # one request for the lot; the failed start (m2) stays for SQS to redeliver
    assert [sorted(b) for b in fake.batches] == [["m1", "m3", "m4"]]
    assert sorted(fake.deleted) == ["m1", "m4"]
    assert dispatcher.stats.stale_receipts == 1  # m3's receipt had run out
    assert dispatcher.stats.failed == 1
    assert [mid for mid, _, _ in fake.dead] == ["m4"]


async def test_a_single_message_is_deleted_alone() -> None:
    fake = BatchQueues()

    async def start(msg: IntakeMessage) -> None:
        pass

    fake.waiting[queues.ENGRAVING_QUEUE] = [_order("J-1", "m1")]
    dispatcher = Dispatcher(fake, start)
    await dispatcher.poll_queue(queues.ENGRAVING_QUEUE)
    assert fake.batches == []
    assert fake.deleted == ["m1"]


async def test_a_failed_batch_delete_is_raised_after_the_batch_and_not_counted() -> None:
    fake = BatchQueues()
    fake.fail_batches = True
    started: list[str] = []

    async def start(msg: IntakeMessage) -> None:
        started.append(msg.job_id)

    fake.waiting[queues.ENGRAVING_QUEUE] = [_order("J-1", "m1"), _order("J-2", "m2")]
    dispatcher = Dispatcher(fake, start)
    with pytest.raises(SyncError, match="endpoint down"):
        await dispatcher.poll_queue(queues.ENGRAVING_QUEUE)
    assert sorted(started) == ["J-1", "J-2"]  # both started before the delete failed
    assert fake.deleted == []
    # the redeliveries are dropped as duplicates, and deleted then
    fake.fail_batches = False
    fake.waiting[queues.ENGRAVING_QUEUE] = [_order("J-1", "m1b"), _order("J-2", "m2b")]
    await dispatcher.poll_queue(queues.ENGRAVING_QUEUE)
    assert sorted(started) == ["J-1", "J-2"]
    assert sorted(fake.deleted) == ["m1b", "m2b"]
    assert dispatcher.stats.duplicates == 2
