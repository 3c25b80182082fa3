"""The Order API's view of a job names the workshop that makes it, from the job directory."""

from __future__ import annotations

from crown_edge.cloud.board import StatusBoard
from crown_edge.cloud.jobdir import JobDirectory
from crown_edge.cloud.jobs import Jobs


async def test_the_view_names_the_shop_from_the_directory_not_from_a_message() -> None:
    asked: list[str] = []

    async def lookup(job_id: str) -> str | None:
        asked.append(job_id)
        return {"J-1": "shop-2"}.get(job_id)

    board = StatusBoard()
    board.accept("J-1", at=1.0)
    board.accept("J-2", at=1.0)
    jobs = Jobs(board, None, shops=JobDirectory(lookup))
    view = await jobs.view("J-1")
    assert view is not None and view["shop_id"] == "shop-2"
    other = await jobs.view("J-2")  # no workflow knows it: no shop is made up
    assert other is not None and "shop_id" not in other
    assert await jobs.view("J-3") is None  # nobody knows the job: the directory is not asked
    assert asked == ["J-1", "J-2"]


async def test_without_a_directory_the_view_is_unchanged() -> None:
    board = StatusBoard()
    board.accept("J-1", at=1.0)
    view = await Jobs(board).view("J-1")
    assert view is not None and "shop_id" not in view
