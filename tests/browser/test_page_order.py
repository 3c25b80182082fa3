"""The customer page's script keeps the newest view, whatever order the views arrive in.

A workshop's live status reaches the page before the workflow records it, and a view read in
between can land after it: the page once showed "Complete", then the workflow's older view (back
at the quality check), then "Complete" again. Here the page (the real page and script, in
headless Chromium) talks to a scripted Order API that sends exactly such sequences over a real
WebSocket and real HTTP, so each ordering is played deterministically; the whole running flow is
in test_customer_page.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI, WebSocket, WebSocketDisconnect
from fastapi.responses import JSONResponse, Response

from crown_edge.cloud import live, pages
from crown_edge.cloud.server import AsgiServer
from crown_edge.cloud.words import customer_view
from tests.browser.conftest import DESKTOP, PHONE
from tests.browser.test_customer_page import CustomerPage

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]

JOB, TOKEN = "J-ORDER-1", "t0k3n"
WAIT_MS = 20_000
STAGES = ("received", "validated", "queued", "engraving", "qa_pending", "complete")
RETRIED = (*STAGES[:5], "qa_failed", "queued")


def durable(*path: str, **extra: Any) -> dict[str, Any]:
    """The workflow's view after the statuses of ``path`` (a stage name alone: the usual way
    there from ``received``), with its steps as the workflow computes them."""
    if len(path) == 1 and path[0] in STAGES:
        path = STAGES[: STAGES.index(path[0]) + 1]
    timeline = [{"status": s, "at": f"2026-12-01T08:{n:02d}:00+00:00"} for n, s in enumerate(path)]
    view = {
        "job_id": JOB,
        "status": path[-1],
        "item_id": "plaque-a5",
        "text": ["Club Champion", "2026"],
        "timeline": timeline,
        **extra,
    }
    view["steps"] = pages.timeline_steps({**view, "steps": []})
    return view


def ahead(view: dict[str, Any], status: str) -> dict[str, Any]:
    """A live event's status laid over ``view``, as the Order API's pump sends it."""
    return live.overlay(view, {"job_id": JOB, "status": status})


@dataclass
class ScriptedApi:
    """The Order API's customer routes, answering what the test says, in the order it says."""

    first: dict[str, Any]
    #: what GET /orders/{id} answers (the workflow's view as the test sets it)
    current: dict[str, Any] | None = None
    #: POST …/rating: 409 with this reason, or 200 with ``current``
    refuse_rating: str | None = None
    pushes: asyncio.Queue[str] = field(default_factory=asyncio.Queue)
    reads: int = 0

    def push(self, message: dict[str, Any] | str) -> None:
        """Send ``message`` over the page's WebSocket (a string goes as it is)."""
        text = message if isinstance(message, str) else json.dumps(customer_view(message))
        self.pushes.put_nowait(text)

    async def _send(self, socket: WebSocket) -> None:
        while True:
            await socket.send_text(await self.pushes.get())

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.get(f"/status/{JOB}")
        async def page() -> Response:
            html = pages.status_page(JOB, self.first, TOKEN)
            headers = {"Content-Security-Policy": pages.PAGE_CSP}
            return Response(html, headers=headers, media_type="text/html; charset=utf-8")

        @app.get("/static/status.js")
        async def script() -> Response:
            return Response(pages.STATUS_JS, media_type="text/javascript; charset=utf-8")

        @app.get(f"/orders/{JOB}")
        async def order() -> Response:
            self.reads += 1
            return JSONResponse(customer_view(self.current or self.first))

        @app.post(f"/orders/{JOB}/rating")
        async def rating() -> Response:
            if self.refuse_rating is not None:
                return JSONResponse({"error": "refused", "reasons": [self.refuse_rating]}, 409)
            return JSONResponse(customer_view(self.current or self.first))

        @app.websocket(f"/ws/jobs/{JOB}")
        async def ws(socket: WebSocket) -> None:
            await socket.accept()
            await socket.send_text(json.dumps(customer_view(self.first)))
            sender = asyncio.create_task(self._send(socket))
            try:  # until the page goes (its close ends the server's shutdown at once)
                while (await socket.receive())["type"] != "websocket.disconnect":
                    pass
            finally:
                sender.cancel()
                with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect):
                    await sender

        return app


#: Records every status and timeline the page shows (a MutationObserver: each WebSocket
#: message or fetch answer is its own task, so every render is seen).
RECORD = """() => {
  window.shown = [];
  const rec = () => window.shown.push([
    document.getElementById('status').textContent,
    [...document.querySelectorAll('#timeline li')].map(li => li.className)]);
  rec();
  new MutationObserver(rec).observe(document.getElementById('job'),
    {subtree: true, childList: true, characterData: true, attributes: true});
  const json = Response.prototype.json;
  window.bodies = 0;  // fetch answers read: the page's own handler runs in the same task
  Response.prototype.json = function () {
    return json.call(this).then(v => { window.bodies += 1; return v; });
  };
}"""
#: One macrotask later: every promise callback queued before has run.
SETTLE = "() => new Promise(resolve => setTimeout(resolve, 0))"


