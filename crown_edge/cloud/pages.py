"""The customer's order page: server-rendered HTML, kept live by a small script over WebSocket.

What the customer sees, top to bottom: the status in customer words (:mod:`crown_edge.cloud.words`)
with a progress bar while the item is engraved; the action the job waits for, if any (Approve /
Request changes on a design preview, a replacement item or cancelling when the item is out of
stock, a 1-5 rating once complete); the order itself (item, engraving text, due date, ETA); and
the timeline of its six steps with their times. The script (``static/status.js``) follows the
job's WebSocket, calls the action routes with the page's own order token and redraws from every
answer; without it the page still shows the state it was rendered with.

Safety: the view is cut down by :func:`~crown_edge.cloud.words.customer_view` before anything is
rendered (no technician notes, machine ids or free-text reasons reach the page); every value is
escaped here and the script only ever sets ``textContent``. No script is inline, so the page runs
under :data:`PAGE_CSP`; the style sheet is inline because the Order API serves one static file
(``/static/status.js``), and the policy allows inline styles, nothing more.

Static files live in ``crown_edge/cloud/static/`` and ship as package data.
"""

from __future__ import annotations

import datetime as dt
import functools
import html
import json
from collections.abc import Mapping, Sequence
from importlib import resources
from typing import Any, Final
from urllib.parse import quote

from crown_edge.catalog import load_catalog
from crown_edge.cloud.words import customer_view
from crown_edge.errors import CrownEdgeError
from crown_edge.workflow.view import ENDED, STEP_OF, STEPS

