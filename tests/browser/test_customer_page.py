"""The customer's page in headless Chromium against the whole running flow.

A customer follows an order live (the progress bar moves while the item is engraved), answers a
design (request changes, then approve), picks a replacement for an out-of-stock item (or cancels)
and rates a finished order; each time the page moves on by itself. Every page is also checked at
phone width (no sideways scrolling, the preview fits) and for raw status codes or CSP errors,
and screenshotted at desktop and phone width.
"""

from __future__ import annotations

import asyncio
import re
import urllib.request
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from hil.rig import Rig
from tests.browser.conftest import DESKTOP, PHONE

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]

#: Codes the customer must never read (status words, reasons, step names).
RAW_CODES = re.compile(
    r"\b(no_inventory|pending_approval|revision_requested|qa_pending|qa_failed|text_does_not_fit"
    r"|unknown_item|NotAwaiting\w*|NotOffered|AlreadyRated|undefined|null|NaN)\b"
)
WAIT_MS = 60_000
#: The engraving step has begun (a fast run may already be past it when the page looks).
ENGRAVING_REACHED = "#step-engraving.current, #step-engraving.done"


class CustomerPage:
    """One browser tab on a customer link, collecting what went wrong in it."""

    def __init__(self, page: Any, artifacts: Path) -> None:
        self.page = page
        self.artifacts = artifacts
        self.errors: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda exc: self.errors.append(f"page error: {exc}"))

    def _console(self, message: Any) -> None:
        if message.type == "error":
            self.errors.append(f"console: {message.text} at {message.location.get('url')}")

    async def status(self) -> str:
        return str(await self.page.text_content("#status")).strip()

    async def visible_text(self) -> str:
        return str(await self.page.inner_text("body"))

    async def check(self) -> None:
        """Nothing raw, nothing broken, nothing wider than the screen."""
        text = await self.visible_text()
        assert not RAW_CODES.search(text), RAW_CODES.findall(text)
        wide = await self.page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert wide <= 0, f"the page scrolls sideways by {wide}px"
        assert not self.errors, self.errors

    async def shot(self, name: str) -> None:
        width = self.page.viewport_size["width"]
        kind = "phone" if width < 600 else "desktop"
        await self.check()
        await self.page.screenshot(path=str(self.artifacts / f"{name}-{kind}.png"), full_page=True)


#: Records every status the page shows, in order (a MutationObserver sees each render).
RECORD_STATUS = """() => {
  const status = document.getElementById('status');
  window.statuses = [status.textContent];
  new MutationObserver(() => window.statuses.push(status.textContent))
    .observe(status, {subtree: true, childList: true, characterData: true});
}"""


@asynccontextmanager
async def opened(
    browser: Any, url: str, artifacts: Path, viewport: dict[str, int] = DESKTOP
) -> AsyncIterator[CustomerPage]:
    context = await browser.new_context(viewport=viewport, device_scale_factor=1)
    try:
        page = await context.new_page()
        tab = CustomerPage(page, artifacts)
        await page.goto(url, wait_until="domcontentloaded")
        await page.wait_for_selector("#live:not(:empty)", timeout=WAIT_MS)  # WebSocket open
        yield tab
    finally:
        await context.close()


async def both_widths(browser: Any, url: str, artifacts: Path, name: str, ready: str) -> None:
    """A fresh tab at phone width on the same page: checked, then screenshotted."""
    async with opened(browser, url, artifacts, PHONE) as phone:
        await phone.page.wait_for_selector(ready, state="visible", timeout=WAIT_MS)
        await phone.shot(name)


#: Simulated time scale of the lasers while the page watches an engraving: a run takes long
#: enough for several progress reports (the workshop reports progress every few seconds).
SLOW_MACHINES = 2.0


@asynccontextmanager
async def slow_lasers(rig: Rig) -> AsyncIterator[None]:
    sims = [m.simulator for m in rig.stack.daemon.machines.values() if hasattr(m, "simulator")]
    scales = [sim.time_scale for sim in sims]
    for sim in sims:
        sim.time_scale = SLOW_MACHINES
    try:
        yield
    finally:
        for sim, scale in zip(sims, scales, strict=True):
            sim.time_scale = scale


