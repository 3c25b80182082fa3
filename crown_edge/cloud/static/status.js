/* The customer's order page, kept live (crown_edge/cloud/pages.py renders the first state).
 *
 * One state object (the job's customer view) is redrawn into the server-rendered elements.
 * Sources, newest wins:
 *   - the WebSocket /ws/jobs/{id}: first message the whole view, then every status event
 *     (status, progress, queue position …; no steps or offers);
 *   - GET /orders/{id}: the whole view again after each change of status (offers, what the job
 *     awaits, the steps' times), taken once the workflow has caught up with the event;
 *   - the answer of each customer action (approval, alternative, rating): the whole new view.
 * These arrive out of order: a workshop's live status reaches the page before the workflow's
 * own view catches up, and a view read before it can land after it. "Newest" is therefore
 * decided by what the views carry (older() below), never by arrival: an older view is dropped.
 * Only textContent is ever set; nothing is evaluated; the page runs under a strict CSP.
 */
(function () {
  "use strict";
  var root = document.getElementById("job");
  if (!root) { return; }
  var jobId = root.getAttribute("data-job-id");
  var token = root.getAttribute("data-token");
  var cfg = JSON.parse(root.getAttribute("data-config"));
  var view = JSON.parse(root.getAttribute("data-view"));
  var q = "?token=" + encodeURIComponent(token);
  var base = "/orders/" + encodeURIComponent(jobId);
  var started = {};        // step -> ISO time, learnt from live events
  var shownAlternatives = null;
  var shownDesign = null;

  function $(id) { return document.getElementById(id); }
  function show(id, on) { var el = $(id); if (el) { el.hidden = !on; } }
  function text(id, value) { var el = $(id); if (el) { el.textContent = value || ""; } }
  function clear(el) { while (el.firstChild) { el.removeChild(el.firstChild); } }
  // A list field of a view, or none: a broken message must not stop the page.
  function listOf(v) { return Array.isArray(v) ? v : []; }
  function isObject(v) { return !!v && typeof v === "object" && !Array.isArray(v); }
  function say(words, kind) {
    var el = $("message");
    el.textContent = words || "";
    el.className = "message" + (kind ? " " + kind : "");
  }

  function when(iso, dateOnly) {
    if (!iso) { return ""; }
    var d = new Date(iso);
    if (isNaN(d.getTime())) { return String(iso); }
    var dateOnlyIso = /^\d{4}-\d{2}-\d{2}$/.test(iso);
    try {
      if (dateOnly || dateOnlyIso) {
        return d.toLocaleDateString(undefined, dateOnlyIso ?
          {dateStyle: "medium", timeZone: "UTC"} : {dateStyle: "medium"});
      }
      return d.toLocaleString(undefined, {dateStyle: "medium", timeStyle: "short"});
    } catch (e) { return d.toLocaleString(); }
  }
  function setTime(id, iso) {
    var el = $(id);
    if (!el) { return; }
    el.textContent = when(iso);
    if (iso) { el.setAttribute("datetime", iso); } else { el.removeAttribute("datetime"); }
  }

  // --- which view is newer ------------------------------------------------------------------
  // The workflow's timeline gains one entry per status it enters and never loses one, so its
  // length orders the workflow's views without trusting any clock (a workshop's may run fast).
  // A view whose status is not its timeline's last is a live event laid over the workflow's view
  // (crown_edge/cloud/live.py): half a step ahead of that timeline. Stage order cannot decide:
  // a failed quality check sends the item back to the queue. Same rules as
  // crown_edge.cloud.live.older.
  var ends = ["complete"].concat(cfg.ended);
  function isEnd(status) { return ends.indexOf(status) >= 0; }
  function rank(v) {
    var t = v.timeline;
    if (!Array.isArray(t)) { return null; }
    var last = t.length ? t[t.length - 1] : null;
    return 2 * t.length + (last && last.status === v.status ? 0 : 1);
  }
  // Whether `fresh` is older than `shown`: an end state (complete, cancelled …) is never
  // followed by one that is not, and a shorter timeline is an earlier moment of the job.
  function older(shown, fresh) {
    if (isEnd(shown.status) && !isEnd(fresh.status)) { return true; }
    var was = rank(shown), now = rank(fresh);
    return was !== null && now !== null && now < was;
  }
  // Only an object with a status word is a view; anything else (a broken message) is dropped.
  function isView(v) { return isObject(v) && typeof v.status === "string"; }

  function itemName(id) {
    var alts = listOf(view.alternatives).filter(isObject);
    for (var i = 0; i < alts.length; i++) {
      if (alts[i].item_id === id && alts[i].name) { return alts[i].name; }
    }
    return cfg.items[id] || id || "";
  }

  // The six steps: the durable view's (with their times and what was skipped) moved on to the
  // current status, so a live event shows at once. Same rules as crown_edge.workflow.view.steps.
  function steps() {
    var known = {};
    listOf(view.steps).forEach(function (s) { if (isObject(s)) { known[s.name] = s; } });
    listOf(view.timeline).forEach(function (e) {
      var step = isObject(e) && cfg.step_of[e.status];
      if (step && !started[step]) { started[step] = e.at; }
    });
    var current = cfg.step_of[view.status];
    var here = current ? cfg.steps.indexOf(current) : -1;
    if (here < 0) {  // an ended job: where the durable view stopped, else the last step reached
      cfg.steps.forEach(function (name, i) {
        var s = known[name];
        if (s && (s.state === "stopped" || s.state === "current")) { here = i; }
      });
      if (here < 0) {
        cfg.steps.forEach(function (name, i) { if (started[name] || (known[name] && known[name].at)) { here = i; } });
      }
      if (here < 0) { here = 0; }
    }
    var ended = cfg.ended.indexOf(view.status) >= 0;
    return cfg.steps.map(function (name, i) {
      var s = known[name] || {};
      var at = s.at || started[name] || null;
      var state;
      if (i < here) { state = (at || s.state === "done") ? "done" : "skipped"; }
      else if (i === here) { state = view.status === "complete" ? "done" : ended ? "stopped" : "current"; }
      else { state = s.state === "skipped" ? "skipped" : "pending"; }
      return {name: name, state: state, at: at};
    });
  }

  function renderTimeline() {
    steps().forEach(function (s) {
      var li = $("step-" + s.name);
      if (!li) { return; }
      li.className = s.state;
      if (s.state === "current") { li.setAttribute("aria-current", "step"); }
      else { li.removeAttribute("aria-current"); }
      li.querySelector(".state").textContent = cfg.step_states[s.state] || "";
      var t = li.querySelector("time");
      t.textContent = s.at && s.state !== "pending" && s.state !== "skipped" ? when(s.at) : "";
      if (s.at) { t.setAttribute("datetime", s.at); }
    });
  }

  function renderAlternatives() {
    var alts = listOf(view.alternatives).filter(isObject);
    var key = JSON.stringify(alts);
    if (key === shownAlternatives) { return; }
    shownAlternatives = key;
    var list = $("alt-list");
    clear(list);
    alts.forEach(function (a, n) {
      var label = document.createElement("label");
      label.className = "choice";
      var input = document.createElement("input");
      input.type = "radio"; input.name = "item"; input.value = a.item_id; input.checked = n === 0;
      var span = document.createElement("span");
      span.textContent = a.name || a.item_id;
      if (a.material) {
        var small = document.createElement("small");
        small.textContent = cfg.materials[a.material] || a.material;
        span.appendChild(small);
      }
      label.appendChild(input);
      label.appendChild(span);
      list.appendChild(label);
    });
    show("alt-offer", alts.length > 0);
    show("alt-none", alts.length === 0);
    show("alt-choose", alts.length > 0);
  }

  function render() {
    var st = view.status;
    text("status", view.label || "");
    text("detail", view.detail || "");
    text("reason", view.reason_text || "");
    show("reason", !!view.reason_text);
    var card = $("status-card");
    card.className = "card status-card" + (st === "complete" ? " complete" :
      cfg.ended.indexOf(st) >= 0 ? " ended" : "");

    var engraving = st === "engraving";
    show("progress-row", engraving);
    if (engraving) {
      var pct = typeof view.progress === "number" ? Math.round(view.progress * 100) : 0;
      $("progress").value = pct;
      $("progress").textContent = pct + "%";
      text("progress-text", pct + "% engraved");
    }
    var queued = st === "queued" && view.queue_position;
    show("queue", !!queued);
    if (queued) {
      text("queue", view.queue_position === 1 ? "Your item is next in line." :
        "Your item is number " + view.queue_position + " in the queue.");
    }

    text("item", itemName(view.item_id));
    var plate = $("text");
    var lines = listOf(view.text);
    if (plate.getAttribute("data-shown") !== JSON.stringify(lines)) {
      clear(plate);
      lines.forEach(function (line) {
        var span = document.createElement("span");
        span.textContent = line;
        plate.appendChild(span);
      });
      plate.setAttribute("data-shown", JSON.stringify(lines));
    }
    show("text-row", lines.length > 0);
    setTime("due", view.due_date);
    show("due-row", !!view.due_date);
    show("rush-row", !!view.rush);
    setTime("eta", view.eta);
    show("eta-row", !!view.eta && ["complete", "cancelled", "failed", "escalated"].indexOf(st) < 0);
    renderTimeline();

    show("design", !!view.design_url);
    if (view.design_url) {
      var src = $("design").getAttribute("data-src") + "&rev=" + (view.design_revision || 0);
      if (src !== shownDesign) { $("design-img").src = src; shownDesign = src; }
    }
    var awaitingApproval = st === "pending_approval";
    show("approval", awaitingApproval);
    setTime("approval-until", view.awaiting_until);
    show("approval-until-row", awaitingApproval && !!view.awaiting_until);

    var offer = st === "blocked" && view.reason === "no_inventory";
    show("alternatives", offer);
    if (offer) {
      renderAlternatives();
      setTime("alt-until", view.awaiting_until);
      show("alt-until-row", !!view.awaiting_until);
    } else {
      show("alt-confirm", false);
    }
    schedulePoll();
    show("rating", st === "complete" && !view.rating);
    show("rated", st === "complete" && !!view.rating);
    if (view.rating) {
      text("rated-text", "You gave this order " + view.rating.stars + " of 5 stars.");
    }
  }

  // --- live updates ------------------------------------------------------------------------

  var refreshing = false;
  function refresh(tries) {
    if (refreshing && !tries) { return; }
    refreshing = true;
    tries = tries || 0;
    fetch(base + q, {cache: "no-store"}).then(function (r) {
      return r.ok ? r.json() : null;
    }).then(function (fresh) {
      // the workflow may record a status a moment after the workshop reports it
      if (fresh && (fresh.status === view.status || tries >= 6)) {
        refreshing = false;
        replace(fresh);
      } else {
        setTimeout(function () { refresh(tries + 1); }, 400 * (tries + 1));
      }
    }).catch(function () { refreshing = false; });
  }

  // The WebSocket carries status changes; progress and queue position are re-read from the
  // job's view while the item waits for or is on a machine (the workshop reports them there),
  // and so are the offers of an out-of-stock job until they arrive (no status change for them).
  var pollTimer = null;
  function schedulePoll() {
    var busy = view.status === "engraving" || view.status === "queued" ||
      (view.status === "blocked" && view.reason === "no_inventory" &&
       !(view.alternatives && view.alternatives.length));
    if (busy && !pollTimer) {
      pollTimer = setInterval(function () { refresh(); }, cfg.poll_ms);
    } else if (!busy && pollTimer) {
      clearInterval(pollTimer);
      pollTimer = null;
    }
  }

  function replace(fresh) {
    if (!isView(fresh) || older(view, fresh)) { return; }  // see older()
    if (fresh.status === view.status && typeof view.progress === "number" &&
        (typeof fresh.progress !== "number" || fresh.progress < view.progress)) {
      fresh.progress = view.progress;  // progress only moves forward within a status
    }
    view = fresh;
    render();
  }

  function event(ev) {
    if (!isView(ev)) { return; }
    if (ev.steps) { replace(ev); return; }
    if (older(view, ev)) { return; }
    var changed = ev.status && ev.status !== view.status;
    ["status", "label", "detail", "queue_position", "eta", "design_url", "design_revision",
     "item_id", "text", "due_date", "retry_count"].forEach(function (k) {
      if (ev[k] !== undefined) { view[k] = ev[k]; }
    });
    if (changed) {
      view.reason = ev.reason; view.reason_text = ev.reason_text;
      view.progress = ev.progress;
      if (ev.queue_position === undefined) { delete view.queue_position; }
      var step = cfg.step_of[ev.status];
      if (step && ev.at && !started[step]) { started[step] = ev.at; }
    } else {
      if (ev.reason_text) { view.reason = ev.reason; view.reason_text = ev.reason_text; }
      if (typeof ev.progress === "number" &&
          (typeof view.progress !== "number" || ev.progress >= view.progress)) {
        view.progress = ev.progress;
      }
    }
    render();
    if (changed) { refresh(); }
  }

  function connect(delay) {
    if (!window.WebSocket) { return; }
    var scheme = location.protocol === "https:" ? "wss://" : "ws://";
    var url = scheme + location.host + "/ws/jobs/" + encodeURIComponent(jobId) + q;
    var ws = new WebSocket(url);
    var first = true;
    ws.onopen = function () { delay = 1000; text("live", cfg.words.live); };
    ws.onmessage = function (m) {
      var data;
      try { data = JSON.parse(m.data); } catch (e) { return; }
      if (first) { first = false; replace(data); } else { event(data); }
    };
    ws.onclose = function () {
      text("live", cfg.words.reconnecting);
      setTimeout(function () { connect(Math.min(delay * 2, 30000)); }, delay);
    };
  }

  // --- the customer's actions --------------------------------------------------------------

  function refusal(action, status, data) {
    var reason = ((data && data.reasons) || []).join(" ");
    if (status === 409) {
      for (var i = 0; i < cfg.refusals.length; i++) {
        if (reason.toLowerCase().indexOf(cfg.refusals[i][0]) >= 0) { return cfg.refusals[i][1]; }
      }
      return cfg.words.refused[action] || cfg.words.refused_any;
    }
    if (status === 400) { return cfg.words.invalid; }
    if (status === 404) { return cfg.words.gone; }
    return cfg.words.unavailable;
  }

  function post(action, path, body, buttons, thanks) {
    buttons.forEach(function (b) { b.disabled = true; });
    say(cfg.words.sending);
    return fetch(base + path + q, {
      method: "POST",
      headers: {"Content-Type": "application/json"},
      body: JSON.stringify(body)
    }).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (data) {
        if (r.ok) { replace(data); say(thanks, "ok"); }
        else { say(refusal(action, r.status, data), "error"); if (r.status === 409) { refresh(6); } }
      });
    }).catch(function () {
      say(cfg.words.unavailable, "error");
    }).then(function () {
      buttons.forEach(function (b) { b.disabled = false; });
    });
  }

  var approveBtn = $("approve"), changesBtn = $("changes");
  approveBtn.addEventListener("click", function () {
    post("approval", "/approval", {approved: true, comment: $("comment").value},
      [approveBtn, changesBtn], cfg.words.approved);
  });
  changesBtn.addEventListener("click", function () {
    var comment = $("comment").value.trim();
    if (!comment) {
      say(cfg.words.say_what, "error");
      $("comment").focus();
      return;
    }
    post("approval", "/approval", {approved: false, comment: comment},
      [approveBtn, changesBtn], cfg.words.changes);
  });

  var chooseBtn = $("alt-choose"), cancelBtn = $("alt-cancel");
  chooseBtn.addEventListener("click", function () {
    var picked = document.querySelector("#alt-list input:checked");
    if (!picked) { say(cfg.words.pick_one, "error"); return; }
    var name = itemName(picked.value);
    post("alternative", "/alternative", {item_id: picked.value}, [chooseBtn, cancelBtn],
      cfg.words.chosen.replace("{item}", name));
  });
  cancelBtn.addEventListener("click", function () {
    show("alt-confirm", true);
    $("alt-cancel-yes").focus();
  });
  $("alt-cancel-no").addEventListener("click", function () {
    show("alt-confirm", false);
    cancelBtn.focus();
  });
  $("alt-cancel-yes").addEventListener("click", function () {
    show("alt-confirm", false);
    post("alternative", "/alternative", {cancel: true}, [chooseBtn, cancelBtn],
      cfg.words.cancelled);
  });

  $("rating-form").addEventListener("submit", function (e) {
    e.preventDefault();
    var star = document.querySelector("#rating-form input[name=stars]:checked");
    if (!star) { say(cfg.words.pick_stars, "error"); return; }
    post("rating", "/rating",
      {stars: parseInt(star.value, 10), comment: $("rating-comment").value},
      [$("rating-send")], cfg.words.rated);
  });

  render();
  connect(1000);
})();
