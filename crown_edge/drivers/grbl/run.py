"""One program run: the asyncio shell around :class:`~crown_edge.drivers.grbl.runstate.RunMachine`.

:class:`ProgramRun` is the loop behind ``GrblDriver.run_program``. The decisions — which line
goes out, how an answer is read, when a stop holds and resets, when a run is complete, stalled
or lost an ``ok`` — are the pure :class:`RunMachine`'s; this module feeds it what the
connection saw (answers and banners in wire order, fresh status reports, a lost link, the time)
and writes the bytes it asks for:

* ``error:N``         -> stop feeding, feed hold, soft reset (flush), ``failed`` at that line;
* ``ALARM:N``         -> ``interrupted`` (reason ``alarm``), machine locked until unlocked;
* a reset banner      -> ``interrupted`` (``reset``);
* :meth:`ProgramRun.stop` (emergency stop, interlock, cancel) -> hold, reset, ``interrupted``
  with the stop's reason; nothing is fed after the stop and nothing up to the banner counts;
* link lost / silent  -> ``interrupted`` (``link_lost`` / ``silent``);
* fresh reports keep saying Idle while a line is unanswered -> ``interrupted`` (``lost_ack``);
* fresh reports say Run with the position frozen -> ``interrupted`` (``stalled``);
* every line answered and a fresh report says Idle -> ``completed``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from crown_edge.drivers.base import (
    ProgressCallback,
    ReserveCallback,
    RunOutcome,
    RunProgress,
    RunResult,
)
from crown_edge.drivers.grbl import protocol as p
from crown_edge.drivers.grbl.connection import Connection
from crown_edge.drivers.grbl.runstate import (
    Action,
    Realtime,
    Reserve,
    RunMachine,
    RunTimeouts,
    Write,
    hold_complete,
)
from crown_edge.drivers.grbl.streamer import Streamer
from crown_edge.errors import LinkLost

log = logging.getLogger(__name__)

"""``await on_reserve(line)``: make the resume mark ``line`` durable (raise if it cannot)."""
DEFAULT_RESERVE_WINDOW = 64
"""Lines a durable resume mark runs ahead of what was sent: after a crash at most this many
unsent lines sit below the mark (they would be skipped by a default resume, never doubled)."""
RESERVE_SETTLE_S = 5.0


class ProgramRun:
    """A program being streamed on one connection (see the module docstring)."""

    def __init__(
        self,
        conn: Connection,
        job_id: str,
        streamer: Streamer,
        on_progress: ProgressCallback | None,
        *,
        machine_id: str,
        timeouts: RunTimeouts | None = None,
        on_reserve: ReserveCallback | None = None,
        reserve_window: int = DEFAULT_RESERVE_WINDOW,
    ) -> None:
        self.conn = conn
        self.job_id = job_id
        self.streamer = streamer
        self.on_progress = on_progress
        self._machine_id = machine_id
        self._on_reserve = on_reserve
        self._reserve_task: asyncio.Task[None] | None = None
        self._reserve_line = 0
        self.machine = RunMachine(
            streamer,
            timeouts or RunTimeouts(),
            time.monotonic(),
            reserve_window=reserve_window if on_reserve is not None else None,
        )
        self._finished = asyncio.Event()
        self.last_percent = -1

    @property
    def alarm(self) -> p.Alarm | None:
        """The alarm the controller raised during the run, if any."""
        return self.machine.alarm

    @property
    def done(self) -> bool:
        """True once the run has ended."""
        return self.machine.done

    def stop(self, reason: str) -> None:
        """Stop now on purpose: the feed hold goes out before this returns; the run loop then
        resets the controller and ends ``interrupted`` with ``reason``. Never raises."""
        self._apply(self.machine.stop(reason, time.monotonic()))
        self.conn.wake.set()

    async def wait_finished(self, timeout: float) -> bool:
        """Wait until the run has ended (True) or ``timeout`` passed (False)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._finished.wait()
        return self._finished.is_set()

    async def execute(self) -> RunResult:
        """Stream the program to its end; never raises for controller or link trouble."""
        conn, machine, streamer = self.conn, self.machine, self.streamer
        started = time.monotonic()
        conn.answers.clear()
        conn.alarm = None
        seen_reports = conn.status_seq
        try:
            self._apply(machine.start(started))
            self._progress(force=True)
            while machine.end is None:
                now = time.monotonic()
                self._guard_reset(now)
                # Reports first, then answers: a report read before an answer can then never
                # count as "after the last ok" (completion waits for a later one).
                if conn.status_seq != seen_reports and conn.status is not None:
                    seen_reports = conn.status_seq
                    self._apply(machine.on_status(conn.status, now))
                while conn.answers and machine.end is None:
                    self._guard_reset(now)  # a progress callback may have reset the port
                    acked = streamer.acked_lines
                    self._apply(machine.on_answer(conn.answers.popleft(), now))
                    if streamer.acked_lines != acked:
                        self._progress()
                if conn.lost.is_set():
                    machine.on_link_lost(conn.lost_reason or "link_lost", now)
                self._reserve_answered(now)
                self._apply(machine.tick(now))
                for note in machine.notes:
                    log.warning("machine %s: %s", self._machine_id, note)
                machine.notes.clear()
                if machine.end is None:
                    await conn.wait(0.1)
        finally:
            await self._settle_reserve()
            self._finished.set()
        end = machine.end
        if end.outcome is RunOutcome.COMPLETED:
            self._progress(force=True)
        if end.detail:
            log.warning("machine %s: job %s: %s", self._machine_id, self.job_id, end.detail)
        return RunResult(
            self.job_id,
            end.outcome,
            streamer.acked_lines,
            streamer.total,
            streamer.last_acked_line,
            streamer.start_line,
            error_line=end.error_line,
            error_code=end.error_code,
            error_text=end.error_text,
            alarm_code=end.alarm_code,
            alarm_text=end.alarm_text,
            reason=end.reason,
            elapsed_s=time.monotonic() - started,
            bytes_sent=streamer.bytes_sent,
            detail=end.detail,
            sent_line=streamer.last_sent_line,
        )

    def _apply(self, actions: list[Action]) -> None:
        """Write what the machine asked for; a failed write is a lost link."""
        for action in actions:
            try:
                if isinstance(action, Write):
                    self.conn.write(action.data)
                elif isinstance(action, Realtime):
                    self.conn.realtime(action.command)
                elif isinstance(action, Reserve) and self._on_reserve is not None:
                    self._reserve_line = action.line
                    self._reserve_task = asyncio.ensure_future(self._on_reserve(action.line))
                    self._reserve_task.add_done_callback(lambda _: self.conn.wake.set())
            except LinkLost:
                self.machine.on_link_lost("link_lost", time.monotonic())
                return

    def _guard_reset(self, now: float) -> None:
        """A raw 0x18 went out on this port (not through :meth:`stop`): nothing more is fed.

        Checked before every input that may feed lines (an answer, a saved mark)."""
        if self.conn.reset_pending:
            self.machine.on_reset_pending(now)

    def _reserve_answered(self, now: float) -> None:
        task = self._reserve_task
        if task is None or not task.done():
            return
        self._reserve_task = None
        if task.cancelled():
            self._apply(self.machine.reserve_failed("cancelled", now))
        elif (exc := task.exception()) is not None:
            log.error(
                "machine %s: job %s: resume mark not saved: %s", self._machine_id, self.job_id, exc
            )
            self._apply(self.machine.reserve_failed(str(exc), now))
        else:
            self._guard_reset(now)
            self._apply(self.machine.reserved(self._reserve_line, now))

    async def _settle_reserve(self) -> None:
        """Let a mark being saved finish (it only ever raises the mark), bounded."""
        task, self._reserve_task = self._reserve_task, None
        if task is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(task), RESERVE_SETTLE_S)
        except Exception:  # already reported by the failed save, or too slow
            task.cancel()

    def _progress(self, *, force: bool = False) -> None:
        run, streamer = self, self.streamer
        if run.on_progress is None:
            return
        progress = RunProgress(
            run.job_id, streamer.acked_lines, streamer.total, streamer.start_line
        )
        percent = int(progress.fraction * 100)
        if force or percent != run.last_percent:
            run.last_percent = percent
            try:
                run.on_progress(progress)
            except Exception:
                log.exception("machine %s: progress callback failed", self._machine_id)


async def halt(conn: Connection, timeouts: RunTimeouts) -> None:
    """Feed hold, let the motion stop, then soft-reset so nothing buffered runs later.

    For a controller with no program running (a run stops through :meth:`ProgramRun.stop`).
    """
    with contextlib.suppress(LinkLost):
        conn.realtime(p.RealTime.FEED_HOLD)
        deadline = time.monotonic() + timeouts.hold
        seq = conn.status_seq
        while time.monotonic() < deadline and not conn.lost.is_set():
            status = conn.status
            if conn.status_seq > seq and status is not None and hold_complete(status):
                break
            await conn.wait(0.05)
        resets = conn.resets
        conn.realtime(p.RealTime.SOFT_RESET)
        deadline = time.monotonic() + timeouts.reset
        while conn.resets == resets and time.monotonic() < deadline and not conn.lost.is_set():
            await conn.wait(0.05)
