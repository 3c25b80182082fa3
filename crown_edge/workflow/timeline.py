"""A job's timeline: the time of each stage boundary, in the order a job passes them, with the gap
since the previous known stage. Pure (values in, rows out); the workshop CLI builds it from the
store's job events and runs, the Order API from the workflow's history, the benchmark from both.

Every stage is the *first* time the job reached it (a retried run keeps its first claim); a stage
nobody recorded is shown as missing (``at`` None) and the next gap is measured from the last
stage that was recorded.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

#: Stage names in the order a job passes them (cloud, then workshop).
ACCEPTED: Final = "accepted"
SQS_SENT: Final = "sqs_sent"
SQS_RECEIVED: Final = "sqs_received"
WORKFLOW_STARTED: Final = "workflow_started"
RECEIVED: Final = "received"
VALIDATED: Final = "validated"
DESIGN_READY: Final = "design_ready"
QUEUED: Final = "queued"
CLAIMED: Final = "claimed"
FIRST_LINE: Final = "first_line"
LAST_LINE: Final = "last_line"
QA_VERDICT: Final = "qa_verdict"
COMPLETE: Final = "complete"

STAGES: Final = (
    ACCEPTED,
    SQS_SENT,
    SQS_RECEIVED,
    WORKFLOW_STARTED,
    RECEIVED,
    VALIDATED,
    DESIGN_READY,
    QUEUED,
    CLAIMED,
    FIRST_LINE,
    LAST_LINE,
    QA_VERDICT,
    COMPLETE,
)
CLOUD_STAGES: Final = (ACCEPTED, SQS_SENT, SQS_RECEIVED, WORKFLOW_STARTED)

#: What each stage means, for tools that print the timeline.
MEANING: Final[Mapping[str, str]] = {
    ACCEPTED: "the Order API accepted the order and handed it to SQS",
    SQS_SENT: "SQS took it (its own SentTimestamp)",
    SQS_RECEIVED: "the dispatcher took it from the queue",
    WORKFLOW_STARTED: "the job's workflow started",
    RECEIVED: "the workshop recorded the job",
    VALIDATED: "validated and the item reserved",
    DESIGN_READY: "the design was ready",
    QUEUED: "queued at the workshop",
    CLAIMED: "a machine claimed it",
    FIRST_LINE: "the machine acknowledged the first line",
    LAST_LINE: "the machine acknowledged the last line",
    QA_VERDICT: "quality check verdict",
    COMPLETE: "complete",
}

#: Workshop job events (``job_events.event``) → the stage they mark.
EDGE_EVENTS: Final[Mapping[str, str]] = {
    "receive": RECEIVED,
    "received": RECEIVED,
    "validate": VALIDATED,
    "design_ready": DESIGN_READY,
    "enqueue": QUEUED,
    "start": CLAIMED,
    "finish": LAST_LINE,
    "qa_pass": QA_VERDICT,
    "qa_fail": QA_VERDICT,
    "complete": COMPLETE,
}

#: Workshop job statuses that mark a stage whatever event led there.
EDGE_STATUSES: Final[Mapping[str, str]] = {"received": RECEIVED, "complete": COMPLETE}

#: Fields of an event's data that carry a stage's time recorded elsewhere (the cloud's
#: stages travel with the order; a run's first acknowledged line with its events).
STAGE_FIELDS: Final[Mapping[str, str]] = {
    "accepted_at": ACCEPTED,
    "sqs_sent_at": SQS_SENT,
    "sqs_received_at": SQS_RECEIVED,
    "workflow_started_at": WORKFLOW_STARTED,
    "first_line_at": FIRST_LINE,
}


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def mark(marks: dict[str, float], stage: str, at: float | None) -> None:
    """Record ``stage`` at ``at`` unless it is already known (a stage keeps its first time)."""
    if at is not None and stage in STAGES and stage not in marks:
        marks[stage] = at


def edge_marks(
    events: Iterable[Mapping[str, Any]], runs: Iterable[Mapping[str, Any]] = ()
) -> dict[str, float]:
    """Stage times from the workshop's job events (oldest first) and its runs.

    An event marks the stage of its ``event`` name (and of its ``status`` when that is
    ``received`` or ``complete``) at its ``at``; stage-time fields in an event
    (``accepted_at``, ``first_line_at``…) mark theirs. A run's ``started_at`` is a claim, its
    ``first_line_at`` the first acknowledged line and, when it completed, ``ended_at`` the last.
    """
    marks: dict[str, float] = {}
    for event in events:
        at = _number(event.get("at"))
        for stage in (
            EDGE_EVENTS.get(str(event.get("event", ""))),
            EDGE_STATUSES.get(str(event.get("status", ""))),
        ):
            if stage is not None:
                mark(marks, stage, at)
        for name, field_stage in STAGE_FIELDS.items():
            mark(marks, field_stage, _number(event.get(name)))
    for run in sorted(runs, key=lambda r: _number(r.get("started_at")) or 0.0):
        mark(marks, CLAIMED, _number(run.get("started_at")))
        mark(marks, FIRST_LINE, _number(run.get("first_line_at")))
        if run.get("outcome") == "completed":
            mark(marks, LAST_LINE, _number(run.get("ended_at")))
    return marks


def timeline(marks: Mapping[str, float], stages: Sequence[str] = STAGES) -> list[dict[str, Any]]:
    """One row per stage, in order: ``{"stage", "at", "gap_ms"}``.

    ``at`` is the stage's epoch time (None: not recorded); ``gap_ms`` the milliseconds since the
    previous recorded stage (None for the first recorded one and for missing stages).
    """
    rows: list[dict[str, Any]] = []
    previous: float | None = None
    for stage in stages:
        at = marks.get(stage)
        gap = None
        if at is not None:
            if previous is not None:
                gap = round((at - previous) * 1000.0, 1)
            previous = at
        rows.append({"stage": stage, "at": at, "gap_ms": gap})
    return rows


def gaps(rows: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """``{"previous->stage": gap_ms}`` of every recorded stage that follows another one."""
    out: dict[str, float] = {}
    previous: str | None = None
    for row in rows:
        if row.get("at") is None:
            continue
        if previous is not None and row.get("gap_ms") is not None:
            out[f"{previous}->{row['stage']}"] = float(row["gap_ms"])
        previous = str(row["stage"])
    return out
