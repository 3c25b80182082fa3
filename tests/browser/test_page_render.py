"""The customer page's server-side rendering, without a browser: what is shown, what never is."""

from __future__ import annotations

import html
import json
import re
from typing import Any

import pytest

from crown_edge.cloud import pages
from crown_edge.cloud.words import STATUS_WORDS

TOKEN = "t0k3n"


def _render(**view: Any) -> str:
    return pages.status_page("J-1", {"job_id": "J-1", **view}, TOKEN)


def _visible(page: str) -> str:
    """The page's text as a reader sees it (no tags, no attributes, no script or style)."""
    body = re.sub(r"<style>.*?</style>|<script.*?</script>", "", page, flags=re.S)
    return html.unescape(re.sub(r"<[^>]+>", " ", body))


@pytest.mark.parametrize("status", sorted(STATUS_WORDS))
def test_every_status_renders_in_customer_words(status: str) -> None:
    page = _render(status=status, reason="no_inventory", progress=0.4, queue_position=2)
    text = _visible(page)
    assert STATUS_WORDS[status][0] in text
    assert not re.search(r"\b[a-z]+_[a-z_]+\b", text), re.findall(r"\b[a-z]+_[a-z_]+\b", text)


def test_internal_notes_never_reach_the_page() -> None:
    page = _render(
        status="qa_failed",
        reason="QA: scorch mark near the 2, tech Bob",
        notes="internal",
        machine_id="laser-2",
        qa_notes="scorched",
    )
    for secret in ("scorch", "Bob", "laser-2", "internal"):
        assert secret not in page


def test_values_are_escaped() -> None:
    page = _render(status="complete", text=["<script>alert(1)</script>", 'a"b'], item_id="<b>")
    assert "<script>alert" not in page
    assert "&lt;b&gt;" in page and "<b>" not in page
    assert page.count("<script") == 1  # the one static script


def test_engraving_shows_progress_and_the_facts() -> None:
    page = _render(
        status="engraving",
        progress=0.42,
        item_id="plaque-a5",
        text=["Club Champion", "2026"],
        due_date="2026-12-24",
        eta="2026-12-20T10:30:00Z",
    )
    assert 'value="42"' in page and "42% engraved" in page
    text = _visible(page)
    assert "Walnut plaque with aluminium plate, A5" in text  # the catalogue's name, not the id
    assert "Club Champion" in text and "24 Dec 2026" in text and "20 Dec 2026, 10:30 UTC" in text
    assert 'id="progress-row" class="progress-row" hidden' not in page


def test_actions_show_only_when_the_job_waits_for_them() -> None:
    def shown(page: str, ident: str) -> bool:
        tag = re.search(rf'<[a-z]+ id="{ident}"[^>]*>', page)
        assert tag is not None, ident
        return " hidden" not in tag.group(0)

    page = _render(status="pending_approval", design_url="/designs/J-1.svg")
    assert shown(page, "approval") and shown(page, "design")
    assert not shown(page, "alternatives") and not shown(page, "rating")
    alts = [{"item_id": "cup-silver", "name": "Silver cup", "material": "brass"}]
    page = _render(status="blocked", reason="no_inventory", alternatives=alts)
    assert shown(page, "alternatives") and "Silver cup" in page
    assert "The item you chose is out of stock." in page
    page = _render(status="complete")
    assert shown(page, "rating") and not shown(page, "rated")
    page = _render(status="complete", rating={"stars": 4, "comment": "ok"})
    assert not shown(page, "rating") and "4 of 5 stars" in page


def test_timeline_moves_on_with_the_status() -> None:
    steps = [
        {"name": "received", "state": "done", "at": "2026-01-01T10:00:00Z"},
        {"name": "design", "state": "skipped"},
        {"name": "approval", "state": "skipped"},
        {"name": "engraving", "state": "current", "at": "2026-01-01T10:05:00Z"},
        {"name": "qa", "state": "pending"},
        {"name": "complete", "state": "pending"},
    ]
    states = [s["state"] for s in pages.timeline_steps({"status": "engraving", "steps": steps})]
    assert states == ["done", "skipped", "skipped", "current", "pending", "pending"]
    # a live event newer than the steps: quality check has begun
    moved = pages.timeline_steps({"status": "qa_pending", "steps": steps})
    assert [s["state"] for s in moved] == [
        "done",
        "skipped",
        "skipped",
        "done",
        "current",
        "pending",
    ]
    ended = pages.timeline_steps({"status": "cancelled", "steps": steps})
    assert [s["state"] for s in ended][3] == "stopped"
    fresh = pages.timeline_steps({"status": "received"})
    assert [s["state"] for s in fresh] == ["current"] + ["pending"] * 5


def test_the_script_gets_its_words_and_rules_from_the_page() -> None:
    page = _render(status="received")
    raw = re.search(r'data-config="([^"]*)"', page)
    assert raw is not None
    config = json.loads(html.unescape(raw.group(1)))
    assert config["steps"] == ["received", "design", "approval", "engraving", "qa", "complete"]
    assert config["step_of"]["qa_pending"] == "qa"
    assert "cancelled" in config["ended"]
    assert pages.STATUS_JS.startswith("/*") and "textContent" in pages.STATUS_JS
    assert "innerHTML" not in pages.STATUS_JS and "eval(" not in pages.STATUS_JS


def test_the_page_says_which_workshop_makes_the_item() -> None:
    page = _render(status="queued", item_id="plaque-a5", shop_id="shop-2")
    assert "Made at" in _visible(page) and "shop-2" in _visible(page)
    assert 'id="shop-row" class="row" hidden' not in page
    unknown = _render(status="received", item_id="plaque-a5")
    assert 'id="shop-row" class="row" hidden' in unknown
