"""The run state machine, sans-I/O: nothing is ever written after a stop, whatever grbl answers."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crown_edge.drivers.base import RunOutcome
from crown_edge.drivers.grbl import protocol as p
from crown_edge.drivers.grbl.codes import alarm_info, error_info
from crown_edge.drivers.grbl.runstate import (
    Action,
    Answer,
    Phase,
    Realtime,
    Reserve,
    RunMachine,
    RunTimeouts,
    Write,
    hold_complete,
)
from crown_edge.drivers.grbl.streamer import Streamer

OK = p.Ok()
BANNER = p.Welcome("1.1h")
TIMEOUTS = RunTimeouts(lost_ack=2.0, hold=1.0, reset=3.0, stall=10.0)


def alarm(code: int) -> p.Alarm:
    return p.Alarm(code, *alarm_info(code))


def error(code: int) -> p.Error:
    return p.Error(code, *error_info(code))


def status(
    state: str, sub: int | None = None, pos: tuple[float, ...] = (0.0, 0.0, 0.0)
) -> p.Status:
    return p.Status(state, sub, mpos=pos)


def program(n: int = 40) -> list[str]:
    return ["(job T)", "G21", "G90", "M4 S500", "F3000"] + [
        f"G1 X{i % 9 + 0.5:.3f} Y{i % 7 + 0.25:.3f}" for i in range(n)
    ]


class Harness:
    """A machine plus the record of every action it asked for, in order."""

    def __init__(
        self,
        lines: Sequence[str] | None = None,
        timeouts: RunTimeouts = TIMEOUTS,
        reserve_window: int | None = None,
    ):
        self.lines = list(lines or program())
        self.now = 0.0
        self.machine = RunMachine(
            Streamer(self.lines), timeouts, self.now, reserve_window=reserve_window
        )
        self.actions: list[Action] = list(self.machine.start(self.now))

    def feed(self, item: object) -> None:
        m = self.machine
        if isinstance(item, p.Status):
            self.actions += m.on_status(item, self.now)
        elif isinstance(item, p.Ok | p.Error | p.Alarm | p.Welcome):
            self.actions += m.on_answer(item, self.now)
        elif isinstance(item, float):  # silence: time passes
            self.now += item
            self.actions += m.tick(self.now)
        elif item == "stop":
            self.actions += m.stop("emergency_stop", self.now)
        elif item == "lost":
            self.actions += m.on_link_lost("link_lost", self.now)
        else:
            raise AssertionError(item)

    def run(self, items: Sequence[object]) -> None:
        for item in items:
            self.feed(item)

    @property
    def writes(self) -> list[bytes]:
        return [a.data for a in self.actions if isinstance(a, Write)]

    def index(self, command: p.RealTime) -> int | None:
        for i, action in enumerate(self.actions):
            if isinstance(action, Realtime) and action.command is command:
                return i
        return None

    def writes_after(self, index: int) -> list[Action]:
        return [a for a in self.actions[index + 1 :] if isinstance(a, Write)]


# --- nothing is fed after a reset: every interleaving -------------------------------------------

AFTER_RESET = [OK, alarm(3), error(1), 0.2, status("Alarm"), status("Idle"), BANNER]


def _to_reset(h: Harness, trigger: str) -> None:
    h.run([OK, OK, OK])
    h.feed("stop" if trigger == "stop" else error(20))
    assert h.machine.phase is Phase.HOLDING
    h.run([OK, status("Hold", 1)])  # still decelerating: the line in progress is answered
    h.feed(status("Hold", 0) if trigger == "stop" else 1.5)
    assert h.machine.phase is Phase.RESETTING


@pytest.mark.parametrize("trigger", ["stop", "error"])
def test_no_line_is_written_after_the_reset_in_any_interleaving(trigger: str) -> None:
    for length in range(6):
        for sequence in itertools.product(AFTER_RESET, repeat=length):
            h = Harness()
            _to_reset(h, trigger)
            reset_at = h.index(p.RealTime.SOFT_RESET)
            assert reset_at is not None
            h.run([*sequence, BANNER, OK, OK])
            assert h.writes_after(reset_at) == [], sequence
            end = h.machine.end
            assert end is not None
            if trigger == "stop":
                assert end.outcome is RunOutcome.INTERRUPTED
                assert end.reason == "emergency_stop"
                assert end.alarm_code is None  # an ALARM:3 of our own reset is not the cause
            else:
                assert end.outcome is RunOutcome.FAILED and end.error_code == 20
                assert end.error_line == 4  # OK, OK, OK answered lines 1-3


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            [
                OK,
                OK,
                OK,
                error(20),
                alarm(3),
                alarm(1),
                BANNER,
                0.05,
                0.7,
                2.5,
                "stop",
                status("Run", pos=(1.0, 1.0, 0.0)),
                status("Run", pos=(2.0, 1.0, 0.0)),
                status("Idle"),
                status("Hold", 1),
                status("Hold", 0),
                status("Alarm"),
                "lost",
            ]
        ),
        max_size=60,
    )
)
def test_nothing_is_fed_after_a_stop_an_alarm_or_an_error(items: list[object]) -> None:
    h = Harness()
    stopped_at: int | None = None
    for item in items:
        before = len(h.actions)
        stopping = h.machine.phase is not Phase.STREAMING
        h.feed(item)
        new = h.actions[before:]
        if stopping or h.machine.done:
            assert not any(isinstance(a, Write) for a in new), (item, h.machine.phase)
        if h.machine.phase is not Phase.STREAMING and stopped_at is None:
            stopped_at = len(h.actions)
    if stopped_at is not None:
        assert h.writes_after(stopped_at - 1) == []
    assert sum(len(w) for w in h.writes) == h.machine.streamer.bytes_sent
    if h.machine.done:
        before = len(h.actions)
        h.run([OK, BANNER, 5.0, "stop", status("Idle")])
        assert len(h.actions) == before  # a finished run never acts again


# --- the stop itself ----------------------------------------------------------------------------


def test_stop_holds_then_resets_when_the_hold_is_complete() -> None:
    h = Harness()
    h.run([OK, "stop"])
    assert h.actions[-1] == Realtime(p.RealTime.FEED_HOLD)
    h.run([OK, status("Hold", 1)])
    assert h.index(p.RealTime.SOFT_RESET) is None
    h.feed(status("Hold", 0))
    assert h.actions[-1] == Realtime(p.RealTime.SOFT_RESET)
    h.run([alarm(3), OK])
    assert h.machine.end is None  # waits for the banner
    h.feed(BANNER)
    end = h.machine.end
    assert end is not None and end.outcome is RunOutcome.INTERRUPTED
    assert end.reason == "emergency_stop"
    assert "ALARM:3" in (end.detail or "")
    assert h.machine.streamer.last_acked_line == 2  # the ok during the hold counts, not after


def test_hold_still_decelerating_at_the_timeout_is_reported_as_such() -> None:
    h = Harness()
    h.run([OK, "stop", status("Hold", 1), 0.6, status("Hold", 1)])
    assert h.index(p.RealTime.SOFT_RESET) is None
    h.feed(0.6)
    assert h.actions[-1] == Realtime(p.RealTime.SOFT_RESET)
    h.run([alarm(3), OK, BANNER])
    end = h.machine.end
    assert end is not None and end.outcome is RunOutcome.INTERRUPTED
    assert end.reason == "emergency_stop" and end.error_code is None
    assert "still decelerating" in (end.detail or "")


def test_error_fails_at_its_line_and_later_answers_do_not_count() -> None:
    h = Harness()
    h.run([OK, OK, error(20), OK, OK, status("Hold", 0), BANNER])
    end = h.machine.end
    assert end is not None and end.outcome is RunOutcome.FAILED
    assert (end.error_line, end.error_code) == (3, 20)
    assert "Unsupported command" in (end.error_text or "")
    assert h.machine.streamer.last_acked_line == 2


def test_reset_without_banner_ends_after_the_reset_timeout() -> None:
    h = Harness()
    h.run(["stop", status("Hold", 0), 2.0])
    assert h.machine.end is None
    h.feed(1.5)
    end = h.machine.end
    assert end is not None and end.reason == "emergency_stop"
    assert "no banner" in (end.detail or "")


def test_alarm_during_the_hold_resets_at_once() -> None:
    h = Harness()
    h.run(["stop", alarm(1)])
    assert h.actions[-1] == Realtime(p.RealTime.SOFT_RESET)
    h.feed(BANNER)
    end = h.machine.end
    assert end is not None and end.reason == "emergency_stop" and "ALARM:1" in (end.detail or "")


@pytest.mark.parametrize("phase_items", [["stop"], ["stop", status("Hold", 0)]])
def test_link_lost_during_a_stop_keeps_the_stop_reason(phase_items: list[object]) -> None:
    h = Harness()
    h.run([*phase_items, "lost"])
    end = h.machine.end
    assert end is not None and end.reason == "emergency_stop" and "link" in (end.detail or "")


def test_second_stop_is_ignored() -> None:
    h = Harness()
    h.run(["stop"])
    count = len(h.actions)
    h.feed("stop")
    assert len(h.actions) == count


# --- what grbl does on its own ------------------------------------------------------------------


def test_reset_in_motion_by_someone_else_reads_as_the_alarm_in_one_burst() -> None:
    """grbl 1.1h: ALARM:3, (silence), a trailing ok, the banner — maybe all in one read."""
    h = Harness()
    h.run([OK, OK, alarm(3), OK, BANNER])
    end = h.machine.end
    assert end is not None and end.outcome is RunOutcome.INTERRUPTED
    assert end.reason == "alarm" and end.alarm_code == 3
    assert h.machine.streamer.last_acked_line == 2


def test_banner_alone_is_a_reset() -> None:
    h = Harness()
    h.run([OK, BANNER])
    end = h.machine.end
    assert end is not None and end.reason == "reset"


def test_link_lost_while_streaming() -> None:
    h = Harness()
    h.run([OK, "lost"])
    end = h.machine.end
    assert end is not None and end.reason == "link_lost"


# --- completion, lost ok, stall -----------------------------------------------------------------


def _ack_all(h: Harness) -> None:
    for _ in range(len(h.lines)):
        h.feed(OK)


def test_completes_only_on_a_report_after_the_last_ok() -> None:
    h = Harness(program(5))
    h.feed(status("Idle"))
    _ack_all(h)
    assert h.machine.end is None
    h.feed(status("Run"))
    assert h.machine.end is None
    h.feed(status("Idle"))
    end = h.machine.end
    assert end is not None and end.outcome is RunOutcome.COMPLETED


def test_the_last_ok_asks_for_a_report_at_once_and_only_once() -> None:
    # a machine already at rest ends its run on the answer to this ``?``, not a poll later
    h = Harness(program(5))
    for _ in range(len(h.lines) - 1):
        h.feed(OK)
    assert h.index(p.RealTime.STATUS) is None  # lines still unanswered: no extra report
    h.feed(OK)
    assert h.actions[-1] == Realtime(p.RealTime.STATUS)
    h.feed(status("Idle"))
    end = h.machine.end
    assert end is not None and end.outcome is RunOutcome.COMPLETED
    asked = [a for a in h.actions if a == Realtime(p.RealTime.STATUS)]
    assert len(asked) == 1


def test_no_report_is_asked_for_after_a_refused_line() -> None:
    # an error:N stops the run: the last answer then holds and resets, it asks for no report
    h = Harness(program(2))
    for _ in range(len(h.lines) - 1):
        h.feed(OK)
    h.feed(error(20))
    assert h.index(p.RealTime.STATUS) is None
    assert h.actions[-1] == Realtime(p.RealTime.FEED_HOLD)


def test_idle_with_a_line_unanswered_is_a_lost_ok() -> None:
    h = Harness(program(3))
    for _ in range(len(h.lines) - 1):
        h.feed(OK)
    for _ in range(4):
        h.run([0.7, status("Idle")])
    assert h.machine.stop_reason == "lost_ack"
    assert h.actions[-1] == Realtime(p.RealTime.FEED_HOLD)
    h.run([status("Idle"), BANNER])
    end = h.machine.end
    assert end is not None and end.reason == "lost_ack"


def test_run_with_a_frozen_position_is_a_stall() -> None:
    h = Harness()
    h.run([OK, status("Run", pos=(1.0, 2.0, 0.0))])
    for _ in range(12):
        h.run([1.0, status("Run", pos=(1.0, 2.0, 0.0))])
    assert h.machine.stop_reason == "stalled"
    h.run([status("Hold", 0), BANNER])
    end = h.machine.end
    assert end is not None and end.outcome is RunOutcome.INTERRUPTED and end.reason == "stalled"
    assert "1.000,2.000,0.000" in (end.detail or "")


def test_a_moving_or_held_machine_is_not_stalled() -> None:
    h = Harness()
    for i in range(30):
        h.run([1.0, status("Run", pos=(float(i), 0.0, 0.0))])
    for _ in range(30):
        h.run([1.0, status("Hold", 0, pos=(5.0, 0.0, 0.0))])  # a technician's feed hold
    assert h.machine.phase is Phase.STREAMING and h.machine.stop_reason is None


def test_stall_watchdog_can_be_turned_off() -> None:
    h = Harness(timeouts=RunTimeouts(stall=0))
    for _ in range(30):
        h.run([1.0, status("Run", pos=(1.0, 1.0, 0.0))])
    assert h.machine.phase is Phase.STREAMING


def test_stray_answer_is_noted_not_fatal() -> None:
    h = Harness(program(1))
    _ack_all(h)
    h.feed(OK)
    assert h.machine.notes and h.machine.end is None


@pytest.mark.parametrize(
    ("report", "done"),
    [
        (status("Hold", 0), True),
        (status("Hold", 1), False),
        (status("Door", 0), True),
        (status("Door", 1), True),
        (status("Door", 2), False),
        (status("Idle"), True),
        (status("Alarm"), True),
        (status("Run"), False),
        (status("Jog"), False),
    ],
)
def test_hold_complete(report: p.Status, done: bool) -> None:
    assert hold_complete(report) is done


def test_hold_never_confirmed_at_rest_is_reported_as_such() -> None:
    h = Harness()
    h.run([OK, "stop", 1.2, BANNER])
    end = h.machine.end
    assert end is not None and end.reason == "emergency_stop"
    assert "not confirmed at rest" in (end.detail or "")


# --- the resume mark: nothing above a durable mark is written ------------------------------------


def reserve_actions(h: Harness) -> list[int]:
    return [a.line for a in h.actions if isinstance(a, Reserve)]


def sent_numbers(h: Harness) -> list[int]:
    """Program line numbers written so far, matched in order (lines repeat in the program)."""
    numbers: list[int] = []
    cursor = 0
    for data in h.writes:
        while (h.lines[cursor].strip() + "\n").encode() != data:
            cursor += 1
        cursor += 1
        numbers.append(cursor)
    return numbers


def test_nothing_is_sent_before_the_first_mark_is_durable() -> None:
    lines = program(100)
    h = Harness(lines, reserve_window=16)
    assert h.writes == [] and reserve_actions(h) == [16]
    h.actions += h.machine.reserved(16, h.now)
    assert max(sent_numbers(h)) <= 16


def test_marks_run_ahead_so_streaming_never_waits_on_a_healthy_disk() -> None:
    lines = program(300)
    h = Harness(lines, reserve_window=16)
    answered = 0
    for _ in range(2000):
        pending = [r for r in reserve_actions(h) if r > answered]
        if pending:
            answered = pending[0]
            h.actions += h.machine.reserved(answered, h.now)
        if h.machine.streamer.finished_sending and not h.machine.streamer.in_flight:
            break
        h.feed(OK)
        assert sent_numbers(h)[-1] <= answered  # never above the durable mark
    assert h.machine.streamer.all_acked
    assert reserve_actions(h)[-1] == len(lines)


def test_a_mark_that_cannot_be_saved_stops_the_run() -> None:
    h = Harness(program(100), reserve_window=16)
    h.actions += h.machine.reserved(16, h.now)
    h.run([OK] * 8)
    assert len(reserve_actions(h)) == 2
    h.actions += h.machine.reserve_failed("disk full", h.now)
    assert h.actions[-1] == Realtime(p.RealTime.FEED_HOLD)
    h.run([status("Hold", 0), BANNER])
    end = h.machine.end
    assert end is not None and end.reason == "resume_mark_not_saved"
    assert "disk full" in (end.detail or "")
    assert max(sent_numbers(h)) <= 16


@settings(max_examples=200, deadline=None)
@given(st.integers(2, 40), st.lists(st.sampled_from(["ok", "save", "stop"]), max_size=200))
def test_no_line_above_the_durable_mark_ever(window: int, steps: list[str]) -> None:
    h = Harness(program(120), reserve_window=window)
    durable = 0
    for step in steps:
        pending = [r for r in reserve_actions(h) if r > durable]
        if step == "save" and pending:
            durable = pending[0]
            h.actions += h.machine.reserved(durable, h.now)
        elif step == "stop":
            h.feed("stop")
        elif h.machine.streamer.in_flight:
            h.feed(OK)
        assert not sent_numbers(h) or max(sent_numbers(h)) <= durable


def test_one_mark_per_half_window() -> None:
    lines = program(300)
    h = Harness(lines, reserve_window=40)
    answered = 0
    while not h.machine.streamer.all_acked:
        pending = [r for r in reserve_actions(h) if r > answered]
        if pending:
            answered = pending[0]
            h.actions += h.machine.reserved(answered, h.now)
        h.feed(OK)
    marks = reserve_actions(h)
    assert marks == sorted(set(marks)) and marks[-1] == len(lines)
    assert len(marks) <= len(lines) // 20 + 2


def test_a_reset_sent_past_the_run_stops_feeding_and_the_alarm_ends_it() -> None:
    h = Harness()
    h.feed(OK)
    count = len(h.writes)
    h.actions += h.machine.on_reset_pending(h.now)
    h.run([OK, OK, OK])
    assert len(h.writes) == count
    h.run([alarm(3), OK, BANNER])
    end = h.machine.end
    assert end is not None and end.reason == "alarm" and end.alarm_code == 3


# --- feed: one entry for everything the controller says -----------------------------------------

FEED_SCRIPTS = [
    [OK, OK, status("Run"), OK, OK, status("Idle")],
    [OK, error(20), OK, status("Hold", 0), BANNER],
    [OK, alarm(1), status("Alarm")],
    [status("Idle"), OK, OK, OK, OK, status("Idle"), status("Idle")],
]


@pytest.mark.parametrize("script", FEED_SCRIPTS)
def test_feed_is_on_answer_or_on_status_by_what_came(script: list[Answer | p.Status]) -> None:
    by_kind = Harness()
    fed = Harness()
    for item in script:
        by_kind.feed(item)
        fed.actions += fed.machine.feed(item, fed.now)
    assert fed.actions == by_kind.actions
    assert fed.machine.phase is by_kind.machine.phase
    assert fed.machine.end == by_kind.machine.end
