"""Cloud replicas share live statuses: the message codec, the bounded queue, the topic's place in
the tree and the ACL, and the bridge's handling — its own echo ignored, another replica's status
applied without a second relay, nothing malformed taken, nothing published back. No broker here
(tests/sync/test_bridge_replicas.py runs two bridges on a real mosquitto)."""

from __future__ import annotations

import json
from typing import Any

import aiomqtt
import pytest
from hypothesis import given
from hypothesis import strategies as st

from crown_edge.cloud import replicas
from crown_edge.cloud.bridge import Bridge, BridgeSettings, Subscription
from crown_edge.embedded import mosquitto_files as files
from crown_edge.sync import topics, wire

NOW = 1_000.0


def _ev(seq: int, status: str = "queued", job: str = "J-1", **kw: Any) -> dict[str, Any]:
    return {
        "event_id": f"{job}:{seq}",
        "job_id": job,
        "seq": seq,
        "status": status,
        "at": "2026-01-01T00:00:00Z",
        "shop_id": "leeds",
        **kw,
    }


def _accepted(job: str = "J-1", at: Any = 900.0, **kw: Any) -> dict[str, Any]:
    return {
        "event_id": f"accepted-{job}",
        "job_id": job,
        "seq": 0,
        "status": "received",
        "at": at,
        "source": "api",
        **kw,
    }


def _msg(**fields: Any) -> bytes:
    message = {"v": 1, "origin": "b", "kind": "status", "event": _ev(1)}
    message.update(fields)
    return json.dumps(message).encode()


