"""One program run: feed lines by character counting, read answers, decide how the run ends.

:class:`ProgramRun` is the loop behind ``GrblDriver.run_program``. The bookkeeping is the pure
:class:`~crown_edge.drivers.grbl.streamer.Streamer`; this module adds the waiting and the rules:

* ``error:N``         -> stop feeding, feed hold, soft reset (flush), ``failed`` at that line;
* ``ALARM:N``         -> ``interrupted`` (reason ``alarm``), machine locked until unlocked;
* a reset banner      -> ``interrupted`` (``reset``, or ``emergency_stop`` when we sent it);
* link lost / silent  -> ``interrupted`` (``link_lost`` / ``silent``);
* fresh status reports keep saying Idle while a line is unanswered -> ``interrupted``
  (``lost_ack``): an ``ok`` was lost on the wire and the count can no longer be trusted;
* every line answered and a fresh report says Idle -> ``completed``.
"""

from __future__ import annotations

import contextlib
import logging
import time
from typing import Any

from crown_edge.drivers.base import ProgressCallback, RunOutcome, RunProgress, RunResult
from crown_edge.drivers.grbl import protocol as p
from crown_edge.drivers.grbl.connection import Connection
from crown_edge.drivers.grbl.streamer import Streamer
from crown_edge.errors import LinkLost, ProtocolError

log = logging.getLogger(__name__)


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
        lost_ack_timeout: float = 2.0,
        hold_timeout: float = 1.0,
    ) -> None:
        self.conn = conn
        self.job_id = job_id
        self.streamer = streamer
        self.on_progress = on_progress
        self._machine_id = machine_id
        self.lost_ack_timeout = lost_ack_timeout
        self.hold_timeout = hold_timeout
        self.stop_reason: str | None = None
        """Set by the driver before it resets the controller on purpose (``emergency_stop``)."""
        self.alarm: p.Alarm | None = None
        self.last_percent = -1

    async def execute(self) -> RunResult:
        """Stream the program to its end; never raises for controller or link trouble."""
        conn, run, streamer = self.conn, self, self.streamer
        started = time.monotonic()
        resets = conn.resets
        conn.answers.clear()
        conn.alarm = None
        last_answer = time.monotonic()
        idle_since: float | None = None
        idle_seq = 0
        acked_seq: int | None = None

        def result(outcome: RunOutcome, **extra: Any) -> RunResult:
            return RunResult(
                run.job_id,
                outcome,
                streamer.acked_lines,
                streamer.total,
                streamer.last_acked_line,
                streamer.start_line,
                elapsed_s=time.monotonic() - started,
                bytes_sent=streamer.bytes_sent,
                **extra,
            )

        self._progress(force=True)
        while True:
            while conn.answers:
                answer = conn.answers.popleft()
                last_answer = time.monotonic()
                if isinstance(answer, p.Alarm):
                    self.alarm = answer
                    return result(
                        RunOutcome.INTERRUPTED,
                        reason="alarm",
                        alarm_code=answer.code,
                        alarm_text=f"{answer.name}: {answer.text}",
                    )
                try:
                    number = streamer.on_ok() if isinstance(answer, p.Ok) else streamer.answer()
                except ProtocolError as exc:
                    log.warning("machine %s: %s", self._machine_id, exc)
                    continue
                if isinstance(answer, p.Error):
                    await halt(conn, self.hold_timeout)
                    return result(
                        RunOutcome.FAILED,
                        error_line=number,
                        error_code=answer.code,
                        error_text=f"{answer.name}: {answer.text}",
                    )
                self._progress()
            if conn.resets != resets:
                return result(RunOutcome.INTERRUPTED, reason=run.stop_reason or "reset")
            if conn.lost.is_set():
                return result(RunOutcome.INTERRUPTED, reason=conn.lost_reason or "link_lost")
            status = conn.status
            if streamer.all_acked:
                if acked_seq is None:
                    acked_seq = conn.status_seq
                elif conn.status_seq > acked_seq and status and status.state in ("Idle", "Check"):
                    self._progress(force=True)
                    return result(RunOutcome.COMPLETED)
            else:
                try:
                    while (data := streamer.next_to_send()) is not None:
                        conn.write(data)
                except LinkLost:
                    continue
                # A lost ``ok``: fresh reports keep saying Idle while a line is still unanswered.
                now = time.monotonic()
                if status is not None and status.state == "Idle" and streamer.in_flight:
                    if idle_since is None:
                        idle_since, idle_seq = now, conn.status_seq
                    quiet = min(now - idle_since, now - last_answer)
                    if quiet > self.lost_ack_timeout and conn.status_seq >= idle_seq + 3:
                        # The count is off by the lost answers: a reset puts both sides at zero.
                        await halt(conn, self.hold_timeout)
                        return result(RunOutcome.INTERRUPTED, reason="lost_ack")
                else:
                    idle_since = None
            await conn.wait(0.1)

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


async def halt(conn: Connection, hold_timeout: float) -> None:
    """Feed hold, let the motion stop, then soft-reset so nothing buffered runs later."""
    with contextlib.suppress(LinkLost):
        conn.realtime(p.RealTime.FEED_HOLD)
        deadline = time.monotonic() + hold_timeout
        seq = conn.status_seq
        while time.monotonic() < deadline and not conn.lost.is_set():
            status = conn.status
            fresh = conn.status_seq > seq and status is not None
            if fresh and status and (status.state in ("Idle", "Door") or status.substate == 0):
                break
            await conn.wait(0.05)
        resets = conn.resets
        conn.realtime(p.RealTime.SOFT_RESET)
        deadline = time.monotonic() + hold_timeout
        while conn.resets == resets and time.monotonic() < deadline:
            await conn.wait(0.05)
