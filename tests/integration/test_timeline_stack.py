"""A job's timeline on the whole flow (``FullStack``: Order API, SQS, dispatcher, Temporal,
workshop daemon, simulated laser): the cloud's ``GET /orders/{id}/timeline`` (the order's
hand-over, SQS's send time and the dispatcher's receipt kept in the workflow's memo, then its
history) and the workshop's ``jobs timeline`` show the stages each side recorded, in order.
Content only, never durations."""

from __future__ import annotations

import asyncio
import itertools
import json
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from crown_edge.control import call
from crown_edge.stack import FullStack, StackSettings
from crown_edge.workflow import timeline as tl

pytestmark = pytest.mark.integration


def _get(url: str, key: str) -> Any:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {key}"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def _ordered(rows: list[dict[str, Any]]) -> list[str]:
    assert [r["stage"] for r in rows] == list(tl.STAGES)
    known = [r for r in rows if r["at"] is not None]
    for before, after in itertools.pairwise(known):  # SQS's SentTimestamp is in whole ms
        assert after["at"] >= before["at"] - 0.001, (before, after)
    for before, after in itertools.pairwise(known):
        assert after["gap_ms"] == round((after["at"] - before["at"]) * 1000, 1)
    assert all(r["gap_ms"] is None for r in rows if r["at"] is None)
    return [r["stage"] for r in known]


async def test_both_sides_show_the_stages_they_recorded(tmp_path: Path) -> None:
    settings = StackSettings(workdir=tmp_path, lasers=1, rotary=False, time_scale=0.0)
    async with FullStack(settings) as stack:
        assert stack.config is not None
        status, _ = await stack.post_order(
            {
                "job_id": "TL-1",
                "customer_id": "C",
                "item_id": "trophy-plate",
                "due_date": "2026-12-01",
                "text": ["Most Improved"],
            }
        )
        assert status == 202
        await stack.result("TL-1", timeout=120)
        url = f"{stack.api_url}/orders/TL-1/timeline"
        async with asyncio.timeout(30):  # the workflow records mark_complete's result just after
            while True:
                cloud = await asyncio.to_thread(_get, url, stack.api_key)
                if any(r["stage"] == tl.COMPLETE and r["at"] for r in cloud):
                    break
                await asyncio.sleep(0.2)
        assert _ordered(cloud) == [
            tl.ACCEPTED,
            tl.SQS_SENT,
            tl.SQS_RECEIVED,
            tl.WORKFLOW_STARTED,
            tl.VALIDATED,
            tl.QA_VERDICT,
            tl.COMPLETE,
        ]
        shown = await call(stack.config.control_socket, "jobs.show", {"job_id": "TL-1"})
        edge = tl.timeline(tl.edge_marks(shown["events"], shown["runs"]))
        assert {
            tl.RECEIVED,
            tl.VALIDATED,
            tl.QUEUED,
            tl.CLAIMED,
            tl.FIRST_LINE,
            tl.LAST_LINE,
            tl.QA_VERDICT,
            tl.COMPLETE,
        } <= set(_ordered(edge))
