"""The workshop's part in the customer's side: cancels made here, alternatives, restocks."""

from __future__ import annotations

import time

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from crown_edge.daemon.activities import EdgeActivities
from crown_edge.daemon.restock import signal_restock, waiting_for
from crown_edge.lifecycle import JobEvent
from crown_edge.models import JobStatus
from crown_edge.store import Store
from crown_edge.workflow import names as n
from tests.edge.support import qa_input, run_input, validate_input

S = JobStatus


async def test_a_job_cancelled_here_before_its_run_reports_the_cancel(
    edge: EdgeActivities, store: Store
) -> None:
    await ActivityEnvironment().run(edge.validate_job, validate_input("C-1"))
    await store.transition("C-1", JobEvent.CANCEL, time.time(), sets={"reason": "phone"})

    result = await ActivityEnvironment().run(edge.send_to_machine, run_input("C-1"))

    assert (result.outcome, result.cancel_reason) == (n.OUTCOME_FAILED, "phone")
    assert result.message == "cancelled on the workshop: phone"  # not "no run recorded"


async def test_validate_and_qa_refuse_a_job_cancelled_here_as_job_cancelled(
    edge: EdgeActivities, store: Store
) -> None:
    await ActivityEnvironment().run(edge.validate_job, validate_input("C-2"))
    await store.transition("C-2", JobEvent.CANCEL, time.time(), sets={"reason": "wrong text"})

    for activity, arg in (
        (edge.validate_job, validate_input("C-2")),
        (edge.quality_check, qa_input("C-2")),
    ):
        with pytest.raises(ApplicationError) as info:
            await ActivityEnvironment().run(activity, arg)  # type: ignore[arg-type]
        assert (info.value.type, info.value.message) == (n.ERR_JOB_CANCELLED, "wrong text")
        assert info.value.non_retryable


async def test_an_alternative_replaces_the_item_of_a_blocked_job(
    edge: EdgeActivities, store: Store
) -> None:
    await store.set_stock("plaque-a5", 0, time.time())
    with pytest.raises(ApplicationError):
        await ActivityEnvironment().run(edge.validate_job, validate_input("C-3"))
    assert (await store.get_job("C-3")).status is S.BLOCKED
    before = next(r for r in await store.list_stock() if r.item_id == "trophy-plate").available

    done = await ActivityEnvironment().run(
        edge.validate_job, validate_input("C-3", item_id="trophy-plate")
    )

    job = await store.get_job("C-3")
    assert (done.item_id, job.item_id, job.status) == ("trophy-plate", "trophy-plate", S.VALIDATED)
    assert job.message["item_id"] == "trophy-plate"
    after = next(r for r in await store.list_stock() if r.item_id == "trophy-plate").available
    assert after == before - 1


async def test_a_job_holding_a_unit_keeps_its_item(edge: EdgeActivities, store: Store) -> None:
    await ActivityEnvironment().run(edge.validate_job, validate_input("C-4"))
    await ActivityEnvironment().run(
        edge.validate_job, validate_input("C-4", item_id="trophy-plate")
    )
    assert (await store.get_job("C-4")).item_id == "plaque-a5"


async def test_restock_finds_the_jobs_blocked_on_the_item(
    edge: EdgeActivities, store: Store
) -> None:
    await store.set_stock("plaque-a5", 0, time.time())
    for job_id in ("C-5", "C-6"):
        with pytest.raises(ApplicationError):
            await ActivityEnvironment().run(edge.validate_job, validate_input(job_id))
    jobs = await store.list_jobs()

    assert waiting_for(jobs, "plaque-a5") == ["C-5", "C-6"]
    assert waiting_for(jobs, "trophy-plate") == []
    # without a Temporal link nothing is sent: the workflows' recheck timers find the stock
    assert await signal_restock(None, store, "plaque-a5", 3) == []


async def test_restock_signals_each_waiting_workflow(edge: EdgeActivities, store: Store) -> None:
    await store.set_stock("plaque-a5", 0, time.time())
    with pytest.raises(ApplicationError):
        await ActivityEnvironment().run(edge.validate_job, validate_input("C-7"))
    client = FakeClient()

    assert await signal_restock(client, store, "plaque-a5", 0) == []
    assert await signal_restock(client, store, "plaque-a5", 2) == ["C-7"]
    assert client.sent == [("job-C-7", n.RESTOCKED, "plaque-a5", 2)]


class FakeClient:
    """Records ``restocked`` signals like a Temporal client's workflow handles would send."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, str, int]] = []

    def get_workflow_handle(self, workflow_id: str) -> FakeHandle:
        return FakeHandle(self, workflow_id)


class FakeHandle:
    def __init__(self, client: FakeClient, workflow_id: str) -> None:
        self.client = client
        self.workflow_id = workflow_id

    async def signal(self, name: str, arg: object, **_: object) -> None:
        self.client.sent.append((self.workflow_id, name, arg.item_id, arg.available))  # type: ignore[attr-defined]