class _Sink:
    """An event sink that records; a bridge that is never entered never calls it."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    async def send_event(self, event: dict[str, Any]) -> str:
        self.sent.append(event)
        return "id"


def _bridge(instance: str | None = "a", share_queue: int = 100) -> Bridge:
    settings = BridgeSettings("127.0.0.1", 1, instance=instance, share_queue=share_queue)
    return Bridge(settings, _Sink(), clock=lambda: NOW)


def _queued(bridge: Bridge) -> list[replicas.Shared]:
    """What ``bridge`` has queued for the other replicas, decoded (and left queued)."""
    out = []
    for payload in list(bridge._shared._items):
        shared = replicas.decode(payload)
        assert isinstance(shared, replicas.Shared)
        out.append(shared)
    return out


def _pending(sub: Subscription) -> list[dict[str, Any]]:
    items = []
    while not sub._queue.empty():
        items.append(sub._queue.get_nowait())
    return items


# --- the codec (pure) -------------------------------------------------------------------------


def test_the_wire_format_is_a_small_versioned_object() -> None:
    payload = replicas.encode("api-2", "status", _ev(3))
    assert isinstance(payload, bytes)
    assert json.loads(payload) == {"v": 1, "origin": "api-2", "kind": "status", "event": _ev(3)}


_idents = st.from_regex(r"\A[A-Za-z0-9_-]{1,64}\Z")
_jobs = st.from_regex(r"\A[A-Za-z0-9._-]{1,128}\Z")
_scalars = st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=40)


@given(
    origin=_idents,
    job=_jobs,
    seq=st.integers(0, 2**40),
    status=st.text(max_size=30),
    extra=st.dictionaries(st.sampled_from(["reason", "machine_id", "shop_id"]), _scalars),
)
def test_a_status_survives_the_round_trip(
    origin: str, job: str, seq: int, status: str, extra: dict[str, Any]
) -> None:
    event = {"event_id": f"{job}:{seq}", "job_id": job, "seq": seq, "status": status, **extra}
    payload = replicas.encode(origin, "status", event)
    assert isinstance(payload, bytes)
    assert replicas.decode(payload) == replicas.Shared(origin, "status", event)


@given(origin=_idents, job=_jobs, at=st.floats(0, 1e10) | st.integers(0, 2**40))
def test_an_accepted_order_survives_the_round_trip(origin: str, job: str, at: float) -> None:
    payload = replicas.encode(origin, "accepted", _accepted(job, at, customer="c"))
    assert isinstance(payload, bytes)
    shared = replicas.decode(payload)
    assert shared == replicas.Shared(origin, "accepted", _accepted(job, at, customer="c"))
    assert isinstance(shared, replicas.Shared)
    assert shared.accepted_extras() == {"customer": "c"}


@given(st.binary(max_size=300) | st.text(max_size=300))
def test_any_bytes_decode_to_a_message_or_a_reason(raw: bytes | str) -> None:
    assert isinstance(replicas.decode(raw), replicas.Shared | wire.Rejected)


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        (b"\xff\xfe", "UTF-8"),
        (b"not json", "not JSON"),
        (b"[1, 2]", "JSON object"),
        (b"", "not JSON"),
        (None, "bytes or text"),
        (b'{"v": 1, "origin": "b", "kind": "status", "event": {}}' + b" " * (16 * 1024), "larger"),
        (_msg(v=None), "v:"),
        (_msg(v="1"), "v:"),
        (_msg(v=True), "v:"),
        (_msg(v=2), "v:"),
        (_msg(v=1.5), "v:"),
        (_msg(origin=None), "origin:"),
        (_msg(origin=""), "origin:"),
        (_msg(origin="a/b"), "origin:"),
        (_msg(origin="x" * 65), "origin:"),
        (_msg(origin=7), "origin:"),
        (_msg(kind="delete"), "kind:"),
        (_msg(kind=None), "kind:"),
        (_msg(kind=["status"]), "kind:"),
        (_msg(event=None), "event: must be an object"),
        (_msg(event=[_ev(1)]), "event: must be an object"),
        (_msg(event={k: v for k, v in _ev(1).items() if k != "seq"}), "seq: required"),
        (_msg(event=_ev(-1)), "seq:"),
        (_msg(event=_ev(True)), "seq:"),  # type: ignore[arg-type]
        (_msg(event=_ev(1, status=5)), "status:"),  # type: ignore[arg-type]
        (_msg(event=_ev(1, job="J 1")), "not a job id"),
        (_msg(event=_ev(1, job="J/1")), "not a job id"),
        (_msg(event=_ev(1, job="x" * 129)), "not a job id"),
        (_msg(kind="accepted", event=_accepted() | {"status": "complete"}), "'received' at seq 0"),
        (_msg(kind="accepted", event=_accepted() | {"seq": 4}), "'received' at seq 0"),
        (_msg(kind="accepted", event=_accepted(at="2026-01-01T00:00:00Z")), "at:"),
        (_msg(kind="accepted", event=_accepted(at=True)), "at:"),
        (_msg(kind="accepted", event={k: v for k, v in _accepted().items() if k != "at"}), "at:"),
        (b'{"v": 1, "origin": "b", "kind": "status", "event": {"x": NaN}}', "NaN"),
        (
            b'{"v": 1, "origin": "b", "kind": "status", "event": ' + b"[" * 40 + b"]" * 40 + b"}",
            "nests",
        ),
    ],
)
def test_malformed_messages_are_refused_with_a_reason(raw: Any, why: str) -> None:
    refused = replicas.decode(raw)
    assert isinstance(refused, wire.Rejected)
    assert why in refused.reason


def test_unknown_top_level_keys_are_ignored_for_later_versions_of_the_sender() -> None:
    shared = replicas.decode(_msg(trace="t-1"))
    assert shared == replicas.Shared("b", "status", _ev(1))


def test_an_event_that_cannot_travel_is_refused_by_the_sender() -> None:
    too_big = replicas.encode("a", "status", _ev(1, reason="x" * replicas.MAX_BYTES))
    assert isinstance(too_big, wire.Rejected) and "larger" in too_big.reason
    not_json = replicas.encode("a", "status", _ev(1, reason={1, 2}))
    assert isinstance(not_json, wire.Rejected) and "not JSON" in not_json.reason
    assert isinstance(replicas.encode("a", "status", _ev(1, at=float("nan"))), wire.Rejected)


@pytest.mark.parametrize("name", ["", "a/b", "a+b", "a#", "x" * 65, "é", "a b", None, 3])
def test_instance_names_are_identifiers(name: Any) -> None:
    assert not replicas.valid_instance(name)
    if isinstance(name, str):
        with pytest.raises(ValueError, match="instance"):
            BridgeSettings("h", 1, instance=name)


def test_the_share_queue_holds_at_least_one() -> None:
    with pytest.raises(ValueError, match="share_queue"):
        BridgeSettings("h", 1, share_queue=0)
    with pytest.raises(ValueError, match="at least 1"):
        replicas.Outgoing(0)


# --- the bounded queue (pure) -----------------------------------------------------------------


def test_the_queue_drops_the_oldest_beyond_its_cap_and_counts() -> None:
    out = replicas.Outgoing(2)
    for payload in (b"1", b"2", b"3"):
        out.put(payload)
    assert (len(out), out.dropped, out.peek()) == (2, 1, b"2")


def test_a_message_dropped_while_on_its_way_does_not_take_the_next_with_it() -> None:
    out = replicas.Outgoing(1)
    out.put(first := b"1")
    assert out.peek() is first  # being published...
    out.put(b"2")  # ...when a newer one pushes it out
    out.done(first)
    assert (out.peek(), out.dropped) == (b"2", 1)
    out.done(b"2")
    assert out.peek() is None


def test_an_event_that_cannot_be_encoded_is_counted_not_queued() -> None:
    out = replicas.Outgoing(4)
    assert not out.offer("a", "status", _ev(1, reason={1}))
    assert (len(out), out.dropped) == (0, 1)
    assert out.offer("a", "status", _ev(1))
    assert len(out) == 1


# --- the topic: outside the workshops' tree, the cloud's alone ---------------------------------


def test_the_cloud_topic_is_no_workshop_topic() -> None:
    assert topics.parse(topics.CLOUD_STATUS) is None
    subscriptions = [
        *topics.bridge_subscriptions(),
        *topics.bridge_subscriptions("g"),
        f"{topics.ROOT}/+/#",  # anything a workshop or its link could ever subscribe to
        f"{topics.prefix('leeds')}#",
    ]
    assert not any(aiomqtt.Topic(topics.CLOUD_STATUS).matches(s) for s in subscriptions)


def test_only_the_cloud_is_granted_the_replicas_tree() -> None:
    acl = files.acl_file(["leeds", "york"])
    blocks = [block.splitlines() for block in acl.split("\n\n")]
    cloud, shops = blocks[0], blocks[1:]
    assert "topic readwrite crown/cloud/v1/#" in cloud
    assert aiomqtt.Topic(topics.CLOUD_STATUS).matches(f"{topics.CLOUD_ROOT}/#")
    for block in shops:
        patterns = [line.split()[-1] for line in block if line.startswith("topic ")]
        assert patterns
        assert not any(aiomqtt.Topic(topics.CLOUD_STATUS).matches(p) for p in patterns)


# --- the bridge: what it shares ---------------------------------------------------------------


def test_a_fresh_workflow_status_is_shared_once() -> None:
    bridge = _bridge()
    assert bridge.publish(_ev(1))
    assert not bridge.publish(_ev(1))  # a duplicate is not fresh: not shared again
    assert not bridge.publish(_ev(0))  # nor a stale one
    assert _queued(bridge) == [replicas.Shared("a", "status", _ev(1))]
    assert bridge.relay_backlog == 1  # relayed to SQS as before


def test_workshop_events_and_other_replicas_statuses_are_not_shared() -> None:
    bridge = _bridge()
    bridge.jobs.learn("J-1", "leeds")
    assert bridge.publish(_ev(1), source="edge:leeds")  # every replica hears the workshop itself
    assert bridge.publish(_ev(2), source="workflow", relay=False)  # another replica's
    assert bridge.share_backlog == 0


def test_a_bridge_without_an_instance_shares_nothing() -> None:
    for bridge in (_bridge(instance=None), Bridge(None)):
        assert bridge.publish(_ev(1))
        bridge.accept("J-2")
        assert bridge.share_backlog == 0


def test_an_accepted_order_is_shared_unless_the_job_was_known() -> None:
    bridge = _bridge()
    event = bridge.accept("J-1", customer="c")
    bridge.accept("J-1")  # a retried POST: same job, nothing new
    bridge.publish(_ev(1, job="J-2"))
    bridge.accept("J-2")  # already past "received"
    assert _queued(bridge) == [
        replicas.Shared("a", "accepted", event),
        replicas.Shared("a", "status", _ev(1, job="J-2")),
    ]
    assert event["at"] == NOW and event["customer"] == "c"


def test_the_oldest_shares_go_when_the_broker_stays_away() -> None:
    bridge = _bridge(share_queue=2)
    for seq in (1, 2, 3):
        bridge.publish(_ev(seq))
    assert [s.event["seq"] for s in _queued(bridge)] == [2, 3]
    assert bridge.share_dropped == 1
    assert bridge.board.job("J-1")["seq"] == 3  # type: ignore[index]  # the board loses nothing


def test_an_event_too_big_to_share_still_reaches_this_replicas_board() -> None:
    bridge = _bridge()
    assert bridge.publish(_ev(1, reason="x" * replicas.MAX_BYTES))
    assert (bridge.share_backlog, bridge.share_dropped) == (0, 1)
    assert bridge.board.job("J-1")["seq"] == 1  # type: ignore[index]


# --- the bridge: what it takes ----------------------------------------------------------------


async def test_its_own_echo_changes_nothing() -> None:
    bridge = _bridge()
    with bridge.subscribe() as live:
        payload = replicas.encode("a", "status", _ev(1))
        await bridge.handle_message(topics.CLOUD_STATUS, payload)
        accepted = replicas.encode("a", "accepted", _accepted("J-2"))
        await bridge.handle_message(topics.CLOUD_STATUS, accepted)
        assert _pending(live) == []
    assert bridge.board.jobs == {}
    assert (bridge.peer_taken, bridge.dropped, sum(bridge.rejected.values())) == (0, 0, 0)


async def test_another_replicas_status_reaches_board_and_live_pages_without_relay_or_echo() -> None:
    bridge = _bridge()
    assert bridge.sink is not None
    with bridge.subscribe("J-1") as live:
        await bridge.handle_message(topics.CLOUD_STATUS, replicas.encode("b", "status", _ev(4)))
        assert _pending(live) == [dict(_ev(4), source="workflow")]
    assert bridge.board.job("J-1") == dict(_ev(4), source="workflow")
    assert bridge.jobs.known("J-1") == "leeds"  # the workflow's word, via the other replica
    assert bridge.relay_backlog == 0  # the origin relayed it to SQS
    assert bridge.share_backlog == 0  # not published back
    assert bridge.peer_taken == 1
    # the same status again (QoS 1 redelivery), or an older one: dropped as stale
    await bridge.handle_message(topics.CLOUD_STATUS, replicas.encode("c", "status", _ev(4)))
    await bridge.handle_message(topics.CLOUD_STATUS, replicas.encode("b", "status", _ev(3)))
    assert (bridge.peer_taken, bridge.dropped) == (1, 2)
    # and this replica's own next status is still shared
    assert bridge.publish(_ev(5))
    assert [s.event["seq"] for s in _queued(bridge)] == [5]


async def test_another_replicas_accepted_order_shows_received_with_its_own_time() -> None:
    bridge = _bridge()
    with bridge.subscribe("J-1") as live:
        message = replicas.encode("b", "accepted", _accepted(at=900.0, customer="c"))
        await bridge.handle_message(topics.CLOUD_STATUS, message)
        got = _pending(live)
    assert got == [_accepted(at=900.0, customer="c")]
    assert bridge.board.job("J-1") == _accepted(at=900.0, customer="c")
    assert (bridge.peer_taken, bridge.share_backlog, bridge.relay_backlog) == (1, 0, 0)


async def test_an_accepted_order_from_a_fast_clock_is_no_newer_than_now() -> None:
    bridge = _bridge()
    message = replicas.encode("b", "accepted", _accepted(at=NOW + 3600))
    await bridge.handle_message(topics.CLOUD_STATUS, message)
    assert bridge.board.job("J-1")["at"] == NOW  # type: ignore[index]
    # so the workflow's first status (just now) still takes the latest slot
    assert bridge.publish(_ev(1, at=NOW), relay=False)
    assert bridge.board.job("J-1")["status"] == "queued"  # type: ignore[index]


async def test_an_accepted_order_never_rolls_back_a_known_job() -> None:
    bridge = _bridge()
    bridge.publish(_ev(2, "engraving"))
    with bridge.subscribe("J-1") as live:
        _pending(live)  # the latest state a subscription starts with
        await bridge.handle_message(
            topics.CLOUD_STATUS, replicas.encode("b", "accepted", _accepted())
        )
        assert _pending(live) == []
    assert bridge.board.job("J-1")["status"] == "engraving"  # type: ignore[index]
    assert (bridge.peer_taken, bridge.dropped) == (0, 1)


@pytest.mark.parametrize(
    "raw",
    [
        b"junk",
        _msg(v=2),
        _msg(origin="x/y"),
        _msg(kind="accepted", event=_ev(1)),
        _msg(event=_ev(1, job="../etc")),
        _msg(event=_ev(10**6)),  # decodes, but the board refuses an implausible seq
    ],
)
async def test_a_malformed_message_is_rejected_and_changes_nothing(raw: bytes) -> None:
    bridge = _bridge()
    with bridge.subscribe() as live:
        await bridge.handle_message(topics.CLOUD_STATUS, raw)
        assert _pending(live) == []
    assert bridge.board.jobs == {}
    assert sum(bridge.rejected.values()) == 1
    assert bridge.rejected["malformed"] + bridge.rejected["implausible_seq"] == 1
    assert (bridge.peer_taken, bridge.share_backlog, bridge.relay_backlog) == (0, 0, 0)


async def test_a_bridge_without_an_instance_takes_nothing_from_the_replicas_topic() -> None:
    bridge = _bridge(instance=None)
    await bridge.handle_message(topics.CLOUD_STATUS, replicas.encode("b", "status", _ev(1)))
    assert bridge.board.jobs == {}
    assert bridge.rejected["malformed"] == 1