@asynccontextmanager
async def served(
    browser: Any, api: ScriptedApi, artifacts: Path, viewport: dict[str, int] = DESKTOP
) -> AsyncIterator[CustomerPage]:
    async with AsgiServer(api.app()) as server:
        context = await browser.new_context(viewport=viewport, device_scale_factor=1)
        try:
            page = await context.new_page()
            tab = CustomerPage(page, artifacts)
            await page.goto(f"{server.url}/status/{JOB}?token={TOKEN}")
            await page.wait_for_selector("#live:not(:empty)", timeout=WAIT_MS)
            await page.evaluate(RECORD)
            yield tab
        finally:
            await context.close()


async def shown(tab: CustomerPage) -> list[tuple[str, list[str]]]:
    return [(s, c) for s, c in await tab.page.evaluate("window.shown")]


async def wait_status(tab: CustomerPage, words: str) -> None:
    await tab.page.wait_for_function(
        "w => document.getElementById('status').textContent === w", arg=words, timeout=WAIT_MS
    )


def never_back(seen: list[tuple[str, list[str]]], after: str) -> list[str]:
    """The statuses shown once ``after`` was first shown."""
    statuses = [s for s, _ in seen]
    return statuses[statuses.index(after) :]


#: A complete job without a design: every step done but design and approval.
ALL_DONE = ["done", "skipped", "skipped", "done", "done", "done"]


async def test_a_live_complete_then_the_workflows_older_view(browser: Any, artifacts: Path) -> None:
    engraving = durable("engraving", progress=0.5)
    api = ScriptedApi(first=engraving, current=engraving)
    async with served(browser, api, artifacts) as tab:
        page = tab.page
        assert await tab.status() == "Engraving"
        api.push(ahead(engraving, "qa_pending"))  # the workshop's QA, before the workflow's
        await wait_status(tab, "Quality check")
        qa = durable("qa_pending")
        api.current = qa
        api.push(ahead(qa, "complete"))  # the workshop's complete, before the workflow's
        await page.wait_for_selector("#rating", state="visible", timeout=WAIT_MS)
        # the workflow's view read before it caught up: older, over the WebSocket …
        api.push(qa)
        api.push({**ahead(qa, "complete"), "due_date": "2026-12-24"})  # in order behind it
        await page.wait_for_selector("#due-row", state="visible", timeout=WAIT_MS)
        # … and over HTTP: a rating the workflow refuses (not complete yet) re-reads the view
        api.refuse_rating = "job J-ORDER-1 cannot be rated now (qa_pending)"
        bodies = await page.evaluate("window.bodies")
        await page.click("label:has(input[name=stars][value='4'])")
        await page.click("#rating-send")
        await page.wait_for_function("n => window.bodies >= n", arg=bodies + 2, timeout=WAIT_MS)
        await page.evaluate(SETTLE)
        assert api.reads >= 1
        assert await tab.status() == "Complete"
        assert await page.get_attribute("#message", "class") == "message error"
        assert "try again in a minute" in str(await page.text_content("#message"))
        # Chromium reports the refused POST on the console; nothing else may be there
        tab.errors = [e for e in tab.errors if "409" not in e]
        await tab.shot("order-live-complete")
        # the workflow catches up; the rating goes through
        done = durable("complete")
        api.current, api.refuse_rating = {**done, "rating": {"stars": 4, "comment": ""}}, None
        api.push(done)
        await page.click("#rating-send")
        await page.wait_for_selector("#rated", state="visible", timeout=WAIT_MS)
        seen = await shown(tab)
        assert set(never_back(seen, "Complete")) == {"Complete"}, seen
        timelines = [c for s, c in seen if s == "Complete"]
        assert timelines and all(c == ALL_DONE for c in timelines), seen
        assert "4 of 5" in str(await page.text_content("#rated"))
        await tab.shot("order-rated")
    phone_api = ScriptedApi(first=ahead(qa, "complete"), current=qa)
    async with served(browser, phone_api, artifacts, PHONE) as phone:
        phone_api.push(qa)
        phone_api.push({**ahead(qa, "complete"), "due_date": "2026-12-24"})
        await phone.page.wait_for_selector("#due-row", state="visible", timeout=WAIT_MS)
        assert set(never_back(await shown(phone), "Complete")) == {"Complete"}
        await phone.shot("order-live-complete")


