"""The workshop's MQTT link: end-to-end delivery of the outbox, retained state, commands down.

One :class:`MqttLink` per workshop daemon. It keeps one connection to the broker and, while
connected, runs two loops:

- **drain**: reads the rows that are due from the outbox (:class:`~crown_edge.sync.ports.
  DeliveryOutbox`) in id order and publishes each with QoS 1, waiting for each PUBACK before the
  next, so order holds. A PUBACK only means the broker has it: an event row stays until the cloud
  acknowledges its event id on ``acks`` (:mod:`crown_edge.sync.delivery`) and is sent again when
  that ack is late (``ack_timeout``, doubling to ``ack_timeout_max``); other rows (retained
  states) are done at the PUBACK. The record of what went out is written even when the link
  drops mid-batch. Delivery is at least once; the bridge drops duplicates by ``seq`` /
  ``event_id`` and keeps each job's events in order;
- **receive**: ``acks`` finish rows, ``replay`` re-queues a job's events from the store's
  history, ``commands/{verb}`` go to the command handler; malformed payloads are logged and
  dropped, and a failing handler never takes the link down.

On connect it publishes ``edge/state`` ``{"online": true}`` (retained); the same topic with
``online: false`` is the Last Will, and is published explicitly on a clean shutdown. While the
broker is unreachable the link retries with jittered exponential back-off (capped at
``backoff_max``, a few seconds, so it is not offline long after the broker is back); the outbox
keeps growing in SQLite — within its age and size bounds, enforced here every
``housekeeping_interval`` whether connected or not — and drains in order once the broker is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

import aiomqtt

from crown_edge import __version__
from crown_edge.errors import CrownEdgeError
from crown_edge.models import OutboxEntry
from crown_edge.sync import commands, delivery, topics, wire
from crown_edge.sync.backoff import Backoff
from crown_edge.sync.mqtt_auth import MqttTls, mqtt_client, tls_of
from crown_edge.sync.ports import BoundedOutbox, DeliveryOutbox

if TYPE_CHECKING:
    from crown_edge.config import EdgeConfig

log = logging.getLogger(__name__)

#: ``await handler(verb, payload)`` for a command received on ``commands/{verb}``.
CommandHandler = Callable[[str, dict[str, Any]], Awaitable[None]]


class _Stopping(Exception):
    """Raised inside a session to end it for a clean shutdown."""


@dataclass(frozen=True, slots=True)
class MqttSettings:
    """Where and how the link connects, and as whom.

    ``client_id`` defaults to ``crown-edge-{shop_id}``; a fixed id makes the broker session
    persistent (``clean_session=False``), so commands sent while the workshop is offline wait
    for it. ``client_id=None`` gives a throw-away id and a clean session (tools, not workshops).
    ``tls`` None means plain TCP. ``password`` stays out of the repr. The delivery and outbox
    fields are the ``[mqtt]`` keys of the same names (see :class:`~crown_edge.config.MqttConfig`).
    """

    host: str
    port: int
    shop_id: str
    client_id: str | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls: MqttTls | None = None
    keepalive: int = 30
    timeout: float = 10.0
    batch: int = 100
    poll_interval: float = 5.0
    backoff_initial: float = 0.2
    backoff_max: float = 5.0
    ack_timeout: float = 10.0
    ack_timeout_max: float = 120.0
    outbox_max_rows: int = 100_000
    outbox_max_age_s: float = 7 * 86_400.0
    outbox_keep_done_s: float = 86_400.0
    housekeeping_interval: float = 60.0
    version: str = __version__

    @classmethod
    def from_config(cls, config: EdgeConfig, **overrides: Any) -> MqttSettings:
        """Settings from the edge config's ``[mqtt]`` table and ``shop_id``.

        The client id is fixed (``[mqtt] client_id``, default ``crown-edge-{shop_id}``), which
        makes the broker session persistent; ``version`` is the package's.
        """
        mqtt = config.mqtt
        values: dict[str, Any] = {
            "host": mqtt.host,
            "port": mqtt.port,
            "shop_id": config.shop_id,
            "client_id": mqtt.client_id or f"crown-edge-{config.shop_id}",
            "username": mqtt.username,
            "password": mqtt.password,
            "tls": tls_of(mqtt),
            "keepalive": mqtt.keepalive_s,
            "backoff_max": mqtt.reconnect_max_s,
            "ack_timeout": mqtt.ack_timeout_s,
            "ack_timeout_max": mqtt.ack_timeout_max_s,
            "outbox_max_rows": mqtt.outbox_max_rows,
            "outbox_max_age_s": mqtt.outbox_max_age_s,
            "outbox_keep_done_s": mqtt.outbox_keep_done_s,
            "version": __version__,
        }
        values.update(overrides)
        return cls(**values)


class MqttLink:
    """Async context manager owning the workshop's broker connection (see the module docstring).

    ``wake()`` after writing outbox rows makes the link drain at once instead of at the next poll.
    """

    def __init__(
        self,
        settings: MqttSettings,
        outbox: DeliveryOutbox,
        on_command: CommandHandler | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.outbox = outbox
        self.on_command = on_command
        self.prefix = topics.prefix(settings.shop_id)
        self._clock = clock
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._connected = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._backoff = Backoff(settings.backoff_initial, settings.backoff_max)
        self.schedule = delivery.RetransmitSchedule(settings.ack_timeout, settings.ack_timeout_max)
        self._states: dict[str, dict[str, Any]] = {}
        self._dirty: set[str] = set()
        self._housekept: float | None = None
        #: messages published (first sends and retransmits)
        self.published = 0
        self.connects = 0
        self.commands_received = 0
        self.commands_rejected = 0
        #: outbox rows the cloud's acks finished
        self.acked = 0
        #: replay requests served, and the events they re-queued
        self.replays = 0
        self.replayed = 0
        #: outbox rows given up at the age or size bound (logged when it happens)
        self.dropped = 0

    @classmethod
    def from_config(
        cls, config: EdgeConfig, outbox: DeliveryOutbox, on_command: CommandHandler | None = None
    ) -> MqttLink:
        """The link described by the edge config (see :meth:`MqttSettings.from_config`)."""
        return cls(MqttSettings.from_config(config), outbox, on_command)

    # -- public ------------------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        """Whether a broker session is up right now."""
        return self._connected.is_set()

    async def wait_connected(self) -> None:
        """Block until a session is up (wrap in ``asyncio.timeout`` to bound the wait)."""
        await self._connected.wait()

    def wake(self) -> None:
        """New outbox rows exist: drain now. Call from the event loop's thread."""
        self._wake.set()

    def set_machine_state(self, machine_id: str, state: dict[str, Any]) -> None:
        """Publish a machine's state (retained). Only the latest value per machine is kept."""
        self._states[machine_id] = dict(state)
        self._dirty.add(machine_id)
        self._wake.set()

    async def __aenter__(self) -> Self:
        self._stop.clear()
        self._task = asyncio.create_task(self._run(), name=f"mqtt-link-{self.settings.shop_id}")
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self, grace: float = 5.0) -> None:
        """Say goodbye (``online: false``), disconnect and stop the link."""
        task, self._task = self._task, None
        if task is None:
            return
        self._stop.set()
        try:
            async with asyncio.timeout(grace):
                await asyncio.shield(task)
        except TimeoutError:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # -- connection loop ---------------------------------------------------------------------------

    def _edge_state(self, online: bool) -> bytes:
        return topics.encode(
            {"online": online, "at": self._clock(), "version": self.settings.version}
        )

    def _client(self) -> aiomqtt.Client:
        s = self.settings
        identifier = s.client_id or f"crown-edge-{s.shop_id}-{uuid.uuid4().hex[:8]}"
        will = aiomqtt.Will(
            self.prefix + topics.EDGE_STATE, self._edge_state(False), qos=1, retain=True
        )
        return mqtt_client(
            s.host,
            s.port,
            identifier=identifier,
            username=s.username,
            password=s.password,
            tls=s.tls,
            keepalive=s.keepalive,
            timeout=s.timeout,
            will=will,
            clean_session=s.client_id is None,
        )

    async def _run(self) -> None:
        while not self._stop.is_set():
            try:
                await self._session()
            except aiomqtt.MqttError as exc:
                log.warning(
                    "mqtt link to %s:%s down: %s",
                    self.settings.host,
                    self.settings.port,
                    exc,
                    extra={"shop_id": self.settings.shop_id},
                )
            except Exception:  # the outbox failed, or a bug: reconnect rather than die silently
                log.exception("mqtt link session failed", extra={"shop_id": self.settings.shop_id})
            finally:
                self._connected.clear()
            if self._stop.is_set():
                return
            await self._housekeep()  # the bounds hold while the broker is away, too
            delay = self._backoff.next()
            # asyncio.timeout rather than wait_for: on Python 3.11 wait_for can swallow a
            # cancellation that races with the awaited event, and the loop would never end
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._stop.wait()

    async def _session(self) -> None:
        async with self._client() as client:
            self.connects += 1
            self._backoff.reset()
            await client.publish(
                self.prefix + topics.EDGE_STATE, self._edge_state(True), qos=1, retain=True
            )
            await client.subscribe(self.prefix + "commands/#", qos=1)
            await client.subscribe(self.prefix + topics.ACKS, qos=1)
            await client.subscribe(self.prefix + topics.REPLAY, qos=1)
            self._connected.set()
            self._dirty.update(self._states)  # re-assert retained state after an outage
            log.info("mqtt link up (%s:%s)", self.settings.host, self.settings.port)
            try:
                async with asyncio.TaskGroup() as tg:
                    tg.create_task(self._drain(client))
                    tg.create_task(self._receive(client))
                    tg.create_task(self._watch_stop())
            except* _Stopping:
                self._connected.clear()
                await client.publish(
                    self.prefix + topics.EDGE_STATE, self._edge_state(False), qos=1, retain=True
                )
            except* aiomqtt.MqttError as group:
                raise group.exceptions[0] from None

    async def _watch_stop(self) -> None:
        await self._stop.wait()
        raise _Stopping

    # -- drain -------------------------------------------------------------------------------------

    async def _drain(self, client: aiomqtt.Client) -> None:
        me = asyncio.current_task()
        while True:
            if me is not None and me.cancelling():
                # a cancellation swallowed below us (Python 3.11's wait_for, used inside
                # aiomqtt's publish, can lose one that races with the PUBACK): honour it here
                raise asyncio.CancelledError
            self._wake.clear()
            await self._publish_states(client)
            await self._housekeep()
            now = self._clock()
            entries = await self.outbox.outbox_due(self.settings.batch, now)
            if entries:
                await self._publish_entries(client, entries, now)
                continue
            next_due = await self.outbox.outbox_next_due()
            wait = self.settings.poll_interval
            if next_due is not None:
                wait = min(wait, max(0.02, next_due - self._clock()))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._wake.wait()

    @staticmethod
    def _needs_ack(entry: OutboxEntry) -> bool:
        """An event with an id is done when the cloud acks it; anything else at the PUBACK."""
        return entry.topic == topics.EVENTS and isinstance(entry.payload.get("event_id"), str)

    async def _publish_entries(
        self, client: aiomqtt.Client, entries: list[OutboxEntry], now: float
    ) -> None:
        """Publish in order, one PUBACK at a time; record what went out, even on failure.

        The record is shielded so a cancellation (link lost, shutdown) cannot lose it: an event
        row then waits for its ack (or its retransmit), another row is done.
        """
        tried: list[int] = []
        done: list[int] = []
        try:
            for entry in entries:
                await client.publish(
                    self.prefix + entry.topic,
                    topics.encode(entry.payload),
                    qos=entry.qos,
                    retain=entry.retain,
                )
                (tried if self._needs_ack(entry) else done).append(entry.id)
                self.published += 1
        finally:
            if tried or done:
                await asyncio.shield(self._record(tried, done, now))

    async def _record(self, tried: list[int], done: list[int], now: float) -> None:
        if tried:
            await self.outbox.outbox_tried(tried, now, self.schedule.delay)
        if done:
            await self.outbox.outbox_mark_sent(done)

    async def _housekeep(self) -> None:
        """Apply the outbox bounds every ``housekeeping_interval``; log and count what they drop."""
        outbox, s = self.outbox, self.settings
        now = self._clock()
        if not isinstance(outbox, BoundedOutbox) or (
            self._housekept is not None and now - self._housekept < s.housekeeping_interval
        ):
            return
        self._housekept = now
        try:
            trim = await outbox.outbox_enforce(
                now,
                max_rows=s.outbox_max_rows,
                max_age_s=s.outbox_max_age_s,
                keep_done_s=s.outbox_keep_done_s,
            )
        except CrownEdgeError as exc:
            log.warning("outbox bounds not applied: %s", exc, extra={"shop_id": s.shop_id})
            return
        if trim.dropped:
            self.dropped += trim.dropped
            log.warning(
                "outbox bound hit: gave up %s rows (%s older than %.0f s, %s beyond %s rows; "
                "ids %s..%s); their events stay in the job history and the cloud can ask for "
                "a replay",
                trim.dropped,
                trim.dropped_old,
                s.outbox_max_age_s,
                trim.dropped_over_size,
                s.outbox_max_rows,
                trim.first_dropped_id,
                trim.last_dropped_id,
                extra={"shop_id": s.shop_id, "dropped": trim.dropped},
            )

    async def _publish_states(self, client: aiomqtt.Client) -> None:
        while self._dirty:
            machine_id = self._dirty.pop()
            state = self._states[machine_id]
            try:
                await client.publish(
                    self.prefix + topics.machine_state(machine_id),
                    topics.encode(state),
                    qos=1,
                    retain=True,
                )
            except BaseException:
                if self._states.get(machine_id) is state:
                    self._dirty.add(machine_id)
                raise

    # -- receive -----------------------------------------------------------------------------------

    async def _receive(self, client: aiomqtt.Client) -> None:
        """Serve acks, replays and commands until the session ends; no message, however
        malformed, ends it."""
        async for message in client.messages:
            try:
                parsed = topics.parse(str(message.topic))
                if parsed is None or parsed.shop_id != self.settings.shop_id:
                    continue
                if parsed.kind == "acks":
                    await self._on_ack(message.payload)
                elif parsed.kind == "replay":
                    await self._on_replay(message.payload)
                elif parsed.kind == "command" and parsed.name is not None:
                    await self._dispatch(parsed.name, message.payload)
            except Exception:  # a bug in a handler must not stop the commands after it
                log.exception("mqtt message on %.200r dropped", str(message.topic))

    async def _on_ack(self, raw: Any) -> None:
        ids = delivery.parse_ack(raw)
        if isinstance(ids, wire.Rejected):
            log.warning("ignoring ack: %s", ids.reason, extra={"shop_id": self.settings.shop_id})
            return
        finished = await self.outbox.outbox_acked(ids, self._clock())
        self.acked += finished

    async def _on_replay(self, raw: Any) -> None:
        request = delivery.parse_replay(raw)
        if isinstance(request, wire.Rejected):
            log.warning(
                "ignoring replay request: %s",
                request.reason,
                extra={"shop_id": self.settings.shop_id},
            )
            return
        count = await self.outbox.outbox_replay(
            request.job_id, request.from_seq, request.to_seq, self._clock()
        )
        self.replays += 1
        self.replayed += count
        log.info(
            "cloud asked for events %s..%s of job %s: %s re-queued",
            request.from_seq,
            request.to_seq,
            request.job_id,
            count,
            extra={"shop_id": self.settings.shop_id, "job_id": request.job_id},
        )
        self._wake.set()

    async def _dispatch(self, verb: str, raw: Any) -> None:
        """Decode one command payload (totally: see :mod:`crown_edge.sync.wire`) and hand it on."""
        self.commands_received += 1
        payload = wire.decode_object(raw, max_bytes=commands.MAX_PAYLOAD)
        if isinstance(payload, wire.Rejected):
            self.commands_rejected += 1
            log.warning(
                "ignoring command %.40r: %s",
                verb,
                payload.reason,
                extra={"shop_id": self.settings.shop_id},
            )
            return
        if self.on_command is None:
            log.info("no command handler; ignoring %.40r", verb)
            return
        try:
            await self.on_command(verb, payload)
        except Exception:
            log.exception("command %.40r failed", verb, extra={"verb": verb[:40]})
