"""The pure parts of end-to-end delivery: retransmit schedule, ack / replay codecs, the sequencer
(gap detection, hold-back, dedup), and the acked_seq start of a job never seen."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crown_edge.cloud.sequencer import Sequencer
from crown_edge.sync import delivery
from crown_edge.sync.delivery import ReplayRequest, RetransmitSchedule
from crown_edge.sync.wire import Rejected

SRC = "edge:s1"


def _ev(seq: int, job: str = "J-1", **extra: Any) -> dict[str, Any]:
    return {"event_id": f"{job}-{seq}", "job_id": job, "seq": seq, "status": "x", **extra}


# --- retransmit schedule ---------------------------------------------------------------------


def test_retransmit_delay_doubles_and_is_capped() -> None:
    schedule = RetransmitSchedule(timeout=1.0, maximum=5.0)
    assert [schedule.delay(n) for n in range(1, 6)] == [1.0, 2.0, 4.0, 5.0, 5.0]
    assert schedule.delay(10_000) == 5.0
    assert schedule.next_at(100.0, 2) == 102.0


@pytest.mark.parametrize(("timeout", "maximum", "factor"), [(0, 1, 2), (2, 1, 2), (1, 2, 0.5)])
def test_retransmit_schedule_rejects_nonsense(
    timeout: float, maximum: float, factor: float
) -> None:
    with pytest.raises(ValueError):
        RetransmitSchedule(timeout, maximum, factor)


# --- codecs --------------------------------------------------------------------------------------


def test_ack_payloads_chunk_and_parse_back() -> None:
    ids = [f"e{i}" for i in range(delivery.MAX_ACK_IDS + 3)]
    payloads = delivery.ack_payloads(ids)
    assert [len(p["event_ids"]) for p in payloads] == [delivery.MAX_ACK_IDS, 3]
    back: list[str] = []
    for p in payloads:
        parsed = delivery.parse_ack(json.dumps(p).encode())
        assert isinstance(parsed, list)
        back += parsed
    assert back == ids


@pytest.mark.parametrize(
    "raw",
    [b"nope", b"[]", b"{}", b'{"event_ids": "e1"}', b'{"event_ids": [1]}', b'{"event_ids": [""]}'],
)
def test_bad_acks_are_rejected(raw: bytes) -> None:
    assert isinstance(delivery.parse_ack(raw), Rejected)


def test_replay_round_trip_and_limits() -> None:
    request = ReplayRequest("J-1", 2, 4)
    assert delivery.parse_replay(json.dumps(delivery.replay_payload(request))) == request
    for bad in (
        {"job_id": "J-1", "from_seq": 4, "to_seq": 2},
        {"job_id": "J-1", "from_seq": 0, "to_seq": 2},
        {"job_id": "J-1", "from_seq": True, "to_seq": 2},
        {"job_id": "", "from_seq": 1, "to_seq": 2},
        {"job_id": "J-1", "from_seq": 1, "to_seq": 1 + delivery.MAX_REPLAY_SPAN},
    ):
        assert isinstance(delivery.parse_replay(json.dumps(bad)), Rejected), bad


def test_acked_seq_is_added_only_to_events_of_a_job() -> None:
    assert delivery.with_acked_seq({"a": 1}, None) == {"a": 1}
    assert delivery.with_acked_seq({"a": 1}, 3) == {"a": 1, "acked_seq": 3}


# --- sequencer -----------------------------------------------------------------------------------


def test_in_order_events_pass_and_duplicates_drop() -> None:
    seq = Sequencer()
    assert [e["seq"] for e in seq.offer(SRC, _ev(1), 0).ready] == [1]
    assert [e["seq"] for e in seq.offer(SRC, _ev(2), 0).ready] == [2]
    again = seq.offer(SRC, _ev(2), 0)
    assert again.duplicate and again.ready == () and again.ack_now == ()  # relay not confirmed
    seq.confirm(SRC, "J-1", 2)
    assert seq.offer(SRC, _ev(2), 0).ack_now == ("J-1-2",)  # confirmed: ack it again


def test_gap_holds_later_events_and_asks_for_a_replay() -> None:
    seq = Sequencer(gap_wait=2.0, replay_every=10.0)
    seq.offer(SRC, _ev(1), 0)
    held = seq.offer(SRC, _ev(4), 1.0)
    assert held.held and held.ready == ()
    assert seq.offer(SRC, _ev(3), 1.5).held
    assert seq.offer(SRC, _ev(3), 1.6).duplicate
    assert seq.held == 2
    assert seq.due_replays(2.9) == []  # the gap is younger than gap_wait
    assert seq.due_replays(3.0) == [(SRC, ReplayRequest("J-1", 2, 2))]
    assert seq.due_replays(4.0) == []  # asked; not again before replay_every
    assert seq.due_replays(13.0) == [(SRC, ReplayRequest("J-1", 2, 2))]
    filled = seq.offer(SRC, _ev(2), 14.0)
    assert [e["seq"] for e in filled.ready] == [2, 3, 4]
    assert seq.held == 0 and seq.gaps() == [] and seq.due_replays(100.0) == []


def test_new_track_starts_at_acked_seq() -> None:
    seq = Sequencer()
    # the workshop holds acks up to 4: a fresh bridge starts at 5 and asks for nothing
    assert [e["seq"] for e in seq.offer(SRC, _ev(5, acked_seq=4), 0).ready] == [5]
    # a fresh track with acked_seq below: the gap 3..4 is held and asked for
    other = Sequencer(gap_wait=0)
    assert other.offer(SRC, _ev(5, acked_seq=2), 0).held
    assert other.due_replays(0) == [(SRC, ReplayRequest("J-1", 3, 4))]
    # a known track keeps its own record: a claim of acks it never saw does not skip the gap
    seq.offer(SRC, _ev(7, acked_seq=6), 1)
    assert seq.gaps() == [(SRC, ReplayRequest("J-1", 6, 6))]


def test_without_acked_seq_the_first_event_starts_the_track() -> None:
    seq = Sequencer()
    assert [e["seq"] for e in seq.offer(SRC, _ev(3), 0).ready] == [3]
    assert seq.offer(SRC, _ev(2), 0).duplicate


def test_implausible_seq_is_rejected_and_changes_nothing() -> None:
    seq = Sequencer(max_hold=100)
    assert seq.offer(SRC, _ev(1_000_000), 0).rejected == "implausible_seq"
    assert [e["seq"] for e in seq.offer(SRC, _ev(1), 0).ready] == [1]
    assert seq.offer(SRC, _ev(500), 0).rejected == "implausible_seq"
    assert seq.held == 0


def test_sources_and_jobs_are_separate() -> None:
    seq = Sequencer()
    seq.offer(SRC, _ev(1), 0)
    assert seq.offer("edge:s2", _ev(1), 0).ready  # another workshop's sequence
    assert seq.offer(SRC, _ev(1, job="J-2"), 0).ready


def test_old_tracks_are_forgotten_but_never_one_with_a_gap() -> None:
    seq = Sequencer(max_tracks=2)
    seq.offer(SRC, _ev(1, job="A"), 0)
    seq.offer(SRC, _ev(3, job="A"), 0)  # A has a gap
    seq.offer(SRC, _ev(1, job="B"), 0)
    seq.offer(SRC, _ev(1, job="C"), 0)
    assert [r.job_id for _, r in seq.gaps()] == ["A"]
    assert seq.offer(SRC, _ev(2, job="A"), 0).ready


@given(
    n=st.integers(min_value=1, max_value=30),
    data=st.data(),
)
def test_any_arrival_order_with_copies_relays_each_event_once_in_order(
    n: int, data: st.DataObject
) -> None:
    """Whatever order and copies the broker delivers, what comes out is 1..n once, in order."""
    arrivals = data.draw(st.lists(st.integers(1, n), max_size=3 * n))
    arrivals = [1, *arrivals, *range(1, n + 1)]  # the workshop resends until every one is acked
    seq = Sequencer()
    out: list[int] = []
    for i, s in enumerate(arrivals):
        out += [e["seq"] for e in seq.offer(SRC, _ev(s), float(i)).ready]
    assert out == list(range(1, n + 1))
    assert seq.held == 0
