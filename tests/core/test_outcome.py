"""The pure RunResult -> job event mapping, over every outcome and reason."""

from __future__ import annotations

from typing import Any

import pytest

from crown_edge.daemon.outcome import run_detail, run_ending
from crown_edge.drivers.base import RunOutcome, RunResult
from crown_edge.lifecycle import JobEvent

DONE, STOP, FAIL = RunOutcome.COMPLETED, RunOutcome.INTERRUPTED, RunOutcome.FAILED
E = JobEvent


def result(outcome: RunOutcome, acked: int, start: int = 0, **kw: Any) -> RunResult:
    return RunResult("J-1", outcome, acked, 100, start + acked, start_line=start, **kw)


# result, cancel reason -> event, runs.outcome word, jobs.reason, fault, done lines
TABLE = [
    (result(DONE, 100), None, E.FINISH, "completed", None, None, 100),
    (result(DONE, 60, start=40), None, E.FINISH, "completed", None, None, 100),
    # an interlock trip ends the run even if the last line was just acknowledged
    (result(DONE, 100, interlock="door"), None, E.INTERRUPT, "interrupted", "door", None, 100),
    (result(STOP, 40, alarm_code=1, reason="alarm"), None, E.INTERRUPT, "interrupted", "ALARM:1",
     None, 40),
    (result(STOP, 40, interlock="estop", reason="emergency_stop", alarm_code=3), None, E.INTERRUPT,
     "interrupted", "estop", None, 40),
    *[
        (result(STOP, 40, reason=why), None, E.INTERRUPT, "interrupted", why, None, 40)
        for why in ("link_lost", "silent", "reset", "emergency_stop", "lost_ack", "stalled",
                    "resume_mark_not_saved", "shutdown")
    ],
    (result(STOP, 40), None, E.INTERRUPT, "interrupted", "interrupted", None, 40),
    # a resumed run interrupted before its first new ok: lines were engraved, no requeue
    (result(STOP, 0, start=30, reason="link_lost"), None, E.INTERRUPT, "interrupted", "link_lost",
     None, 30),
    # nothing acknowledged: another machine may take it, this one holds off
    (result(STOP, 0, reason="link_lost"), None, E.REQUEUE, "interrupted", None, "link_lost", 0),
    (result(STOP, 0, alarm_code=2, reason="alarm"), None, E.REQUEUE, "interrupted", None, "ALARM:2",
     0),
    (result(STOP, 0, interlock="door"), None, E.REQUEUE, "interrupted", None, "door", 0),
    (result(STOP, 0), None, E.REQUEUE, "interrupted", None, "machine fault", 0),
    (result(STOP, 0, start=30, reason="door open", before_start=True), None, E.REQUEUE,
     "interrupted", None, "door open", 0),
    # the daemon's own shutdown is never requeued
    (result(STOP, 0, reason="shutdown"), None, E.INTERRUPT, "interrupted", "shutdown", None, 0),
    (result(FAIL, 11, error_code=20, error_line=12, error_text="Unsupported command"), None,
     E.MACHINE_ERROR, "failed", "error:20 at line 12", None, 11),
    (result(FAIL, 3, error_code=20), None, E.MACHINE_ERROR, "failed", "error:20", None, 3),
    (result(FAIL, 0, error_text="text does not fit"), None, E.MACHINE_ERROR, "failed",
     "text does not fit", None, 0),
    (result(FAIL, 0), None, E.MACHINE_ERROR, "failed", "machine_error", None, 0),
    # a cancel wins over whatever the stopped run reports
    (result(STOP, 50, reason="emergency_stop"), "customer phoned", E.CANCEL, "cancelled",
     "customer phoned", None, 50),
    (result(DONE, 100), "duplicate order", E.CANCEL, "cancelled", "duplicate order", None, 100),
    (result(FAIL, 3, error_code=20), "x", E.CANCEL, "cancelled", "x", None, 3),
    (result(STOP, 0, reason="link_lost"), "x", E.CANCEL, "cancelled", "x", None, 0),
]  # fmt: skip


@pytest.mark.parametrize(("res", "cancelled", "event", "outcome", "reason", "fault", "done"), TABLE)
def test_every_outcome_and_reason_maps_to_one_job_event(
    res: RunResult,
    cancelled: str | None,
    event: JobEvent,
    outcome: str,
    reason: str | None,
    fault: str | None,
    done: int,
) -> None:
    ending = run_ending(res, cancelled=cancelled)
    assert (ending.event, ending.outcome, ending.reason, ending.fault) == (
        event,
        outcome,
        reason,
        fault,
    )
    assert ending.acked_lines == done and ending.total_lines == 100
    assert ending.progress == done / 100
    assert ending.last_acked_line == res.last_acked_line
    assert ending.payload["outcome"] == ending.detail["outcome"] == outcome
    if reason is not None and event is not E.MACHINE_ERROR:
        assert ending.detail["reason"] == reason
    if event is E.MACHINE_ERROR and reason != "machine_error":
        assert ending.detail["error"] == reason


def test_detail_carries_the_result_and_the_words_others_read() -> None:
    res = result(STOP, 7, alarm_code=1, alarm_text="Hard limit", reason="alarm", sent_line=9)
    detail = run_detail(res)
    assert detail["reason"] == "ALARM:1" and detail["alarm_code"] == 1
    assert detail["sent_line"] == 9 and detail["qa_auto_ok"] is False
    assert "interlock" not in detail and "error" not in detail and "before_start" not in detail
    tripped = run_detail(result(STOP, 7, interlock="door", reason="emergency_stop"))
    assert tripped["interlock"] == "door" and tripped["reason"] == "door"
    never = run_detail(result(STOP, 0, reason="not connected", before_start=True))
    assert never["before_start"] is True and never["reason"] == "not connected"


def test_the_sent_line_and_an_unknown_one_travel() -> None:
    assert run_ending(result(STOP, 5, reason="link_lost", sent_line=9)).sent_line == 9
    assert run_ending(result(STOP, 5, reason="link_lost")).sent_line is None


def test_a_run_that_never_started_has_no_figures() -> None:
    ending = run_ending(RunResult("J-1", STOP, 0, 0, 0, reason="shutdown"))
    assert ending.event is E.INTERRUPT and ending.progress == 0.0 and ending.total_lines == 0
