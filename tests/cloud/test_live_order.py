"""Which of two job views is newer, and the WebSocket pump never sending an older one.

The glitch these pin down: a workshop's live ``complete`` reached the customer page, then the
pump's periodic re-read sent the workflow's view still at the quality check, then ``complete``
again once the workflow caught up.
"""

from __future__ import annotations

import asyncio
import types
from collections.abc import Callable
from typing import Any

import pytest

from crown_edge.cloud import live
from tests.cloud.test_ws_pump import FakeSocket

STAGES = ("received", "validated", "queued", "engraving", "qa_pending", "complete")


def durable(*path: str) -> dict[str, Any]:
    """The workflow's view after the statuses of ``path`` (a stage name alone: the usual way
    there, from ``received``); its status is the last one."""
    if len(path) == 1 and path[0] in STAGES:
        path = STAGES[: STAGES.index(path[0]) + 1]
    timeline = [{"status": s, "at": f"2026-12-01T08:{n:02d}:00+00:00"} for n, s in enumerate(path)]
    return {"job_id": "J-1", "status": path[-1], "timeline": timeline, "steps": []}


RETRIED = (*STAGES[:5], "qa_failed", "queued")


def ahead(view: dict[str, Any], status: str) -> dict[str, Any]:
    """A live event's status laid over ``view`` (what the pump sends before the workflow
    records that status)."""
    return live.overlay(view, {"job_id": "J-1", "status": status})


# --- rank and older --------------------------------------------------------------------------


def test_a_live_status_is_half_a_step_ahead_of_its_timeline() -> None:
    qa = durable("qa_pending")
    assert live.rank(qa) == 10
    assert live.rank(ahead(qa, "complete")) == 11
    assert live.rank(durable("complete")) == 12


@pytest.mark.parametrize(
    ("shown", "fresh", "is_older"),
    [
        # the glitch: the workflow's view at QA after the workshop's live "complete"
        (ahead(durable("qa_pending"), "complete"), durable("qa_pending"), True),
        # the workflow caught up: taken
        (ahead(durable("qa_pending"), "complete"), durable("complete"), False),
        # the same moment again (a re-read, a rating added): taken
        (durable("complete"), durable("complete"), False),
        (durable("engraving"), durable("engraving"), False),
        # a later live status over the same timeline: taken (arrival order within one step)
        (ahead(durable("queued"), "engraving"), ahead(durable("queued"), "qa_pending"), False),
        # a failed check sends the item back to the queue: newer, though an earlier stage
        (durable("qa_pending"), durable(*RETRIED), False),
        (durable(*RETRIED), durable("qa_pending"), True),
        # an end state is never followed by one that is not, however long its timeline
        (durable("received", "cancelled"), durable(*RETRIED, "engraving"), True),
        (ahead(durable("engraving"), "complete"), durable("engraving"), True),
        # one end state after another, when no older: the workflow decides how a job ends
        (ahead(durable("qa_pending"), "complete"), durable(*STAGES[:5], "failed"), False),
    ],
)
def test_older(shown: dict[str, Any], fresh: dict[str, Any], is_older: bool) -> None:
    assert live.older(shown, fresh) is is_older


@pytest.mark.parametrize(
    "timeline",
    [None, "received", b"x", 3, {"status": "received"}],
    ids=["missing", "str", "bytes", "int", "mapping"],
)
def test_a_view_without_a_usable_timeline_cannot_be_placed(timeline: Any) -> None:
    view = {"status": "engraving", "timeline": timeline}
    assert live.rank(view) is None
    # only the end-state rule applies to it
    assert not live.older(durable("engraving"), view)
    assert not live.older(view, durable("received"))
    assert live.older({"status": "complete", "timeline": timeline}, view)


@pytest.mark.parametrize(
    "entries",
    [[None], ["qa_pending"], [{"at": "x"}], [{"status": 5}]],
    ids=["none", "str", "no-status", "bad-status"],
)
def test_broken_timeline_entries_count_but_never_match(entries: list[Any]) -> None:
    # a broken last entry cannot say the view caught up with its status: half a step ahead
    assert live.rank({"status": "qa_pending", "timeline": entries}) == 3


def test_a_view_without_a_status_is_not_an_end_state() -> None:
    assert live.older(durable("complete"), {"timeline": []})
    assert not live.older({"timeline": []}, durable("received"))


# --- the pump --------------------------------------------------------------------------------


class Events:
    """A subscription the test feeds status events into."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def get(self) -> dict[str, Any]:
        return await self.queue.get()


class GatedClock:
    """``asyncio`` as the pump sees it, except that its re-read timer waits for the test."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()

    def module(self) -> types.SimpleNamespace:
        names = {k: getattr(asyncio, k) for k in dir(asyncio) if not k.startswith("_")}
        return types.SimpleNamespace(**{**names, "sleep": self.sleep})

    async def sleep(self, delay: float) -> None:
        await self.gate.wait()
        self.gate.clear()


async def until(check: Callable[[], bool], what: str) -> None:
    for _ in range(2000):
        if check():
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"never happened: {what}")


async def test_the_re_read_never_sends_the_workflows_older_view(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = GatedClock()
    monkeypatch.setattr(live, "asyncio", clock.module())
    workflow = {"view": durable("engraving")}
    reads = 0

    async def refresh() -> dict[str, Any] | None:
        nonlocal reads
        reads += 1
        return dict(workflow["view"])

    ws, closing, events = FakeSocket(), asyncio.Event(), Events()
    pump = asyncio.create_task(
        live.pump(ws, events, None, durable("engraving"), refresh, closing)  # type: ignore[arg-type]
    )
    # engraving is live: the pump's re-read timer is running (held at the gate)
    events.queue.put_nowait({"job_id": "J-1", "status": "qa_pending", "seq": 7})
    await until(lambda: len(ws.sent) == 1, "qa_pending sent")
    workflow["view"] = durable("qa_pending")  # the workflow records QA; the workshop is on
    events.queue.put_nowait({"job_id": "J-1", "status": "complete", "seq": 8})
    await until(lambda: len(ws.sent) == 2, "the workshop's complete sent")
    clock.gate.set()  # the re-read from engraving comes due: it finds the workflow at QA
    await until(lambda: reads == 3, "the re-read")
    await until(lambda: not clock.gate.is_set(), "the timer passed")
    workflow["view"] = durable("complete")
    events.queue.put_nowait({"job_id": "J-1", "status": "complete", "seq": 20})
    await until(lambda: len(ws.sent) == 3, "the workflow's complete sent")
    closing.set()
    await asyncio.wait_for(pump, 5)
    assert [m["status"] for m in ws.sent] == ["qa_pending", "complete", "complete"]
    # the workflow's own "complete" re-read its view: the page gets the steps' final times
    assert [live.rank(m) for m in ws.sent] == [9, 11, 12]
    assert reads == 4
