"""A grbl 1.1 laser simulator on a pseudo-terminal, at the byte level.

``async with GrblSimulator(baud=115200, time_scale=0.01) as sim:`` opens a pty and serves grbl
on it; open ``sim.device_path`` with any serial library. What it models:

* the wire: bytes travel at ``baud`` 8N1 (10 bits a byte) in each direction, and each response
  leaves after ``response_latency_s`` (a USB-serial adapter's turn-around);
* grbl's 128-byte RX ring (127 usable): bytes beyond it are dropped and counted in
  ``stats.rx_overflows`` — a correct character-counting host never causes one;
* real-time bytes (``?`` ``!`` ``~`` 0x18 0x85…) taken out of the stream on arrival;
* the main loop: one line at a time, waiting while the 15-block planner is full, answering
  ``ok`` / ``error:N`` (:mod:`crown_edge.sim.grbl_core`);
* motion: each block takes the time of :mod:`crown_edge.sim.motion` for the blocks the planner
  holds at that moment; ``time_scale`` multiplies every duration (0 = instant machines);
* axes: X, Y, Z as grbl 1.1 (an ``A`` word is ``error:20``), or ``axes="XYZA"`` for a
  grblHAL-style rotary A in degrees;
* status reports with the live position and speed inside each block's trapezoid
  (:class:`~crown_edge.sim.motion.Trapezoid`) and the laser power it fires at;
* a soft reset as grbl 1.1h does it: ``ALARM:3`` at once if motion was cut, then
  ``reset_silence_s`` of silence while the controller re-initialises (real-time bytes ignored,
  received bytes flushed), then the trailing ``ok`` of a line the main loop was blocked on
  (never executed) and the banner;
* a feed hold that brakes (``Hold:1``, current speed / acceleration) before it is complete
  (``Hold:0``);
* faults:

  - :meth:`unplug` / :meth:`replug`: the cable is pulled; the machine loses power;
  - :meth:`stall` / :meth:`unstall`: a hung controller, no responses, no status, no motion;
  - :meth:`stall_motion` / :meth:`unstall`: the step timer stops; state stays Run, the position
    freezes, status is still answered and lines are read until the planner is full; a soft
    reset clears it;
  - :meth:`alarm_after_line`, :meth:`trigger_alarm`: an alarm during a program or now;
  - :meth:`inject_garbage`, :meth:`drop_oks`: line noise, lost ``ok`` responses;
  - the door (:meth:`set_door`).

``device_path`` is a stable symlink (like ``/dev/serial/by-id/…``) that follows the pty across
replugs. ``programs`` records every program received and executed, keyed by the ``(job ID)``
comment the toolpath writes first, so tests can prove what was engraved and how many times.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import shutil
import tempfile
import tty
from collections import deque
from dataclasses import dataclass
from types import TracebackType

from crown_edge.sim.grbl_core import Entry, GrblCore, ProgramRecord
from crown_edge.sim.motion import Trapezoid, block_profile

log = logging.getLogger(__name__)

DEFAULT_RESPONSE_LATENCY_S = 0.001
"""A USB-serial adapter's turn-around before a response reaches the host (one USB frame)."""

DEFAULT_RESET_SILENCE_S = 0.5
"""How long grbl 1.1h stays silent after ``ALARM:3`` before the trailing ``ok`` and the banner."""

_REALTIME = frozenset(b"?!~\x18") | frozenset(range(0x80, 0x100))


@dataclass(slots=True)
class _Running:
    """The block the steppers execute: where it started, its profile, and its pauses."""

    entry: Entry
    profile: Trapezoid
    origin: list[float]
    start: float
    paused: float = 0.0
    """Loop seconds spent paused so far."""
    paused_since: float | None = None

    def elapsed(self, now: float, time_scale: float) -> float:
        """Model seconds into the block at loop time ``now``."""
        if time_scale == 0:
            return self.profile.duration
        stopped = self.paused + (now - self.paused_since if self.paused_since is not None else 0)
        return max(0.0, (now - self.start - stopped) / time_scale)

    def position(self, t: float) -> list[float]:
        """The machine position ``t`` model seconds into the block."""
        done = self.profile.distance_at(t)
        unit = self.entry.block.unit if self.entry.block is not None else ()
        return [p + u * done for p, u in zip(self.origin, unit, strict=True)]


@dataclass(slots=True)
class SimStats:
    """Counters a test or benchmark can check."""

    rx_bytes: int = 0
    tx_bytes: int = 0
    rx_overflows: int = 0
    rx_peak: int = 0
    lines: int = 0
    tx_dropped: int = 0
    resets: int = 0


