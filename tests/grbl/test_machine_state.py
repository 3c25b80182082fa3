"""The pure mapping from grbl readings to MTConnect state, and what keeps a controller not ready."""

from __future__ import annotations

import pytest

from crown_edge.drivers.grbl import protocol as p
from crown_edge.drivers.grbl.codes import alarm_info
from crown_edge.drivers.grbl.machine_state import machine_state, not_ready, work_position
from crown_edge.errors import ControllerAlarm, DriverError, InterlockOpen, LinkLost
from crown_edge.models import Availability, Execution

A = Availability
E = Execution
HARD_LIMIT = p.Alarm(1, *alarm_info(1))


def report(state: str, sub: int | None = None) -> p.Status:
    return p.Status(state, sub)


# status, alarm, latched, running, interrupted -> availability, execution, alarm word, paused
TABLE = [
    (None, None, False, False, False, A.UNAVAILABLE, E.STOPPED, None, False),
    (None, None, False, False, True, A.UNAVAILABLE, E.INTERRUPTED, None, False),
    (None, None, False, True, False, A.UNAVAILABLE, E.STOPPED, None, False),
    (report("Alarm"), HARD_LIMIT, False, False, False, A.UNAVAILABLE, E.STOPPED,
     f"ALARM:1 {HARD_LIMIT.name}", False),
    (report("Alarm"), None, False, False, True, A.UNAVAILABLE, E.INTERRUPTED, "ALARM", False),
    (report("Idle"), HARD_LIMIT, True, False, False, A.UNAVAILABLE, E.STOPPED,
     f"ALARM:1 {HARD_LIMIT.name}", False),
    (report("Idle"), None, False, False, False, A.AVAILABLE, E.READY, None, False),
    (report("Check"), None, False, False, False, A.AVAILABLE, E.READY, None, False),
    (report("Idle"), None, False, True, False, A.AVAILABLE, E.ACTIVE, None, False),
    (report("Idle"), None, False, False, True, A.AVAILABLE, E.INTERRUPTED, None, False),
    (report("Idle"), None, False, True, True, A.AVAILABLE, E.ACTIVE, None, False),
    (report("Run"), None, False, True, False, A.AVAILABLE, E.ACTIVE, None, False),
    (report("Jog"), None, False, False, False, A.AVAILABLE, E.ACTIVE, None, False),
    (report("Home"), None, False, False, False, A.AVAILABLE, E.ACTIVE, None, False),
    (report("Hold", 0), None, False, True, False, A.AVAILABLE, E.FEED_HOLD, None, True),
    (report("Hold", 1), None, False, True, False, A.AVAILABLE, E.FEED_HOLD, None, True),
    (report("Tool"), None, False, False, False, A.AVAILABLE, E.FEED_HOLD, None, True),
    (report("Door", 0), None, False, False, False, A.AVAILABLE, E.FEED_HOLD, None, True),
    (report("Door", 1), None, False, True, False, A.AVAILABLE, E.FEED_HOLD, "door open", True),
    (report("Door", 3), None, False, False, False, A.AVAILABLE, E.FEED_HOLD, "door open", True),
    (report("Sleep"), None, False, False, False, A.AVAILABLE, E.STOPPED, None, False),
    (report("Unknown"), None, False, False, True, A.AVAILABLE, E.STOPPED, None, False),
]  # fmt: skip


@pytest.mark.parametrize(
    (
        "status",
        "alarm",
        "latched",
        "running",
        "interrupted",
        "avail",
        "execution",
        "word",
        "paused",
    ),
    TABLE,
)
def test_readings_map_to_mtconnect_words(
    status: p.Status | None,
    alarm: p.Alarm | None,
    latched: bool,
    running: bool,
    interrupted: bool,
    avail: Availability,
    execution: Execution,
    word: str | None,
    paused: bool,
) -> None:
    state = machine_state(
        "m1",
        status,
        alarm=alarm,
        alarm_latched=latched,
        running=running,
        interrupted=interrupted,
        heartbeat_at=12.5,
        job_id="J-1" if running else None,
        progress=0.25 if running else None,
    )
    assert (state.availability, state.execution, state.alarm, state.paused) == (
        avail,
        execution,
        word,
        paused,
    )
    assert state.machine_id == "m1"
    assert state.heartbeat_at == 12.5
    assert state.job_id == ("J-1" if running else None)
    assert state.progress == (0.25 if running else None)


@pytest.mark.parametrize(
    ("status", "latched", "error", "fields"),
    [
        (None, False, LinkLost, {"machine_id": "m1", "url": "/dev/ttyX"}),
        (report("Alarm"), False, ControllerAlarm, {"machine_id": "m1", "code": 1}),
        (report("Idle"), True, ControllerAlarm, {"machine_id": "m1", "code": 1}),
        (report("Door", 1), False, InterlockOpen, {"machine_id": "m1", "interlock": "door"}),
        (report("Door", 0), False, InterlockOpen, {"machine_id": "m1", "interlock": "door"}),
        (report("Run"), False, DriverError, {"machine_id": "m1", "state": "Run"}),
        (report("Hold", 0), False, DriverError, {"machine_id": "m1", "state": "Hold"}),
        (report("Home"), False, DriverError, {"machine_id": "m1", "state": "Home"}),
    ],
)
def test_what_keeps_a_controller_from_taking_a_program(
    status: p.Status | None,
    latched: bool,
    error: type[DriverError],
    fields: dict[str, object],
) -> None:
    problem = not_ready("m1", status, alarm=HARD_LIMIT, alarm_latched=latched, url="/dev/ttyX")
    assert type(problem) is error
    assert problem is not None and problem.fields == fields


@pytest.mark.parametrize("state", ["Idle", "Check"])
def test_an_idle_controller_is_ready(state: str) -> None:
    assert not_ready("m1", report(state)) is None


def test_an_alarm_of_unknown_code_is_named_without_one() -> None:
    problem = not_ready("m1", report("Alarm"))
    assert isinstance(problem, ControllerAlarm) and problem.fields["code"] is None


@pytest.mark.parametrize(
    ("status", "wco", "where"),
    [
        (None, (1.0, 2.0, 0.0), None),
        (p.Status("Idle", wpos=(1.0, 2.0, 3.0)), None, {"X": 1.0, "Y": 2.0, "Z": 3.0}),
        (p.Status("Run", mpos=(11.0, 22.0, 3.0)), (1.0, 2.0, 0.0),
         {"X": 10.0, "Y": 20.0, "Z": 3.0}),
        (p.Status("Run", mpos=(5.0, 5.0, 0.0, 90.0)), (0.0, 0.0, 0.0, 0.0),
         {"X": 5.0, "Y": 5.0, "Z": 0.0, "A": 90.0}),
        (p.Status("Run", mpos=(11.0, 22.0, 3.0)), None, None),
        (p.Status("Idle"), (1.0, 2.0, 0.0), None),
    ],
)  # fmt: skip
def test_work_position_is_wpos_or_mpos_less_wco(
    status: p.Status | None, wco: tuple[float, ...] | None, where: dict[str, float] | None
) -> None:
    assert work_position(status, wco) == where
