"""Start engraving workflows (idempotent on the job id) and build the ``crown-orders`` worker.

A redelivered intake message must never start a second job: the workflow id is ``job-{job_id}``,
a start while that workflow runs attaches to it (``USE_EXISTING``) and a start after it closed is
rejected (``REJECT_DUPLICATE``) and answered with the existing handle.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from temporalio.client import Client, WorkflowHandle
from temporalio.common import Priority, WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.worker import Worker

from crown_edge.cloud.activities import CloudActivities
from crown_edge.cloud.dispatcher import INTAKE_STAGES
from crown_edge.models import IntakeMessage
from crown_edge.workflow.data import EngravingJob, JobResult
from crown_edge.workflow.names import ORDERS_TASK_QUEUE, workflow_id
from crown_edge.workflow.workflow import EngravingWorkflow

log = logging.getLogger(__name__)


async def start_job(
    client: Client, msg: IntakeMessage, *, default_shop_id: str
) -> WorkflowHandle[EngravingWorkflow, JobResult]:
    """Start the job's workflow, or return the handle of the one already started for it.

    Rush jobs get ``Priority(priority_key=1)``, standard jobs 5. ``default_shop_id`` names the
    workshop for a message without ``shop_id``. The intake stages the dispatcher knows
    (:data:`~crown_edge.cloud.dispatcher.INTAKE_STAGES`) go in the workflow's memo: its
    history then holds the job's timeline from the order's hand-over on.
    """
    job = EngravingJob.from_intake(msg, default_shop_id=default_shop_id)
    wid = workflow_id(msg.job_id)
    stages = INTAKE_STAGES.get()  # the dispatcher's: kept with the workflow for its timeline
    try:
        return await client.start_workflow(
            EngravingWorkflow.run,
            job,
            id=wid,
            task_queue=ORDERS_TASK_QUEUE,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            priority=Priority(priority_key=job.priority),
            memo=dict(stages) if stages else None,
        )
    except WorkflowAlreadyStartedError:
        log.info("job %s: workflow %s already ran; duplicate start ignored", msg.job_id, wid)
        return client.get_workflow_handle_for(EngravingWorkflow.run, wid)


def workflow_worker(
    client: Client,
    cloud_activities: CloudActivities,
    *,
    task_queue: str = ORDERS_TASK_QUEUE,
    extra_activities: Sequence[Any] = (),
    **worker_options: Any,
) -> Worker:
    """The worker that runs EngravingWorkflow and the cloud activities on ``crown-orders``.

    Use it as ``async with workflow_worker(client, cloud): ...`` or ``await worker.run()``.
    """
    return Worker(
        client,
        task_queue=task_queue,
        workflows=[EngravingWorkflow],
        activities=[*cloud_activities.activities(), *extra_activities],
        **worker_options,
    )
