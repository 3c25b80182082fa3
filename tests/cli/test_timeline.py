"""A job's timeline: the stage rows (pure) and ``crown-edge jobs timeline`` on a running daemon.

Only the content is checked (which stages, in which order, gaps consistent with the times, missing
stages shown as missing), never how long anything took.
"""

from __future__ import annotations

import itertools
import json

from crown_edge.workflow import timeline as tl
from tests.cli.test_tech import Running, edge, submit, wait_status  # noqa: F401 (fixture)


def test_rows_follow_the_stage_order_and_gaps_skip_missing_stages() -> None:
    marks = {tl.COMPLETE: 20.0, tl.ACCEPTED: 10.0, tl.QUEUED: 10.25, tl.CLAIMED: 10.5}
    rows = tl.timeline(marks)
    assert [r["stage"] for r in rows] == list(tl.STAGES)
    by = {r["stage"]: r for r in rows}
    assert by[tl.ACCEPTED] == {"stage": tl.ACCEPTED, "at": 10.0, "gap_ms": None}
    assert by[tl.SQS_SENT] == {"stage": tl.SQS_SENT, "at": None, "gap_ms": None}
    assert by[tl.QUEUED]["gap_ms"] == 250.0  # from accepted: the stages between are missing
    assert by[tl.CLAIMED]["gap_ms"] == 250.0
    assert by[tl.COMPLETE]["gap_ms"] == 9500.0
    assert tl.gaps(rows) == {
        "accepted->queued": 250.0,
        "queued->claimed": 250.0,
        "claimed->complete": 9500.0,
    }


def test_edge_marks_keep_the_first_time_of_each_stage() -> None:
    events = [
        {"event": "receive", "status": "received", "at": 1.0, "accepted_at": 0.5},
        {"event": "validate", "status": "validated", "at": 1.0},
        {"event": "enqueue", "status": "queued", "at": 2.0},
        {"event": "start", "status": "engraving", "at": 3.0},
        {"event": "machine_error", "status": "interrupted", "at": 4.0},
        {"event": "enqueue", "status": "queued", "at": 5.0},
        {"event": "start", "status": "engraving", "at": 6.0},
        {"event": "finish", "status": "qa_pending", "at": 7.0},
        {"event": "qa_pass", "status": "complete", "at": 8.0},
    ]
    runs = [
        {"started_at": 6.0, "first_line_at": 6.1, "ended_at": 7.0, "outcome": "completed"},
        {"started_at": 3.0, "first_line_at": 3.2, "ended_at": 4.0, "outcome": "interrupted"},
    ]
    marks = tl.edge_marks(events, runs)
    assert marks == {
        tl.ACCEPTED: 0.5,
        tl.RECEIVED: 1.0,
        tl.VALIDATED: 1.0,
        tl.QUEUED: 2.0,
        tl.CLAIMED: 3.0,
        tl.FIRST_LINE: 3.2,
        tl.LAST_LINE: 7.0,
        tl.QA_VERDICT: 8.0,
        tl.COMPLETE: 8.0,
    }
    assert tl.edge_marks([{"event": "start", "at": True}, {"event": "start", "at": "x"}]) == {}


def test_jobs_timeline_shows_the_stages_the_workshop_knows(edge: Running) -> None:  # noqa: F811
    submit(edge, "J-time", "Club Champion")
    wait_status(edge, "J-time", "qa_pending")
    assert edge.cli("qa", "pass", "J-time", "--json").exit_code == 0
    result = edge.cli("jobs", "timeline", "J-time", "--json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [r["stage"] for r in rows] == list(tl.STAGES)
    known = [r for r in rows if r["at"] is not None]
    assert [r["stage"] for r in known] == [
        tl.RECEIVED,
        tl.VALIDATED,
        tl.QUEUED,
        tl.CLAIMED,
        tl.FIRST_LINE,
        tl.LAST_LINE,
        tl.QA_VERDICT,
        tl.COMPLETE,
    ]
    # the cloud's stages are not known to a walk-in job: shown, as missing
    for row in rows[: len(tl.CLOUD_STAGES)]:
        assert row == {"stage": row["stage"], "at": None, "gap_ms": None}
    assert known[0]["gap_ms"] is None
    times = [r["at"] for r in known]
    assert times == sorted(times)
    for before, after in itertools.pairwise(known):
        assert after["gap_ms"] == round((after["at"] - before["at"]) * 1000, 1)
    text = edge.cli("jobs", "timeline", "J-time")
    assert text.exit_code == 0, text.output
    assert "Timeline" in text.stdout and "claimed" in text.stdout and "sqs_received" in text.stdout
    unknown = edge.cli("jobs", "timeline", "J-none")
    assert unknown.exit_code == 1 and "unknown job" in unknown.stderr
