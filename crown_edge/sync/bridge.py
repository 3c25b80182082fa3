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
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Protocol, Self

import aiomqtt

from crown_edge.errors import SyncError
from crown_edge.sync import topics
from crown_edge.sync.backoff import Backoff
from crown_edge.sync.board import StatusBoard, event_problem
from crown_edge.sync.mqtt_auth import MqttTls, mqtt_client

log = logging.getLogger(__name__)


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
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.sink = sink
        self.board = board or StatusBoard()
        self._clock = clock
        self._subs: dict[str | None, set[Subscription]] = {}
        self._relay: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._connected = asyncio.Event()
        self.relayed = 0
        self.dropped = 0

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

        Returns whether the event was new. Workshop events arrive with source ``edge:{shop_id}``.
        """
        problem = event_problem(event)
        if problem is not None:
            log.warning("dropping malformed event: %s", problem)
            self.dropped += 1
            return False
        applied = self.board.apply(event, source, received=self._clock())
        if not applied.fresh:
            self.dropped += 1
            return False
        if relay and self.sink is not None:
            self._relay.put_nowait(dict(event, source=source))
        if applied.latest:
            self._fan_out(dict(event, source=source))
        return True

    async def cloud_sink(self, kind: str, payload: dict[str, Any]) -> None:
        """The cloud activities' ``sink(kind, payload)``: statuses go to :meth:`publish`."""
        if kind == "status":
            self.publish(payload, source="workflow")
        else:
            log.debug("cloud event %s for job %s", kind, payload.get("job_id"))

    def accept(self, job_id: str, **extra: Any) -> dict[str, Any]:
        """The Order API accepted ``job_id``: make ``received`` visible at once."""
        event = self.board.accept(job_id, self._clock(), **extra)
        self._fan_out(event)
        return event

    def _on_message(self, topic: str, raw: Any) -> None:
        parsed = topics.parse(topic)
        payload = topics.decode(raw) if isinstance(raw, bytes | bytearray | str) else None
        if parsed is None or payload is None:
            log.warning("ignoring malformed message on %s", topic)
            self.dropped += 1
            return
        if parsed.kind == "events":
            event = dict(payload, shop_id=payload.get("shop_id", parsed.shop_id))
            self.publish(event, source=f"edge:{parsed.shop_id}")
        elif parsed.kind == "machine_state" and parsed.name is not None:
            self.board.set_machine(parsed.shop_id, parsed.name, payload)
        elif parsed.kind == "edge_state":
            self.board.set_edge(parsed.shop_id, payload)

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
                        self._on_message(str(message.topic), message.payload)
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