async def test_live_progress_then_rating(browser: Any, stack_rig: Rig, artifacts: Path) -> None:
    job = await stack_rig.order(text=["Club Champion", "2026"])
    url = stack_rig.stack.customer_link(job)
    async with slow_lasers(stack_rig), opened(browser, url, artifacts) as tab:
        page = tab.page
        await page.evaluate(RECORD_STATUS)
        await page.wait_for_selector("#progress-row", state="visible", timeout=WAIT_MS)
        assert await tab.status() == "Engraving"
        seen: list[int] = []
        shot = False
        while await page.is_visible("#progress-row"):
            value = int(await page.eval_on_selector("#progress", "e => e.value"))
            if not seen or value != seen[-1]:
                seen.append(value)
            if not shot and 0 < value < 100:
                await tab.shot("engraving")
                await both_widths(browser, url, artifacts, "engraving", "#progress-row")
                shot = True
            await asyncio.sleep(0.05)
        between = [v for v in seen if 0 < v < 100]
        # several values while engraving, never backwards, without a reload
        assert len(between) >= 2, seen
        assert seen == sorted(seen), seen

        await page.wait_for_selector("#rating", state="visible", timeout=WAIT_MS)
        # the workshop's "complete" reaches the page before the workflow records it; the page
        # shows it at once and never goes back to an older view (test_page_order.py plays
        # each ordering)
        classes = await page.eval_on_selector_all(
            "#timeline li", "items => items.map(li => li.className)"
        )
        assert classes == ["done", "skipped", "skipped", "done", "done", "done"], classes
        assert await tab.status() == "Complete"
        await tab.shot("complete")
        await both_widths(browser, url, artifacts, "complete", "#rating")

        await page.click("#rating-send")
        assert "choose 1 to 5" in str(await page.text_content("#message"))
        await page.click("label:has(input[name=stars][value='5'])")
        await page.fill("#rating-comment", "Lovely work, thank you")
        before = await asyncio.to_thread(_ratings, stack_rig)
        await page.click("#rating-send")
        await page.wait_for_selector("#rated", state="visible", timeout=WAIT_MS)
        # the rating feeds the customer-satisfaction score on the Order API's /metrics
        count, stars = await asyncio.to_thread(_ratings, stack_rig)
        assert (count, stars) == (before[0] + 1, before[1] + 5)
        assert "Thank you for your rating" in str(await page.text_content("#message"))
        assert "5 of 5" in str(await page.text_content("#rated"))
        await tab.shot("rated")
        statuses = [str(s) for s in await page.evaluate("window.statuses")]
        assert set(statuses[statuses.index("Complete") :]) == {"Complete"}, statuses
    view = await stack_rig.view(job)
    assert view["rating"]["stars"] == 5 and view["rating"]["comment"], view


async def test_approve_design_after_a_revision(
    browser: Any, stack_rig: Rig, artifacts: Path
) -> None:
    job = await stack_rig.order(
        item_id="acrylic-award", text=["Star Volunteer"], artwork_url="library:star"
    )
    url = stack_rig.stack.customer_link(job)
    async with opened(browser, url, artifacts) as tab:
        page = tab.page
        await page.wait_for_selector("#approval", state="visible", timeout=WAIT_MS)
        await page.wait_for_function(
            "document.getElementById('design-img').naturalWidth > 0", timeout=WAIT_MS
        )
        assert await tab.status() == "Waiting for your approval"
        await tab.shot("approval")
        async with opened(browser, url, artifacts, PHONE) as phone:
            await phone.page.wait_for_function(
                "document.getElementById('design-img').naturalWidth > 0", timeout=WAIT_MS
            )
            box = await phone.page.eval_on_selector(
                "#design-img", "e => e.getBoundingClientRect().right"
            )
            assert box <= PHONE["width"], f"the preview reaches {box}px on a 390px screen"
            await phone.shot("approval")

        await page.click("#changes")  # no comment: the page asks for one, nothing is sent
        assert "what you would like changed" in str(await page.text_content("#message"))
        assert await page.evaluate("document.activeElement.id") == "comment"
        await page.fill("#comment", "A larger star, please")
        await page.click("#changes")
        await page.wait_for_selector(
            "#message:has-text('revise the design')", state="visible", timeout=WAIT_MS
        )
        # the revised design comes back for approval by itself
        await page.wait_for_function(
            "document.getElementById('design-img').src.indexOf('rev=1') >= 0", timeout=WAIT_MS
        )
        await page.wait_for_selector("#approval", state="visible", timeout=WAIT_MS)
        await page.fill("#comment", "")
        await page.click("#approve")
        await page.wait_for_selector("#approval", state="hidden", timeout=WAIT_MS)
        assert "design is approved" in str(await page.text_content("#message"))
        await page.wait_for_selector("#step-approval.done", timeout=WAIT_MS)
        await page.wait_for_selector(ENGRAVING_REACHED, timeout=WAIT_MS)
        assert await tab.status() in ("Design approved", "Queued for engraving", "Engraving")
        await tab.shot("approved")
    view = await stack_rig.view(job)
    assert view["design_revision"] == 1 and "approved" in view["history"], view


