"""The SQS → Temporal dispatcher: intake messages become workflow starts, exactly once per job.

Each intake queue has its own long poll (a standard order never waits out the empty rush queue's
poll); for every message:

1. the body is decoded (:func:`~crown_edge.sync.wire.decode_object`: any bytes, however
   hostile, give a JSON object or a reason) and parsed (:meth:`IntakeMessage.parse`); a message
   that fails either goes to the DLQ at once with its reasons and is deleted — never retried,
   never fatal;
2. a job already started by this dispatcher (bounded memory of recent job ids) is deleted as a
   duplicate — moto, unlike AWS, accepts a resend after the original was deleted;
3. otherwise ``start_job`` runs (the real one starts ``EngravingWorkflow`` with
   ``USE_EXISTING``/``REJECT_DUPLICATE``, so a redelivery never starts a second job, and
   ``WorkflowAlreadyStartedError`` counts as done); on success the message is deleted;
4. if ``start_job`` fails the message stays: SQS redelivers it after the visibility timeout (or
   ``retry_delay``), and the redrive policy moves it to the DLQ after three receives.

A stale receipt handle on delete (the visibility timeout ran out) is logged, not raised: the
message returns and step 2 or the workflow-id policy absorbs it. :func:`classify` is the pure core.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from types import TracebackType
from typing import Literal, Protocol, Self

from crown_edge.errors import MessageInvalid, SyncError
from crown_edge.models import IntakeMessage
from crown_edge.sync import queues
from crown_edge.sync.backoff import Backoff
from crown_edge.sync.sqs import ReceivedMessage
from crown_edge.sync.wire import Rejected, decode_object

log = logging.getLogger(__name__)

MAX_BODY = 256 * 1024  # the SQS message size limit: anything larger did not come from SQS
MAX_REASONS = 20
MAX_REASON = 300
RETRY_INITIAL_S = 1.0
"""Pause after a first failed poll (SQS unreachable, or a bug); doubles up to RETRY_MAX_S."""
RETRY_MAX_S = 30.0

#: The timeline stages of the message being started, in epoch seconds (``accepted_at``,
#: ``sqs_sent_at``, ``sqs_received_at``): set around each ``start_job`` call, so a starter can
#: keep them with the workflow (its memo) without a change to :data:`StartJob`.
INTAKE_STAGES: ContextVar[dict[str, float] | None] = ContextVar("INTAKE_STAGES", default=None)


def intake_stages(message: ReceivedMessage, received_at: float) -> dict[str, float]:
    """The stages an intake message tells: handed over, taken by SQS, received here."""
    attrs = message.attributes or {}
    stages = {"sqs_received_at": received_at}
    try:
        if "accepted_at" in attrs:
            stages["accepted_at"] = float(attrs["accepted_at"])
        if "SentTimestamp" in attrs:
            stages["sqs_sent_at"] = int(attrs["SentTimestamp"]) / 1000.0
    except ValueError:
        pass  # a stage nobody can read is a stage not recorded
    return stages


#: Starts (or finds) the job's workflow. Must be idempotent on ``msg.job_id``.
StartJob = Callable[[IntakeMessage], Awaitable[None]]


class IntakeQueues(Protocol):
    """What the dispatcher needs from the queues (:class:`~crown_edge.sync.sqs.OrderQueue`).

    Queues that also have ``async delete_batch(messages) -> stale ones`` (one queue, at most
    ten: :meth:`~crown_edge.sync.sqs.OrderQueue.delete_batch`) get a received batch's handled
    messages deleted in one request.
    """

    async def receive(
        self, name: str, max_messages: int, wait_seconds: int
    ) -> list[ReceivedMessage]:
        """Long-poll ``name``."""
        ...

    async def delete(self, message: ReceivedMessage) -> bool:
        """Delete; ``False`` on a stale receipt handle."""
        ...

    async def dead_letter(
        self, message: ReceivedMessage, reasons: list[str], job_id: str | None = None
    ) -> None:
        """Send to the DLQ with reasons."""
        ...

    async def retry_later(self, message: ReceivedMessage, delay_seconds: int) -> None:
        """Make visible again after a delay."""
        ...


# --- pure core -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Verdict:
    """What to do with one message: ``start`` it, ``drop`` it as a duplicate, ``reject`` it."""

    action: Literal["start", "duplicate", "reject"]
    message: IntakeMessage | None = None
    job_id: str | None = None
    reasons: list[str] = field(default_factory=list)


class SeenJobs:
    """A bounded, insertion-ordered memory of job ids already started (oldest forgotten first)."""

    def __init__(self, capacity: int = 10_000) -> None:
        self.capacity = capacity
        self._ids: OrderedDict[str, None] = OrderedDict()

    def __contains__(self, job_id: object) -> bool:
        return job_id in self._ids

    def __len__(self) -> int:
        return len(self._ids)

    def add(self, job_id: str) -> None:
        """Remember ``job_id``."""
        self._ids[job_id] = None
        self._ids.move_to_end(job_id)
        while len(self._ids) > self.capacity:
            self._ids.popitem(last=False)


def classify(body: object, seen: SeenJobs) -> Verdict:
    """Decide what to do with a message body. Pure: no I/O, no clock.

    Total: whatever the body holds (any bytes, nesting that exhausts the parser, numbers beyond
    64 bits, NaN, wrong types), the answer is a verdict — a poison message is a ``reject`` with a
    reason, never an exception that would stop the poll for the messages behind it.
    """
    try:
        data = decode_object(body, max_bytes=MAX_BODY)
        if isinstance(data, Rejected):
            return Verdict("reject", reasons=[data.reason])
        try:
            message = IntakeMessage.parse(data)
        except MessageInvalid as exc:
            job_id = exc.fields.get("job_id")
            return Verdict(
                "reject",
                job_id=job_id if isinstance(job_id, str) else None,
                reasons=[str(r)[:MAX_REASON] for r in exc.reasons[:MAX_REASONS]],
            )
        if message.job_id in seen:
            return Verdict("duplicate", message=message, job_id=message.job_id)
        return Verdict("start", message=message, job_id=message.job_id)
    except Exception as exc:  # total by contract: a checker bug must not stall the queue
        return Verdict("reject", reasons=[f"message could not be checked ({type(exc).__name__})"])


# --- asyncio shell -------------------------------------------------------------------------------


@dataclass(slots=True)
class DispatchStats:
    """Counters since start (also exported as metrics by the cloud process)."""

    received: int = 0
    started: int = 0
    duplicates: int = 0
    rejected: int = 0
    failed: int = 0
    stale_receipts: int = 0
    poll_failures: int = 0
    """Polls that failed (SQS unreachable, or a bug) and were retried after a back-off pause."""


def _already_started(exc: BaseException) -> bool:
    try:
        from temporalio.exceptions import WorkflowAlreadyStartedError
    except ImportError:  # pragma: no cover - temporalio is a hard dependency
        return False
    return isinstance(exc, WorkflowAlreadyStartedError)


class Dispatcher:
    """Polls the intake queues and hands valid messages to ``start_job`` (module docstring).

    Use :meth:`poll_once` step by step (tests) or as an async context manager that runs the loop
    in a background task until exit.
    """

    def __init__(
        self,
        queues_: IntakeQueues,
        start_job: StartJob,
        *,
        wait_seconds: int = 1,
        batch: int = 10,
        retry_delay: int | None = None,
        seen_capacity: int = 10_000,
        backoff: Backoff | None = None,
    ) -> None:
        self.queues = queues_
        self.start_job = start_job
        self.wait_seconds = wait_seconds
        self.batch = batch
        self.retry_delay = retry_delay
        self.seen = SeenJobs(seen_capacity)
        self.stats = DispatchStats()
        self.backoff = backoff or Backoff(RETRY_INITIAL_S, RETRY_MAX_S)
        """Pauses between failed polls."""
        self._task: asyncio.Task[None] | None = None

    async def poll_once(self, wait_seconds: int | None = None) -> int:
        """One round: the priority queue, and the standard queue only if no rush job was waiting.

        Messages of different FIFO groups (jobs) are handled concurrently, those of one group in
        order. Returns how many messages were handled; the first SQS error is re-raised after the
        whole batch was dealt with.
        """
        wait = self.wait_seconds if wait_seconds is None else wait_seconds
        got = await self.queues.receive(queues.PRIORITY_QUEUE, self.batch, wait)
        if not got:
            got = await self.queues.receive(queues.ENGRAVING_QUEUE, self.batch, wait)
        await self._handle_batch(got)
        return len(got)

    async def poll_queue(self, name: str, wait_seconds: int | None = None) -> int:
        """One long poll of queue ``name`` and the handling of what it gave (as
        :meth:`poll_once`); :meth:`run` keeps one of these going per intake queue."""
        wait = self.wait_seconds if wait_seconds is None else wait_seconds
        got = await self.queues.receive(name, self.batch, wait)
        await self._handle_batch(got)
        return len(got)

    async def _handle_batch(self, got: list[ReceivedMessage]) -> None:
        """Handle a received batch; the messages it is done with are deleted together at the
        end, in one request when the queues can (``delete_batch``, see :class:`IntakeQueues`):
        under load a receive brings up to ten orders, and one delete per order was as many
        SQS requests again.
        Nothing is deleted before its job's start succeeded (or it was dead-lettered), so a
        crash in between only means a redelivery, which the workflow id absorbs."""
        groups: dict[str, list[ReceivedMessage]] = {}
        for message in got:
            group = (message.attributes or {}).get("MessageGroupId", message.message_id)
            groups.setdefault(group, []).append(message)
        delete_batch = getattr(self.queues, "delete_batch", None) if len(got) > 1 else None
        done: list[ReceivedMessage] | None = [] if delete_batch is not None else None
        results = await asyncio.gather(
            *(self._handle_group(batch, done) for batch in groups.values()),
            return_exceptions=True,
        )
        if delete_batch is not None and done:
            results.append(await self._delete_together(delete_batch, done))
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            raise errors[0]

    async def _handle_group(
        self, messages: list[ReceivedMessage], done: list[ReceivedMessage] | None
    ) -> None:
        for message in messages:
            await self.handle(message, done)

    async def _delete_together(
        self,
        delete_batch: Callable[[list[ReceivedMessage]], Awaitable[list[ReceivedMessage]]],
        messages: list[ReceivedMessage],
    ) -> BaseException | None:
        """Delete handled messages, per queue, ten per request; a failure is returned (the
        messages come back and are dropped as duplicates), not raised."""
        by_queue: dict[str, list[ReceivedMessage]] = {}
        for message in messages:
            by_queue.setdefault(message.queue, []).append(message)
        failure: BaseException | None = None
        for batch in by_queue.values():
            for start in range(0, len(batch), 10):
                try:
                    stale = await delete_batch(batch[start : start + 10])
                except Exception as exc:
                    failure = failure or exc
                    continue
                self.stats.stale_receipts += len(stale)
        return failure

    async def handle(
        self, message: ReceivedMessage, done: list[ReceivedMessage] | None = None
    ) -> None:
        """Start, drop or dead-letter one message (see the module docstring).

        ``done`` given: a message this is finished with is added to it for the caller to
        delete, instead of being deleted here."""
        self.stats.received += 1
        verdict = classify(message.body, self.seen)
        if verdict.action == "reject":
            self.stats.rejected += 1
            log.warning(
                "rejecting message %s from %s: %s",
                message.message_id,
                message.queue,
                "; ".join(verdict.reasons),
                extra={"job_id": verdict.job_id},
            )
            await self.queues.dead_letter(message, verdict.reasons, verdict.job_id)
            await self._delete(message, done)
            return
        assert verdict.message is not None
        if verdict.action == "duplicate":
            self.stats.duplicates += 1
            log.info("duplicate intake for job %s dropped", verdict.job_id)
            await self._delete(message, done)
            return
        token = INTAKE_STAGES.set(intake_stages(message, time.time()))
        try:
            await self.start_job(verdict.message)
        except Exception as exc:
            if not _already_started(exc):
                self.stats.failed += 1
                log.warning(
                    "start of job %s failed (receive %d): %s",
                    verdict.job_id,
                    message.receive_count,
                    exc,
                    extra={"job_id": verdict.job_id},
                )
                if self.retry_delay is not None:
                    await self.queues.retry_later(message, self.retry_delay)
                return
            self.stats.duplicates += 1
        else:
            self.stats.started += 1
        finally:
            INTAKE_STAGES.reset(token)
        self.seen.add(verdict.message.job_id)
        await self._delete(message, done)

    async def _delete(
        self, message: ReceivedMessage, done: list[ReceivedMessage] | None = None
    ) -> None:
        if done is not None:
            done.append(message)
        elif not await self.queues.delete(message):
            self.stats.stale_receipts += 1

    async def run(self) -> None:
        """Poll forever, each intake queue with its own long poll: a standard order never waits
        out the empty rush queue's poll, nor a rush order the standard queue's. Failed polls
        are logged and retried with a growing, jittered pause (one
        :class:`~crown_edge.sync.backoff.Backoff`), back to short once a poll succeeds."""
        await asyncio.gather(
            self._poll_forever(queues.PRIORITY_QUEUE),
            self._poll_forever(queues.ENGRAVING_QUEUE),
        )

    async def _poll_forever(self, name: str) -> None:
        backoff = self.backoff  # one pause for both: an outage is the endpoint's, not a queue's
        while True:
            try:
                await self.poll_queue(name)
            except SyncError as exc:
                log.warning("dispatcher poll of %s failed: %s", name, exc)
            except Exception:  # a bug must not stop intake for good
                log.exception("dispatcher poll of %s crashed", name)
            else:
                backoff.reset()
                continue
            self.stats.poll_failures += 1
            await asyncio.sleep(backoff.next())

    async def __aenter__(self) -> Self:
        self._task = asyncio.create_task(self.run(), name="sqs-dispatcher")
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
