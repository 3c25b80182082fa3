"""The rules of one program run as a pure state machine: answers, reports and time in, actions out.

:class:`RunMachine` decides everything about a run; the asyncio shell
(:class:`~crown_edge.drivers.grbl.run.ProgramRun`) only feeds it what the connection saw and
writes what it returns. No port, no clock (every input carries ``now``), no logging.

Phases::

    STREAMING --error:N / stop(reason) / stall / lost ok--> HOLDING   ('!' sent)
    HOLDING   --hold complete / hold timeout / ALARM------> RESETTING (0x18 sent)
    RESETTING --banner / reset timeout--------------------> DONE
    STREAMING --ALARM:n / banner / link lost / completed--> DONE
    any       --link lost---------------------------------> DONE

**Nothing is fed after a stop.** Only STREAMING writes program lines. Once a stop is requested
(an emergency stop, a cancel, an ``error:N``, the stall or lost-ok watchdog) the run feeds
nothing more, even though grbl keeps answering: real grbl 1.1h answers the line it was busy with
by a trailing ``ok`` *after* a soft reset, before its banner, and a host that spends that credit
sends a line to a freshly reset controller, which executes it. After the reset every answer up
to the banner is ignored; the run ends with the stop's own outcome and reason.

**The resume mark.** With a ``reserve_window``, no program line leaves before a mark covering it
is durable: the machine asks (:class:`Reserve`) for the next window while half of the current
one is still ahead, so streaming never waits on a healthy disk; if the mark cannot be saved
the run stops (``resume_mark_not_saved``) rather than stream lines a crash could not account for.

Acknowledged lines: ``ok`` answers count while streaming and while a requested stop holds (those
lines were planned before the hold). After an ``error:N`` the answers for later lines are
accounted but not counted, so ``last_acked_line`` stays the line before the refused one.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from crown_edge.drivers.base import RunOutcome
from crown_edge.drivers.grbl import protocol as p
from crown_edge.drivers.grbl.streamer import Streamer
from crown_edge.errors import ProtocolError


class Phase(StrEnum):
    """Where a run is (see the module docstring)."""

    STREAMING = "streaming"
    HOLDING = "holding"
    RESETTING = "resetting"
    DONE = "done"


@dataclass(frozen=True, slots=True)
class Write:
    """Write one program line (its bytes are counted against the RX buffer)."""

    data: bytes


@dataclass(frozen=True, slots=True)
class Reserve:
    """Make the resume mark durable up to ``line`` (the shell answers :meth:`RunMachine.reserved`).

    Until it is answered no line above the previous mark is written, so after a crash every line
    above the durable mark is certainly not engraved.
    """

    line: int


@dataclass(frozen=True, slots=True)
class Realtime:
    """Write one real-time byte (``!`` feed hold, 0x18 soft reset, ``?`` status report)."""

    command: p.RealTime


Action = Write | Realtime | Reserve
Answer = p.Ok | p.Error | p.Alarm | p.Welcome
"""What the connection queues in wire order for the run: answers, alarms and reset banners."""


@dataclass(frozen=True, slots=True)
class RunEnd:
    """How the run ended; the shell adds the streamer's counts and the elapsed time."""

    outcome: RunOutcome
    reason: str | None = None
    error_line: int | None = None
    error_code: int | None = None
    error_text: str | None = None
    alarm_code: int | None = None
    alarm_text: str | None = None
    detail: str | None = None


@dataclass(frozen=True, slots=True)
class RunTimeouts:
    """Seconds the machine waits for things (``stall`` 0 turns the stall watchdog off)."""

    lost_ack: float = 2.0
    """Idle reports while a line is unanswered for this long: an ``ok`` was lost."""
    hold: float = 1.0
    """Bound on a feed hold coming to rest before the reset goes out anyway."""
    reset: float = 3.0
    """Bound on waiting for the banner after our reset (grbl 1.1h is silent ~0.5 s)."""
    stall: float = 10.0
    """``Run`` with the position frozen this long while answering ``?``: a stalled planner."""


