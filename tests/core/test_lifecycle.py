"""The lifecycle table: every state x event pair."""

from __future__ import annotations

import itertools

import pytest

from crown_edge.errors import IllegalTransition
from crown_edge.lifecycle import TERMINAL, TRANSITIONS, JobEvent, allowed_events, next_state
from crown_edge.models import JobStatus


@pytest.mark.parametrize(
    ("state", "event"), list(itertools.product(list(JobStatus), list(JobEvent)))
)
def test_every_state_event_pair(state: JobStatus, event: JobEvent) -> None:
    if (state, event) in TRANSITIONS:
        assert next_state("J", state, event) is TRANSITIONS[(state, event)]
    else:
        with pytest.raises(IllegalTransition) as info:
            next_state("J", state, event)
        assert info.value.fields == {"job_id": "J", "state": str(state), "event": str(event)}


def test_terminal_states_have_no_way_out() -> None:
    for state in TERMINAL:
        assert allowed_events(state) == []


def test_engraving_never_requeues_itself_after_progress() -> None:
    # only an explicit technician event takes an interrupted job back to the queue
    assert next_state("J", JobStatus.ENGRAVING, JobEvent.INTERRUPT) is JobStatus.INTERRUPTED
    assert {e for e in allowed_events(JobStatus.INTERRUPTED)} == {
        JobEvent.RESTART,
        JobEvent.RESUME_FROM_LINE,
        JobEvent.SCRAP,
        JobEvent.TO_QA,  # technician: every line had been sent and the item looks finished
        JobEvent.CANCEL,
        JobEvent.FAIL,
    }
    assert next_state("J", JobStatus.INTERRUPTED, JobEvent.TO_QA) is JobStatus.QA_PENDING


def test_unknown_words_are_illegal_not_crashes() -> None:
    with pytest.raises(IllegalTransition):
        next_state("J", "nonsense", "validate")
    with pytest.raises(IllegalTransition):
        next_state("J", "queued", "explode")


def test_every_status_is_reachable_from_received() -> None:
    seen = {JobStatus.RECEIVED}
    frontier = [JobStatus.RECEIVED]
    while frontier:
        state = frontier.pop()
        for event in allowed_events(state):
            new = TRANSITIONS[(state, event)]
            if new not in seen:
                seen.add(new)
                frontier.append(new)
    assert seen == set(JobStatus)
