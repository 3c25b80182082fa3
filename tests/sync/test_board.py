"""StatusBoard: latest-wins per job by seq; malformed events refused. Pure."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from crown_edge.cloud.board import Applied, StatusBoard, event_problem, event_time
from crown_edge.sync import topics
from crown_edge.sync.backoff import Backoff, capped_delay


def _ev(seq: int, status: str = "queued", job: str = "J-1") -> dict[str, Any]:
    return {"event_id": f"{job}-{seq}", "job_id": job, "seq": seq, "status": status}


def test_stale_and_duplicate_events_dropped() -> None:
    board = StatusBoard()
    assert board.apply(_ev(1, "received")) == Applied(True, True)
    assert board.apply(_ev(3, "queued")).fresh
    assert board.apply(_ev(2, "validated")) == Applied(False, False)  # stale
    assert not board.apply(_ev(3, "queued")).fresh  # duplicate
    assert board.job("J-1") == {**_ev(3, "queued"), "source": "workflow"}
    assert board.apply(_ev(1, job="J-2")).latest


def test_sources_have_their_own_seq_and_newer_at_wins() -> None:
    board = StatusBoard()
    wf = {**_ev(5, "engraving"), "at": "2026-11-26T10:00:00+00:00"}
    assert board.apply(wf, "workflow") == Applied(True, True)
    old_edge = {**_ev(1, "queued"), "event_id": "u1", "at": 1.0}  # a backlog from long ago
    assert board.apply(old_edge, "edge:s1") == Applied(True, False)
    assert board.job("J-1")["status"] == "engraving"  # type: ignore[index]
    new_edge = {**_ev(2, "qa_pending"), "event_id": "u2", "at": wf_time(wf) + 1}
    assert board.apply(new_edge, "edge:s1") == Applied(True, True)
    assert board.apply(new_edge, "edge:s1") == Applied(False, False)
    assert event_time({"at": "2026-11-26T10:00:00"}) == wf_time(wf)
    assert event_time({"at": "garbage"}) is None


def wf_time(event: dict[str, Any]) -> float:
    t = event_time(event)
    assert t is not None
    return t


def test_accept_does_not_override_newer_events() -> None:
    board = StatusBoard()
    assert board.accept("J-1", at=1.0)["status"] == "received"
    assert board.apply(_ev(1, "validated")).latest
    assert board.accept("J-1", at=2.0)["status"] == "validated"


def test_board_is_bounded() -> None:
    board = StatusBoard(max_jobs=2)
    for i in range(4):
        board.apply(_ev(1, job=f"J{i}"))
    assert list(board.jobs) == ["J2", "J3"]


def test_event_problems() -> None:
    assert event_problem(_ev(1)) is None
    assert event_problem({"job_id": "x"}) == "event_id: required"
    assert event_problem({**_ev(1), "seq": "1"}) is not None
    assert event_problem({**_ev(1), "seq": True}) is not None
    assert event_problem({**_ev(1), "job_id": ""}) is not None
    assert not StatusBoard().apply({**_ev(1), "seq": -1}).fresh


def test_topics_parse_and_prefix() -> None:
    assert topics.prefix("s1") == "crown/v1/s1/"
    assert topics.parse("crown/v1/s1/events") == topics.Topic("s1", "events")
    assert topics.parse("crown/v1/s1/machines/m2/state") == topics.Topic(
        "s1", "machine_state", "m2"
    )
    assert topics.parse("crown/v1/s1/commands/cancel") == topics.Topic("s1", "command", "cancel")
    assert topics.parse("crown/v1/s1/edge/state") == topics.Topic("s1", "edge_state")
    for bad in ("crown/v2/s1/events", "crown/v1//events", "crown/v1/s1/other", "x"):
        assert topics.parse(bad) is None
    assert topics.decode(b"[1]") is None
    assert topics.decode(b"\xff") is None
    assert topics.decode(topics.encode({"a": 1})) == {"a": 1}


def test_backoff_grows_caps_and_resets() -> None:
    backoff = Backoff(1.0, 4.0, rand=lambda: 1.0)
    assert [backoff.next() for _ in range(4)] == [1.0, 2.0, 4.0, 4.0]
    backoff.reset()
    assert backoff.next() == 1.0
    low = Backoff(1.0, 4.0, rand=lambda: 0.0)
    assert low.next() == 0.5


def test_capped_delay_never_overflows() -> None:
    assert capped_delay(1.0, 5.0, 2.0, 10_000_000) == 5.0
    assert capped_delay(1.0, 5.0, 1.0, 10_000_000) == 1.0  # factor 1: a constant delay
    assert capped_delay(1.0, 4.0, 2.0, 3) == 4.0  # exactly at the cap


@given(
    initial=st.floats(0.001, 10.0),
    spread=st.floats(1.0, 1000.0),
    factor=st.floats(1.0, 4.0),
    attempts=st.integers(1, 200),
)
def test_backoff_and_capped_delay_are_one_formula(
    initial: float, spread: float, factor: float, attempts: int
) -> None:
    maximum = initial * spread
    backoff = Backoff(initial, maximum, factor, rand=lambda: 1.0)
    delays = [backoff.next() for _ in range(attempts)]
    assert delays == [capped_delay(initial, maximum, factor, n) for n in range(1, attempts + 1)]
    assert all(initial <= d <= maximum for d in delays)
    assert delays == sorted(delays)  # never shrinks until reset


def test_mqtt_settings_from_config(tmp_path: Any) -> None:
    from crown_edge.config import parse_config
    from crown_edge.sync.mqtt import MqttSettings

    config = parse_config(
        {"edge": {"shop_id": "leeds"}, "mqtt": {"host": "10.0.0.5", "port": 8883}}, tmp_path
    )
    settings = MqttSettings.from_config(config, poll_interval=1.0)
    assert (settings.host, settings.port, settings.shop_id) == ("10.0.0.5", 8883, "leeds")
    assert settings.client_id == "crown-edge-leeds"
    assert settings.poll_interval == 1.0


def test_a_fast_workshop_clock_cannot_outrank_the_workflow() -> None:
    board = StatusBoard()
    # the workshop's clock is ten minutes fast: its "engraving" claims at=1600, received at 1000
    fast = {**_ev(1, "engraving"), "event_id": "u1", "at": 1600.0}
    assert board.apply(fast, "edge:s1", received=1000.0).latest
    done = {**_ev(9, "complete"), "at": 1060.0}
    assert board.apply(done, "workflow", received=1060.0) == Applied(True, True)
    # a backlog drained long after: old events stay behind the workflow's newer status
    backlog = {**_ev(2, "qa_pending"), "event_id": "u2", "at": 1050.0}
    assert board.apply(backlog, "edge:s1", received=3000.0) == Applied(True, False)
    assert board.job("J-1")["status"] == "complete"  # type: ignore[index]
