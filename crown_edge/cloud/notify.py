"""Customer notifications: the workflow's status events, told to the customer by email.

Where the events come from: every status change of a job is published by the workflow's
``publish_status`` activity through the cloud activities' sink, which the cloud side wires to
:meth:`Notifier.record` beside the bridge (:meth:`CloudServices.cloud_sink
<crown_edge.cloud.service.CloudServices.cloud_sink>`). The workflow itself does not change:
notifications follow the events it already publishes (design ready, blocked, revision,
engraving, complete, escalated).

Delivery you can trust:

- **Once per event.** ``record`` only writes the notice to the durable store
  (:mod:`crown_edge.cloud.notify_store`), keyed by the event's id, and returns: the activity
  that publishes the status is never held up by a mail server. Because the write happens inside
  the activity, an activity retried or a worker restarted before the write re-records the same
  event, which the store ignores; a notice once ``sent`` is never sent again, also after a
  restart of the cloud process. The Message-ID is derived from the event id too, so the one
  remaining duplicate (a server took the message but its answer was lost) is recognisable.
- **Retried with back-off.** A refusal for now (SMTP ``4xx``, a connection refused, SES
  throttling) is tried again after a jittered, doubling delay
  (:func:`~crown_edge.sync.backoff.capped_delay` of the attempts kept in the store, so a sender
  that takes over goes on with the same schedule), up to ``max_attempts`` in all; a final
  refusal (``5xx``) is not retried.
- **Never lost silently.** A notice given up is a warning in the log (job, event, kind, the last
  error), a ``failed`` row in the store and ``crown_notifications_failed_total``; sent ones count
  in ``crown_notifications_sent_total`` (both on the cloud's ``/metrics``).

One sender among replicas: several cloud processes on one host (``crown-edge cloud --instance``)
each run a notifier on the same store file. Every one of them records and remembers, so a notice
is on disk whichever process ran the activity, and survives that process. Only the holder of the
store's :class:`~crown_edge.cloud.lease.FileLease` sends; the others try for it every
``poll_interval`` s, so when the sender dies (the kernel drops its lock, however it died) the
next one takes over within that time and sends what is due, whoever recorded it. Because the
others' ``record`` cannot wake it, the sender also looks at the store every ``poll_interval`` s.
A sender killed between a server taking a message and the store saying ``sent`` leaves the one
duplicate that no lease can prevent; its Message-ID is the same. ``crown_notifier_sender`` is 1
in the process that sends, 0 in the others; a takeover is logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from prometheus_client import CollectorRegistry, Counter, Gauge

from crown_edge.cloud.lease import FileLease, holder
from crown_edge.cloud.mail import MailError, MailSettings, MailTransport
from crown_edge.cloud.notify_store import NoticeStore, Pending
from crown_edge.cloud.notify_words import (
    OPTIONAL_KINDS,
    Alternative,
    Contact,
    compose,
    notice_of,
)
from crown_edge.sync.backoff import capped_delay, jittered

log = logging.getLogger(__name__)

#: ``await view(job_id)`` → the job's current view (for the alternatives offered), or None.
ViewSource = Callable[[str], Awaitable[Mapping[str, Any] | None]]
#: Longest wait for the job's view while composing a message.
VIEW_TIMEOUT = 5.0
#: On a clean stop, how long notices already due may still go out.
DRAIN_TIMEOUT = 5.0
#: How often a replica that does not send asks for the lease, and how often the sender looks
#: for notices the other replicas recorded (seconds): the longest a takeover, or a notice
#: recorded elsewhere, waits.
POLL_INTERVAL = 1.0


class Notifier:
    """Turns status events into emails (module docstring). Use with ``async with``."""

    def __init__(
        self,
        settings: MailSettings,
        transport: MailTransport,
        *,
        designs_dir: Path | None = None,
        view: ViewSource | None = None,
        registry: CollectorRegistry | None = None,
        clock: Callable[[], float] = time.time,
        on_failed: Callable[[dict[str, Any]], Awaitable[object]] | None = None,
        owner: str = "cloud",
        poll_interval: float = POLL_INTERVAL,
    ) -> None:
        """``on_failed`` takes a ``notification_failed`` event when a notice is given up (the
        cloud sends it to the job-events queue, so whoever follows the jobs sees it).

        ``owner`` names this process in the lease file and the log (the cloud's instance
        name); ``poll_interval`` is the replicas' poll (:data:`POLL_INTERVAL`)."""
        if not owner.strip() or not owner.isprintable():
            raise ValueError(f"notifier owner must be a printable, non-blank name: {owner!r}")
        if not (math.isfinite(poll_interval) and poll_interval > 0):
            raise ValueError(f"notifier poll_interval must be > 0 s: {poll_interval!r}")
        self.owner = owner
        self.poll_interval = poll_interval
        self.settings = settings
        self.on_failed = on_failed
        self.transport = transport
        self.designs_dir = designs_dir
        self.view = view
        self._clock = clock
        self.store: NoticeStore | None = None
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._lease: FileLease | None = None
        self._pending = 0
        registry = registry if registry is not None else CollectorRegistry()
        self.sent = Counter(
            "crown_notifications_sent",
            "Customer notifications taken by the mail service",
            ["kind"],
            registry=registry,
        )
        self.failed = Counter(
            "crown_notifications_failed",
            "Customer notifications given up (after the last attempt, or refused for good)",
            ["kind"],
            registry=registry,
        )
        self.retries = Counter(
            "crown_notification_retries",
            "Notification attempts refused for now and tried again later",
            ["kind"],
            registry=registry,
        )
        pending = Gauge(
            "crown_notifications_pending", "Notifications waiting to be sent", registry=registry
        )
        pending.set_function(lambda: self._pending)
        sender = Gauge(
            "crown_notifier_sender",
            "1 while this cloud process is the one sending customer mail, else 0",
            registry=registry,
        )
        sender.set_function(lambda: int(self.sender))

    @property
    def sender(self) -> bool:
        """Whether this process holds the sending lease (and so is the one that sends)."""
        return self._lease is not None and self._lease.held

    async def __aenter__(self) -> Self:
        self.store = await asyncio.to_thread(NoticeStore, self.settings.store)
        self._lease = FileLease(self.settings.store, self.owner)
        self._task = asyncio.create_task(self._work(), name="notifier")
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        if et is None:  # a clean stop: what is due now goes out first (bounded)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(DRAIN_TIMEOUT):
                    while await asyncio.to_thread(self._due_now):  # noqa: ASYNC110
                        await asyncio.sleep(0.05)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._lease is not None:  # only now: no send of ours is under way any more
            self._lease.release()
            self._lease = None
        if self.store is not None:
            await asyncio.to_thread(self.store.close)
            self.store = None

    def _due_now(self) -> bool:
        if self.store is None or self._task is None or self._task.done() or not self.sender:
            return False
        next_at = self.store.next_due()
        return next_at is not None and next_at <= self._clock()

    # -- intake ------------------------------------------------------------------------------

    async def remember(self, contact: Contact) -> None:
        """Keep an order's contact (the Order API calls this before it queues the order)."""
        assert self.store is not None, "the notifier is not running"
        await asyncio.to_thread(self.store.remember, contact, self._clock())

    async def record(self, kind: str, payload: Mapping[str, Any]) -> None:
        """The cloud activities' sink: a status event the customer should hear about becomes
        a pending notice; the alternatives offered for an item out of stock are kept for its
        message. Never raises: a notification must not fail the job's activity."""
        if kind == "alternatives_offered" and self.store is not None:
            await self._offered(payload)
            return
        if kind != "status" or self.store is None:
            return
        notice = notice_of(payload)
        if notice is None:
            return
        store = self.store
        try:
            contact = await asyncio.to_thread(store.contact, notice.job_id)
            if contact is None:
                return  # ordered without an email: nobody to tell
            if notice.kind in OPTIONAL_KINDS and not contact.notify_engraving:
                return
            # out of stock: the offer of alternatives follows the status; wait for it
            wait = (
                self.settings.offer_wait
                if notice.kind == "blocked" and notice.reason == "no_inventory"
                else 0.0
            )
            if await asyncio.to_thread(store.enqueue, notice, self._clock(), offer_wait=wait):
                self._wake.set()
        except Exception:
            log.exception(
                "notification of event %s (job %s) could not be recorded",
                notice.event_id,
                notice.job_id,
                extra={"job_id": notice.job_id, "event_id": notice.event_id},
            )
            self.failed.labels(notice.kind).inc()

    async def _offered(self, payload: Mapping[str, Any]) -> None:
        job_id, offered = payload.get("job_id"), payload.get("alternatives")
        if not isinstance(job_id, str) or not isinstance(offered, list):
            return
        items = [
            Alternative(str(a.get("name") or a["item_id"]), str(a.get("material") or ""))
            for a in offered
            if isinstance(a, Mapping) and a.get("item_id")
        ]
        assert self.store is not None
        try:
            await asyncio.to_thread(self.store.offer, job_id, items, self._clock())
        except Exception:
            log.exception("job %s: the alternatives offered could not be kept", job_id)
            return
        self._wake.set()

    # -- delivery ----------------------------------------------------------------------------

    async def _work(self) -> None:
        await self._take_lease()
        await self._send()

    async def _take_lease(self) -> None:
        """Return once this process holds the sending lease, trying every ``poll_interval``."""
        assert self.store is not None and self._lease is not None
        store, lease = self.store, self._lease
        seen: str | None = None  # the holder (or error) last logged, to log each change once
        was: str | None = None  # the last holder seen, for the takeover's log line
        while True:
            # Not in a thread: a non-blocking flock on a local file returns at once, and a
            # thread still running when the task is cancelled could take the lease after
            # __aexit__ released it, and hold it until this process ends.
            try:
                if lease.try_acquire():
                    break
                now_held = was = holder(self.settings.store) or "another process"
                if now_held != seen:
                    log.info(
                        "notifier %s: customer mail is sent by %s; standing by",
                        self.owner,
                        now_held,
                    )
            except OSError as exc:  # the lock file cannot be made (permissions, a directory)
                now_held = f"error {exc}"
                if now_held != seen:
                    log.error(
                        "notifier %s: cannot take the sending lease %s: %s; trying again",
                        self.owner,
                        lease.path,
                        exc,
                    )
            seen = now_held
            with contextlib.suppress(Exception):  # only the gauge: the sender's loop logs
                self._pending = await asyncio.to_thread(store.pending)
            await asyncio.sleep(self.poll_interval)
        if was is None:
            log.info("notifier %s sends customer mail", self.owner)
        else:
            log.info(
                "notifier %s took over sending customer mail (was: %s)",
                self.owner,
                was,
                extra={"owner": self.owner},
            )

    async def _send(self) -> None:
        """Send what is due, then sleep until the next is due, this process records one, or
        ``poll_interval`` has passed (another process may have recorded one)."""
        assert self.store is not None
        store = self.store
        while True:
            self._wake.clear()
            try:
                due = await asyncio.to_thread(store.due, self._clock())
                for pending in due:
                    await self._attempt(pending)
                self._pending = await asyncio.to_thread(store.pending)
                if due:
                    continue
                next_at = await asyncio.to_thread(store.next_due)
            except Exception:  # the store itself failed (disk full?): log, wait, go on
                log.exception("notifier: the notice store failed")
                next_at = self._clock() + self.settings.retry_initial
            wait = self.poll_interval
            if next_at is not None:
                wait = min(wait, max(0.0, next_at - self._clock()))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._wake.wait()

    async def _attempt(self, pending: Pending) -> None:
        assert self.store is not None
        notice, contact = pending.notice, pending.contact
        attempts = pending.attempts + 1
        extra = {"job_id": notice.job_id, "event_id": notice.event_id, "kind": notice.kind}
        try:
            message = compose(
                notice,
                contact,
                shop_name=self.settings.shop_name,
                sender=self.settings.sender,
                reply_to=self.settings.reply_to,
                now=self._clock(),
                alternatives=await self._alternatives(notice.job_id, notice.kind),
                design_svg=await self._design(notice.design_url, notice.kind),
            )
            async with asyncio.timeout(self.settings.timeout + 5.0):
                await self.transport.send(message)
        except (MailError, TimeoutError) as exc:
            transient = exc.transient if isinstance(exc, MailError) else True
            error = str(exc) or "timed out"
            if transient and attempts < self.settings.max_attempts:
                delay = self._retry_delay(attempts)
                log.info(
                    "notification %s for job %s refused for now (%s); attempt %s in %.1f s",
                    notice.kind,
                    notice.job_id,
                    error,
                    attempts + 1,
                    delay,
                    extra=extra,
                )
                self.retries.labels(notice.kind).inc()
                await asyncio.to_thread(
                    self.store.retry, notice.event_id, attempts, error, self._clock() + delay
                )
                return
            await self._give_up(pending, attempts, error)
            return
        except Exception as exc:  # a bug (composing, a transport): not worth retrying
            log.exception("notification %s for job %s failed", notice.kind, notice.job_id)
            await self._give_up(pending, attempts, f"internal error: {exc!r}")
            return
        await asyncio.to_thread(self.store.sent, notice.event_id, attempts, self._clock())
        self.sent.labels(notice.kind).inc()
        log.info(
            "notification %s for job %s sent (attempt %s)",
            notice.kind,
            notice.job_id,
            attempts,
            extra=extra,
        )

    def _retry_delay(self, attempts: int) -> float:
        """The wait after the ``attempts``-th refusal: doubling from ``retry_initial`` up to
        ``retry_max``, drawn from its upper half so notices refused together spread out. From
        the count in the store, not a per-process back-off: a sender that takes over goes on
        where the last one stopped."""
        delay = capped_delay(self.settings.retry_initial, self.settings.retry_max, 2.0, attempts)
        return jittered(delay)

    async def _give_up(self, pending: Pending, attempts: int, error: str) -> None:
        assert self.store is not None
        notice = pending.notice
        await asyncio.to_thread(self.store.failed, notice.event_id, attempts, error, self._clock())
        self.failed.labels(notice.kind).inc()
        log.warning(
            "notification %s for job %s (event %s) NOT SENT after %s attempts: %s",
            notice.kind,
            notice.job_id,
            notice.event_id,
            attempts,
            error,
            extra={"job_id": notice.job_id, "event_id": notice.event_id, "kind": notice.kind},
        )
        if self.on_failed is None:
            return
        event = {
            "event_id": f"{notice.event_id}:notification_failed",
            "job_id": notice.job_id,
            "kind": "notification_failed",
            "notification": notice.kind,
            "attempts": attempts,
            "error": error[:300],
            "at": self._clock(),
        }
        try:
            await self.on_failed(event)
        except Exception as exc:  # the row, the log line and the metric are kept regardless
            log.warning("job %s: notification_failed event not sent: %r", notice.job_id, exc)

    async def _alternatives(self, job_id: str, kind: str) -> list[Alternative] | None:
        """The items offered instead: as offered, else from the job's view; None if unknown
        (the link shows them anyway)."""
        if kind != "blocked":
            return None
        assert self.store is not None
        offered = await asyncio.to_thread(self.store.offered, job_id)
        if offered is not None:
            return offered[0]
        if self.view is None:
            return None
        try:
            async with asyncio.timeout(VIEW_TIMEOUT):
                view = await self.view(job_id)
        except Exception as exc:
            log.info("job %s: no view for the alternatives: %r", job_id, exc)
            return None
        listed = view.get("alternatives") if view is not None else None
        if not isinstance(listed, list):
            return None
        return [
            Alternative(str(a.get("name") or a["item_id"]), str(a.get("material") or ""))
            for a in listed
            if isinstance(a, Mapping) and a.get("item_id")
        ]

    async def _design(self, design_url: str | None, kind: str) -> bytes | None:
        """The preview SVG behind ``design_url`` (``/designs/{name}.svg``), if it is at hand."""
        if kind != "design_ready" or design_url is None or self.designs_dir is None:
            return None
        name = design_url.rpartition("/")[2]
        root = self.designs_dir.resolve()
        path = (root / name).resolve()
        if not name.endswith(".svg") or not path.is_relative_to(root) or not path.is_file():
            return None
        try:
            return await asyncio.to_thread(path.read_bytes)
        except OSError:
            return None
