"""Two dispatchers (two cloud processes) on one pair of intake queues start each job once.

Real parts: moto's SQS and Temporal's dev server. The same order arrives three times with
different deduplication ids (a resend after SQS's five-minute window, or moto accepting a copy
of a deleted message) and is seen by both dispatchers; FIFO message groups keep one job's
messages in order and the workflow id (``job-{job_id}``, ``USE_EXISTING`` /
``REJECT_DUPLICATE``) keeps them one workflow. The workflows have no worker here: nothing runs,
they are only started, and terminated at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from typing import Any

import pytest
from temporalio.client import Client

from crown_edge.cloud.dispatcher import Dispatcher
from crown_edge.cloud.starter import start_job
from crown_edge.embedded import TemporalDevServer
from crown_edge.models import IntakeMessage
from crown_edge.sync import queues
from crown_edge.sync.sqs import OrderQueue
from crown_edge.workflow.names import workflow_id

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


def _send(sqs: Any, url: str, job_id: str, copy: int) -> None:
    order = {"job_id": job_id, "customer_id": "C-1", "item_id": "plaque-a5"}
    order |= {"due_date": "2026-12-24", "text": ["Two dispatchers"], "shop_id": "nowhere"}
    sqs.send_message(
        QueueUrl=url,
        MessageBody=json.dumps(order),
        MessageGroupId=job_id,
        MessageDeduplicationId=f"{job_id}-copy-{copy}",
    )


def _left(sqs: Any, url: str) -> int:
    attrs = sqs.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"]) + int(
        attrs["ApproximateNumberOfMessagesNotVisible"]
    )


async def test_two_dispatchers_start_each_job_once(
    sqs: Any, sqs_queues: dict[str, str], temporal_dev_server: TemporalDevServer
) -> None:
    client = await Client.connect(temporal_dev_server.target)
    run = uuid.uuid4().hex[:8]
    jobs = [f"TWO-{run}-{i}" for i in range(4)]
    url = sqs_queues[queues.ENGRAVING_QUEUE]
    for copy in range(3):  # every job three times, interleaved
        for job_id in jobs:
            await asyncio.to_thread(_send, sqs, url, job_id, copy)

    async def start(msg: IntakeMessage) -> None:
        await start_job(client, msg, default_shop_id="nowhere")

    a = Dispatcher(OrderQueue(sqs, sqs_queues, hold_seconds=5), start, wait_seconds=1, batch=2)
    b = Dispatcher(OrderQueue(sqs, sqs_queues, hold_seconds=5), start, wait_seconds=1, batch=2)
    try:
        async with a, b, asyncio.timeout(120):
            while True:
                if not await asyncio.to_thread(_left, sqs, url):
                    break
                await asyncio.sleep(0.2)
        # every copy was dealt with by one of them (which one is SQS's choice: both, here,
        # in every run seen, but a test cannot insist on it)
        assert a.stats.received + b.stats.received >= 3 * len(jobs)
        assert a.stats.rejected == b.stats.rejected == 0
        for job_id in jobs:
            runs = [w async for w in client.list_workflows(f"WorkflowId = '{workflow_id(job_id)}'")]
            assert len(runs) == 1, (job_id, [r.run_id for r in runs])
    finally:
        for job_id in jobs:
            with contextlib.suppress(Exception):
                await client.get_workflow_handle(workflow_id(job_id)).terminate("test over")
