"""Dispatcher + the real start_job against the Temporal dev server: one job per job id."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from crown_edge.cloud.dispatcher import Dispatcher
from crown_edge.embedded import TemporalDevServer
from crown_edge.models import IntakeMessage
from crown_edge.sync.sqs import OrderQueue

pytestmark = pytest.mark.integration


async def test_redelivered_intake_never_starts_a_second_workflow(
    temporal_dev_server: TemporalDevServer, sqs_queues: dict[str, str], sqs: Any
) -> None:
    from temporalio.client import Client

    from crown_edge.cloud.starter import start_job
    from crown_edge.workflow.names import workflow_id

    client = await Client.connect(temporal_dev_server.target)
    run_ids: list[str | None] = []

    async def start(msg: IntakeMessage) -> None:
        handle = await start_job(client, msg, default_shop_id="shop-t")
        run_ids.append(handle.result_run_id or handle.run_id)

    job_id = f"T-{uuid.uuid4().hex[:10]}"
    msg = IntakeMessage.parse(
        {"job_id": job_id, "customer_id": "C", "item_id": "plaque-a5", "due_date": "2026-12-01"}
    )
    orders = OrderQueue(sqs, sqs_queues)
    # Two dispatchers without a shared memory, and a resend moto lets through: the workflow id
    # policy alone must keep it to one execution.
    for _ in range(2):
        await orders.send_order(msg)
        assert await Dispatcher(orders, start, wait_seconds=0).poll_once() == 1
    assert len(run_ids) == 2
    assert run_ids[0] == run_ids[1]  # USE_EXISTING: the second start attached to the first run
    handle = client.get_workflow_handle(workflow_id(job_id))
    description = await handle.describe()
    assert description.run_id == run_ids[0]
    await handle.terminate("test over")
