"""validate_job, list_alternatives, release_reservation and mark_complete on a real store."""

from __future__ import annotations

import asyncio
import time

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from crown_edge.daemon.activities import EdgeActivities
from crown_edge.models import JobStatus
from crown_edge.store import Store
from crown_edge.workflow import names as n
from tests.edge.support import validate_input


async def stock(store: Store, item_id: str) -> tuple[int, int, int]:
    row = next(r for r in await store.list_stock() if r.item_id == item_id)
    return row.available, row.reserved, row.consumed


async def refused(edge: EdgeActivities, req: n.ValidateJobInput) -> ApplicationError:
    with pytest.raises(ApplicationError) as info:
        await ActivityEnvironment().run(edge.validate_job, req)
    assert info.value.non_retryable
    return info.value


async def test_validate_reserves_one_unit_and_is_idempotent(
    edge: EdgeActivities, store: Store
) -> None:
    before = await stock(store, "plaque-a5")
    env = ActivityEnvironment()
    first = await env.run(edge.validate_job, validate_input("J-1"))
    again = await env.run(edge.validate_job, validate_input("J-1"))
    assert first.reserved and first.material == "anodised-aluminium"
    assert first.cap_height_mm is not None and first.cap_height_mm > 0
    assert first.remaining == before[0] - 1
    assert again == first
    assert await stock(store, "plaque-a5") == (before[0] - 1, 1, 0)
    job = await store.get_job("J-1")
    assert job.status is JobStatus.VALIDATED


async def test_no_inventory_blocks(edge: EdgeActivities, store: Store) -> None:
    await store.set_stock("plaque-small", 0, time.time())
    err = await refused(edge, validate_input("J-2", "plaque-small"))
    assert err.type == n.ERR_NO_INVENTORY
    job = await store.get_job("J-2")
    assert (job.status, job.reason) == (JobStatus.BLOCKED, "no_inventory")


async def test_text_does_not_fit_blocks_and_reserves_nothing(
    edge: EdgeActivities, store: Store
) -> None:
    before = await stock(store, "trophy-plate")
    lines = ("A very long line that no small trophy plate can ever take",) * 3
    err = await refused(edge, validate_input("J-3", "trophy-plate", lines=lines))
    assert err.type == n.ERR_TEXT_DOES_NOT_FIT
    assert "does not fit" in str(err)
    job = await store.get_job("J-3")
    assert (job.status, job.reason) == (JobStatus.BLOCKED, "text_does_not_fit")
    assert await stock(store, "trophy-plate") == before
    again = await refused(edge, validate_input("J-3", "trophy-plate", lines=lines))
    assert again.type == n.ERR_TEXT_DOES_NOT_FIT


async def test_too_many_lines_does_not_fit(edge: EdgeActivities) -> None:
    err = await refused(edge, validate_input("J-4", "trophy-plate", lines=("a", "b", "c", "d")))
    assert err.type == n.ERR_TEXT_DOES_NOT_FIT


async def test_unknown_item_blocks(edge: EdgeActivities, store: Store) -> None:
    err = await refused(edge, validate_input("J-5", "no-such-item"))
    assert err.type == n.ERR_UNKNOWN_ITEM
    job = await store.get_job("J-5")
    assert (job.status, job.reason) == (JobStatus.BLOCKED, "unknown_item")


async def test_two_jobs_never_get_the_last_unit(edge: EdgeActivities, store: Store) -> None:
    await store.set_stock("acrylic-award", 1, time.time())
    outcomes = await asyncio.gather(
        ActivityEnvironment().run(edge.validate_job, validate_input("J-6", "acrylic-award")),
        ActivityEnvironment().run(edge.validate_job, validate_input("J-7", "acrylic-award")),
        return_exceptions=True,
    )
    won = [o for o in outcomes if isinstance(o, n.ValidateResult)]
    lost = [o for o in outcomes if isinstance(o, ApplicationError)]
    assert len(won) == 1 and len(lost) == 1
    assert lost[0].type == n.ERR_NO_INVENTORY
    assert await stock(store, "acrylic-award") == (0, 1, 0)


async def test_blocked_job_validates_once_stock_returns(edge: EdgeActivities, store: Store) -> None:
    await store.set_stock("plaque-small", 0, time.time())
    await refused(edge, validate_input("J-8", "plaque-small"))
    await store.set_stock("plaque-small", 2, time.time())
    result = await ActivityEnvironment().run(
        edge.validate_job, validate_input("J-8", "plaque-small")
    )
    assert result.remaining == 1
    assert (await store.get_job("J-8")).status is JobStatus.VALIDATED


async def test_alternatives_take_the_text_and_are_in_stock(
    edge: EdgeActivities, store: Store
) -> None:
    await store.set_stock("plaque-small", 0, time.time())
    req = n.AlternativesInput("J-9", "trophy-plate", ("Champion", "2026"), None, limit=10)
    found = await ActivityEnvironment().run(edge.list_alternatives, req)
    ids = [a.item_id for a in found.items]
    assert ids, "some flat item takes two short lines"
    assert "trophy-plate" not in ids and "plaque-small" not in ids
    assert not {"glass-tumbler", "cup-silver"} & set(ids), "a cylinder is no plaque"
    assert all(a.available > 0 for a in found.items)
    assert ids[0] == "plaque-a5", "same material first"


async def test_alternatives_exclude_items_the_text_does_not_fit(edge: EdgeActivities) -> None:
    lines = ("one", "two", "three", "four")
    req = n.AlternativesInput("J-10", "plaque-small", lines, None)
    found = await ActivityEnvironment().run(edge.list_alternatives, req)
    ids = {a.item_id for a in found.items}
    assert "trophy-plate" not in ids  # takes at most 3 lines
    assert ids <= {"plaque-a5", "acrylic-award"}


async def test_release_returns_the_unit_and_cancels(edge: EdgeActivities, store: Store) -> None:
    before = await stock(store, "plaque-a5")
    env = ActivityEnvironment()
    await env.run(edge.validate_job, validate_input("J-11"))
    release = n.ReleaseInput("J-11", "plaque-a5", "cancelled")
    await env.run(edge.release_reservation, release)
    await env.run(edge.release_reservation, release)
    assert await stock(store, "plaque-a5") == before
    job = await store.get_job("J-11")
    assert (job.status, job.reason) == (JobStatus.CANCELLED, "cancelled")


async def test_release_of_an_engraved_unit_writes_it_off(
    edge: EdgeActivities, store: Store
) -> None:
    before = await stock(store, "plaque-a5")
    env = ActivityEnvironment()
    await env.run(edge.validate_job, validate_input("J-12"))
    await env.run(edge.release_reservation, n.ReleaseInput("J-12", "plaque-a5", "failed", True))
    assert await stock(store, "plaque-a5") == (before[0] - 1, 0, 1)
    assert (await store.get_job("J-12")).status is JobStatus.FAILED


async def test_release_without_a_job_is_a_no_op(edge: EdgeActivities) -> None:
    await ActivityEnvironment().run(
        edge.release_reservation, n.ReleaseInput("J-none", "plaque-a5", "cancelled")
    )


async def test_revision_requested_ends_the_job(edge: EdgeActivities, store: Store) -> None:
    env = ActivityEnvironment()
    await env.run(edge.validate_job, validate_input("J-13", requires_design=True))
    await env.run(
        edge.release_reservation, n.ReleaseInput("J-13", "plaque-a5", "revision requested")
    )
    assert (await store.get_job("J-13")).status is JobStatus.REVISION_REQUESTED
