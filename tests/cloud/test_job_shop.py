"""The Order API's view of a job names the workshop that makes it, from the workflow's input."""

from __future__ import annotations

from typing import Any

from crown_edge.cloud.board import StatusBoard
from crown_edge.cloud.jobdir import JobDirectory
from crown_edge.cloud.jobs import Jobs


class _Workflows(Jobs):
    """Jobs whose workflows are the ones in ``running`` (no Temporal needed)."""

    running: set[str]

    async def durable(self, job_id: str) -> dict[str, Any] | None:
        return {"job_id": job_id, "status": "queued"} if job_id in self.running else None


async def test_the_view_names_the_shop_once_the_workflow_exists() -> None:
    asked: list[str] = []

    async def lookup(job_id: str) -> str | None:
        asked.append(job_id)
        return {"J-1": "shop-2"}.get(job_id)

    board = StatusBoard()
    board.accept("J-1", at=1.0)
    shops = JobDirectory(lookup)
    jobs = _Workflows(board, None, shops=shops)
    jobs.running = set()
    # the page opened before the workflow started: no shop, and nothing remembered against it
    early = await jobs.view("J-1")
    assert early is not None and "shop_id" not in early
    assert asked == []
    jobs.running = {"J-1"}
    view = await jobs.view("J-1")
    assert view is not None and view["shop_id"] == "shop-2"
    assert shops.known("J-1") == "shop-2"  # learnt: the next view asks nobody
    await jobs.view("J-1")
    assert asked == ["J-1"]
    assert await jobs.view("J-3") is None  # nobody knows the job


async def test_a_miss_remembered_by_the_directory_does_not_hide_the_shop() -> None:
    answers = {"J-1": None}

    async def lookup(job_id: str) -> str | None:
        return answers[job_id]

    shops = JobDirectory(lookup)
    assert await shops.shop_of("J-1") is None  # e.g. the bridge asked before the workflow ran
    answers["J-1"] = "shop-3"
    jobs = _Workflows(StatusBoard(), None, shops=shops)
    jobs.running = {"J-1"}
    view = await jobs.view("J-1")
    assert view is not None and view["shop_id"] == "shop-3"


async def test_without_a_directory_the_view_is_unchanged() -> None:
    board = StatusBoard()
    board.accept("J-1", at=1.0)
    view = await Jobs(board).view("J-1")
    assert view is not None and "shop_id" not in view
