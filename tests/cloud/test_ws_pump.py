"""The WebSocket pump re-reads a live job's view: progress reaches the page without an event."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from crown_edge.cloud import live


class FakeSocket:
    """What ``pump`` uses of a Starlette WebSocket: receive (never, here), send_text, close."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.gone = asyncio.Event()

    async def receive(self) -> dict[str, Any]:
        await self.gone.wait()
        return {"type": "websocket.disconnect"}

    async def send_text(self, text: str) -> None:
        self.sent.append(json.loads(text))

    async def close(self, code: int = 1000) -> None:
        self.gone.set()


class QuietSubscription:
    """No status events at all: only the periodic re-read can move the page on."""

    async def get(self) -> dict[str, Any]:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


def view(progress: float, status: str = "engraving") -> dict[str, Any]:
    return {"job_id": "J-1", "status": status, "progress": progress, "notes": "internal"}


async def test_progress_is_pushed_while_engraving_and_the_pump_settles_after(
    monkeypatch: Any,
) -> None:
    monkeypatch.setattr(live, "LIVE_REFRESH_S", 0.01)
    views = iter([view(0.2), view(0.2), view(0.5), view(1.0, "qa_pending")])
    reads = 0

    async def refresh() -> dict[str, Any] | None:
        nonlocal reads
        reads += 1
        return next(views, None)

    ws, closing = FakeSocket(), asyncio.Event()
    pump = asyncio.create_task(
        live.pump(ws, QuietSubscription(), None, view(0.0), refresh, closing)  # type: ignore[arg-type]
    )
    for _ in range(500):
        if len(ws.sent) == 3:
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.1)  # qa_pending is not live: no more re-reads
    closing.set()
    await asyncio.wait_for(pump, 5)
    assert [m["progress"] for m in ws.sent] == [0.2, 0.5, 1.0]  # an unchanged view is not resent
    assert ws.sent[-1]["status"] == "qa_pending"
    assert all("notes" not in m for m in ws.sent)  # only the customer's view leaves
    assert reads == 4