class GrblSimulator:
    """A grbl 1.1 controller on a pty; an async context manager. See the module docstring."""

    def __init__(
        self,
        *,
        baud: int = 115200,
        time_scale: float = 1.0,
        settings: dict[int, float] | None = None,
        rx_buffer: int = 128,
        planner_blocks: int = 15,
        response_latency_s: float = DEFAULT_RESPONSE_LATENCY_S,
        homing_time_s: float = 2.0,
        axes: str = "XYZ",
        reset_silence_s: float = DEFAULT_RESET_SILENCE_S,
        mist: bool = False,
    ) -> None:
        if time_scale < 0 or baud <= 0 or reset_silence_s < 0:
            raise ValueError("time_scale and reset_silence_s must be >= 0 and baud > 0")
        self.baud = baud
        self.time_scale = time_scale
        self.response_latency_s = response_latency_s
        self.homing_time_s = homing_time_s
        self.reset_silence_s = reset_silence_s
        self.core = GrblCore(
            settings, planner_blocks=planner_blocks, rx_buffer=rx_buffer, axes=axes, mist=mist
        )
        self.stats = SimStats()
        self._byte_time = 10.0 / baud
        self._dir: str | None = None
        self._master: int | None = None
        self._slave: int | None = None
        self._pty_path = ""
        self._wire: deque[tuple[float, bytes]] = deque()
        self._rx = bytearray()
        self._tx: deque[tuple[float, bytes]] = deque()
        self._rx_free_at = 0.0
        self._tx_free_at = 0.0
        self._wake_wire = asyncio.Event()
        self._wake_main = asyncio.Event()
        self._wake_tx = asyncio.Event()
        self._interrupt = asyncio.Event()  # hold, reset, door, stall...: a running block reacts
        self._work = asyncio.Event()  # the motion loop has something new to look at
        self._space = asyncio.Event()  # the planner freed a block
        self._tasks: list[asyncio.Task[None]] = []
        self._epoch = 0
        self._stalled = False
        self._motion_stalled = False
        self._moving: Entry | None = None
        self._running: _Running | None = None
        self._braking: tuple[float, float, float] | None = None  # (loop time, mm/s, mm/s²)
        self._hold_timer: asyncio.TimerHandle | None = None
        self._reset_timer: asyncio.TimerHandle | None = None
        self._resetting = False  # between ALARM:3 and the banner: grbl re-initialises
        self._resets = 0
        self._blocked_line = False  # the main loop waits for planner space
        self._drop_oks = 0
        self._alarm_after: tuple[int, int] | None = None

    # --- lifecycle -------------------------------------------------------------------------------

    async def __aenter__(self) -> GrblSimulator:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def start(self) -> None:
        """Open the pty and start serving."""
        self._dir = tempfile.mkdtemp(prefix="grbl-sim-")
        self._plug()
        for coro in (self._wire_loop(), self._main_loop(), self._motion_loop(), self._tx_loop()):
            self._tasks.append(asyncio.create_task(coro))

    async def close(self) -> None:
        """Stop serving, close the pty and remove the symlink (even if cancelled meanwhile)."""
        self._cancel_timers()
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        try:
            await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            self._unplug_fds()
            if self._dir is not None:
                shutil.rmtree(self._dir, ignore_errors=True)
                self._dir = None

    @property
    def device_path(self) -> str:
        """Stable path of the serial device (a symlink to the current pty)."""
        if self._dir is None:
            raise RuntimeError("simulator not started")
        return os.path.join(self._dir, "ttyGRBL0")

    @property
    def pty_path(self) -> str:
        """The current ``/dev/pts/N`` behind :attr:`device_path`."""
        return self._pty_path

    @property
    def programs(self) -> list[ProgramRecord]:
        """Every program received, in order (see :class:`ProgramRecord`)."""
        return self.core.programs

    def runs_of(self, job_id: str) -> list[ProgramRecord]:
        """The programs received for ``job_id`` (more than one means it was sent again)."""
        return [p for p in self.core.programs if p.job_id == job_id]

    @property
    def state(self) -> str:
        """grbl's state word: Idle, Run, Hold, Jog, Alarm, Door, Home…"""
        return self.core.state

    @property
    def laser_on(self) -> bool:
        """True while a cutting move runs with the laser enabled (M3/M4, S > 0).

        Also true while :meth:`stall_motion` froze a cutting move: the PWM keeps its last value.
        """
        entry = self._moving
        if entry is None or self._stopped():
            return False
        mode, power = entry.spindle
        return entry.cutting and mode in (3, 4) and power > 0

    @property
    def plugged(self) -> bool:
        """False after :meth:`unplug` until :meth:`replug`."""
        return self._master is not None

    # --- faults and controls ---------------------------------------------------------------------

    def set_door(self, open_: bool) -> None:
        """Open or close the safety door. Open: motion holds and the laser goes off (``Door:1``);
        closed: ``Door:0`` until a cycle start (``~``) resumes."""
        self.core.door_open = open_
        if open_ and self.core.state in ("Idle", "Run", "Hold", "Jog"):
            self.core.state = "Door"
        self._kick()

    def trigger_alarm(self, code: int = 1) -> None:
        """Raise ``ALARM:code`` now (a hard limit by default)."""
        self._alarm(code)

    def alarm_after_line(self, line: int, code: int = 1) -> None:
        """Raise ``ALARM:code`` once ``line`` lines of the current program have executed."""
        self._alarm_after = (line, code)

    def stall(self) -> None:
        """Freeze: no more responses, no status, no motion (a hung controller)."""
        self._stalled = True
        self._kick()

    def stall_motion(self) -> None:
        """Stop the step timer: state stays Run, the position freezes, status is still answered
        and lines are read until the planner is full. For a host's stall watchdog; a soft reset
        (grbl re-initialises the stepper) or :meth:`unstall` ends it."""
        self._motion_stalled = True
        self._kick()

    def unstall(self) -> None:
        """Undo :meth:`stall` and :meth:`stall_motion`."""
        self._stalled = False
        self._motion_stalled = False
        self._kick()
        for event in (self._wake_main, self._wake_tx, self._wake_wire):
            event.set()

    def unplug(self) -> None:
        """Pull the cable: the pty master closes, the port vanishes and the machine loses power."""
        if self._master is None:
            return
        self._reset_io()
        self.core.abort()
        self._epoch += 1
        self._cancel_timers()
        self._resetting = False
        self._motion_stalled = False
        self._unplug_fds()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.device_path)
        self._kick()

    def replug(self) -> None:
        """Plug back in: a new pty behind the same :attr:`device_path`; grbl powers up."""
        if self._master is None:
            self._plug()

    def inject_garbage(self, data: bytes) -> None:
        """Send ``data`` to the host as if line noise hit the wire."""
        self._tx.append((0.0, data))
        self._wake_tx.set()

    def drop_oks(self, count: int = 1) -> None:
        """Lose the next ``count`` ``ok`` responses on the wire."""
        self._drop_oks += count

    # --- internals: pty --------------------------------------------------------------------------

    def _plug(self) -> None:
        master, slave = os.openpty()
        tty.setraw(slave)
        os.set_blocking(master, False)
        self._master, self._slave = master, slave
        self._pty_path = os.ttyname(slave)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.device_path)
        os.symlink(self._pty_path, self.device_path)
        asyncio.get_running_loop().add_reader(master, self._on_readable)
        self._reset_io()
        self._send(self.core.power_up())

    def _unplug_fds(self) -> None:
        if self._master is not None:
            asyncio.get_running_loop().remove_reader(self._master)
            os.close(self._master)
            self._master = None
        if self._slave is not None:
            os.close(self._slave)
            self._slave = None

    def _reset_io(self) -> None:
        self._wire.clear()
        self._rx.clear()
        self._tx.clear()

    def _on_readable(self) -> None:
        if self._master is None:
            return
        try:
            data = os.read(self._master, 4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            return  # no slave open: nothing to read
        now = asyncio.get_running_loop().time()
        start = 0
        while start < len(data):
            end = data.find(b"\n", start)
            end = len(data) if end < 0 else end + 1
            piece = data[start:end]
            self._rx_free_at = (
                max(self._rx_free_at, now) + len(piece) * self._byte_time * self.time_scale
            )
            self._wire.append((self._rx_free_at, piece))
            start = end
        self._wake_wire.set()

    def _send(self, lines: list[str]) -> None:
        out = []
        for line in lines:
            if line == "ok" and self._drop_oks > 0:
                self._drop_oks -= 1
                continue
            out.append(line + "\r\n")
        if not out:
            return
        now = asyncio.get_running_loop().time()
        ready = now + self.response_latency_s * self.time_scale
        self._tx.append((ready, "".join(out).encode("ascii")))
        self._wake_tx.set()

    async def _sleep_until(self, deadline: float) -> None:
        delay = deadline - asyncio.get_running_loop().time()
        await asyncio.sleep(delay if delay > 0 else 0)

    async def _tx_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._tx or self._stalled:
                self._wake_tx.clear()
                await self._wake_tx.wait()
                continue
            ready, data = self._tx.popleft()
            start = max(loop.time(), ready, self._tx_free_at)
            self._tx_free_at = start + len(data) * self._byte_time * self.time_scale
            await self._sleep_until(self._tx_free_at)
            if self._master is None:
                continue
            try:
                written = os.write(self._master, data)
            except OSError:
                written = 0
            self.stats.tx_bytes += written
            self.stats.tx_dropped += len(data) - written  # nobody reading: bytes fall off the wire

    # --- internals: grbl -------------------------------------------------------------------------

    async def _wire_loop(self) -> None:
        while True:
            if not self._wire or self._stalled:
                self._wake_wire.clear()
                await self._wake_wire.wait()
                continue
            arrival, piece = self._wire[0]
            await self._sleep_until(arrival)
            if self._stalled or not self._wire or self._wire[0][1] is not piece:
                continue
            self._wire.popleft()
            for byte in piece:
                self.stats.rx_bytes += 1
                if byte in _REALTIME:
                    self._realtime(byte)
                elif len(self._rx) >= self.core.rx_buffer - 1:
                    self.stats.rx_overflows += 1
                else:
                    self._rx.append(b"\n"[0] if byte == 0x0D else byte)
                    self.stats.rx_peak = max(self.stats.rx_peak, len(self._rx))
            self._wake_main.set()

    def _realtime(self, byte: int) -> None:
        core = self.core
        if self._resetting:
            return  # main() clears sys_rt_exec_state before the banner: the byte is lost
        if byte == ord("?"):
            self._send([self._status()])
            return
        if byte == ord("!"):
            if core.state == "Jog":
                self._jog_cancel()
            elif core.state in ("Idle", "Run"):
                self._feed_hold()
        elif byte == ord("~"):
            self._send(core.cycle_start())
        elif byte == 0x18:
            self._soft_reset()
        elif byte == 0x85 and core.state == "Jog":
            self._jog_cancel()
        self._kick()

    def _status(self) -> str:
        core = self.core
        rx_free = core.rx_buffer - 1 - len(self._rx)
        now = asyncio.get_running_loop().time()
        running, entry, feed = self._running, None, 0.0
        position: list[float] | None = None
        if running is not None:
            t = running.elapsed(now, self.time_scale)
            position = running.position(t)
            if not self._stopped():  # a stalled step timer reports its frozen speed
                entry, feed = running.entry, running.profile.speed_at(t) * 60.0
        if self._braking is not None and core.decelerating:
            since, speed, accel = self._braking
            dt = (now - since) / self.time_scale if self.time_scale else math.inf
            feed = max(0.0, speed - accel * dt) * 60.0
        power = core.power(entry, feed)
        return core.status(feed=feed, power=power, rx_free=rx_free, position=position)

    def _feed_hold(self) -> None:
        """``!`` while Idle or Run: brake at the block's acceleration, then hold."""
        running, speed = self._running, 0.0
        loop = asyncio.get_running_loop()
        if running is not None and self.core.state == "Run" and not self._motion_stalled:
            speed = running.profile.speed_at(running.elapsed(loop.time(), self.time_scale))
        self.core.feed_hold(moving=speed > 0)
        if not self.core.decelerating or running is None:
            return
        accel = running.profile.acceleration
        self._braking = (loop.time(), speed, accel)
        self._hold_timer = loop.call_later(speed / accel * self.time_scale, self._hold_done)

    def _hold_done(self) -> None:
        self._hold_timer = None
        self._braking = None
        if self.core.decelerating:
            self.core.hold_complete()

    def _jog_cancel(self) -> None:
        self.core.abort()
        self._epoch += 1
        self.core.state = "Idle"

    def _soft_reset(self) -> None:
        """0x18: ``ALARM:3`` now if motion was cut; the rest after the re-initialisation."""
        self.stats.resets += 1
        self._resets += 1
        self._epoch += 1
        self._cancel_timers()
        self._braking = None
        self._motion_stalled = False  # st_reset(): the step timer starts afresh
        plan = self.core.soft_reset(line_in_progress=self._blocked_line)
        self._send(plan.alarm)
        silence = self.reset_silence_s * self.time_scale if plan.alarm else 0.0
        if silence > 0:
            self._resetting = True
            loop = asyncio.get_running_loop()
            self._reset_timer = loop.call_later(silence, self._reset_done, plan.after)
        else:
            self._reset_done(plan.after)

    def _reset_done(self, lines: list[str]) -> None:
        self._reset_timer = None
        self._resetting = False
        self._rx.clear()  # serial_reset_read_buffer()
        self._send(lines)
        self._wake_main.set()

    def _cancel_timers(self) -> None:
        for timer in (self._hold_timer, self._reset_timer):
            if timer is not None:
                timer.cancel()
        self._hold_timer = self._reset_timer = None

    def _kick(self) -> None:
        """A state change: wake every waiter so it re-checks."""
        for event in (self._interrupt, self._work, self._space):
            event.set()

    def _alarm(self, code: int) -> None:
        self._epoch += 1
        self._send(self.core.raise_alarm(code))
        self._kick()

    def _stopped(self) -> bool:
        """The machine does not move by itself (hold, door, alarm, hung, unplugged)."""
        return self._stalled or self._master is None or self.core.state in ("Hold", "Door", "Alarm")

    def _paused(self) -> bool:
        """The block clock stands still: stopped, or the step timer stalled."""
        return self._motion_stalled or self._stopped()

    async def _main_loop(self) -> None:
        while True:
            newline = self._rx.find(b"\n")
            busy = (
                self._stalled or self._resetting or self.core.state == "Home" or self.core.critical
            )
            if newline < 0 or busy:
                self._wake_main.clear()
                await self._wake_main.wait()
                continue
            raw = bytes(self._rx[:newline])
            del self._rx[: newline + 1]
            self.stats.lines += 1
            text = raw.decode("ascii", "replace")
            resets = self._resets
            self._blocked_line = True
            while (
                self.core.planner_full
                and self.core.blocks_on_planner(text)
                and resets == self._resets
            ):
                self._space.clear()
                await self._space.wait()
            self._blocked_line = False
            if resets != self._resets:
                continue  # aborted by a reset, which answered its ok: never executed
            out = self.core.execute(text)
            if self.core.state == "Home":
                self._tasks.append(asyncio.create_task(self._homing(self._epoch)))
            self._send(out)
            self._work.set()

    async def _homing(self, epoch: int) -> None:
        await asyncio.sleep(self.homing_time_s * self.time_scale)
        if epoch == self._epoch and self.core.state == "Home":
            self.core.position = [0.0] * len(self.core.position)
            self.core.state = "Idle"
            self._send(["ok"])
            self._wake_main.set()

    async def _motion_loop(self) -> None:
        loop = asyncio.get_running_loop()
        entry_speed = 0.0
        clock = 0.0  # when the previous block ended on the ideal timeline
        while True:
            core = self.core
            if not core.queue or self._paused():
                entry_speed = 0.0
                self._work.clear()
                await self._work.wait()
                continue
            if self._alarm_after is not None and core.record is not None:
                line, code = self._alarm_after
                if len(core.record.executed) >= line:
                    self._alarm_after = None
                    self._alarm(code)
                    continue
            entry = core.queue[0]
            if entry.block is None:
                core.queue.popleft()
                core.finish(entry)
                core.update_idle()
                self._space.set()
                await asyncio.sleep(0)
                continue
            profile = block_profile(core.window(), min(entry_speed, entry.block.max_entry_speed))
            seconds = profile.duration if entry.block.length > 0 else entry.block.dwell
            exit_speed = profile.exit
            self._moving = entry
            # Blocks follow each other on an absolute timeline, so timer lateness (~1 ms on
            # epoll) does not accumulate over thousands of short blocks.
            start = clock if entry_speed > 0 else loop.time()
            clock = start + seconds * self.time_scale
            self._running = _Running(entry, profile, list(core.position), start)
            ended = await self._run_until(clock)
            self._moving = None
            self._running = None
            if ended is None:
                entry_speed = 0.0
                continue
            clock = ended  # pushed back by the time spent paused
            core.queue.popleft()
            core.finish(entry)
            core.update_idle()
            entry_speed = exit_speed
            self._space.set()
            await asyncio.sleep(0)

    async def _run_until(self, deadline: float) -> float | None:
        """Let motion run until ``deadline`` (pushed back while paused); when it ended, None if
        aborted."""
        loop = asyncio.get_running_loop()
        epoch = self._epoch
        while True:
            if self._epoch != epoch:
                return None
            if self._paused():
                paused_at = loop.time()
                running = self._running
                if running is not None:
                    running.paused_since = paused_at
                self._interrupt.clear()
                await self._interrupt.wait()
                deadline += loop.time() - paused_at
                if running is not None:
                    running.paused += loop.time() - paused_at
                    running.paused_since = None
                continue
            if loop.time() >= deadline:
                return deadline
            self._interrupt.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout_at(deadline):
                    await self._interrupt.wait()
