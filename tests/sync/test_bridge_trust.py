"""Forged workshop events change nothing: shop checked against the workflow, plausible seq,
terminal statuses kept. Pure rules first, then the bridge, then the real broker and Temporal."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crown_edge.cloud.board import MAX_SEQ_JUMP, TERMINAL_STATUSES, Applied, StatusBoard
from crown_edge.cloud.bridge import Bridge
from crown_edge.cloud.jobdir import JobDirectory, TemporalShopLookup
from crown_edge.embedded import MqttBroker, TemporalDevServer
from crown_edge.models import IntakeMessage, JobStatus
from crown_edge.sync.mqtt import MqttLink
from tests.brokers import needs_mosquitto
from tests.sync.fakes import MemoryOutbox, until

STATUSES = [str(s) for s in JobStatus]


def _ev(seq: int, status: str = "queued", job: str = "J-1", **kw: Any) -> dict[str, Any]:
    return {"event_id": f"{job}-{seq}", "job_id": job, "seq": seq, "status": status, **kw}


# --- the board's rules (pure) ----------------------------------------------------------------


def test_terminal_statuses_are_the_lifecycles_end_states() -> None:
    assert {"complete", "cancelled", "escalated", "failed"} == TERMINAL_STATUSES
    assert set(STATUSES) >= TERMINAL_STATUSES


@pytest.mark.parametrize("source", ["workflow", "edge:s1"])
def test_seq_bound_for_the_first_and_later_events(source: str) -> None:
    board = StatusBoard()
    assert board.apply(_ev(MAX_SEQ_JUMP + 1), source) == Applied(False, False, "implausible_seq")
    assert board.job("J-1") is None
    assert board.apply(_ev(MAX_SEQ_JUMP), source).latest
    assert board.apply(_ev(2 * MAX_SEQ_JUMP + 1), source).rejected == "implausible_seq"
    assert board.apply(_ev(2 * MAX_SEQ_JUMP), source).latest


def test_a_huge_seq_never_blocks_the_real_events() -> None:
    board = StatusBoard()
    assert board.apply(_ev(1, "queued"), "edge:s1").latest
    forged = _ev(1_000_000_000, "cancelled", event_id="f")
    assert board.apply(forged, "edge:s1").rejected == "implausible_seq"
    assert board.apply(_ev(2, "engraving"), "edge:s1").latest
    assert board.job("J-1")["status"] == "engraving"  # type: ignore[index]


@given(
    st.lists(
        st.tuples(st.integers(0, 5 * MAX_SEQ_JUMP), st.sampled_from(["workflow", "edge:a"])),
        max_size=30,
    )
)
def test_rejected_events_leave_no_trace(events: list[tuple[int, str]]) -> None:
    """Applying a stream equals applying it without the events the seq rule rejected."""
    full, clean = StatusBoard(), StatusBoard()
    for i, (seq, source) in enumerate(events):
        event = _ev(seq, STATUSES[i % 10])  # non-terminal statuses only
        if full.apply(event, source).rejected is None:
            clean.apply(event, source)
    assert full.jobs == clean.jobs
    assert full._seqs == clean._seqs


@pytest.mark.parametrize("terminal", sorted(TERMINAL_STATUSES))
@pytest.mark.parametrize("status", STATUSES)
def test_no_workshop_event_overwrites_a_terminal_status(terminal: str, status: str) -> None:
    board = StatusBoard()
    board.apply(_ev(7, terminal, at=1.0), "workflow")
    applied = board.apply(_ev(1, status, at=2.0), "edge:s1")
    assert applied == Applied(True, False)  # fresh in its source (relayed), not the status
    assert board.job("J-1")["status"] == terminal  # type: ignore[index]
    assert not board.apply(_ev(1, status, at=2.0), "edge:s1").fresh  # and deduplicated


@pytest.mark.parametrize("current", sorted(set(STATUSES) - TERMINAL_STATUSES))
@pytest.mark.parametrize("status", STATUSES)
def test_workshop_events_move_a_live_job(current: str, status: str) -> None:
    board = StatusBoard()
    board.apply(_ev(3, current, at=1.0), "workflow")
    assert board.apply(_ev(1, status, at=2.0), "edge:s1").latest
    assert board.job("J-1")["status"] == status  # type: ignore[index]


def test_the_workflow_still_decides_after_a_terminal_status() -> None:
    board = StatusBoard()
    board.apply(_ev(1, "complete", at=1.0), "edge:s1")
    assert board.apply(_ev(9, "complete", at=2.0), "workflow").latest
    assert not board.apply(_ev(2, "queued", at=3.0), "edge:s1").latest


# --- the job directory -----------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_directory_learns_looks_up_and_caches() -> None:
    calls: list[str] = []
    shops = {"J-1": "s1"}

    async def lookup(job_id: str) -> str | None:
        calls.append(job_id)
        return shops.get(job_id)

    clock = Clock()
    jobs = JobDirectory(lookup, miss_ttl=60.0, clock=clock)
    jobs.learn("J-0", "s0")
    assert await jobs.shop_of("J-0") == "s0"
    assert await jobs.shop_of("J-1") == "s1"
    assert await jobs.shop_of("J-1") == "s1"
    assert await jobs.shop_of("nope") is None
    assert await jobs.shop_of("nope") is None  # a cached miss
    assert calls == ["J-1", "nope"]
    clock.now += 61
    assert await jobs.shop_of("nope") is None
    assert calls == ["J-1", "nope", "nope"]
    jobs.learn("nope", "s9")  # a trusted source outranks a cached miss
    assert await jobs.shop_of("nope") == "s9"


async def test_directory_pauses_lookups_after_an_error_and_is_bounded() -> None:
    calls = 0

    async def failing(job_id: str) -> str | None:
        nonlocal calls
        calls += 1
        raise ConnectionError("temporal down")

    clock = Clock()
    jobs = JobDirectory(failing, pause_after_error=10.0, capacity=2, clock=clock)
    assert await jobs.shop_of("J-1") is None
    assert await jobs.shop_of("J-2") is None
    assert (calls, jobs.lookup_errors) == (1, 1)
    clock.now += 11
    assert await jobs.shop_of("J-2") is None
    assert calls == 2
    for i in range(3):
        jobs.learn(f"K{i}", "s")
    assert (len(jobs), jobs.known("K0"), jobs.known("K2")) == (2, None, "s")


async def test_directory_lookup_has_a_timeout() -> None:
    async def hangs(job_id: str) -> str | None:
        await asyncio.Event().wait()
        return None

    jobs = JobDirectory(hangs, lookup_timeout=0.05)
    assert await jobs.shop_of("J-1") is None
    assert jobs.lookup_errors == 1


# --- the bridge (no broker) ------------------------------------------------------------------


def _bridge(**kw: Any) -> Bridge:
    return Bridge(None, clock=lambda: 1e9, **kw)


async def _edge(bridge: Bridge, shop: str, event: Any) -> None:
    raw = event if isinstance(event, bytes) else json.dumps(event).encode()
    await bridge.handle_message(f"crown/v1/{shop}/events", raw)


async def test_workflow_statuses_teach_the_directory() -> None:
    bridge = _bridge()
    await bridge.cloud_sink("status", _ev(1, "received", "A-G2", shop_id="demo"))
    assert bridge.jobs.known("A-G2") == "demo"
    await _edge(bridge, "demo", _ev(1, "queued", "A-G2"))
    assert bridge.board.job("A-G2")["source"] == "edge:demo"  # type: ignore[index]


async def test_forged_cancel_on_the_right_shop_is_rejected() -> None:
    bridge = _bridge()
    for seq, status in enumerate(("received", "queued", "complete"), start=1):
        await bridge.cloud_sink("status", _ev(seq, status, "A-G2", shop_id="demo", at=1.0))
    await _edge(bridge, "demo", _ev(1_000_000_000, "cancelled", "A-G2", event_id="f"))
    assert bridge.rejected == {"implausible_seq": 1}
    await _edge(bridge, "demo", _ev(5, "cancelled", "A-G2", event_id="g"))  # plausible seq
    assert bridge.board.job("A-G2")["status"] == "complete"  # type: ignore[index]


async def test_another_shops_job_and_unknown_jobs_are_rejected(
    caplog: pytest.LogCaptureFixture,
) -> None:
    bridge = _bridge()
    await bridge.cloud_sink("status", _ev(1, "engraving", "A-G2", shop_id="demo"))
    before = dict(bridge.board.jobs)
    await _edge(bridge, "evilshop", _ev(1_000, "cancelled", "A-G2"))
    await _edge(bridge, "evilshop", _ev(1, "cancelled", "made-up"))
    await _edge(bridge, "demo", _ev(1, "cancelled", "made-up"))
    assert bridge.rejected == {"wrong_shop": 1, "unknown_job": 2}
    assert bridge.board.jobs == before
    assert "edge:evilshop event for job 'A-G2': wrong_shop" in caplog.text


async def test_the_topics_shop_replaces_the_payloads_claim() -> None:
    bridge = _bridge()
    bridge.jobs.learn("J-1", "s1")
    await _edge(bridge, "s1", _ev(1, shop_id="s2"))
    assert bridge.board.job("J-1")["shop_id"] == "s1"  # type: ignore[index]


async def test_huge_seq_then_the_real_event_counts() -> None:
    bridge = _bridge()
    bridge.jobs.learn("J-1", "s1")
    await _edge(bridge, "s1", _ev(1, "queued"))
    await _edge(bridge, "s1", _ev(1_000_000_000, "cancelled", event_id="f"))
    await _edge(bridge, "s1", _ev(2, "engraving"))
    assert bridge.board.job("J-1")["status"] == "engraving"  # type: ignore[index]
    assert bridge.rejected == {"implausible_seq": 1}


async def test_unknown_job_resolved_through_the_lookup() -> None:
    async def lookup(job_id: str) -> str | None:
        return "s1" if job_id == "J-1" else None

    bridge = _bridge(jobs=JobDirectory(lookup))
    await _edge(bridge, "s1", _ev(1))
    await _edge(bridge, "s2", _ev(2))
    assert bridge.board.job("J-1")["seq"] == 1  # type: ignore[index]
    assert bridge.rejected == {"wrong_shop": 1}


@pytest.mark.parametrize(
    ("topic", "raw"),
    [
        ("crown/v1/s1/events", b"\xff"),
        ("crown/v1/s1/events", b"[" * 50_000 + b"]" * 50_000),
        ("crown/v1/s1/events", b'{"event_id": "e", "job_id": "J-1", "seq": 1e999}'),
        ("crown/v1/s1/events", json.dumps(_ev(10**30)).encode()),
        ("crown/v1/s1/events", json.dumps(_ev(1, job="J 1")).encode()),
        ("crown/v1/s1/events", json.dumps({**_ev(1), "status": 5}).encode()),
        ("crown/v1/s1/events", b"x" * 100_000),
        ("crown/v1/s.1/events", json.dumps(_ev(1)).encode()),
        ("crown/v1/s1/machines/m 1/state", b"{}"),
        ("crown/v1/s1/machines/m1/state", b"NaN"),
        ("crown/v1/s1/edge/state", b'{"online": Infinity}'),
    ],
)
async def test_poison_is_rejected_and_the_next_event_served(topic: str, raw: bytes) -> None:
    bridge = _bridge()
    bridge.jobs.learn("J-1", "s1")
    await bridge.handle_message(topic, raw)
    assert bridge.rejected == {"malformed": 1}
    assert (bridge.board.jobs, bridge.board.machines, bridge.board.edges) == ({}, {}, {})
    await _edge(bridge, "s1", _ev(1))
    assert bridge.board.job("J-1") is not None


@given(topic_shop=st.sampled_from(["s1", "evilshop"]), raw=st.binary(max_size=300))
async def test_any_bytes_on_any_topic_never_raise(topic_shop: str, raw: bytes) -> None:
    bridge = _bridge()
    bridge.jobs.learn("J-1", "s1")
    for kind in ("events", "machines/m1/state", "edge/state"):
        await bridge.handle_message(f"crown/v1/{topic_shop}/{kind}", raw)
    assert bridge.board.jobs == {}


# --- a real broker: the attacks as reported ---------------------------------------------------


@pytest.mark.integration
@needs_mosquitto
async def test_forged_events_through_the_broker_change_nothing(mqtt_broker: MqttBroker) -> None:
    """A workshop identity forging events for its own and another shop's job; the real one
    keeps working. (The ACL stops ``evilshop``'s publish on ``demo``'s topic before us.)"""
    demo, evil = f"demo-{uuid.uuid4().hex[:6]}", f"evil-{uuid.uuid4().hex[:6]}"
    settings = mqtt_broker.bridge_settings(client_id=uuid.uuid4().hex)
    async with Bridge(settings) as bridge:
        async with asyncio.timeout(20):
            await bridge.wait_connected()
        await bridge.cloud_sink("status", _ev(1, "engraving", "A-G1", shop_id=demo, at=1.0))
        await bridge.cloud_sink("status", _ev(9, "complete", "A-G2", shop_id=demo, at=1.0))
        forged = _ev(1_000_000_000, "cancelled", "A-G2", event_id="f")
        async with mqtt_broker.client(mqtt_broker.workshop(evil)) as client:
            await client.publish(f"crown/v1/{evil}/events", json.dumps(forged), qos=1)
            await client.publish(f"crown/v1/{evil}/events", json.dumps({**forged, "seq": 1}))
        async with mqtt_broker.client(mqtt_broker.workshop(demo)) as client:
            await client.publish(f"crown/v1/{demo}/events", json.dumps(forged), qos=1)
            huge = _ev(1_000_000_000, "cancelled", "A-G1", event_id="g")
            await client.publish(f"crown/v1/{demo}/events", json.dumps(huge), qos=1)
        await until(lambda: sum(bridge.rejected.values()) == 4)
        assert bridge.rejected == {"wrong_shop": 2, "implausible_seq": 2}
        outbox = MemoryOutbox()
        outbox.put("events", _ev(1, "qa_pending", "A-G1", at=2.0))
        async with MqttLink(mqtt_broker.workshop_settings(demo, poll_interval=0.5), outbox):
            await until(lambda: bridge.board.job("A-G1")["status"] == "qa_pending")  # type: ignore[index]
        assert bridge.board.job("A-G2")["status"] == "complete"  # type: ignore[index]


# --- a real Temporal: the directory's fallback -----------------------------------------------


@pytest.mark.integration
async def test_temporal_lookup_reads_the_workflow_input(
    temporal_dev_server: TemporalDevServer,
) -> None:
    from temporalio.client import Client

    from crown_edge.cloud.starter import start_job

    client = await Client.connect(temporal_dev_server.target)
    base = {"customer_id": "C", "item_id": "plaque-a5", "due_date": "2026-12-01"}
    named, default = f"T-{uuid.uuid4().hex[:8]}", f"T-{uuid.uuid4().hex[:8]}"
    handles = [
        await start_job(
            client,
            IntakeMessage.parse({**base, "job_id": named, "shop_id": "s7"}),
            default_shop_id="dflt",
        ),
        await start_job(
            client, IntakeMessage.parse({**base, "job_id": default}), default_shop_id="dflt"
        ),
    ]
    try:
        lookup = TemporalShopLookup(client)
        assert await lookup(named) == "s7"
        assert await lookup(default) == "dflt"
        assert await lookup(f"T-{uuid.uuid4().hex}") is None
    finally:
        for handle in handles:
            await handle.terminate("test over")


@pytest.mark.integration
async def test_a_start_that_created_the_workflow_teaches_the_directory(
    temporal_dev_server: TemporalDevServer,
) -> None:
    """The dispatcher's start teaches the directory the workshop of a job it created (no
    Temporal lookup when the workshop's first event overtakes the workflow's first status); a
    second message for a running job, naming another shop, teaches nothing."""
    from temporalio.client import Client

    from crown_edge.cloud.starter import start_job

    client = await Client.connect(temporal_dev_server.target)
    lookups: list[str] = []

    async def lookup(job_id: str) -> str | None:
        lookups.append(job_id)
        return await TemporalShopLookup(client)(job_id)

    directory = JobDirectory(lookup)
    job = f"T-{uuid.uuid4().hex[:8]}"
    base = {"customer_id": "C", "item_id": "plaque-a5", "due_date": "2026-12-01", "job_id": job}
    handle = await start_job(
        client,
        IntakeMessage.parse({**base, "shop_id": "s7"}),
        default_shop_id="dflt",
        learn=directory.learn,
    )
    try:
        assert directory.known(job) == "s7"
        taught: list[tuple[str, str]] = []
        again = await start_job(
            client,
            IntakeMessage.parse({**base, "shop_id": "s8"}),
            default_shop_id="dflt",
            learn=lambda j, s: taught.append((j, s)),
        )
        assert again.result_run_id == handle.result_run_id  # attached to the running one
        assert taught == []
        assert await directory.shop_of(job) == "s7"
        assert lookups == []
    finally:
        await handle.terminate("test over")


def test_a_handle_without_the_start_answer_counts_as_not_created() -> None:
    """An SDK that no longer keeps the start's answer on the handle (or a handle not from a
    start) teaches nothing: the bridge falls back to its Temporal lookup."""
    from types import SimpleNamespace

    from crown_edge.cloud.starter import created

    assert created(SimpleNamespace()) is False  # type: ignore[arg-type]
    answer = SimpleNamespace(started=False)
    assert created(SimpleNamespace(_start_workflow_response=answer)) is False  # type: ignore[arg-type]
