"""A grbl 1.1 laser simulator on a pseudo-terminal, at the byte level.

``async with GrblSimulator(baud=115200, time_scale=0.01) as sim:`` opens a pty and serves grbl
on it; open ``sim.device_path`` with any serial library. What it models:

* the wire, grbl's 128-byte RX ring (127 usable) and its real-time bytes
  (:mod:`crown_edge.sim.grbl_serial`); each response leaves after ``response_latency_s`` (a
  USB-serial adapter's turn-around), and ``stats.rx_overflows`` counts bytes dropped by a full
  ring — a correct character-counting host never causes one;
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
import math
from types import TracebackType

from crown_edge.sim.grbl_core import Entry, GrblCore, ProgramRecord
from crown_edge.sim.grbl_serial import SerialPort, SimStats
from crown_edge.sim.motion import RunningBlock, block_profile

DEFAULT_RESPONSE_LATENCY_S = 0.001
"""A USB-serial adapter's turn-around before a response reaches the host (one USB frame)."""

DEFAULT_RESET_SILENCE_S = 0.5
"""How long grbl 1.1h stays silent after ``ALARM:3`` before the trailing ``ok`` and the banner."""


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
        self.response_latency_s = response_latency_s
        self.homing_time_s = homing_time_s
        self.reset_silence_s = reset_silence_s
        self.core = GrblCore(
            settings, planner_blocks=planner_blocks, rx_buffer=rx_buffer, axes=axes, mist=mist
        )
        self.stats = SimStats()
        self._wake_main = asyncio.Event()
        self._port = SerialPort(
            baud=baud,
            time_scale=time_scale,
            rx_buffer=rx_buffer,
            stats=self.stats,
            on_realtime=self._realtime,
            on_received=self._wake_main.set,
        )
        self._rx = self._port.rx
        self._interrupt = asyncio.Event()  # hold, reset, door, stall...: a running block reacts
        self._work = asyncio.Event()  # the motion loop has something new to look at
        self._space = asyncio.Event()  # the planner freed a block
        self._tasks: list[asyncio.Task[None]] = []
        self._epoch = 0
        self._motion_stalled = False
        self._moving: Entry | None = None
        self._running: RunningBlock | None = None
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
        self._port.open()
        self._powered()
        port = self._port
        for coro in (
            port.receive_loop(),
            self._main_loop(),
            self._motion_loop(),
            port.transmit_loop(),
        ):
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
            self._port.close()

    @property
    def time_scale(self) -> float:
        """Every duration (wire, motion, homing, silences) is multiplied by this; 0 = instant."""
        return self._port.time_scale

    @time_scale.setter
    def time_scale(self, value: float) -> None:
        self._port.time_scale = value

    @property
    def device_path(self) -> str:
        """Stable path of the serial device (a symlink to the current pty)."""
        return self._port.device_path

    @property
    def pty_path(self) -> str:
        """The current ``/dev/pts/N`` behind :attr:`device_path`."""
        return self._port.pty_path

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
        return self._port.plugged

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
        self._port.stalled = True
        self._kick()

    def stall_motion(self) -> None:
        """Stop the step timer: state stays Run, the position freezes, status is still answered
        and lines are read until the planner is full. For a host's stall watchdog; a soft reset
        (grbl re-initialises the stepper) or :meth:`unstall` ends it."""
        self._motion_stalled = True
        self._kick()

    def unstall(self) -> None:
        """Undo :meth:`stall` and :meth:`stall_motion`."""
        self._port.stalled = False
        self._motion_stalled = False
        self._kick()
        self._wake_main.set()
        self._port.wake()

    def unplug(self) -> None:
        """Pull the cable: the pty master closes, the port vanishes and the machine loses power."""
        if not self._port.plugged:
            return
        self.core.abort()
        self._epoch += 1
        self._cancel_timers()
        self._resetting = False
        self._motion_stalled = False
        self._port.unplug()
        self._kick()

    def replug(self) -> None:
        """Plug back in: a new pty behind the same :attr:`device_path`; grbl powers up."""
        if not self._port.plugged:
            self._port.plug()
            self._powered()

    def inject_garbage(self, data: bytes) -> None:
        """Send ``data`` to the host as if line noise hit the wire."""
        self._port.write(data, 0.0)

    def drop_oks(self, count: int = 1) -> None:
        """Lose the next ``count`` ``ok`` responses on the wire."""
        self._drop_oks += count

    # --- internals: grbl -------------------------------------------------------------------------

    def _powered(self) -> None:
        """The cable is in: grbl powers up and prints its banner."""
        self._send(self.core.power_up())

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
        self._port.write("".join(out).encode("ascii"), ready)

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
                entry, feed = self._moving, running.profile.speed_at(t) * 60.0
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
        return (
            self._port.stalled
            or not self._port.plugged
            or self.core.state in ("Hold", "Door", "Alarm")
        )

    def _paused(self) -> bool:
        """The block clock stands still: stopped, or the step timer stalled."""
        return self._motion_stalled or self._stopped()

    async def _main_loop(self) -> None:
        while True:
            newline = self._rx.find(b"\n")
            busy = (
                self._port.stalled
                or self._resetting
                or self.core.state == "Home"
                or self.core.critical
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
                core.retire()
                self._space.set()
                await self._next_block()
                continue
            profile = block_profile(core.window(), min(entry_speed, entry.block.max_entry_speed))
            seconds = profile.duration if entry.block.length > 0 else entry.block.dwell
            exit_speed = profile.exit
            self._moving = entry
            # Blocks follow each other on an absolute timeline, so timer lateness (~1 ms on
            # epoll) does not accumulate over thousands of short blocks.
            start = clock if entry_speed > 0 else loop.time()
            clock = start + seconds * self.time_scale
            self._running = RunningBlock(profile, entry.block.unit, list(core.position), start)
            ended = await self._run_until(clock)
            self._moving = None
            self._running = None
            if ended is None:
                entry_speed = 0.0
                continue
            clock = ended  # pushed back by the time spent paused
            core.retire()
            entry_speed = exit_speed
            self._space.set()
            await self._next_block()

    async def _next_block(self) -> None:
        """Between two blocks: let the main loop read the line the freed block makes room for.

        A zero-time machine (``time_scale`` 0) runs what its planner holds at once instead,
        as its motion takes no time: a ``?`` that arrives after the last ``ok`` then finds it
        at rest (Idle), as a real machine would be once its last move had ended.
        """
        if self.time_scale > 0:
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