def hold_complete(status: p.Status) -> bool:
    """True when a report says the motion has come to rest (``Hold:0``, ``Door:0``/``Door:1``…)."""
    if status.state == "Hold":
        return status.substate in (0, None)
    if status.state == "Door":
        return status.substate in (0, 1, None)
    return status.state in ("Idle", "Alarm", "Check", "Sleep")


def decelerating(status: p.Status | None) -> bool:
    """True when a report says a hold is still braking (``Hold:1``, ``Door:2``)."""
    if status is None:
        return False
    return (status.state == "Hold" and status.substate == 1) or (
        status.state == "Door" and status.substate == 2
    )


class RunMachine:
    """One program run's decisions (see the module docstring).

    Every input returns the actions to perform now, in order. :attr:`end` is set once the run is
    over; from then on every input returns nothing. :attr:`notes` collects answers that did not
    fit (for the shell to log); it never affects the outcome.
    """

    def __init__(
        self,
        streamer: Streamer,
        timeouts: RunTimeouts,
        now: float,
        *,
        reserve_window: int | None = None,
    ) -> None:
        if reserve_window is not None and reserve_window < 2:
            raise ValueError("reserve_window must be at least 2 lines")
        self.streamer = streamer
        self.reserve_window = reserve_window
        self._reserving: int | None = None
        self._reset_pending = False
        if reserve_window is not None:
            streamer.send_limit = streamer.start_line
        self.timeouts = timeouts
        self.phase = Phase.STREAMING
        self.end: RunEnd | None = None
        self.notes: list[str] = []
        self._reports = 0
        self._acked_at: int | None = None
        self._last_answer = now
        self._idle_since: float | None = None
        self._idle_reports = 0
        self._stall_pos: tuple[float, ...] | None = None
        self._stall_since = now
        self._stall_reports = 0
        self._status: p.Status | None = None
        self._counting = True
        # the stop in progress: its outcome and what the result will say
        self._stop_outcome = RunOutcome.INTERRUPTED
        self._stop_reason: str | None = None
        self._stop_detail: str | None = None
        self._error: tuple[int, p.Error] | None = None
        self._alarm: p.Alarm | None = None
        self._phase_since = now

    # --- inputs ----------------------------------------------------------------------------------

    @property
    def done(self) -> bool:
        """True once the run has ended."""
        return self.end is not None

    @property
    def alarm(self) -> p.Alarm | None:
        """The alarm the controller raised during the run, if any (the machine is locked)."""
        return self._alarm

    @property
    def stop_reason(self) -> str | None:
        """The reason of the stop in progress (or that ended the run), if any."""
        return self._stop_reason

    def start(self, now: float) -> list[Action]:
        """The first lines to send."""
        return self._pump(now)

    def feed(self, reading: Answer | p.Status, now: float) -> list[Action]:
        """One thing the controller said, in wire order: an answer or a fresh status report."""
        if isinstance(reading, p.Status):
            return self.on_status(reading, now)
        return self.on_answer(reading, now)

    def on_answer(self, answer: Answer, now: float) -> list[Action]:
        """An ``ok`` / ``error:N`` / ``ALARM:N`` / banner, in wire order."""
        if self.end is not None:
            return []
        self._last_answer = now
        if isinstance(answer, p.Welcome):
            return self._on_banner()
        if isinstance(answer, p.Alarm):
            return self._on_alarm(answer, now)
        if self.phase is Phase.RESETTING:
            return []  # the trailing ok of the aborted line, or anything before the banner
        try:
            if isinstance(answer, p.Ok) and self._counting:
                number = self.streamer.on_ok()
            else:
                number = self.streamer.answer()
        except ProtocolError as exc:
            self.notes.append(str(exc))
            return []
        if isinstance(answer, p.Error) and self.phase is Phase.STREAMING:
            self._error = (number, answer)
            self._counting = False
            return self._hold(now, RunOutcome.FAILED, None, None)
        if self.phase is Phase.STREAMING and self.streamer.all_acked and self._acked_at is None:
            self._acked_at = self._reports
            # Completion needs a report read after this ok; ask for one now instead of waiting
            # up to a poll interval (200 ms) for the poller's next ``?``: a machine already at
            # rest (a short tail, a zero-time simulator) ends its run at once. One extra ``?``
            # per run, so the 5 Hz polling rate is not exceeded for long.
            return [*self._pump(now), Realtime(p.RealTime.STATUS)]
        return self._pump(now)

    def on_status(self, status: p.Status, now: float) -> list[Action]:
        """A fresh ``?`` report (the shell passes each new report once)."""
        if self.end is not None:
            return []
        self._reports += 1
        self._status = status
        if self.phase is Phase.HOLDING:
            return self._reset(now) if hold_complete(status) else []
        if self.phase is not Phase.STREAMING:
            return []
        if (
            self._acked_at is not None
            and self._reports > self._acked_at
            and status.state in ("Idle", "Check")
        ):
            self.end = RunEnd(RunOutcome.COMPLETED)
            self.phase = Phase.DONE
            return []
        if status.state == "Idle" and self.streamer.in_flight:
            if self._idle_since is None:
                self._idle_since, self._idle_reports = now, self._reports
        else:
            self._idle_since = None
        actions = self._check_lost_ack(now)
        return actions or self._check_stall(status, now)

    def on_reset_pending(self, now: float) -> list[Action]:
        """A soft reset went out on this connection without :meth:`stop` (a technician's raw
        0x18): feed nothing more; the ``ALARM:3`` or the banner that follows ends the run."""
        if self.phase is Phase.STREAMING:
            self._reset_pending = True
        return []

    def reserved(self, line: int, now: float) -> list[Action]:
        """The resume mark up to ``line`` is durable: lines up to it may go out."""
        self._reserving = None
        if self.end is not None:
            return []
        limit = self.streamer.send_limit
        self.streamer.send_limit = line if limit is None else max(limit, line)
        return self._pump(now)

    def reserve_failed(self, why: str, now: float) -> list[Action]:
        """The mark could not be saved: stop rather than send lines a crash cannot account for."""
        self._reserving = None
        return self.stop("resume_mark_not_saved", now, detail=f"resume mark not saved: {why}")

    def on_link_lost(self, reason: str, now: float) -> list[Action]:
        """The port died or the controller went silent."""
        if self.end is not None:
            return []
        if self.phase is Phase.STREAMING:
            self._finish(RunEnd(RunOutcome.INTERRUPTED, reason=reason))
        else:
            when = "before the reset went out" if self.phase is Phase.HOLDING else "after the reset"
            self._stop_detail = self._join(self._stop_detail, f"link {reason} {when}")
            self._finish_stop()
        return []

    def stop(self, reason: str, now: float, detail: str | None = None) -> list[Action]:
        """Stop on purpose (emergency stop, cancel): feed hold, then a soft reset."""
        if self.end is not None or self.phase is not Phase.STREAMING:
            return []
        return self._hold(now, RunOutcome.INTERRUPTED, reason, detail)

    def tick(self, now: float) -> list[Action]:
        """Time passed: the timeouts of the current phase."""
        if self.end is not None:
            return []
        if self.phase is Phase.STREAMING:
            return self._check_lost_ack(now)
        if self.phase is Phase.HOLDING and now - self._phase_since >= self.timeouts.hold:
            if self._status is None or decelerating(self._status):
                state = "not confirmed at rest" if self._status is None else "still decelerating"
                self._stop_detail = self._join(
                    self._stop_detail,
                    f"the feed hold was {state} after {self.timeouts.hold:g} s; reset anyway "
                    "(grbl reports ALARM:3 if it was moving, and position may be lost)",
                )
            return self._reset(now)
        if self.phase is Phase.RESETTING and now - self._phase_since >= self.timeouts.reset:
            self._stop_detail = self._join(self._stop_detail, "no banner after the reset")
            self._finish_stop()
        return []

    # --- rules -----------------------------------------------------------------------------------

    def _pump(self, now: float) -> list[Action]:
        if self.phase is not Phase.STREAMING or self._reset_pending:
            return []
        actions: list[Action] = []
        while (data := self.streamer.next_to_send()) is not None:
            actions.append(Write(data))
        actions.extend(self._reserve_ahead())
        return actions

    def _reserve_ahead(self) -> list[Action]:
        window, streamer = self.reserve_window, self.streamer
        if window is None or self._reserving is not None:
            return []
        upcoming = streamer.next_line
        limit = streamer.send_limit if streamer.send_limit is not None else streamer.start_line
        if upcoming is None or upcoming + window // 2 <= limit:
            return []
        target = min(streamer.total, max(limit, upcoming - 1) + window)
        if target <= limit:
            return []  # the mark already covers the program's end
        self._reserving = target
        return [Reserve(target)]

    def _on_banner(self) -> list[Action]:
        if self.phase is Phase.STREAMING:
            self._finish(RunEnd(RunOutcome.INTERRUPTED, reason="reset"))
        else:
            self._finish_stop()
        return []

    def _on_alarm(self, alarm: p.Alarm, now: float) -> list[Action]:
        if self.phase is Phase.STREAMING:
            self._alarm = alarm
            self._finish(
                RunEnd(
                    RunOutcome.INTERRUPTED,
                    reason="alarm",
                    alarm_code=alarm.code,
                    alarm_text=f"{alarm.name}: {alarm.text}",
                )
            )
            return []
        self._alarm = self._alarm or alarm
        if self.phase is Phase.HOLDING:
            return self._reset(now)  # the controller stopped itself; flush what it buffered
        return []

    def _hold(
        self, now: float, outcome: RunOutcome, reason: str | None, detail: str | None
    ) -> list[Action]:
        self._stop_outcome, self._stop_reason, self._stop_detail = outcome, reason, detail
        self.phase, self._phase_since = Phase.HOLDING, now
        self._status = None  # only reports after the hold say whether it is complete
        return [Realtime(p.RealTime.FEED_HOLD)]

    def _reset(self, now: float) -> list[Action]:
        self.phase, self._phase_since = Phase.RESETTING, now
        return [Realtime(p.RealTime.SOFT_RESET)]

    def _check_lost_ack(self, now: float) -> list[Action]:
        if self._idle_since is None or not self.streamer.in_flight:
            return []
        quiet = min(now - self._idle_since, now - self._last_answer)
        if quiet > self.timeouts.lost_ack and self._reports >= self._idle_reports + 3:
            # the count is off by the lost answers: a reset puts both sides at zero
            detail = f"Idle for {quiet:.1f} s with {self.streamer.in_flight} line(s) unanswered"
            return self._hold(now, RunOutcome.INTERRUPTED, "lost_ack", detail)
        return []

    def _check_stall(self, status: p.Status, now: float) -> list[Action]:
        position = status.mpos if status.mpos is not None else status.wpos
        if self.timeouts.stall <= 0 or status.state != "Run" or position is None:
            self._stall_pos = None
            return []
        if position != self._stall_pos:
            self._stall_pos, self._stall_since, self._stall_reports = position, now, self._reports
            return []
        frozen = now - self._stall_since
        if frozen >= self.timeouts.stall and self._reports >= self._stall_reports + 2:
            where = ",".join(f"{v:.3f}" for v in position)
            detail = f"running with the position frozen at {where} for {frozen:.1f} s"
            return self._hold(now, RunOutcome.INTERRUPTED, "stalled", detail)
        return []

    def _finish_stop(self) -> None:
        # An alarm during our own stop (ALARM:3 when the reset cut a deceleration) is part of
        # the stop, not its cause: it goes into the detail, the reason stays the stop's own.
        detail = self._stop_detail
        if self._alarm is not None:
            detail = self._join(
                detail, f"controller reported ALARM:{self._alarm.code} ({self._alarm.name})"
            )
        error = self._error
        self._finish(
            RunEnd(
                self._stop_outcome,
                reason=self._stop_reason,
                error_line=error[0] if error else None,
                error_code=error[1].code if error else None,
                error_text=f"{error[1].name}: {error[1].text}" if error else None,
                detail=detail,
            )
        )

    def _finish(self, end: RunEnd) -> None:
        self.end = end
        self.phase = Phase.DONE

    @staticmethod
    def _join(first: str | None, second: str) -> str:
        return f"{first}; {second}" if first else second