async def test_an_end_state_stays_and_a_retry_still_moves_the_page_on(
    browser: Any, artifacts: Path
) -> None:
    qa = durable("qa_pending")
    api = ScriptedApi(first=qa)
    async with served(browser, api, artifacts) as tab:
        page = tab.page
        assert await tab.status() == "Quality check"
        # a failed check sends the item back to the queue: an earlier stage, a newer view
        api.push(durable(*RETRIED, queue_position=2))
        await wait_status(tab, "Queued for engraving")
        assert await page.is_visible("#queue")
        # the view from before the failed check, arriving late: older, dropped
        api.push(qa)
        api.push(ahead(durable(*RETRIED), "engraving"))  # in order behind it
        await wait_status(tab, "Engraving")
        statuses = [s for s, _ in await shown(tab)]
        assert "Quality check" not in statuses[1:], statuses
        # cancelled: nothing that is not an end state replaces it, however long its timeline
        api.push(durable(*RETRIED, "cancelled"))
        await wait_status(tab, "Cancelled")
        api.push(durable(*RETRIED, "cancelled", "engraving", "qa_pending"))
        api.push({"job_id": JOB, "status": "engraving", "progress": 0.9})  # a bare event too
        api.push(durable(*RETRIED, "cancelled", reason="cancelled by the customer"))  # sync
        await page.wait_for_selector("#reason:not([hidden])", timeout=WAIT_MS)
        assert set(never_back(await shown(tab), "Cancelled")) == {"Cancelled"}
        classes = await page.eval_on_selector_all("#timeline li", "ls => ls.map(l => l.className)")
        assert "stopped" in classes and "current" not in classes, classes
        await tab.check()


#: WebSocket messages that are no view: each is dropped.
NOT_VIEWS = [
    "not json {",
    "null",
    "[1, 2]",
    "42",
    '"qa_pending"',
    "{}",
    json.dumps({"status": 5, "timeline": []}),
    json.dumps({"status": None}),
]
#: Views whose lists are not lists, or hold junk: shown, without stopping the page.
ODD_VIEWS = [
    json.dumps(
        {
            "job_id": JOB,
            "status": "qa_pending",
            "label": "Quality check",
            "timeline": "x",
            "steps": {"name": "qa"},
            "text": "not a list",
            "alternatives": 3,
        }
    ),
    json.dumps(
        {"job_id": JOB, "status": "qa_pending", "timeline": [None, 3, "x"], "steps": [None, 1]}
    ),
]


async def test_broken_messages_change_nothing_and_break_nothing(
    browser: Any, artifacts: Path
) -> None:
    engraving = durable("engraving", progress=0.25)
    api = ScriptedApi(first=engraving)
    async with served(browser, api, artifacts) as tab:
        page = tab.page
        for message in NOT_VIEWS:
            api.push(message)
        api.push(durable("engraving", progress=0.5))  # in order behind them
        await page.wait_for_selector("#progress-text:has-text('50% engraved')", timeout=WAIT_MS)
        assert {s for s, _ in await shown(tab)} == {"Engraving"}
        for message in ODD_VIEWS:
            api.push(message)
        await page.wait_for_function(
            "w => window.shown.some(s => s[0] === w)", arg="Quality check", timeout=WAIT_MS
        )
        api.push(durable("complete"))
        await page.wait_for_selector("#rating", state="visible", timeout=WAIT_MS)
        classes = await page.eval_on_selector_all("#timeline li", "ls => ls.map(l => l.className)")
        assert classes == ALL_DONE, classes
        await tab.check()  # no page error, nothing raw, nothing wider than the screen


async def test_an_offer_shows_its_items_and_skips_junk_among_them(
    browser: Any, artifacts: Path
) -> None:
    offers = [{"item_id": "plaque-a5", "name": "Walnut plaque A5", "material": "walnut"}]
    blocked = durable(
        "received", "blocked", reason="no_inventory", awaiting="alternative", alternatives=offers
    )
    api = ScriptedApi(first=blocked, current=blocked)
    async with served(browser, api, artifacts) as tab:
        page = tab.page
        await page.wait_for_selector("#alt-list .choice", state="visible", timeout=WAIT_MS)
        assert await tab.status() == "On hold"
        more = [*offers, {"item_id": "cup-silver", "name": "Silver cup"}]
        api.push(json.dumps({**customer_view(blocked), "alternatives": [None, 3, "x", *more]}))
        await page.wait_for_function(
            "() => document.querySelectorAll('#alt-list .choice').length === 2", timeout=WAIT_MS
        )
        names = await page.eval_on_selector_all(
            "#alt-list .choice span", "ss => ss.map(s => s.firstChild.textContent)"
        )
        assert names == ["Walnut plaque A5", "Silver cup"], names
        await tab.check()
