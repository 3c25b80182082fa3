"""SQS faces of the order flow: the intake queues (send, receive, delete, dead-letter) and the
job-events queue. boto3 is synchronous, so every call runs in a worker thread.

FIFO rules applied here:

- intake: ``MessageGroupId`` = ``MessageDeduplicationId`` = ``job_id`` — jobs do not block each
  other, and a resend within AWS's five-minute window is dropped by SQS itself;
- events: group = ``job_id`` (per-job order), deduplication id = ``event_id``;
- dead letters carry ``{"reason", "reasons", "body", "source_queue", "message_id"}``.

Third-party errors become :class:`~crown_edge.errors.SyncError`; a stale receipt handle on delete
is not an error (the message is simply redelivered and deduplicated downstream).
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from crown_edge.errors import SyncError
from crown_edge.models import IntakeMessage
from crown_edge.sync import queues

log = logging.getLogger(__name__)

MAX_DLQ_BYTES = 200_000  # size of a dead letter's JSON (SQS caps body + attributes at 256 KiB)
MAX_REASONS = 20
MAX_REASON_CHARS = 300
STALE_RECEIPT_CODES = frozenset({"ReceiptHandleIsInvalid", "InvalidParameterValue"})


def error_code(exc: BaseException) -> str | None:
    """The AWS error code of a botocore ``ClientError`` (``None`` for anything else)."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        code = response.get("Error", {}).get("Code")
        return str(code) if code is not None else None
    return None


@dataclass(frozen=True, slots=True)
class ReceivedMessage:
    """One message taken from a queue (invisible to others until deleted or timed out)."""

    queue: str
    message_id: str
    receipt_handle: str
    body: str
    receive_count: int = 1
    attributes: dict[str, str] | None = None


def dead_letter_body(message: ReceivedMessage, reasons: list[str]) -> str:
    """The JSON wrapper a rejected message travels in to the DLQ, at most ``MAX_DLQ_BYTES``.

    ASCII JSON (a lone surrogate or a control character in the original cannot make the send
    fail); when the escaped original would not fit, it is cut and ``body_truncated`` is set, so a
    poison message always reaches the DLQ with its reasons.
    """
    body = message.body if isinstance(message.body, str) else repr(message.body)
    kept = [str(r)[:MAX_REASON_CHARS] for r in reasons[:MAX_REASONS]]
    cut = len(body)
    while True:
        wrapper: dict[str, Any] = {
            "reason": "invalid_message",
            "reasons": kept,
            "body": body[:cut],
            "source_queue": message.queue,
            "message_id": message.message_id,
        }
        if cut < len(body):
            wrapper["body_truncated"] = True
        text = json.dumps(wrapper)
        if len(text) <= MAX_DLQ_BYTES or cut == 0:
            return text
        cut //= 2


def dlq_group_id(job_id: str | None) -> str:
    """The DLQ's FIFO group: the job id when SQS accepts it as a group id, else ``invalid``."""
    if job_id and len(job_id) <= 128 and all(33 <= ord(c) <= 126 for c in job_id):
        return job_id
    return "invalid"


#: Message attribute of an intake message: when the Order API handed it to SQS (epoch s).
ACCEPTED_AT = "accepted_at"

_CALL_POOL = ThreadPoolExecutor(max_workers=8, thread_name_prefix="sqs")
_POLL_POOL = ThreadPoolExecutor(max_workers=4, thread_name_prefix="sqs-poll")