async def test_out_of_stock_pick_an_alternative_or_cancel(
    browser: Any, stack_rig: Rig, artifacts: Path
) -> None:
    await stack_rig.ctl("inventory.set", item_id="plaque-small", available=0)
    job = await stack_rig.order(item_id="plaque-small", text=["Volunteer"])
    url = stack_rig.stack.customer_link(job)
    async with opened(browser, url, artifacts) as tab:
        page = tab.page
        await page.wait_for_selector("#alt-list .choice", state="visible", timeout=WAIT_MS)
        assert await tab.status() == "On hold"
        assert "out of stock" in str(await page.text_content("#reason"))
        await tab.shot("out-of-stock")
        await both_widths(browser, url, artifacts, "out-of-stock", "#alt-list .choice")
        choice = page.locator("#alt-list .choice").last
        name = str(await choice.locator("span").first.evaluate("e => e.firstChild.textContent"))
        await choice.click()
        await page.click("#alt-choose")
        await page.wait_for_selector("#alternatives", state="hidden", timeout=WAIT_MS)
        assert f"go ahead with {name}" in str(await page.text_content("#message"))
        assert await tab.status() != "On hold"
        assert await page.text_content("#item") == name
        await page.wait_for_selector(ENGRAVING_REACHED, timeout=WAIT_MS)
        await tab.shot("alternative-chosen")
    view = await stack_rig.view(job)
    assert view["item_id"] != "plaque-small", view

    job = await stack_rig.order(item_id="plaque-small", text=["Helper"])
    url = stack_rig.stack.customer_link(job)
    async with opened(browser, url, artifacts) as tab:
        page = tab.page
        await page.wait_for_selector("#alternatives", state="visible", timeout=WAIT_MS)
        await page.click("#alt-cancel")  # asks first
        await page.wait_for_selector("#alt-confirm", state="visible")
        await page.click("#alt-cancel-no")
        await page.wait_for_selector("#alt-confirm", state="hidden")
        await page.click("#alt-cancel")
        await page.click("#alt-cancel-yes")
        await page.wait_for_selector("#status:has-text('Cancelled')", timeout=WAIT_MS)
        assert "You cancelled the order." in str(await page.text_content("#reason"))
        await tab.shot("cancelled")
    assert (await stack_rig.view(job))["status"] == "cancelled"


def _ratings(rig: Rig) -> tuple[float, float]:
    """``crown_customer_rating_stars`` count and sum on the Order API's /metrics."""
    request = urllib.request.Request(
        f"{rig.stack.api_url}/metrics", headers={"Authorization": f"Bearer {rig.stack.api_key}"}
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        text = answer.read().decode()
    found = {"count": 0.0, "sum": 0.0}
    for family in text_string_to_metric_families(text):
        if family.name == "crown_customer_rating_stars":
            for sample in family.samples:
                for key in found:
                    if sample.name.endswith(f"_{key}"):
                        found[key] = sample.value
    return found["count"], found["sum"]
