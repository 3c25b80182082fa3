"""Start engraving workflows (idempotent on the job id) and build the ``crown-orders`` worker.

A redelivered intake message must never start a second job: the workflow id is ``job-{job_id}``,
a start while that workflow runs attaches to it (``USE_EXISTING``) and a start after it closed is
rejected (``REJECT_DUPLICATE``) and answered with the existing handle.

A start that created the workflow tells ``learn(job_id, shop)`` which workshop makes the job (the
bridge's :class:`~crown_edge.cloud.jobdir.JobDirectory`): that is the input the workflow was just
started with, its durable record. A start that attached to a running workflow tells nothing,
since that workflow's input came from an earlier message, possibly with another shop.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from temporalio.client import Client, WorkflowHandle
from temporalio.common import Priority, WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.worker import UnsandboxedWorkflowRunner, Worker, WorkflowRunner

from crown_edge.cloud.activities import CloudActivities
from crown_edge.cloud.dispatcher import INTAKE_STAGES
from crown_edge.models import IntakeMessage
from crown_edge.workflow.data import EngravingJob, JobResult
from crown_edge.workflow.names import ORDERS_TASK_QUEUE, workflow_id
from crown_edge.workflow.workflow import EngravingWorkflow

log = logging.getLogger(__name__)


#: ``learn(job_id, shop_id)``: told which workshop makes a job whose workflow a start created.
Learn = Callable[[str, str], None]


async def start_job(
    client: Client,
    msg: IntakeMessage,
    *,
    default_shop_id: str,
    learn: Learn | None = None,
) -> WorkflowHandle[EngravingWorkflow, JobResult]:
    """Start the job's workflow, or return the handle of the one already started for it.

    Rush jobs get ``Priority(priority_key=1)``, standard jobs 5. ``default_shop_id`` names the
    workshop for a message without ``shop_id``. The intake stages the dispatcher knows
    (:data:`~crown_edge.cloud.dispatcher.INTAKE_STAGES`) go in the workflow's memo: its
    history then holds the job's timeline from the order's hand-over on. ``learn`` is told the
    job's workshop when this call created the workflow (module docstring).
    """
    job = EngravingJob.from_intake(msg, default_shop_id=default_shop_id)
    wid = workflow_id(msg.job_id)
    stages = INTAKE_STAGES.get()  # the dispatcher's: kept with the workflow for its timeline
    try:
        handle = await client.start_workflow(
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
    if learn is not None and created(handle):
        learn(msg.job_id, job.workshop)
    return handle


def created(handle: WorkflowHandle[Any, Any]) -> bool:
    """Whether the start call that returned ``handle`` created the workflow run.

    The server says so in the start's answer (``started``; False when ``USE_EXISTING`` attached
    to a running workflow). The SDK keeps that answer on the handle without a public accessor;
    when it is not there (another SDK version, a handle not from a start) the answer is False,
    and the caller only loses a shortcut (the bridge then looks the job up in Temporal).
    """
    response = getattr(handle, "_start_workflow_response", None)
    return getattr(response, "started", False) is True


def workflow_runner() -> WorkflowRunner:
    """How the cloud's workers run workflow code: without Temporal's sandbox.

    The sandbox re-imports the workflow's modules into a fresh namespace for every workflow the
    worker starts and wraps every payload of every activation in its import hooks: under a burst
    of orders that was a fifth of the cloud process's CPU (``bench pipeline``: 2.0–2.4 s of the
    process's CPU for 60 jobs with it, 1.6 s without), CPU the box's Temporal server then lacked.
    The sandbox's own job, catching workflow code that would not replay (a clock, randomness,
    I/O, module state), is done before the code ships: every workflow test runs its workflows in
    the sandbox (``tests/workflow/conftest.py``), and so does the replay of the recorded
    histories of every earlier version (``tests/workflow/test_replay.py``). The workflow modules
    keep the sandbox's rules (no side effects on import, pure helpers passed through).
    """
    return UnsandboxedWorkflowRunner()


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
    Workflows run as :func:`workflow_runner` says unless ``workflow_runner`` is given (the tests
    give the sandbox).
    """
    worker_options.setdefault("workflow_runner", workflow_runner())
    return Worker(
        client,
        task_queue=task_queue,
        workflows=[EngravingWorkflow],
        activities=[*cloud_activities.activities(), *extra_activities],
        **worker_options,
    )
