"""One live connection to a grbl controller: reader, status poller, handshake, silence watchdog.

:class:`Connection` owns an open :class:`~crown_edge.drivers.grbl.transport.SerialLink` and
turns its bytes into protocol events that the driver consumes. It never decides anything about a
job; it only reports what the controller said and when the link died.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable

from crown_edge.drivers.grbl import codes
from crown_edge.drivers.grbl import protocol as p
from crown_edge.drivers.grbl.transport import SerialLink
from crown_edge.errors import ControllerAlarm, ControllerError, DriverError, LinkLost, ProtocolError

log = logging.getLogger(__name__)


class Connection:
    """Reader + poller over one open link. ``lost`` is set (with ``lost_reason``) when it dies."""

    def __init__(
        self,
        link: SerialLink,
        *,
        machine_id: str,
        poll_interval: float = 0.2,
        silence_timeout: float = 5.0,
        on_change: Callable[[], None] = lambda: None,
    ) -> None:
        self.link = link
        self.machine_id = machine_id
        self.poll_interval = max(poll_interval, 0.2)  # never more than 5 Hz
        self.silence_timeout = silence_timeout
        self._on_change = on_change
        self.protocol = p.GrblProtocol()
        self.answers: deque[p.Ok | p.Error | p.Alarm | p.Welcome] = deque()
        """Answers in wire order; an ALARM and a reset banner are queued too, so each lands
        between the right answers (grbl 1.1h answers ``ALARM:3``, a trailing ``ok`` and only then
        its banner after a reset in motion; all three may arrive in one read)."""
        self.orphans = 0
        """Answers still due for lines of a run that ended early; dropped when they arrive."""
        self.feedback: deque[p.Event] = deque(maxlen=256)
        self.status: p.Status | None = None
        self.status_seq = 0
        self.wco: tuple[float, ...] | None = None
        """The work coordinate offset from the last report that carried ``WCO:``."""
        self.alarm: p.Alarm | None = None
        self.resets = 0
        self.reset_pending = False
        """A banner is due: we sent a soft reset, or grbl said ``ALARM:3`` (a reset cut motion).
        grbl 1.1h is silent ~0.5 s before its banner and flushes whatever arrives meanwhile."""
        self.version: p.Version | None = None
        self.options: p.Options | None = None
        self.settings: dict[int, str] = {}
        """``$$`` as read during the handshake."""
        self.garbage = 0
        self.last_heard = time.monotonic()
        self.heard_at = time.time()
        self.lost = asyncio.Event()
        self.lost_reason: str | None = None
        self.wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def rx_buffer(self) -> int:
        """The controller's RX buffer: from ``$I``'s ``[OPT:…,rx]`` or grbl 1.1's 128."""
        if self.options is not None and self.options.rx_buffer:
            return self.options.rx_buffer
        return p.DEFAULT_RX_BUFFER

    def start(self) -> None:
        """Start the reader and the silence watchdog (the poller starts after the handshake)."""
        self._tasks.append(asyncio.create_task(self._reader(), name=f"grbl-read-{self.machine_id}"))
        self._tasks.append(
            asyncio.create_task(self._watchdog(), name=f"grbl-dog-{self.machine_id}")
        )

    def start_polling(self) -> None:
        """Start the ``?`` poller."""
        self._tasks.append(asyncio.create_task(self._poller(), name=f"grbl-poll-{self.machine_id}"))

    async def close(self) -> None:
        """Stop the tasks and close the port."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        await self.link.close()
        self.mark_lost("closed")

    def mark_lost(self, reason: str) -> None:
        """Record that the link is unusable (first reason wins) and wake every waiter."""
        if not self.lost.is_set():
            self.lost_reason = reason
            self.lost.set()
        self._notify()

    def write(self, data: bytes) -> None:
        """Write to the port; a failed write marks the connection lost and raises LinkLost."""
        try:
            self.link.write(data)
        except LinkLost:
            self.mark_lost("link_lost")
            raise

    def realtime(self, command: p.RealTime) -> None:
        """Send a real-time byte (bypasses the character count)."""
        self.write(command.value)
        if command is p.RealTime.SOFT_RESET:
            self.reset_pending = True

    def _notify(self) -> None:
        self.wake.set()
        self._on_change()

    async def wait(self, timeout: float) -> None:
        """Wait until something happens on the link (or ``timeout``)."""
        self.wake.clear()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self.wake.wait()

    # --- tasks -----------------------------------------------------------------------------------

    async def _reader(self) -> None:
        try:
            while True:
                data = await self.link.read()
                self.last_heard = time.monotonic()
                self.heard_at = time.time()
                self.protocol.receive_data(data)
                while True:
                    try:
                        event = self.protocol.next_event()
                    except ProtocolError as exc:
                        self.garbage += 1
                        log.warning("machine %s: %s", self.machine_id, exc)
                        continue
                    if event is None:
                        break
                    self._dispatch(event)
                self._notify()
        except LinkLost as exc:
            log.warning("machine %s: %s", self.machine_id, exc)
            self.mark_lost("link_lost")

    def _dispatch(self, event: p.Event) -> None:
        if isinstance(event, p.Ok | p.Error):
            if self.orphans > 0:
                self.orphans -= 1
            else:
                self.answers.append(event)
        elif isinstance(event, p.Status):
            self.status = event
            if event.wco is not None:
                self.wco = event.wco
            self.status_seq += 1
            if event.state != "Alarm":
                self.alarm = None
        elif isinstance(event, p.Alarm):
            self.alarm = event
            self.answers.append(event)
            if event.code == codes.ABORT_DURING_CYCLE:
                self.reset_pending = True
            log.warning("machine %s: ALARM:%d %s", self.machine_id, event.code, event.name)
        elif isinstance(event, p.Welcome):
            self.resets += 1
            self.reset_pending = False
            self.answers.append(event)
            self.orphans = 0  # a reset empties grbl's buffers: no answer is due any more
            self.version = self.version or p.Version(event.version, "")
        elif isinstance(event, p.Options):
            self.options = event
            self.feedback.append(event)
        elif isinstance(event, p.Version):
            self.version = event
            self.feedback.append(event)
        else:
            self.feedback.append(event)

    async def _poller(self) -> None:
        while not self.lost.is_set():
            try:
                self.realtime(p.RealTime.STATUS)
            except LinkLost:
                return
            await asyncio.sleep(self.poll_interval)

    async def _watchdog(self) -> None:
        while not self.lost.is_set():
            await asyncio.sleep(min(0.1, self.silence_timeout / 4))
            if time.monotonic() - self.last_heard > self.silence_timeout:
                log.warning(
                    "machine %s: controller silent for %.1f s",
                    self.machine_id,
                    self.silence_timeout,
                )
                self.mark_lost("silent")

    # --- request / response ----------------------------------------------------------------------

    async def command(self, line: str, timeout: float = 5.0) -> list[p.Event]:
        """Send one line alone and wait for its answer; return the feedback that came with it.

        Raises ControllerError on ``error:N``, LinkLost if the link dies or nothing answers.
        """
        data = p.encode_line(line, rx_buffer=self.rx_buffer)
        deadline = time.monotonic() + timeout
        while self.reset_pending and time.monotonic() < deadline and not self.lost.is_set():
            await self.wait(0.05)  # a line sent before the banner would be flushed unanswered
        self.reset_pending = False
        self.feedback.clear()
        self.answers.clear()
        self.write(data)
        while not self.answers:
            if self.lost.is_set():
                raise LinkLost(f"link lost during {line!r}", machine_id=self.machine_id)
            left = deadline - time.monotonic()
            if left <= 0:
                raise LinkLost(f"no answer to {line!r}", machine_id=self.machine_id, line=line)
            await self.wait(min(left, 0.2))
        answer = self.answers.popleft()
        feedback = list(self.feedback)
        if isinstance(answer, p.Welcome):
            raise LinkLost(f"controller reset during {line!r}", machine_id=self.machine_id)
        if isinstance(answer, p.Alarm):
            raise ControllerAlarm(
                f"{line!r}: ALARM:{answer.code} {answer.name}",
                machine_id=self.machine_id,
                code=answer.code,
                text=answer.text,
            )
        if isinstance(answer, p.Error):
            raise ControllerError(
                f"{line!r} refused: error:{answer.code} {answer.name}",
                machine_id=self.machine_id,
                code=answer.code,
                text=answer.text,
                line=line,
            )
        return feedback

    async def handshake(self, banner_wait: float, timeout: float) -> None:
        """Open sequence: take the reset banner (or cause one), read ``$I`` and ``$$``, get a
        first status."""
        deadline = time.monotonic() + banner_wait
        while self.resets == 0 and time.monotonic() < deadline and not self.lost.is_set():
            await self.wait(0.05)
        if self.resets == 0:
            self.realtime(p.RealTime.SOFT_RESET)
            deadline = time.monotonic() + timeout
            while self.resets == 0:
                if time.monotonic() > deadline or self.lost.is_set():
                    raise LinkLost("no banner after reset", machine_id=self.machine_id)
                await self.wait(0.05)
        await asyncio.sleep(0.05)  # grbl prints unlock hints right after the banner
        self.answers.clear()
        try:
            await self.command("$I", timeout)
            dump = await self.command("$$", timeout)
            self.settings = {e.number: e.value for e in dump if isinstance(e, p.Setting)}
        except DriverError as exc:
            raise LinkLost(f"handshake failed: {exc}", machine_id=self.machine_id) from exc
        seq = self.status_seq
        self.start_polling()
        deadline = time.monotonic() + timeout
        while self.status_seq == seq:
            if self.lost.is_set() or time.monotonic() > deadline:
                raise LinkLost("no status report", machine_id=self.machine_id)
            await self.wait(0.05)
