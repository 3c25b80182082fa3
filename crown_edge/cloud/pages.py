"""The customer's order page: server-rendered HTML, kept live by a small script over WebSocket.

The page shows the job's status in customer words (:mod:`crown_edge.cloud.words`), a timeline of
its steps, live engraving progress, and the customer's actions when the job waits for them:
Approve / Request changes on a design, a replacement item (or cancelling) when the item is out
of stock, and a 1-5 rating once complete. The script calls the action routes with the page's own
order token and redraws from each answer.

Every value shown is escaped; the script only ever sets ``textContent``. No inline script or
style attribute is needed, so the page runs under a strict Content-Security-Policy.
"""

from __future__ import annotations

import html
import json
from typing import Any
from urllib.parse import quote

from crown_edge.cloud.words import STATUS_WORDS, customer_view

PAGE_CSP = (
    "default-src 'self'; connect-src 'self'; img-src 'self' data:; "
    "style-src 'self' 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)

#: The steps of the timeline and the status words that mean each one has been reached.
STEPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Received", ("received",)),
    ("Design", ("designing",)),
    ("Approval", ("pending_approval", "approved", "revision_requested")),
    ("Engraving", ("queued", "engraving", "interrupted")),
    ("Quality check", ("qa_pending", "qa_failed")),
    ("Complete", ("complete",)),
)

LABELS = {status: words[0] for status, words in STATUS_WORDS.items()}

STATUS_JS = """\
(function () {
  "use strict";
  var root = document.getElementById("job");
  if (!root) { return; }
  var jobId = root.getAttribute("data-job-id");
  var token = root.getAttribute("data-token");
  var steps = JSON.parse(root.getAttribute("data-steps"));
  var q = "?token=" + encodeURIComponent(token);
  var base = "/orders/" + encodeURIComponent(jobId);
  function $(id) { return document.getElementById(id); }
  function show(id, on) { var el = $(id); if (el) { el.hidden = !on; } }
  function say(text) { $("message").textContent = text || ""; }

  function render(v) {
    $("status").textContent = v.label || v.status;
    $("detail").textContent = v.detail || "";
    $("reason").textContent = v.reason_text || "";
    var engraving = v.status === "engraving" && typeof v.progress === "number";
    show("progress-row", engraving);
    if (engraving) {
      var pct = Math.round(v.progress * 100);
      $("progress").value = pct;
      $("progress-text").textContent = pct + "%";
    }
    $("queue").textContent = v.status === "queued" && v.queue_position ?
      "Position in queue: " + v.queue_position : "";
    var seen = (v.history || []).concat([v.status]);
    var items = $("timeline").children;
    for (var i = 0; i < steps.length && i < items.length; i++) {
      var reached = steps[i].some(function (s) { return seen.indexOf(s) >= 0; });
      items[i].className = reached ? "done" : "";
    }
    show("design", !!v.design_url);
    show("approval", v.status === "pending_approval");
    var alts = v.alternatives || [];
    var offer = v.status === "blocked" && v.reason === "no_inventory";
    show("alternatives", offer);
    if (offer) {
      var list = $("alt-list");
      while (list.firstChild) { list.removeChild(list.firstChild); }
      alts.forEach(function (a, n) {
        var label = document.createElement("label");
        var input = document.createElement("input");
        input.type = "radio"; input.name = "item"; input.value = a.item_id; input.checked = n === 0;
        label.appendChild(input);
        label.appendChild(document.createTextNode(" " + (a.name || a.item_id) +
          (a.material ? " (" + a.material + ")" : "")));
        list.appendChild(label);
      });
      show("alt-choose", alts.length > 0);
    }
    show("rating", v.status === "complete" && !v.rating);
    show("rated", v.status === "complete" && !!v.rating);
  }

  function post(path, body) {
    say("Sending …");
    return fetch(base + path + q, {
      method: "POST",
      headers: {"Content-Type": "application/json"},
      body: JSON.stringify(body)
    }).then(function (r) {
      return r.json().then(function (data) {
        if (r.ok) { say("Thank you."); render(data); }
        else { say((data.reasons && data.reasons[0]) || "That did not work; please try again."); }
      });
    }).catch(function () { say("We could not reach the shop; please try again."); });
  }

  $("approve").addEventListener("click", function () {
    post("/approval", {approved: true, comment: $("comment").value});
  });
  $("changes").addEventListener("click", function () {
    post("/approval", {approved: false, comment: $("comment").value});
  });
  $("alt-choose").addEventListener("click", function () {
    var picked = document.querySelector("#alt-list input:checked");
    if (picked) { post("/alternative", {item_id: picked.value}); }
  });
  $("alt-cancel").addEventListener("click", function () { post("/alternative", {cancel: true}); });
  $("rating-form").addEventListener("submit", function (e) {
    e.preventDefault();
    var star = document.querySelector("#rating-form input[name=stars]:checked");
    if (!star) { say("Please choose 1 to 5 stars."); return; }
    post("/rating", {stars: parseInt(star.value, 10), comment: $("rating-comment").value});
  });

  render(JSON.parse(root.getAttribute("data-view")));
  if (!window.WebSocket) { return; }
  var scheme = location.protocol === "https:" ? "wss://" : "ws://";
  function connect(delay) {
    var ws = new WebSocket(scheme + location.host + "/ws/jobs/" + encodeURIComponent(jobId) + q);
    ws.onopen = function () { delay = 1000; };
    ws.onmessage = function (m) { try { render(JSON.parse(m.data)); } catch (e) {} };
    ws.onclose = function () {
      setTimeout(function () { connect(Math.min(delay * 2, 30000)); }, delay);
    };
  }
  connect(1000);
})();
"""

