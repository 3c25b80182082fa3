"""The bridge (cloud side): workshop MQTT → job-events SQS queue + live WebSocket subscribers.

Subscribes to every workshop's ``events``, ``machines/+/state`` and ``edge/state``. A new event
(by per-job ``seq``, see :class:`~crown_edge.cloud.board.StatusBoard`) is

- relayed to ``crown-trophy-job-events.fifo`` (group = job id, deduplication id = event id) by a
  relay task that retries with back-off while SQS is unreachable, and
- fanned out to subscribers of its job (and to "all jobs" subscribers); a slow subscriber loses
  its oldest pending updates rather than slowing the bridge (:mod:`crown_edge.cloud.subscribers`).

Delivery is end to end (:mod:`crown_edge.sync.delivery`): workshop events pass the
:class:`~crown_edge.cloud.sequencer.Sequencer` first — each job's events once and in ``seq``
order, later ones held behind a gap, a gap that stays open answered with a ``replay`` request to
the workshop — and only once SQS has taken an event (or the board, when there is no SQS sink) does
the bridge publish its id on the workshop's ``acks`` topic; the workshop keeps and resends every
event until then. The bridge is one of the cloud identity's clients: it alone publishes ``acks``
and ``replay``.

The MQTT session is persistent (fixed client id, ``clean_session=False``; the broker persists
sessions) so the broker keeps QoS 1 events for the bridge while it reconnects, and the reconnect
back-off is capped at ``reconnect_max`` (seconds, not half a minute). Several bridges share the
events with ``share_group`` (``$share/{group}/…``): each event goes to one of them, so a job's
events may reach different bridges; each relays an event only after its predecessors and asks for
a replay of what went elsewhere, and SQS drops the second relay by its deduplication id (see
:mod:`crown_edge.cloud.sequencer`) — correct, but slower than one bridge per set of workshops.

Cloud-side code (workflow activities, the Order API) feeds statuses that never crossed MQTT
through :meth:`Bridge.publish` (the cloud activities' sink is :meth:`Bridge.cloud_sink`).
Each source has its own ``seq`` per job; see :mod:`crown_edge.cloud.board` for how they are merged.
A workflow status goes to the queue too, unless it echoes a workshop event already handed to
the relay (:mod:`crown_edge.cloud.echoes`): the queue carries each transition once where it can.

Several cloud replicas (``BridgeSettings.instance``) share those cloud-born statuses over the
broker (:mod:`crown_edge.cloud.replicas`): a fresh workflow status and an accepted order are also
published on the replicas' topic by a task of the MQTT session (queued while the broker is away,
bounded), and what another replica published there reaches this board and its subscribers without
a second relay to SQS and without being published again.

Workshop events are untrusted input (defence in depth behind the broker's ACLs): every payload
is decoded totally (:mod:`crown_edge.sync.wire`), and an event counts only when the workshop of
its topic is the workshop that makes the job, as the :class:`~crown_edge.cloud.jobdir.JobDirectory`
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
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Protocol, Self

import aiomqtt
from temporalio import activity

from crown_edge.cloud import replicas
from crown_edge.cloud.board import EDGE_SOURCE, StatusBoard, event_problem
from crown_edge.cloud.echoes import Echoes
from crown_edge.cloud.jobdir import JobDirectory, TemporalShopLookup
from crown_edge.cloud.sequencer import Sequencer
from crown_edge.cloud.subscribers import Subscribers
from crown_edge.cloud.subscribers import Subscription as Subscription
from crown_edge.errors import SyncError
from crown_edge.sync import delivery, topics, wire
from crown_edge.sync.backoff import Backoff
from crown_edge.sync.mqtt_auth import MqttTls, mqtt_client

log = logging.getLogger(__name__)

#: Largest workshop message the bridge decodes (an event or a machine state is well under 2 KiB).
MAX_PAYLOAD = 64 * 1024
#: How long the SQS relay waits for company before sending a lone event (one SendMessageBatch
#: for several events: they arrive a few milliseconds apart when jobs run side by side). SQS
#: bills by the request: at 0.05 s the pipeline benchmark's 492 events took 145 requests, at
#: 0.2 s 72. Nothing a customer sees waits for it (the status board and live pages are fed
#: before the relay); the workshop's acknowledgement of an event comes that much later.
RELAY_LINGER_S = 0.2
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
    ``commands/``, ``acks`` and ``replay``, and it reads every workshop's up-topics). ``tls``
    None means plain TCP; ``password`` stays out of the repr.

    ``client_id`` is fixed: with ``clean_session=False`` the broker keeps the bridge's session
    (subscriptions and queued events) while it is away. ``reconnect_max`` caps the reconnect
    back-off; ``share_group`` names a shared subscription for several bridges; a gap in a job's
    events is asked to be replayed after ``gap_wait`` seconds, then every ``replay_every``.

    ``instance`` names this cloud replica (unique among them, :data:`replicas.INSTANCE_PATTERN`):
    when set, the bridge shares its cloud-born statuses with the other replicas and takes theirs
    (module docstring), holding at most ``share_queue`` of its own while the broker is away."""

    host: str
    port: int
    client_id: str = "crown-bridge"
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls: MqttTls | None = None
    keepalive: int = 30
    subscriber_queue: int = 64
    reconnect_max: float = 2.0
    share_group: str | None = None
    gap_wait: float = 2.0
    replay_every: float = 10.0
    instance: str | None = None
    share_queue: int = replicas.DEFAULT_QUEUE

    def __post_init__(self) -> None:
        if self.instance is not None and not replicas.valid_instance(self.instance):
            raise ValueError(
                f"instance must match {replicas.INSTANCE_PATTERN}, got {self.instance[:80]!r}"
            )
        if self.share_queue < 1:
            raise ValueError(f"share_queue must be at least 1, got {self.share_queue}")


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
        relay_linger: float = RELAY_LINGER_S,
    ) -> None:
        self.settings = settings
        #: seconds the SQS relay waits for more events before sending a lone one
        self.relay_linger = relay_linger
        self.sink = sink
        self.board = board or StatusBoard()
        #: job → workshop, from the workflow (module docstring)
        self.jobs = jobs if jobs is not None else JobDirectory()
        self._clock = clock
        self._subs = Subscribers()
        self._relay: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        #: workflow statuses the queue already holds from the workshop (:mod:`.echoes`)
        self.echoes = Echoes()
        self._tasks: list[asyncio.Task[None]] = []
        self._connected = asyncio.Event()
        self.sequencer = Sequencer(
            gap_wait=settings.gap_wait if settings else 2.0,
            replay_every=settings.replay_every if settings else 10.0,
        )
        self._acks: dict[str, list[str]] = {}
        self._ack_wake = asyncio.Event()
        self._shared = replicas.Outgoing(settings.share_queue if settings else 1)
        self._share_wake = asyncio.Event()
        #: messages published to / taken from the other replicas (module docstring)
        self.shared_sent = 0
        self.peer_taken = 0
        self.relayed = 0
        self.dropped = 0
        #: workshop events dropped as copies of one already taken (by job and seq)
        self.duplicates = 0
        #: event ids acknowledged to workshops; replay requests sent to them
        self.acks_sent = 0
        self.replays_requested = 0
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

    @property
    def share_backlog(self) -> int:
        """Statuses waiting for the broker to reach the other replicas."""
        return len(self._shared)

    @property
    def share_dropped(self) -> int:
        """Statuses the other replicas will not get from this one (the oldest beyond the cap,
        or one that cannot be encoded); their durable copies are unaffected."""
        return self._shared.dropped

    @property
    def held(self) -> int:
        """Workshop events held behind a gap in their job's sequence."""
        return self.sequencer.held

    # -- subscribers -------------------------------------------------------------------------------

    def subscribe(self, job_id: str | None = None) -> Subscription:
        """Live updates for ``job_id`` (``None``: every job); starts with the latest known state."""
        size = self.settings.subscriber_queue if self.settings else 64
        sub = self._subs.add(job_id, size)
        if job_id is not None and (latest := self.board.job(job_id)) is not None:
            sub.offer(latest)
        return sub

    @property
    def subscriber_count(self) -> int:
        """How many live subscriptions exist."""
        return len(self._subs)

    # -- events ------------------------------------------------------------------------------------

    def publish(
        self, event: dict[str, Any], *, source: str = "workflow", relay: bool = True
    ) -> bool:
        """Take a status event from ``source``: dedupe by seq, relay to SQS, fan out if latest.

        Returns whether the event was new. Workshop events arrive with source ``edge:{shop_id}``
        and count only for a job the directory knows that shop makes; a ``workflow`` event
        teaches the directory its job's shop, and a fresh one is shared with the other replicas.
        ``relay=False``: another replica took the event, and has relayed and shared it.
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
        if relay and self.sink is not None and not self._echo(event, source):
            self._relay.put_nowait(dict(event, source=source))
        if relay and source == "workflow":
            self._share("status", event)
        if applied.latest:
            self._subs.fan_out(dict(event, source=source))
        return True

    def _echo(self, event: dict[str, Any], source: str) -> bool:
        """Whether ``event`` is a workflow status the workshop's events already carry to the
        queue (:mod:`.echoes`); a workshop event is counted as it goes to the relay."""
        if source == "workflow":
            return self.echoes.is_echo(event)
        self.echoes.workshop_relayed(event)
        return False

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
        """The Order API accepted ``job_id``: make ``received`` visible at once, here and on the
        other replicas (a job the board already knows keeps its status and is not shared)."""
        new = self.board.job(job_id) is None
        event = self.board.accept(job_id, self._clock(), **extra)
        self._subs.fan_out(event)
        if new:
            self._share("accepted", event)
        return event

    def _share(self, kind: replicas.Kind, event: dict[str, Any]) -> None:
        """Queue ``event`` for the other replicas (nothing without an instance name)."""
        if self.settings is None or self.settings.instance is None:
            return
        if self._shared.offer(self.settings.instance, kind, event):
            self._share_wake.set()

    def _on_peer(self, raw: Any) -> None:
        """A message on the replicas' topic: take another replica's status (module docstring)."""
        assert self.settings is not None
        shared = replicas.decode(raw)
        if isinstance(shared, wire.Rejected):
            self._reject("malformed", "replica", None, shared.reason)
            return
        if shared.origin == self.settings.instance:  # the broker's echo of our own
            return
        if shared.kind == "status":
            if self.publish(shared.event, source="workflow", relay=False):
                self.peer_taken += 1
            return
        job_id = shared.event["job_id"]
        if self.board.job(job_id) is not None:  # already past "received", or accepted here
            self.dropped += 1
            return
        # the origin's time, but never later than ours: a replica whose clock runs fast must
        # not make "received" look newer than the statuses that follow it (see the board)
        at = min(float(shared.event["at"]), self._clock())
        self._subs.fan_out(self.board.accept(job_id, at, **shared.accepted_extras()))
        self.peer_taken += 1

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
        if topic == topics.CLOUD_STATUS and self.settings and self.settings.instance:
            self._on_peer(raw)
            return
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
        """A workshop's status event: resolve the job's shop (maybe from Temporal), put it in
        sequence, then publish what is ready (module docstring)."""
        source = f"{EDGE_SOURCE}{shop_id}"
        problem = event_problem(payload)
        if problem is None and not re.fullmatch(wire.JOB_ID_PATTERN, payload["job_id"]):
            problem = "job_id: not a job id"
        if problem is not None:
            self._reject("malformed", source, payload.get("job_id"), problem)
            return
        job_id = payload["job_id"]
        owner = await self.jobs.shop_of(job_id)
        if owner != shop_id:  # not acknowledged: the workshop tries again (the job may be new)
            reason = "unknown_job" if owner is None else "wrong_shop"
            self._reject(reason, source, job_id, f"the job's workshop is {owner}")
            return
        offered = self.sequencer.offer(source, payload, self._clock())
        if offered.rejected is not None:
            self._reject(offered.rejected, source, job_id, f"seq {payload['seq']}")
        if offered.duplicate:
            self.duplicates += 1
            self.dropped += 1
        for event_id in offered.ack_now:
            self._queue_ack(shop_id, event_id)
        for event in offered.ready:
            # the topic's shop, now checked against the job's, replaces whatever the payload
            # claims; acked_seq is the link's business, not the event's
            event = {k: v for k, v in event.items() if k != delivery.ACKED_SEQ}
            event["shop_id"] = shop_id
            if not self.publish(event, source=source) or self.sink is None:
                # taken by the board alone, or refused for good: either way the cloud is done
                # with it, and a workshop must not resend it forever
                self._confirm(dict(event, source=source))

    def _confirm(self, event: dict[str, Any]) -> None:
        """The cloud has ``event``: acknowledge it to its workshop (workshop events only)."""
        source = str(event.get("source", ""))
        if not source.startswith(EDGE_SOURCE):
            return
        self.sequencer.confirm(source, event["job_id"], int(event["seq"]))
        self._queue_ack(source[len(EDGE_SOURCE) :], str(event["event_id"]))

    def _queue_ack(self, shop_id: str, event_id: str) -> None:
        if self.settings is None:  # no broker, nobody to tell
            return
        self._acks.setdefault(shop_id, []).append(event_id)
        self._ack_wake.set()

    # -- tasks -------------------------------------------------------------------------------------

    async def _consume(self) -> None:
        assert self.settings is not None
        s = self.settings
        backoff = Backoff(0.2, s.reconnect_max)
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
                    for pattern in topics.bridge_subscriptions(s.share_group):
                        await client.subscribe(pattern, qos=1)
                    if s.instance is not None:  # never shared: every replica needs every one
                        await client.subscribe(topics.CLOUD_STATUS, qos=1)
                    self._connected.set()
                    backoff.reset()
                    self._ack_wake.set()  # acks that piled up while the broker was away
                    self._share_wake.set()  # and statuses for the other replicas
                    async with asyncio.TaskGroup() as tg:
                        tg.create_task(self._receive(client))
                        tg.create_task(self._send_acks(client))
                        tg.create_task(self._ask_replays(client))
                        if s.instance is not None:
                            tg.create_task(self._send_shared(client))
            except* aiomqtt.MqttError as group:
                log.warning("bridge lost the broker: %s", group.exceptions[0])
            except* Exception:
                log.exception("bridge session failed")
            finally:
                self._connected.clear()
            await asyncio.sleep(backoff.next())

    async def _receive(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            await self.handle_message(str(message.topic), message.payload)
        raise aiomqtt.MqttError("message stream ended")

    async def _send_acks(self, client: aiomqtt.Client) -> None:
        """Publish the acks that are due, per workshop; what fails goes out after a reconnect."""
        while True:
            await self._ack_wake.wait()
            self._ack_wake.clear()
            while self._acks:
                shop_id, ids = self._acks.popitem()
                try:
                    for payload in delivery.ack_payloads(ids):
                        await client.publish(
                            topics.prefix(shop_id) + topics.ACKS, topics.encode(payload), qos=1
                        )
                except BaseException:
                    self._acks[shop_id] = ids + self._acks.get(shop_id, [])
                    raise
                self.acks_sent += len(ids)

    async def _send_shared(self, client: aiomqtt.Client) -> None:
        """Publish the queued statuses for the other replicas, oldest first; one that fails
        stays queued for the next session."""
        while True:
            await self._share_wake.wait()
            self._share_wake.clear()
            while (payload := self._shared.peek()) is not None:
                await client.publish(topics.CLOUD_STATUS, payload, qos=1)
                self._shared.done(payload)
                self.shared_sent += 1

    async def _ask_replays(self, client: aiomqtt.Client) -> None:
        """Ask workshops to replay the gaps that stay open (see the sequencer)."""
        interval = max(0.05, min(1.0, self.sequencer.gap_wait / 2))
        while True:
            await asyncio.sleep(interval)
            for source, request in self.sequencer.due_replays(self._clock()):
                shop_id = source[len(EDGE_SOURCE) :]
                log.info(
                    "events %s..%s of job %s missing from %s: asking for a replay",
                    request.from_seq,
                    request.to_seq,
                    request.job_id,
                    shop_id,
                    extra={"shop_id": shop_id, "job_id": request.job_id},
                )
                await client.publish(
                    topics.prefix(shop_id) + topics.REPLAY,
                    topics.encode(delivery.replay_payload(request)),
                    qos=1,
                )
                self.replays_requested += 1

    async def _relay_loop(self) -> None:
        assert self.sink is not None
        backoff = Backoff(0.2, 30.0)
        batched = getattr(self.sink, "send_events", None)
        while True:
            batch = [await self._relay.get()]
            if batched is not None:  # one request for what has piled up (10 at most)
                if self._relay.empty() and self.relay_linger > 0:
                    # events trickle in one by one: a moment's wait lets the request carry
                    # several (SQS counts requests; the workshop's ack waits that much longer)
                    await asyncio.sleep(self.relay_linger)
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
                    # not acknowledged: the workshops keep these events and resend them, which
                    # the sequencer drops as copies not yet confirmed — the bug shows as a
                    # growing outbox (and its alert), not as a silent loss
                    log.exception("relay of %s events dropped", len(batch))
                    break
                self.relayed += len(batch) - len(left)
                unsent = {id(e) for e in left}
                for event in batch:
                    if id(event) not in unsent:
                        self._confirm(event)
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
