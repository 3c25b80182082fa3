"""How the engraving workflow calls its activities: timeouts, retry policies, task queues.

Short activities follow the seed (first retry after 1 s, backoff 2, at most 3 attempts).
Activities that must eventually happen once the item is physically engraved or stock is held
(machine run, QA verdict, consume or release the reservation) retry without limit, with a capped
interval: a workshop that is offline or restarting is normal, and the edge makes each of them
idempotent, so a retry never engraves twice or moves stock twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import Priority, RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError
from temporalio.workflow import ActivityCancellationType

from crown_edge.workflow.data import EngravingJob
from crown_edge.workflow.names import BLOCKING_ERRORS, ORDERS_TASK_QUEUE


@dataclass(frozen=True, slots=True)
class ActivityOptions:
    """The options one kind of activity is started with."""

    start_to_close: timedelta
    retry: RetryPolicy
    heartbeat: timedelta | None = None
    cancellation: ActivityCancellationType = ActivityCancellationType.TRY_CANCEL
    #: Give up when the activity has not finished this long after it was scheduled.
    schedule_to_close: timedelta | None = None


_NON_RETRYABLE = list(BLOCKING_ERRORS)

#: Seed retry policy for short activities.
SHORT_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_attempts=3,
    non_retryable_error_types=_NON_RETRYABLE,
)

#: Retries for what must happen eventually (each retry is idempotent on the edge).
PERSISTENT_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=5),
    maximum_attempts=0,
    non_retryable_error_types=_NON_RETRYABLE,
)

#: validate_job: short, but a cancel waits for it to finish so a late reservation is released.
VALIDATE = ActivityOptions(
    start_to_close=timedelta(minutes=1),
    retry=SHORT_RETRY,
    cancellation=ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
)
#: validate_job again while a blocked job waits: an offline workshop must not hold the wait
#: (choices, the timeout) for long, so it gives up and the next recheck tries again.
REVALIDATE = ActivityOptions(
    start_to_close=timedelta(minutes=1),
    retry=SHORT_RETRY,
    cancellation=ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
    schedule_to_close=timedelta(minutes=10),
)
#: list_alternatives and the cloud activities.
SHORT = ActivityOptions(start_to_close=timedelta(minutes=1), retry=SHORT_RETRY)
#: create_design may lay out artwork.
DESIGN = ActivityOptions(start_to_close=timedelta(minutes=5), retry=SHORT_RETRY)
#: release_reservation / mark_complete: stock must not stay held or unconsumed.
STOCK = ActivityOptions(start_to_close=timedelta(minutes=1), retry=PERSISTENT_RETRY)
#: send_to_machine: queue wait plus engraving. The edge heartbeats twice a second (the SDK
#: throttles that), so 30 s without one means the worker is gone: the retry goes to the same
#: workshop queue and re-attaches to the stored run when the daemon is back (never re-engraves).
MACHINE = ActivityOptions(
    start_to_close=timedelta(hours=24),
    retry=PERSISTENT_RETRY,
    heartbeat=timedelta(seconds=30),
    cancellation=ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
)
#: quality_check: waits for a technician; the edge heartbeats while it waits.
QA = ActivityOptions(
    start_to_close=timedelta(days=7),
    retry=PERSISTENT_RETRY,
    heartbeat=timedelta(seconds=30),
)
#: publish_status: an activity of the workflow worker, one per status change.
PUBLISH = ActivityOptions(start_to_close=timedelta(seconds=10), retry=SHORT_RETRY)


def error_type(err: BaseException) -> str | None:
    """The ApplicationError type behind an activity failure, if any."""
    cause = err.cause if isinstance(err, ActivityError) else err
    return cause.type if isinstance(cause, ApplicationError) else None


def was_cancelled(err: BaseException) -> bool:
    """Whether an activity failure is its cancellation."""
    return isinstance(err, ActivityError) and isinstance(err.cause, CancelledError)


async def workshop(
    job: EngravingJob,
    name: str,
    arg: Any,
    options: ActivityOptions,
    result_type: type | None = None,
) -> Any:
    """Run a workshop activity on the job's workshop queue, with the job's priority."""
    return await workflow.execute_activity(
        name,
        arg,
        task_queue=job.workshop_queue,
        result_type=result_type,
        start_to_close_timeout=options.start_to_close,
        schedule_to_close_timeout=options.schedule_to_close,
        heartbeat_timeout=options.heartbeat,
        retry_policy=options.retry,
        cancellation_type=options.cancellation,
        priority=Priority(priority_key=job.priority),
    )


async def cloud(
    job: EngravingJob,
    name: str,
    arg: Any,
    options: ActivityOptions = SHORT,
    result_type: type | None = None,
) -> Any:
    """Run a cloud activity on ``crown-orders``, with the job's priority."""
    return await workflow.execute_activity(
        name,
        arg,
        task_queue=ORDERS_TASK_QUEUE,
        result_type=result_type,
        start_to_close_timeout=options.start_to_close,
        retry_policy=options.retry,
        priority=Priority(priority_key=job.priority),
    )


async def cloud_quietly(job: EngravingJob, name: str, arg: Any) -> None:
    """A cloud side effect whose failure must not change the job's outcome (cancel still ends)."""
    try:
        await cloud(job, name, arg)
    except ActivityError as err:
        if was_cancelled(err):
            raise
        workflow.logger.warning("job %s: %s failed: %s", job.job_id, name, err.cause)