_STYLE = """\
body{font-family:system-ui,sans-serif;max-width:40rem;margin:1.5rem auto;padding:0 1rem;
line-height:1.4}
#status{font-size:1.6rem;font-weight:600;margin-bottom:.2rem}
img{max-width:100%;height:auto;border:1px solid #ccc}
ol#timeline{display:flex;flex-wrap:wrap;gap:.4rem;padding:0;list-style:none}
ol#timeline li{padding:.2rem .5rem;border-radius:1rem;background:#eee;color:#666}
ol#timeline li.done{background:#1b5e20;color:#fff}
section{margin:1rem 0;padding:.8rem;border:1px solid #ddd;border-radius:.5rem}
textarea{width:100%;box-sizing:border-box}
button{font-size:1rem;padding:.4rem .9rem;margin:.3rem .3rem 0 0}
#alt-list label{display:block;margin:.3rem 0}
progress{width:100%}
"""


def status_page(job_id: str, view: dict[str, Any] | None, token: str) -> str:
    """The HTML page of one job; ``view`` is its state (already cut down or raw, both work)."""
    esc = html.escape
    shown = customer_view(view or {"job_id": job_id, "status": "received"})
    stars = "".join(
        f'<label><input type="radio" name="stars" value="{n}"> {n}</label> ' for n in range(1, 6)
    )
    timeline = "".join(f"<li>{esc(name)}</li>" for name, _ in STEPS)
    design_src = f"/designs/{quote(job_id)}.svg?token={quote(token)}"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Order {esc(job_id)} — Crown Trophy</title>
<style>{_STYLE}</style></head>
<body><main id="job" data-job-id="{esc(job_id)}" data-token="{esc(token)}"
 data-view="{esc(json.dumps(shown))}" data-steps="{esc(json.dumps([s for _, s in STEPS]))}">
<h1>Order {esc(job_id)}</h1>
<p id="status">{esc(shown["label"])}</p>
<p id="detail">{esc(shown["detail"])}</p>
<p id="reason">{esc(shown.get("reason_text", ""))}</p>
<p id="queue"></p>
<p id="progress-row" hidden><progress id="progress" max="100" value="0"></progress>
 <span id="progress-text"></span></p>
<ol id="timeline">{timeline}</ol>
<p id="design" hidden><img alt="Design preview" src="{esc(design_src)}"></p>
<section id="approval" hidden><h2>Your design</h2>
<label for="comment">Comment (optional)</label>
<textarea id="comment" rows="3" maxlength="1000"></textarea>
<button id="approve" type="button">Approve</button>
<button id="changes" type="button">Request changes</button></section>
<section id="alternatives" hidden><h2>Choose a replacement item</h2>
<div id="alt-list"></div>
<button id="alt-choose" type="button">Use this item</button>
<button id="alt-cancel" type="button">Cancel my order</button></section>
<section id="rating" hidden><h2>How did we do?</h2>
<form id="rating-form">{stars}
<label for="rating-comment">Comment (optional)</label>
<textarea id="rating-comment" rows="3" maxlength="1000"></textarea>
<button type="submit">Send rating</button></form></section>
<p id="rated" hidden>Thank you for your rating.</p>
<p id="message" role="status"></p>
</main><script src="/static/status.js"></script></body></html>
"""
