"""One workshop as its own process (``edge_process``, what a hardware target's rig runs): state
where it always was, the stack's shop helpers, and the daemon stopped and started again."""

from __future__ import annotations

from pathlib import Path

import pytest

from crown_edge.stack import FullStack, StackSettings
from tests.brokers import needs_mosquitto

pytestmark = [pytest.mark.integration, needs_mosquitto, pytest.mark.timeout(240)]


def _order(job_id: str) -> dict[str, object]:
    return {
        "job_id": job_id,
        "customer_id": "CUST-1",
        "item_id": "plaque-a5",
        "due_date": "2026-12-24T17:00:00Z",
        "text": ["Club Champion"],
    }


async def test_one_workshop_process_restarts_and_keeps_its_jobs(tmp_path: Path) -> None:
    settings = StackSettings(
        workdir=tmp_path, lasers=1, rotary=False, time_scale=0.0, edge_process=True
    )
    async with FullStack(settings) as stack:
        shop = stack.workshop()
        assert stack.shop_ids == ("demo",) and stack.daemon is None
        assert shop.directory == tmp_path and shop.config.store_path == tmp_path / "edge.db"
        assert shop.process is not None and shop.process.running
        status, _ = await stack.post_order(_order("SP-1"))
        assert status == 202
        assert (await stack.result("SP-1", 120))["status"] == "complete"
        assert await stack.shop_of("SP-1") == "demo"
        shown = await stack.edge_job("SP-1")
        assert shown is not None and shown["status"] == "complete"
        await stack.stop_workshop("demo")
        assert not shop.process.running
        assert await stack.edge_job("SP-1") is None  # down: no answer, no error
        await stack.start_workshop("demo")
        again = await stack.edge_job("SP-1")
        assert again is not None and again["status"] == "complete"
        assert len(again["runs"]) == 1
        with pytest.raises(KeyError):
            stack.workshop("elsewhere")


async def test_an_in_process_workshop_cannot_be_stopped_alone(tmp_path: Path) -> None:
    settings = StackSettings(workdir=tmp_path, lasers=1, rotary=False, time_scale=0.0)
    async with FullStack(settings) as stack:
        assert stack.daemon is not None and stack.workshop().daemon is stack.daemon
        with pytest.raises(RuntimeError, match="in-process"):
            await stack.stop_workshop("demo")
