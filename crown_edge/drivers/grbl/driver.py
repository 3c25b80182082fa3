"""``GrblDriver``: the asyncio face of one grbl laser (the daemon's binding wraps it).

Usage::

    async with GrblDriver.from_config("laser-1", "/dev/ttyUSB0", 115200) as laser:
        await laser.wait_ready(timeout=10)
        result = await laser.run_program("J-1", gcode_lines, on_progress=publish)
        if result.outcome == "interrupted": ...   # result.last_acked_line, result.reason

API (all coroutines bounded by timeouts; errors from :mod:`crown_edge.errors`):

``state`` -> MachineState
    MTConnect words, mapped by :mod:`~crown_edge.drivers.grbl.machine_state` (INTERRUPTED after
    a run ended ``interrupted``, until the next run, homing or unlock).
``wait_ready(timeout)``
    Until connected and Idle; raises LinkLost / ControllerAlarm / InterlockOpen on timeout.
``run_program(job_id, lines, *, start_line=0, on_progress=None, send_response=False,
on_reserve=None)``
    Streams with character counting (``$`` and EEPROM lines send-response) and returns a
    :class:`~crown_edge.drivers.base.RunResult`: ``completed`` once every line is acknowledged
    and the machine is back at rest (refused up front unless laser mode ``$32=1`` is on,
    see ``require_laser_mode``); ``failed`` on ``error:N`` (feeding stops, feed hold, then a
    soft reset flushes what grbl still buffered, so no later line of the failed program runs);
    ``interrupted`` on ALARM, reset, e-stop, a lost port, a silent controller, a lost ``ok``
    or a stalled controller (``Run`` with the position frozen while it still answers ``?``).
    Nothing is ever re-sent: continuing needs ``start_line`` (lines 1..start_line are skipped,
    the machine state is restored first, see ``streamer.resume_preamble``). A program that cannot
    be encoded raises ProtocolError before any byte is sent; a machine not ready raises.
``feed_hold()`` / ``resume()``
    Real-time ``!`` / ``~``.
``emergency_stop(reason="emergency_stop")``
    Real-time ``!`` (laser off at once in laser mode), then a soft reset flushing the planner.
    A running program feeds nothing more from the first byte of the stop; answers that arrive
    until the reset banner (grbl 1.1h sends a trailing ``ok``) are ignored, and the run ends
    ``interrupted`` with ``reason``. Never waits for a lock; used by the door and e-stop
    interlocks and by cancel.
``home()`` / ``unlock()``
    ``$H`` / ``$X``: technician actions, never automatic.
``frame(x0, y0, x1, y1, feed)``
    Traces the rectangle with the laser off.
``settings()`` / ``command(line)``
    ``$$`` as a dict; one send-response line.

The port is opened in the background and reopened with exponential backoff whenever it is lost,
closed for silence, or cannot be opened; the open sequence takes the reset banner (or causes one
with a soft reset) and reads ``$I`` for the RX buffer size.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from types import TracebackType
from typing import Any

from crown_edge.drivers.base import (
    ProgressCallback,
    ReserveCallback,
    RunOutcome,
    RunProgress,
    RunResult,
)
from crown_edge.drivers.grbl import protocol as p
from crown_edge.drivers.grbl.connection import Connection
from crown_edge.drivers.grbl.machine_state import machine_state, not_ready, work_position
from crown_edge.drivers.grbl.run import DEFAULT_RESERVE_WINDOW, ProgramRun, halt
from crown_edge.drivers.grbl.runstate import RunTimeouts, decelerating
from crown_edge.drivers.grbl.streamer import Streamer, resume_preamble
from crown_edge.drivers.grbl.transport import SerialLink
from crown_edge.errors import DriverError, LinkLost
from crown_edge.models import Availability, Execution, MachineState
from crown_edge.sync.backoff import Backoff

log = logging.getLogger(__name__)


class GrblDriver:
    """One grbl controller on a serial URL; an async context manager. See the module docstring.

    Options (keyword arguments, also accepted by :meth:`from_config`):

    ``poll_interval``       seconds between ``?`` polls (never below 0.2 s: at most 5 Hz);
    ``silence_timeout``     no byte for this long -> the link is dropped and reopened;
    ``open_timeout``        bound on opening the port and on each handshake step;
    ``banner_wait``         how long to wait for a power-up banner before causing one with a
                            soft reset (boards that reset on open, e.g. Arduino DTR, ~2.5 s);
    ``backoff``             (first, max) seconds between reopen attempts, doubling, jittered;
    ``lost_ack_timeout``    Idle with a line unanswered for this long -> ``lost_ack``;
    ``hold_timeout``        bound on waiting for a feed hold to come to rest before the reset
                            (a hold still decelerating then is reported in the result's detail);
    ``reset_timeout``       bound on waiting for the banner after the driver's own reset;
    ``stall_timeout``       ``Run`` with the position frozen this long while the controller
                            still answers ``?`` -> ``interrupted`` (``stalled``); 0 turns it off;
    ``require_laser_mode``  refuse programs unless ``$32=1``.
    """

    def __init__(
        self,
        machine_id: str,
        url: str,
        baud: int = 115200,
        *,
        poll_interval: float = 0.2,
        silence_timeout: float = 5.0,
        open_timeout: float = 3.0,
        banner_wait: float = 0.3,
        backoff: tuple[float, float] = (0.2, 10.0),
        lost_ack_timeout: float = 2.0,
        hold_timeout: float = 1.0,
        reset_timeout: float = 3.0,
        stall_timeout: float = 10.0,
        require_laser_mode: bool = True,
    ) -> None:
        self._machine_id = machine_id
        self.url = url
        self.baud = baud
        self.poll_interval = poll_interval
        self.silence_timeout = silence_timeout
        self.open_timeout = open_timeout
        self.banner_wait = banner_wait
        self.backoff = backoff
        self.lost_ack_timeout = lost_ack_timeout
        self.hold_timeout = hold_timeout
        self.reset_timeout = reset_timeout
        self.stall_timeout = stall_timeout
        self.require_laser_mode = require_laser_mode
        self._conn: Connection | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()
        self._lock = asyncio.Lock()
        self._run: ProgramRun | None = None
        self._interrupted = False
        self._alarm: p.Alarm | None = None
        self._hold_seq = 0
        """Status reports seen when we last sent ``!`` (a resume waits for a later one)."""

    @classmethod
    def from_config(
        cls, machine_id: str, url: str, baud: int = 115200, **options: Any
    ) -> GrblDriver:
        """Build from configuration values (``options`` are the keyword arguments of __init__)."""
        return cls(machine_id, url, baud, **options)

    async def __aenter__(self) -> GrblDriver:
        self._supervisor = asyncio.create_task(self._supervise(), name=f"grbl-{self._machine_id}")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
            self._supervisor = None

    # --- state -----------------------------------------------------------------------------------

    @property
    def machine_id(self) -> str:
        """Configured machine id."""
        return self._machine_id

    @property
    def connected(self) -> bool:
        """True once the handshake finished and until the link is lost."""
        return self._conn is not None and not self._conn.lost.is_set()

    @property
    def status(self) -> p.Status | None:
        """The last status report, if connected."""
        return self._conn.status if self.connected and self._conn is not None else None

    @property
    def work_position(self) -> dict[str, float] | None:
        """The head's work position by axis letter (WPos, or MPos less WCO), if known."""
        conn = self._conn
        return work_position(self.status, conn.wco) if conn is not None else None

    @property
    def rx_buffer(self) -> int:
        """The controller's RX buffer size (from ``$I``)."""
        return self._conn.rx_buffer if self._conn is not None else p.DEFAULT_RX_BUFFER

    @property
    def laser_mode(self) -> bool:
        """``$32=1``: laser off during rapids and feed holds, M4 dynamic power available."""
        if self._conn is None:
            return False
        try:
            return float(self._conn.settings.get(32, "0")) == 1.0
        except ValueError:
            return False

    @property
    def state(self) -> MachineState:
        """Live machine state in MTConnect words."""
        conn = self._conn
        run = self._run
        job = run.job_id if run else None
        progress: float | None = None
        if run is not None:
            streamer = run.streamer
            progress = RunProgress(
                run.job_id, streamer.acked_lines, streamer.total, streamer.start_line
            ).fraction
        return machine_state(
            self._machine_id,
            self.status,
            alarm=(conn.alarm if conn is not None else None) or self._alarm,
            alarm_latched=conn is not None and conn.alarm is not None,
            running=run is not None,
            interrupted=self._interrupted,
            heartbeat_at=conn.heard_at if conn is not None else None,
            job_id=job,
            progress=progress,
        )

    def _notify(self) -> None:
        self._changed.set()

    async def _wait_change(self, timeout: float) -> None:
        self._changed.clear()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._changed.wait()

    async def wait_ready(self, timeout: float | None = None) -> MachineState:
        """Wait until connected and Idle. On timeout raise what is in the way."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            state = self.state
            if state.availability is Availability.AVAILABLE and state.execution in (
                Execution.READY,
                Execution.INTERRUPTED,
            ):
                return state
            if deadline is not None and time.monotonic() >= deadline:
                self._check_ready()
                raise DriverError(
                    f"machine {self._machine_id} not ready: {state.execution}",
                    machine_id=self._machine_id,
                )
            await self._wait_change(0.1)

    def _check_ready(self) -> Connection:
        conn = self._conn
        problem = not_ready(
            self._machine_id,
            self.status,
            alarm=self._alarm,
            alarm_latched=conn is not None and conn.alarm is not None,
            url=self.url,
        )
        if problem is not None:
            raise problem
        return self._live()

    # --- connection supervision ------------------------------------------------------------------

    async def _supervise(self) -> None:
        backoff = Backoff(*self.backoff)
        while True:
            conn: Connection | None = None
            try:
                link = await SerialLink.open(self.url, self.baud, timeout=self.open_timeout)
                conn = Connection(
                    link,
                    machine_id=self._machine_id,
                    poll_interval=self.poll_interval,
                    silence_timeout=self.silence_timeout,
                    on_change=self._notify,
                )
                conn.start()
                await conn.handshake(self.banner_wait, self.open_timeout)
                log.info(
                    "machine %s: connected to %s (%s, rx %d)",
                    self._machine_id,
                    self.url,
                    conn.version.version if conn.version else "?",
                    conn.rx_buffer,
                )
                self._conn = conn
                self._hold_seq = 0
                self._alarm = conn.alarm
                backoff.reset()
                self._notify()
                await conn.lost.wait()
                log.warning("machine %s: link down (%s)", self._machine_id, conn.lost_reason)
            except LinkLost as exc:
                log.info("machine %s: %s; reopening", self._machine_id, exc)
            finally:
                if conn is not None:
                    with contextlib.suppress(Exception):
                        await asyncio.shield(conn.close())
                self._conn = None
                self._notify()
            await asyncio.sleep(backoff.next())

    # --- programs --------------------------------------------------------------------------------

    async def run_program(
        self,
        job_id: str,
        lines: Sequence[str],
        *,
        start_line: int = 0,
        on_progress: ProgressCallback | None = None,
        send_response: bool = False,
        on_reserve: ReserveCallback | None = None,
        reserve_window: int = DEFAULT_RESERVE_WINDOW,
    ) -> RunResult:
        """Run ``lines`` and report how the run ended (see the module docstring).

        ``on_reserve(line)`` makes the resume mark durable: no program line above the last
        mark it saved is written (see :mod:`crown_edge.drivers.grbl.runstate`).
        """
        if self._lock.locked():
            raise DriverError(f"machine {self._machine_id} is busy", machine_id=self._machine_id)
        async with self._lock:
            conn = self._check_ready()
            if self.require_laser_mode and not self.laser_mode:
                raise DriverError(
                    f"machine {self._machine_id}: laser mode is off ($32="
                    f"{conn.settings.get(32, '?')}); the laser would fire during rapids",
                    machine_id=self._machine_id,
                    setting=32,
                )
            streamer = Streamer(
                lines,
                rx_buffer=conn.rx_buffer,
                start_line=start_line,
                send_response=send_response,
                preamble=resume_preamble(lines, start_line),
            )
            run = ProgramRun(
                conn,
                job_id,
                streamer,
                on_progress,
                machine_id=self._machine_id,
                timeouts=self._timeouts,
                on_reserve=on_reserve,
                reserve_window=reserve_window,
            )
            self._run = run
            self._interrupted = False
            self._notify()
            resets = conn.resets
            try:
                result = await run.execute()
            finally:
                self._run = None
                self._alarm = run.alarm or self._alarm
                if conn.resets == resets:
                    arrived = sum(1 for a in conn.answers if isinstance(a, p.Ok | p.Error))
                    conn.orphans += max(0, streamer.in_flight - arrived)
                conn.answers.clear()
                self._notify()
            self._interrupted = result.outcome is RunOutcome.INTERRUPTED
            log.info(
                "machine %s: job %s %s at line %d/%d",
                self._machine_id,
                job_id,
                result.outcome,
                result.last_acked_line,
                result.total_lines,
            )
            return result

    # --- technician and interlock actions --------------------------------------------------------

    def _live(self) -> Connection:
        conn = self._conn
        if conn is None or conn.lost.is_set():
            raise LinkLost(
                f"machine {self._machine_id} is not connected", machine_id=self._machine_id
            )
        return conn

    async def feed_hold(self) -> None:
        """Real-time feed hold ``!``: motion decelerates to a stop, the laser goes off."""
        conn = self._live()
        self._hold_seq = conn.status_seq
        conn.realtime(p.RealTime.FEED_HOLD)

    async def resume(self) -> None:
        """Real-time cycle start ``~``: continue after a feed hold or a closed door.

        grbl 1.1h ignores ``~`` while a hold is still braking (``Hold:1``), which would leave the
        machine held; so a resume waits (at most 5 s, or ``hold_timeout`` if longer) for a report
        from after the hold that says it has come to rest.
        """
        conn = self._live()
        deadline = time.monotonic() + max(5.0, self.hold_timeout)
        while time.monotonic() < deadline and not conn.lost.is_set():
            fresh = conn.status_seq > self._hold_seq  # a report from after our own '!'
            if fresh and not decelerating(conn.status):
                break
            await conn.wait(0.05)
        self._live().realtime(p.RealTime.CYCLE_START)

    @property
    def _timeouts(self) -> RunTimeouts:
        return RunTimeouts(
            lost_ack=self.lost_ack_timeout,
            hold=self.hold_timeout,
            reset=self.reset_timeout,
            stall=self.stall_timeout,
        )

    async def emergency_stop(self, reason: str = "emergency_stop") -> None:
        """Stop now, laser off: ``!`` then a soft reset flushing what grbl buffered.

        A running program feeds nothing more from this moment and ends ``interrupted`` with
        ``reason``; this returns once the controller has reset (or the bounds passed). Never
        raises for a missing link (there is nothing to stop then); logs instead.
        """
        run = self._run
        if run is not None and not run.done:
            run.stop(reason)
            await run.wait_finished(self.hold_timeout + self.reset_timeout + 1.0)
            self._notify()
            return
        try:
            conn = self._live()
        except LinkLost:
            log.warning("machine %s: emergency stop with no link", self._machine_id)
            return
        await halt(conn, self._timeouts)
        self._notify()

    async def command(self, line: str, timeout: float = 5.0) -> list[p.Event]:
        """Send one line send-response; return its feedback. Not while a program runs."""
        if self._lock.locked():
            raise DriverError(f"machine {self._machine_id} is busy", machine_id=self._machine_id)
        async with self._lock:
            return await self._live().command(line, timeout)

    async def home(self, timeout: float = 120.0) -> None:
        """Run the homing cycle ``$H`` (technician action)."""
        await self.command("$H", timeout)
        self._alarm = None
        self._interrupted = False
        self._notify()

    async def unlock(self) -> None:
        """Clear an alarm lock with ``$X`` (technician action).

        After a hard or soft limit grbl listens to nothing but a reset, so one is sent first.
        """
        conn = self._live()
        alarm = conn.alarm or self._alarm
        if alarm is not None and alarm.code in (1, 2):
            resets = conn.resets
            conn.realtime(p.RealTime.SOFT_RESET)
            deadline = time.monotonic() + self.open_timeout
            while conn.resets == resets and time.monotonic() < deadline:
                await conn.wait(0.05)
            await asyncio.sleep(0.05)
        await self.command("$X")
        self._alarm = None
        self._interrupted = False
        if self._conn is not None:
            self._conn.alarm = None
        self._notify()

    async def settings(self) -> dict[int, str]:
        """The controller's ``$$`` settings."""
        events = await self.command("$$")
        return {e.number: e.value for e in events if isinstance(e, p.Setting)}

    async def frame(
        self, x0: float, y0: float, x1: float, y1: float, feed: float = 3000.0
    ) -> RunResult:
        """Trace the rectangle (x0, y0)-(x1, y1) with the laser off so the operator can check
        placement."""
        corners = [(x0, y0), (x1, y0), (x1, y1), (x0, y1), (x0, y0)]
        lines = [
            "(job frame)",
            "G21",
            "G90",
            "M5",
            *(f"G1X{x:.3f}Y{y:.3f}F{feed:g}" for x, y in corners),
        ]
        return await self.run_program("frame", lines)