class OrderQueue:
    """The intake queues on one SQS endpoint (AWS or moto), by logical name.

    ``client`` is a boto3 SQS client owned by the caller; queue URLs are looked up on
    :meth:`resolve` (or passed in as ``urls``). ``hold_seconds`` (None: the queue's own
    visibility timeout) is how long a message :meth:`receive` gives stays hidden from other
    consumers: a consumer that dies holding messages delays them by this much, not by the
    queue's minutes (the dispatcher's work on a message takes milliseconds; a start that fails
    asks for its own delay, and a second start of a job is refused by its workflow id).
    """

    def __init__(
        self, client: Any, urls: dict[str, str] | None = None, *, hold_seconds: int | None = None
    ) -> None:
        self.client = client
        self.urls: dict[str, str] = dict(urls or {})
        self.hold_seconds = hold_seconds

    async def _call(self, op: str, **kwargs: Any) -> Any:
        # long polls block a thread for up to their wait time: they get threads of their own so
        # an order's send (the Order API's answer waits on it) never queues behind them
        pool = _POLL_POOL if op == "receive_message" else _CALL_POOL
        call = functools.partial(getattr(self.client, op), **kwargs)
        try:
            return await asyncio.get_running_loop().run_in_executor(pool, call)
        except Exception as exc:
            code = error_code(exc)
            raise SyncError(f"sqs {op} failed: {exc}", operation=op, code=code) from exc

    async def resolve(self, names: tuple[str, ...] | None = None) -> None:
        """Look up the URLs of ``names`` (default: all four crown queues)."""
        for name in names or tuple(spec.name for spec in queues.ALL_QUEUES):
            if name not in self.urls:
                self.urls[name] = (await self._call("get_queue_url", QueueName=name))["QueueUrl"]

    def url(self, name: str) -> str:
        """The URL of queue ``name``."""
        try:
            return self.urls[name]
        except KeyError:
            raise SyncError(f"queue {name} not resolved", queue=name) from None

    # -- intake ------------------------------------------------------------------------------------

    async def send_order(self, message: IntakeMessage) -> str:
        """Queue an intake message (rush → priority queue). Returns the SQS message id.

        The message attribute ``accepted_at`` (epoch seconds) is when it was handed over: with
        SQS's own ``SentTimestamp`` it starts the job's timeline
        (:mod:`crown_edge.workflow.timeline`).
        """
        name = queues.PRIORITY_QUEUE if message.rush else queues.ENGRAVING_QUEUE
        result = await self._call(
            "send_message",
            QueueUrl=self.url(name),
            MessageBody=json.dumps(message.to_dict()),
            MessageGroupId=message.job_id,
            MessageDeduplicationId=message.job_id,
            MessageAttributes={
                ACCEPTED_AT: {"DataType": "Number", "StringValue": f"{time.time():.6f}"}
            },
        )
        return str(result["MessageId"])

    async def send_raw(self, name: str, body: str, group_id: str, dedup_id: str) -> str:
        """Queue an arbitrary body (tools and tests use it to inject malformed messages)."""
        result = await self._call(
            "send_message",
            QueueUrl=self.url(name),
            MessageBody=body,
            MessageGroupId=group_id,
            MessageDeduplicationId=dedup_id,
        )
        return str(result["MessageId"])

    async def receive(
        self, name: str, max_messages: int, wait_seconds: int
    ) -> list[ReceivedMessage]:
        """Long-poll queue ``name`` for up to ``max_messages`` (1-10) messages (hidden from
        other consumers for ``hold_seconds``, or the queue's visibility timeout)."""
        hold = {} if self.hold_seconds is None else {"VisibilityTimeout": self.hold_seconds}
        result = await self._call(
            "receive_message",
            QueueUrl=self.url(name),
            **hold,
            MaxNumberOfMessages=max(1, min(10, max_messages)),
            WaitTimeSeconds=max(0, min(20, wait_seconds)),
            MessageSystemAttributeNames=[
                "ApproximateReceiveCount",
                "MessageGroupId",
                "SentTimestamp",
            ],
            MessageAttributeNames=[ACCEPTED_AT],
        )
        out = []
        for raw in result.get("Messages", []):
            attrs = dict(raw.get("Attributes", {}))
            accepted = raw.get("MessageAttributes", {}).get(ACCEPTED_AT, {}).get("StringValue")
            if accepted is not None:
                attrs[ACCEPTED_AT] = str(accepted)
            out.append(
                ReceivedMessage(
                    queue=name,
                    message_id=raw["MessageId"],
                    receipt_handle=raw["ReceiptHandle"],
                    body=raw.get("Body", ""),
                    receive_count=int(attrs.get("ApproximateReceiveCount", "1")),
                    attributes=attrs,
                )
            )
        return out

    async def delete(self, message: ReceivedMessage) -> bool:
        """Delete a received message; ``False`` if its receipt handle is no longer valid.

        A stale handle means the visibility timeout ran out and someone else may hold the message:
        it will come back and be recognised as a duplicate, so this is not an error.
        """
        try:
            await self._call(
                "delete_message",
                QueueUrl=self.url(message.queue),
                ReceiptHandle=message.receipt_handle,
            )
        except SyncError as exc:
            if exc.fields.get("code") in STALE_RECEIPT_CODES:
                log.info("stale receipt for message %s; it will be redelivered", message.message_id)
                return False
            raise
        return True

    async def delete_batch(self, messages: list[ReceivedMessage]) -> list[ReceivedMessage]:
        """Delete up to ten messages of one queue in one request; returns those whose receipt
        handle is no longer valid (see :meth:`delete`). Any other refusal raises SyncError,
        after the rest of the batch was deleted.
        """
        if not messages:
            return []
        if len(messages) > 10 or len({m.queue for m in messages}) > 1:
            raise ValueError("delete_batch takes at most ten messages of one queue")
        result = await self._call(
            "delete_message_batch",
            QueueUrl=self.url(messages[0].queue),
            Entries=[
                {"Id": str(i), "ReceiptHandle": m.receipt_handle} for i, m in enumerate(messages)
            ],
        )
        stale: list[ReceivedMessage] = []
        refused: list[str] = []
        for failed in result.get("Failed", []):
            message = messages[int(failed["Id"])]
            if failed.get("Code") in STALE_RECEIPT_CODES:
                log.info("stale receipt for message %s; it will be redelivered", message.message_id)
                stale.append(message)
            else:
                refused.append(
                    f"{message.message_id}: {failed.get('Code')} {failed.get('Message')}"
                )
        if refused:
            raise SyncError(
                f"sqs delete_message_batch refused {'; '.join(refused)}",
                operation="delete_message_batch",
            )
        return stale

    async def retry_later(self, message: ReceivedMessage, delay_seconds: int) -> None:
        """Make a message visible again after ``delay_seconds`` (instead of the queue's timeout)."""
        await self._call(
            "change_message_visibility",
            QueueUrl=self.url(message.queue),
            ReceiptHandle=message.receipt_handle,
            VisibilityTimeout=max(0, delay_seconds),
        )

    async def dead_letter(
        self, message: ReceivedMessage, reasons: list[str], job_id: str | None = None
    ) -> None:
        """Send ``message`` to the DLQ with its reasons (the caller deletes the original)."""
        await self._call(
            "send_message",
            QueueUrl=self.url(queues.DLQ_QUEUE),
            MessageBody=dead_letter_body(message, reasons),
            MessageGroupId=dlq_group_id(job_id),
            MessageDeduplicationId=message.message_id,
            MessageAttributes={
                "reason": {"DataType": "String", "StringValue": "invalid_message"},
                "source_queue": {"DataType": "String", "StringValue": message.queue},
            },
        )

    # -- events ------------------------------------------------------------------------------------

    async def send_events(self, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Relay up to 10 events in one request; returns the ones SQS did not take."""
        entries = [
            {
                "Id": str(i),
                "MessageBody": json.dumps(event, sort_keys=True),
                "MessageGroupId": str(event["job_id"]),
                "MessageDeduplicationId": str(event["event_id"]),
            }
            for i, event in enumerate(events[:10])
        ]
        result = await self._call(
            "send_message_batch", QueueUrl=self.url(queues.EVENTS_QUEUE), Entries=entries
        )
        failed = {int(f["Id"]) for f in result.get("Failed", [])}
        return [events[i] for i in sorted(failed)] + events[10:]

    async def send_event(self, event: dict[str, Any]) -> str:
        """Relay a workshop status event to the job-events queue (per-job order, dedup on id)."""
        result = await self._call(
            "send_message",
            QueueUrl=self.url(queues.EVENTS_QUEUE),
            MessageBody=json.dumps(event, sort_keys=True),
            MessageGroupId=str(event["job_id"]),
            MessageDeduplicationId=str(event["event_id"]),
        )
        return str(result["MessageId"])
