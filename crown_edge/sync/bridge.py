"""The bridge (cloud side): workshop MQTT → job-events SQS queue + live WebSocket subscribers.

Subscribes to every workshop's ``events``, ``machines/+/state`` and ``edge/state``. A new event
(by per-job ``seq``, see :class:`~crown_edge.sync.board.StatusBoard`) is

- relayed to ``crown-trophy-job-events.fifo`` (group = job id, deduplication id = event id) by a
  relay task that retries with back-off while SQS is unreachable, and
- fanned out to subscribers of its job (and to "all jobs" subscribers); a slow subscriber loses
  its oldest pending updates rather than slowing the bridge (status is latest-wins).

The MQTT session is persistent (fixed client id, ``clean_session=False``) so the broker keeps
QoS 1 events for the bridge while it reconnects. Cloud-side code (workflow activities, the Order
API) feeds statuses that never crossed MQTT through :meth:`Bridge.publish` (the cloud activities'
sink is :meth:`Bridge.cloud_sink`). Each source has its own ``seq`` per job; see
:mod:`crown_edge.sync.board` for how they are merged.

Workshop events are untrusted input (defence in depth behind the broker's ACLs): every payload
is decoded totally (:mod:`crown_edge.sync.wire`), and an event counts only when the workshop of
its topic is the workshop that makes the job, as the :class:`~crown_edge.sync.jobdir.JobDirectory`
knows it from the workflow — never from the message. Anything else (malformed, unknown job,
another shop's job, an implausible ``seq``) is logged with the topic's shop and the job id,
counted in :attr:`Bridge.rejected` by reason, and changes nothing. The directory looks unknown
jobs up in Temporal; the bridge borrows the Temporal client of the activity that feeds it
workflow statuses (:meth:`Bridge.cloud_sink`) unless it was built with a directory of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Protocol, Self

import aiomqtt
from temporalio import activity

from crown_edge.errors import SyncError
from crown_edge.sync import topics, wire
from crown_edge.sync.backoff import Backoff
from crown_edge.sync.board import EDGE_SOURCE, StatusBoard, event_problem
from crown_edge.sync.jobdir import JobDirectory, TemporalShopLookup
from crown_edge.sync.mqtt_auth import MqttTls, mqtt_client

log = logging.getLogger(__name__)

#: Largest workshop message the bridge decodes (an event or a machine state is well under 2 KiB).
MAX_PAYLOAD = 64 * 1024
#: Reasons a workshop message is rejected (the keys of :attr:`Bridge.rejected`).
REJECT_REASONS = ("malformed", "unknown_job", "wrong_shop", "implausible_seq")


class EventSink(Protocol):
    """Where relayed events go (:class:`~crown_edge.sync.sqs.OrderQueue` implements it)."""

    async def send_event(self, event: dict[str, Any]) -> str:
        """Deliver one event; raise SyncError on failure."""
        ...


@dataclass(frozen=True, slots=True)
class BridgeSettings:
    """Broker address and the bridge's MQTT identity (the cloud's: it alone may publish
    ``commands/`` and it reads every workshop's up-topics). ``tls`` None means plain TCP;
    ``password`` stays out of the repr."""

    host: str
    port: int
    client_id: str = "crown-bridge"
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls: MqttTls | None = None
    keepalive: int = 30
    subscriber_queue: int = 64


class Subscription:
    """Live updates for one job (or all jobs): an async iterator of event dicts."""

    def __init__(self, bridge: Bridge, job_id: str | None, size: int) -> None:
        self.job_id = job_id
        self._bridge = bridge
        self._queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(size)
        self.dropped = 0

    def offer(self, event: dict[str, Any]) -> None:
        """Queue an update; drop the oldest if the subscriber is behind."""
        if self._queue.full():
            self._queue.get_nowait()
            self.dropped += 1
        self._queue.put_nowait(event)

    async def get(self) -> dict[str, Any]:
        """The next update."""
        return await self._queue.get()

    def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        return self

    async def __anext__(self) -> dict[str, Any]:
        return await self._queue.get()

    def close(self) -> None:
        """Stop receiving updates."""
        self._bridge._unsubscribe(self)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class Bridge:
    """Async context manager running the MQTT consumer and the SQS relay (module docstring)."""

    def __init__(
        self,
        settings: BridgeSettings | None,
        sink: EventSink | None = None,
        *,
        board: StatusBoard | None = None,
        jobs: JobDirectory | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.sink = sink
        self.board = board or StatusBoard()
        #: job → workshop, from the workflow (module docstring)
        self.jobs = jobs if jobs is not None else JobDirectory()
        self._clock = clock
        self._subs: dict[str | None, set[Subscription]] = {}
        self._relay: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._connected = asyncio.Event()
        self.relayed = 0
        self.dropped = 0
        #: workshop messages rejected, by reason (:data:`REJECT_REASONS`)
        self.rejected: Counter[str] = Counter()

    @property
    def connected(self) -> bool:
        """Whether the MQTT session is up."""
        return self._connected.is_set()

    @property
    def relay_backlog(self) -> int:
        """Events waiting for the SQS relay."""
        return self._relay.qsize()

    # -- subscribers -------------------------------------------------------------------------------

    def subscribe(self, job_id: str | None = None) -> Subscription:
        """Live updates for ``job_id`` (``None``: every job); starts with the latest known state."""
        size = self.settings.subscriber_queue if self.settings else 64
        sub = Subscription(self, job_id, size)
        self._subs.setdefault(job_id, set()).add(sub)
        if job_id is not None and (latest := self.board.job(job_id)) is not None:
            sub.offer(latest)
        return sub

    def _unsubscribe(self, sub: Subscription) -> None:
        subs = self._subs.get(sub.job_id)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self._subs[sub.job_id]

    @property
    def subscriber_count(self) -> int:
        """How many live subscriptions exist."""
        return sum(len(s) for s in self._subs.values())

    def _fan_out(self, event: dict[str, Any]) -> None:
        for key in (event["job_id"], None):
            for sub in list(self._subs.get(key, ())):
                sub.offer(event)

    # -- events ------------------------------------------------------------------------------------

    def publish(
        self, event: dict[str, Any], *, source: str = "workflow", relay: bool = True
    ) -> bool:
        """Take a status event from ``source``: dedupe by seq, relay to SQS, fan out if latest.

        Returns whether the event was new. Workshop events arrive with source ``edge:{shop_id}``
        and count only for a job the directory knows that shop makes; a ``workflow`` event
        teaches the directory its job's shop.
        """
        problem = event_problem(event)
        if problem is not None:
            return self._reject("malformed", source, event.get("job_id"), problem)
        job_id = event["job_id"]
        if source.startswith(EDGE_SOURCE):
            owner = self.jobs.known(job_id)
            if owner != source[len(EDGE_SOURCE) :]:
                reason = "unknown_job" if owner is None else "wrong_shop"
                return self._reject(reason, source, job_id, f"the job's workshop is {owner}")
        elif source == "workflow" and isinstance(event.get("shop_id"), str) and event["shop_id"]:
            self.jobs.learn(job_id, event["shop_id"])
        applied = self.board.apply(event, source, received=self._clock())
        if applied.rejected is not None:
            return self._reject(applied.rejected, source, job_id, f"seq {event['seq']}")
        if not applied.fresh:
            self.dropped += 1
            return False
        if relay and self.sink is not None:
            self._relay.put_nowait(dict(event, source=source))
        if applied.latest:
            self._fan_out(dict(event, source=source))
        return True

    def _reject(self, reason: str, source: str, job_id: object, detail: str) -> bool:
        self.rejected[reason] += 1
        self.dropped += 1
        log.warning(
            "rejected %s event for job %.80r: %s (%s)",
            source,
            job_id,
            reason,
            detail,
            extra={"source": source, "job_id": str(job_id)[:80], "reason": reason},
        )
        return False

    async def cloud_sink(self, kind: str, payload: dict[str, Any]) -> None:
        """The cloud activities' ``sink(kind, payload)``: statuses go to :meth:`publish`.

        Called inside a Temporal activity: a directory without a lookup borrows its client.
        """
        if self.jobs.lookup is None and activity.in_activity():
            with contextlib.suppress(RuntimeError):  # a local activity has no client
                self.jobs.lookup = TemporalShopLookup(activity.client())
        if kind == "status":
            self.publish(payload, source="workflow")
        else:
            log.debug("cloud event %s for job %s", kind, payload.get("job_id"))

    def accept(self, job_id: str, **extra: Any) -> dict[str, Any]:
        """The Order API accepted ``job_id``: make ``received`` visible at once."""
        event = self.board.accept(job_id, self._clock(), **extra)
        self._fan_out(event)
        return event

    async def handle_message(self, topic: str, raw: Any) -> None:
        """Take one broker message (the MQTT consumer calls this).

        Whatever it holds, it is applied or logged and dropped; it never stops the next one.
        """
        try:
            await self._take(topic, raw)
        except Exception:  # a bug, not the message's fault: log it and keep serving
            log.exception("bridge dropped a message on %.200r", topic)
            self.dropped += 1

    async def _take(self, topic: str, raw: Any) -> None:
        parsed = topics.parse(topic)
        if parsed is None or not re.fullmatch(wire.IDENT_PATTERN, parsed.shop_id):
            self._reject("malformed", "mqtt", None, f"not a workshop topic: {topic[:120]!r}")
            return
        source = f"{EDGE_SOURCE}{parsed.shop_id}"
        payload = wire.decode_object(raw, max_bytes=MAX_PAYLOAD)
        if isinstance(payload, wire.Rejected):
            self._reject("malformed", source, None, f"{parsed.kind}: {payload.reason}")
            return
        if parsed.kind == "events":
            await self._on_event(parsed.shop_id, payload)
        elif parsed.kind == "machine_state" and parsed.name is not None:
            if re.fullmatch(wire.IDENT_PATTERN, parsed.name):
                self.board.set_machine(parsed.shop_id, parsed.name, payload)
            else:
                self._reject("malformed", source, None, f"machine id {parsed.name[:80]!r}")
        elif parsed.kind == "edge_state":
            self.board.set_edge(parsed.shop_id, payload)

    async def _on_event(self, shop_id: str, payload: dict[str, Any]) -> None:
        """A workshop's status event: resolve the job's shop (maybe from Temporal), then publish."""
        source = f"{EDGE_SOURCE}{shop_id}"
        problem = event_problem(payload)
        if problem is None and not re.fullmatch(wire.JOB_ID_PATTERN, payload["job_id"]):
            problem = "job_id: not a job id"
        if problem is not None:
            self._reject("malformed", source, payload.get("job_id"), problem)
            return
        await self.jobs.shop_of(payload["job_id"])  # publish() checks the answer
        # the topic's shop, now checked against the job's, replaces whatever the payload claims
        self.publish(dict(payload, shop_id=shop_id), source=source)

    # -- tasks -------------------------------------------------------------------------------------

    async def _consume(self) -> None:
        assert self.settings is not None
        s = self.settings
        backoff = Backoff(0.2, 30.0)
        while True:
            try:
                async with mqtt_client(
                    s.host,
                    s.port,
                    identifier=s.client_id,
                    username=s.username,
                    password=s.password,
                    tls=s.tls,
                    keepalive=s.keepalive,
                    clean_session=False,
                ) as client:
                    for pattern in topics.BRIDGE_SUBSCRIPTIONS:
                        await client.subscribe(pattern, qos=1)
                    self._connected.set()
                    backoff.reset()
                    async for message in client.messages:
                        await self.handle_message(str(message.topic), message.payload)
            except aiomqtt.MqttError as exc:
                log.warning("bridge lost the broker: %s", exc)
            except Exception:
                log.exception("bridge session failed")
            finally:
                self._connected.clear()
            await asyncio.sleep(backoff.next())

    async def _relay_loop(self) -> None:
        assert self.sink is not None
        backoff = Backoff(0.2, 30.0)
        batched = getattr(self.sink, "send_events", None)
        while True:
            batch = [await self._relay.get()]
            if batched is not None:  # one request for what has piled up (10 at most)
                while len(batch) < 10 and not self._relay.empty():
                    batch.append(self._relay.get_nowait())
            while batch:
                try:
                    if batched is not None:
                        left: list[dict[str, Any]] = await batched(batch)
                    else:
                        await self.sink.send_event(batch[0])
                        left = batch[1:]
                except SyncError as exc:
                    log.warning("relay of %s events failed: %s", len(batch), exc)
                    await asyncio.sleep(backoff.next())
                    continue
                except Exception:  # a bug, not an outage: retrying would block every event
                    log.exception("relay of %s events dropped", len(batch))
                    break
                self.relayed += len(batch) - len(left)
                if left and len(left) == len(batch):
                    await asyncio.sleep(backoff.next())  # SQS refused them all: back off
                else:
                    backoff.reset()
                batch = left

    async def wait_connected(self) -> None:
        """Block until the MQTT session is up (bound it with ``asyncio.timeout``)."""
        await self._connected.wait()

    async def __aenter__(self) -> Self:
        if self.settings is not None:
            self._tasks.append(asyncio.create_task(self._consume(), name="bridge-mqtt"))
        if self.sink is not None:
            self._tasks.append(asyncio.create_task(self._relay_loop(), name="bridge-relay"))
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*tasks, return_exceptions=True)
