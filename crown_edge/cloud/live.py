"""The customer page's live WebSocket: the job's view, then every update of it.

Only :func:`~crown_edge.cloud.words.customer_view` of a view is ever sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from fastapi import WebSocket

from crown_edge.cloud.bridge import Subscription
from crown_edge.cloud.words import customer_view
from crown_edge.workflow.view import ENDED

#: WebSocket close codes: server going away; policy violation (bad Origin).
CLOSE_GOING_AWAY, CLOSE_POLICY = 1001, 1008


#: What a live event changes of the view last sent (the rest - steps, timeline, item - stays).
_LIVE_OVERLAY = ("status", "reason", "progress", "queue_position", "retry_count", "design_url")


def overlay(last: Mapping[str, Any], event: Mapping[str, Any]) -> dict[str, Any]:
    """The view after a live ``event``: ``last`` with the event's status and live details.

    The bridge fans out only an event that is the job's latest, so it wins over ``last``; a
    new status also drops the old status' details.
    """
    out = dict(last)
    if event.get("status") != last.get("status"):
        for key in ("reason", "progress", "queue_position"):
            out.pop(key, None)
    out.update({k: event[k] for k in _LIVE_OVERLAY if event.get(k) is not None})
    return out


#: Statuses that end a job: a view showing one is never followed by one that does not.
END_STATUSES = frozenset({"complete", *ENDED})


def rank(view: Mapping[str, Any]) -> int | None:
    """How far along its job ``view`` is: twice its timeline's length, plus one when its status
    is ahead of that timeline (a live event laid over the workflow's view, :func:`overlay`).

    The workflow's timeline gains one entry per status it enters and never loses one, so its
    length orders the workflow's views without trusting a clock (a workshop's may run fast);
    the order of stages cannot, since a failed quality check sends the item back to the queue.
    ``None`` when the view carries no timeline (a status event alone) and so cannot be placed.
    """
    timeline = view.get("timeline")
    if not isinstance(timeline, Sequence) or isinstance(timeline, str | bytes):
        return None
    last = timeline[-1] if timeline else None
    behind = not (isinstance(last, Mapping) and last.get("status") == view.get("status"))
    return 2 * len(timeline) + int(behind)


def older(shown: Mapping[str, Any], fresh: Mapping[str, Any]) -> bool:
    """Whether ``fresh`` is an earlier moment of the job than ``shown``, so must not replace it.

    An end state is never followed by one that is not, and a lower :func:`rank` is earlier. The
    customer page's script applies the same rules to every view it receives.
    """
    if shown.get("status") in END_STATUSES and fresh.get("status") not in END_STATUSES:
        return True
    was, now = rank(shown), rank(fresh)
    return was is not None and now is not None and now < was


LIVE_STATUSES = frozenset({"queued", "engraving", "blocked"})
"""Statuses whose view changes between status events (progress, queue, offers)."""
LIVE_REFRESH_S = 2.0


async def pump(
    ws: WebSocket,
    sub: Subscription,
    initial: dict[str, Any] | None,
    last: dict[str, Any],
    refresh: Callable[[], Awaitable[dict[str, Any] | None]],
    closing: asyncio.Event,
) -> None:
    """Send the view after every update of ``sub`` until the client or the server goes.

    ``initial`` is the board's event the subscription starts with: the first message (``last``)
    already showed it, so it is skipped. A new status re-reads the durable view (``refresh``) so
    the steps and timeline move on too, and so does any event while the view sent is ahead of
    the workflow's (:func:`rank` odd: the workflow's own event of that status says it caught
    up); the event is laid over it (:func:`overlay`). Only
    :func:`~crown_edge.cloud.words.customer_view` of it is sent. Pings are uvicorn's.

    Progress, queue position and offered alternatives change without a new status event, so
    while a job is queued, engraving or blocked the view is also re-read every
    :data:`LIVE_REFRESH_S` and sent when what the customer sees changed — unless that re-read is
    :func:`older` than what was sent: a workshop's live status (say ``complete``) reaches the
    page before the workflow records it, and the workflow's view read in between is behind it.
    """
    reader = asyncio.create_task(drain_client(ws))
    stop = asyncio.create_task(closing.wait())
    update: asyncio.Task[dict[str, Any]] | None = None
    tick: asyncio.Task[None] | None = None
    try:
        while True:
            if update is None:
                update = asyncio.create_task(sub.get())
            if tick is None and last.get("status") in LIVE_STATUSES:
                tick = asyncio.create_task(asyncio.sleep(LIVE_REFRESH_S))
            waits = {update, reader, stop} | ({tick} if tick is not None else set())
            done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            if reader in done:
                return
            if stop in done:
                with contextlib.suppress(Exception):
                    await ws.close(CLOSE_GOING_AWAY)
                return
            if tick is not None and tick in done:
                tick = None
                fresh = await refresh()
                if (
                    fresh is not None
                    and not older(last, fresh)
                    and customer_view(fresh) != customer_view(last)
                ):
                    last = fresh
                    await ws.send_text(json.dumps(customer_view(last), sort_keys=True))
                if update not in done:
                    continue
            event = update.result()
            update = None
            if event is initial:
                initial = None
                continue
            initial = None
            if event.get("status") != last.get("status") or (rank(last) or 0) % 2:
                last = await refresh() or last
            last = overlay(last, event)
            await ws.send_text(json.dumps(customer_view(last), sort_keys=True))
    finally:
        pending = [t for t in (reader, stop, update, tick) if t is not None]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)


async def drain_client(ws: WebSocket) -> None:
    """Read (and ignore) client messages until it closes."""
    while True:
        message = await ws.receive()
        if message["type"] == "websocket.disconnect":
            return