PAGE_CSP: Final = (
    "default-src 'self'; connect-src 'self'; img-src 'self' data:; "
    "style-src 'self' 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)

#: How often the script re-reads the job's view while it is queued or engraving (the WebSocket
#: carries status changes; progress and queue position arrive with the view).
POLL_MS: Final = 2000

#: The timeline's steps (names of :data:`crown_edge.workflow.view.STEPS`) in customer words.
STEP_LABELS: Final[dict[str, str]] = {
    "received": "Order received",
    "design": "Design",
    "approval": "Your approval",
    "engraving": "Engraving",
    "qa": "Quality check",
    "complete": "Ready",
}

#: A step's state, read out after its name (screen readers; the dot shows it on screen).
STEP_STATES: Final[dict[str, str]] = {
    "done": "done",
    "current": "in progress",
    "pending": "to come",
    "skipped": "not needed",
    "stopped": "stopped here",
}

#: What the script says to the customer (one place for every sentence it shows).
WORDS: Final[dict[str, Any]] = {
    "live": "Live: this page updates by itself.",
    "reconnecting": "Reconnecting… this page will update again shortly.",
    "sending": "Sending…",
    "approved": "Thank you! Your design is approved and goes to the workshop.",
    "changes": "Thank you! Our designers will revise the design and show you a new preview.",
    "say_what": "Please tell us in the comment box what you would like changed.",
    "chosen": "Thank you! We will go ahead with {item}.",
    "pick_one": "Please choose one of the items first.",
    "cancelled": "Your order is cancelled. We are sorry it did not work out.",
    "pick_stars": "Please choose 1 to 5 stars.",
    "rated": "Thank you for your rating!",
    "invalid": "Something in your answer was not right; please check it and try again.",
    "gone": "We cannot find this order any more. Please use the link in your latest email.",
    "unavailable": "We could not reach the shop just now; please try again in a minute.",
    "refused": {
        "approval": "This design no longer waits for your answer; the page shows where it is now.",
        "alternative": "This order no longer waits for a choice; the page shows where it is now.",
        "rating": "This order cannot be rated right now.",
    },
    "refused_any": "That is not possible right now; the page shows where your order is.",
}

#: Refusal texts of the workflow (``crown_edge.workflow.view`` checks) → customer words.
REFUSALS: Final[tuple[tuple[str, str], ...]] = (
    ("already rated", "You have already rated this order. Thank you!"),
    # the workflow refuses a rating both before it has recorded the order as complete (the
    # workshop's "complete" reaches the page first) and after the rating window: say neither
    (
        "cannot be rated",
        "This order cannot be rated just now. If it has only just been finished, please try "
        "again in a minute.",
    ),
    ("was not offered", "That item is no longer on offer; please choose another."),
    ("comment too long", "Your comment is too long; please shorten it."),
    ("not awaiting approval", WORDS["refused"]["approval"]),
    ("not waiting for an alternative", WORDS["refused"]["alternative"]),
)

_STATIC = resources.files("crown_edge.cloud").joinpath("static")
#: The page's script, served at ``/static/status.js``.
STATUS_JS: Final = _STATIC.joinpath("status.js").read_text("utf-8")
#: The page's style sheet (inline in the page, see the module docstring).
STATUS_CSS: Final = _STATIC.joinpath("status.css").read_text("utf-8")

_TERMINAL = frozenset({"complete", *ENDED})


@functools.cache
def _catalog_words() -> tuple[dict[str, str], dict[str, str]]:
    """Item names and material names of the packaged catalogue (fallback: the id itself)."""
    try:
        catalog = load_catalog()
    except CrownEdgeError:
        return {}, {}
    items = {item_id: item.name for item_id, item in catalog.items.items()}
    materials = {name: name.replace("-", " ") for name in catalog.materials}
    return items, materials


def item_name(item_id: str, alternatives: Sequence[Mapping[str, Any]] = ()) -> str:
    """The customer's name of an item: an offered alternative's, the catalogue's, or its id."""
    for alt in alternatives:
        if alt.get("item_id") == item_id and alt.get("name"):
            return str(alt["name"])
    return _catalog_words()[0].get(item_id, item_id)


def timeline_steps(view: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The six steps (name, state, at) to show for ``view``: its own ``steps`` moved on to its
    status (a live event can be newer than the steps). The script applies the same rules."""
    known: dict[str, Mapping[str, Any]] = {
        str(s.get("name")): s for s in view.get("steps") or () if isinstance(s, Mapping)
    }
    started: dict[str, str] = {}
    for entry in view.get("timeline") or ():
        if isinstance(entry, Mapping):
            reached = STEP_OF.get(str(entry.get("status")))
            if reached is not None and isinstance(entry.get("at"), str):
                started.setdefault(reached, entry["at"])
    status = str(view.get("status") or "received")
    here = STEPS.index(STEP_OF[status]) if status in STEP_OF else -1
    if here < 0:
        for index, name in enumerate(STEPS):
            if known.get(name, {}).get("state") in ("stopped", "current"):
                here = index
    if here < 0:
        for index, name in enumerate(STEPS):
            if name in started or known.get(name, {}).get("at"):
                here = index
    here = max(here, 0)
    out = []
    for index, name in enumerate(STEPS):
        step = known.get(name, {})
        at = step.get("at") or started.get(name)
        if index < here:
            state = "done" if at or step.get("state") == "done" else "skipped"
        elif index == here:
            state = "done" if status == "complete" else "stopped" if status in ENDED else "current"
        else:
            state = "skipped" if step.get("state") == "skipped" else "pending"
        out.append({"name": name, "state": state, "at": at if isinstance(at, str) else None})
    return out


def when(iso: str | None) -> str:
    """An ISO 8601 time as the page shows it before its script does (UTC, day and minute)."""
    if not iso:
        return ""
    try:
        if len(iso) == 10:
            day = dt.date.fromisoformat(iso)
            return f"{day.day} {day:%b %Y}"
        moment = dt.datetime.fromisoformat(iso.replace("Z", "+00:00"))
    except ValueError:
        return iso
    if moment.tzinfo is not None:
        moment = moment.astimezone(dt.UTC)
    return f"{moment.day} {moment:%b %Y, %H:%M} UTC"


def _time(iso: Any, ident: str = "") -> str:
    value = iso if isinstance(iso, str) else None
    attr = f' id="{ident}"' if ident else ""
    attr += f' datetime="{html.escape(value)}"' if value else ""
    return f"<time{attr}>{html.escape(when(value))}</time>"


def _hidden(on: bool) -> str:
    return "" if on else " hidden"


def status_page(job_id: str, view: Mapping[str, Any] | None, token: str) -> str:
    """The HTML page of one job; ``view`` is its state (raw or already cut down: both work)."""
    esc = html.escape
    shown = customer_view(view or {"job_id": job_id, "status": "received"})
    status = shown["status"]
    items, materials = _catalog_words()
    alternatives = shown.get("alternatives") or []
    config = {
        "steps": list(STEPS),
        "step_of": STEP_OF,
        "ended": sorted(ENDED),
        "step_states": STEP_STATES,
        "items": items,
        "materials": materials,
        "words": WORDS,
        "refusals": [list(r) for r in REFUSALS],
        "poll_ms": POLL_MS,
    }
    design_src = f"/designs/{quote(job_id)}.svg?token={quote(token)}"
    has_design = bool(shown.get("design_url"))
    engraving = status == "engraving"
    pct = round(100 * float(shown.get("progress") or 0.0))
    queue = shown.get("queue_position") if status == "queued" else None
    lines = [str(line) for line in shown.get("text") or ()]
    card = "complete" if status == "complete" else "ended" if status in ENDED else ""
    reason = shown.get("reason_text") or ""
    rating = shown.get("rating") if isinstance(shown.get("rating"), Mapping) else None

    current = ' aria-current="step"'
    steps_html = "".join(
        f'<li id="step-{s["name"]}" class="{s["state"]}"'
        f"{current if s['state'] == 'current' else ''}>"
        f'<span class="dot" aria-hidden="true"></span>'
        f'<span class="name">{esc(STEP_LABELS[s["name"]])}'
        f' <span class="state sr">{esc(STEP_STATES[s["state"]])}</span></span>'
        f'<span class="when">'
        f"{_time(s['at'] if s['state'] not in ('pending', 'skipped') else None)}</span></li>"
        for s in timeline_steps(shown)
    )
    stars = "".join(
        f'<label><input type="radio" name="stars" value="{n}" aria-label="{n} of 5 stars">'
        f"<span>{n} ★</span></label>"
        for n in range(1, 6)
    )
    alt_html = "".join(
        f'<label class="choice"><input type="radio" name="item" value="{esc(a["item_id"])}"'
        f"{' checked' if n == 0 else ''}><span>{esc(a.get('name') or a['item_id'])}"
        + (
            f"<small>{esc(materials.get(a['material'], a['material']))}</small>"
            if a.get("material")
            else ""
        )
        + "</span></label>"
        for n, a in enumerate(alternatives)
    )
    offer = status == "blocked" and shown.get("reason") == "no_inventory"
    until = shown.get("awaiting_until")
    eta_on = bool(shown.get("eta")) and status not in _TERMINAL
    queue_words = (
        ""
        if not queue
        else "Your item is next in line."
        if queue == 1
        else f"Your item is number {queue} in the queue."
    )
    plate = "".join(f"<span>{esc(line)}</span>" for line in lines)
    rated_words = f"You gave this order {rating['stars']} of 5 stars." if rating else ""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<link rel="icon" href="data:,">
<title>Order {esc(job_id)} — Crown Trophy</title>
<style>{STATUS_CSS}</style>
</head><body>
<header class="brand">Crown <span>Trophy</span></header>
<main id="job" data-job-id="{esc(job_id)}" data-token="{esc(token)}"
 data-view="{esc(json.dumps(shown))}" data-config="{esc(json.dumps(config))}">
<h1>Order {esc(job_id)}</h1>

<section id="status-card" class="card status-card {card}" aria-labelledby="status">
<div aria-live="polite" aria-atomic="true">
<p id="status" class="headline">{esc(shown["label"])}</p>
<p id="detail">{esc(shown["detail"])}</p>
</div>
<p id="reason"{_hidden(bool(reason))}>{esc(reason)}</p>
<div id="progress-row" class="progress-row"{_hidden(engraving)}>
<label for="progress">Engraving progress</label>
<progress id="progress" max="100" value="{pct}">{pct}%</progress>
<span id="progress-text">{pct}% engraved</span></div>
<p id="queue"{_hidden(bool(queue))}>{esc(queue_words)}</p>
<p id="live" class="live"></p>
</section>

<section id="design" class="card" data-src="{esc(design_src)}"{_hidden(has_design)}
 aria-labelledby="design-h">
<h2 id="design-h">Your design</h2>
<figure class="preview"><img id="design-img" alt="Preview of your engraving"
{f' src="{esc(design_src)}"' if has_design else ""}>
<figcaption>Preview: the engraving is done to this layout.</figcaption></figure>
</section>

<section id="approval" class="card action" aria-labelledby="approval-h"
{_hidden(status == "pending_approval")}>
<h2 id="approval-h">Is the design right?</h2>
<p>Approve it and we start engraving, or tell us what to change.</p>
<p id="approval-until-row" class="note"{_hidden(bool(until) and status == "pending_approval")}>
If we hear nothing by {_time(until, "approval-until")},
we go ahead with this design.</p>
<label class="field" for="comment">Comment (needed if you ask for changes)</label>
<textarea id="comment" rows="3" maxlength="1000"></textarea>
<div class="buttons">
<button id="approve" type="button" class="primary">Approve design</button>
<button id="changes" type="button">Request changes</button></div>
</section>

<section id="alternatives" class="card action" aria-labelledby="alt-h"{_hidden(offer)}>
<h2 id="alt-h">Your item is out of stock</h2>
<p id="alt-none"{_hidden(not alternatives)}>We have no replacement to offer right now. We go ahead
as soon as the item is back in stock, or you can cancel the order.</p>
<fieldset id="alt-offer"{_hidden(bool(alternatives))}>
<legend>Choose a replacement item, or wait for a restock</legend>
<div id="alt-list">{alt_html}</div></fieldset>
<p id="alt-until-row" class="note"{_hidden(bool(until) and offer)}>If nothing changes by
{_time(until, "alt-until")}, the order is
cancelled.</p>
<div class="buttons">
<button id="alt-choose" type="button" class="primary"{_hidden(bool(alternatives))}>
Use this item</button>
<button id="alt-cancel" type="button" class="danger">Cancel my order</button></div>
<div id="alt-confirm" class="confirm" hidden role="group" aria-labelledby="alt-confirm-q">
<p id="alt-confirm-q">Cancel this order for good?</p>
<div class="buttons">
<button id="alt-cancel-yes" type="button" class="danger">Yes, cancel the order</button>
<button id="alt-cancel-no" type="button">No, keep it</button></div></div>
</section>

<section id="rating" class="card action" aria-labelledby="rating-h"
{_hidden(status == "complete" and not rating)}>
<h2 id="rating-h">How did we do?</h2>
<form id="rating-form">
<fieldset><legend>Your rating, 1 (poor) to 5 (excellent)</legend>
<div class="stars">{stars}</div></fieldset>
<label class="field" for="rating-comment">Comment (optional)</label>
<textarea id="rating-comment" rows="3" maxlength="1000"></textarea>
<div class="buttons"><button id="rating-send" type="submit" class="primary">Send rating</button>
</div></form></section>
<p id="rated" class="card"{_hidden(status == "complete" and bool(rating))}>
<span id="rated-text">{esc(rated_words)}</span></p>

<p id="message" class="message" role="status" aria-live="polite"></p>

<section class="card" aria-labelledby="order-h">
<h2 id="order-h">Your order</h2>
<dl class="facts">
<div class="row"><dt>Item</dt>
<dd id="item">{esc(item_name(str(shown.get("item_id") or ""), alternatives))}</dd></div>
<div id="shop-row" class="row"{_hidden(bool(shown.get("shop_id")))}><dt>Made at</dt>
<dd id="shop">{esc(str(shown.get("shop_id") or ""))}</dd></div>
<div id="text-row" class="row"{_hidden(bool(lines))}><dt>Engraving</dt>
<dd><span id="text" class="plate">{plate}</span></dd></div>
<div id="due-row" class="row"{_hidden(bool(shown.get("due_date")))}><dt>Due</dt>
<dd>{_time(shown.get("due_date"), "due")}</dd></div>
<div id="rush-row" class="row"{_hidden(bool(shown.get("rush")))}><dt>Priority</dt>
<dd>Rush order</dd></div>
<div id="eta-row" class="row"{_hidden(eta_on)}><dt>Expected ready</dt>
<dd>{_time(shown.get("eta"), "eta")}</dd></div>
</dl></section>

<section class="card" aria-labelledby="timeline-h">
<h2 id="timeline-h">Progress</h2>
<ol id="timeline" class="timeline">{steps_html}</ol></section>
</main><script src="/static/status.js"></script></body></html>
"""
