"""The customer's status page: server-rendered HTML, kept live by a small script over WebSocket.

Every value shown is escaped; the script only ever sets ``textContent``. No inline script, so the
page can run under a strict Content-Security-Policy.
"""

from __future__ import annotations

import html
from typing import Any

PAGE_CSP = (
    "default-src 'self'; connect-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'"
)

LABELS = {
    "received": "Order received",
    "validated": "Checked and reserved",
    "blocked": "On hold",
    "designing": "Preparing your design",
    "pending_approval": "Waiting for your approval",
    "approved": "Design approved",
    "revision_requested": "Revision requested",
    "queued": "Queued for engraving",
    "engraving": "Engraving",
    "interrupted": "Paused by the workshop",
    "qa_pending": "Quality check",
    "qa_failed": "Re-engraving after quality check",
    "complete": "Complete",
    "escalated": "With our team",
    "cancelled": "Cancelled",
    "failed": "Failed",
}

STATUS_JS = """\
(function () {
  var root = document.getElementById("job");
  if (!root || !window.WebSocket) { return; }
  var jobId = root.getAttribute("data-job-id");
  var scheme = location.protocol === "https:" ? "wss://" : "ws://";
  var labels = JSON.parse(root.getAttribute("data-labels"));
  function show(ev) {
    document.getElementById("status").textContent = labels[ev.status] || ev.status;
    document.getElementById("detail").textContent =
      ev.queue_position ? "Position in queue: " + ev.queue_position :
      (typeof ev.progress === "number" ? Math.round(ev.progress * 100) + "%" :
      (ev.reason ? ev.reason : ""));
  }
  function connect(delay) {
    var ws = new WebSocket(scheme + location.host + "/ws/jobs/" + encodeURIComponent(jobId));
    ws.onmessage = function (m) { try { show(JSON.parse(m.data)); } catch (e) {} };
    ws.onclose = function () {
      setTimeout(function () { connect(Math.min(delay * 2, 30000)); }, delay);
    };
  }
  connect(1000);
})();
"""


def status_page(job_id: str, event: dict[str, Any] | None, has_design: bool) -> str:
    """The HTML status page of one job (``event`` is its latest known status, if any)."""
    import json

    esc = html.escape
    status = str(event.get("status", "")) if event else ""
    label = LABELS.get(status, status) if event else "We have not seen this order yet"
    detail = ""
    if event:
        if event.get("queue_position"):
            detail = f"Position in queue: {event['queue_position']}"
        elif isinstance(event.get("progress"), int | float):
            detail = f"{round(float(event['progress']) * 100)}%"
        elif event.get("reason"):
            detail = str(event["reason"])
    design = (
        f'<p><img alt="Design preview" src="/designs/{esc(job_id)}.svg" width="480"></p>'
        if has_design
        else ""
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Order {esc(job_id)} — Crown Trophy</title>
<style>body{{font-family:system-ui,sans-serif;max-width:40rem;margin:2rem auto;padding:0 1rem}}
#status{{font-size:1.6rem;font-weight:600}}</style></head>
<body><main id="job" data-job-id="{esc(job_id)}" data-labels="{esc(json.dumps(LABELS))}">
<h1>Order {esc(job_id)}</h1>
<p id="status">{esc(label)}</p>
<p id="detail">{esc(detail)}</p>
{design}
</main><script src="/static/status.js"></script></body></html>
"""
