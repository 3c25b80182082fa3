"""The Order API's window on a job: the workflow's durable state, and the customer's answers to it.

What an order looks like comes from the workflow's ``status`` query (Temporal keeps it, so it is
the same after a cloud restart and from every Order API process), merged with the bridge's live
status board only for fresher details of the same status: the workshop reports engraving
progress and queue positions more often than the workflow records them. Without a Temporal client
(unit tests) the board alone answers.

The customer's actions are workflow **updates** on ``job-{job_id}``: Temporal answers each with
the job's new view, or with the reason the workflow refused it (a validator's error), which the
Order API passes on as 409.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
from collections.abc import Iterable, Mapping
from typing import Any

from temporalio.client import (
    Client,
    WorkflowQueryFailedError,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.service import RPCError, RPCStatusCode

from crown_edge.cloud.board import StatusBoard
from crown_edge.cloud.jobdir import JobDirectory
from crown_edge.workflow import names, timeline

log = logging.getLogger(__name__)

#: Customer actions → workflow update names.
APPROVE_DESIGN = names.APPROVE_DESIGN
CHOOSE_ALTERNATIVE = "choose_alternative"
RATE = "rate"

#: Longest wait for a query or an update before the API answers 504.
CALL_TIMEOUT = 30.0

_LIVE_FIELDS = ("progress", "queue_position", "machine_id")


class Refused(Exception):
    """The workflow refused a customer's action; ``reason`` says why (shown to the customer)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Unavailable(Exception):
    """The workflow service could not be asked (down, or too slow)."""


def merge(
    durable: Mapping[str, Any] | None, live: Mapping[str, Any] | None
) -> dict[str, Any] | None:
    """The view to show: ``durable`` (the workflow's) with ``live`` details of the same status.

    Without a durable view (no workflow yet, or no Temporal client) the live event stands alone.
    Progress only ever moves forward within a status, so the larger value is the fresher one.
    """
    if durable is None:
        return dict(live) if live is not None else None
    out = dict(durable)
    if live is None or live.get("status") != durable.get("status"):
        return out
    for key in _LIVE_FIELDS:
        value = live.get(key)
        if value is None:
            continue
        if key == "progress":
            current = out.get("progress")
            if isinstance(value, int | float) and (
                not isinstance(current, int | float) or value > current
            ):
                out["progress"] = float(value)
        else:
            out[key] = value
    return out


class Jobs:
    """Durable job views and customer updates, over a Temporal client and the status board."""

    def __init__(
        self,
        board: StatusBoard,
        temporal: Client | None = None,
        shops: JobDirectory | None = None,
    ) -> None:
        self.board = board
        self.temporal = temporal
        self.shops = shops

    async def durable(self, job_id: str) -> dict[str, Any] | None:
        """The workflow's ``status`` query answer; None if there is no workflow (yet)."""
        if self.temporal is None:
            return None
        handle = self.temporal.get_workflow_handle(names.workflow_id(job_id))
        try:
            async with asyncio.timeout(CALL_TIMEOUT):
                view = await handle.query(names.STATUS_QUERY)
        except RPCError as exc:
            if exc.status is RPCStatusCode.NOT_FOUND:
                return None
            log.warning("job %s: status query failed: %s", job_id, exc, extra={"job_id": job_id})
            raise Unavailable(str(exc)) from exc
        except (WorkflowQueryFailedError, TimeoutError) as exc:
            log.warning("job %s: status query failed: %r", job_id, exc, extra={"job_id": job_id})
            raise Unavailable(str(exc)) from exc
        return dict(view) if isinstance(view, Mapping) else None

    async def view(self, job_id: str) -> dict[str, Any] | None:
        """What the job looks like now (module docstring); None if nobody knows it."""
        try:
            durable = await self.durable(job_id)
        except Unavailable:
            durable = None  # the live board still knows the latest event, if any
        view = merge(durable, self.board.job(job_id))
        if view is not None and durable is not None and not view.get("shop_id"):
            shop = await self._shop_of(job_id)
            if shop is not None:
                view["shop_id"] = shop
        return view

    async def _shop_of(self, job_id: str) -> str | None:
        """The workshop that makes ``job_id``, from its workflow's own input (never a message).

        Asked only once the workflow exists, and past the directory's memory of misses: a page
        opened before the workflow started must not hide the shop for the next minute.
        """
        if self.shops is None:
            return None
        shop = self.shops.known(job_id)
        if shop is not None or self.shops.lookup is None:
            return shop
        try:
            async with asyncio.timeout(CALL_TIMEOUT):
                shop = await self.shops.lookup(job_id)
        except Exception as exc:  # Temporal slow or down: the view goes without the shop
            log.warning("job %s: shop lookup failed: %r", job_id, exc, extra={"job_id": job_id})
            return None
        if shop is not None:
            self.shops.learn(job_id, shop)
        return shop

    async def timeline(self, job_id: str) -> list[dict[str, Any]] | None:
        """The job's stages from its workflow's history (:func:`job_timeline`); None when
        there is no workflow, or no Temporal client."""
        if self.temporal is None:
            return None
        return await job_timeline(self.temporal, job_id)

    async def update(self, job_id: str, name: str, arg: Any) -> dict[str, Any]:
        """Run the workflow update ``name``; the job's new view, or :class:`Refused`."""
        if self.temporal is None:
            raise Unavailable("no workflow service configured")
        handle = self.temporal.get_workflow_handle(names.workflow_id(job_id))
        try:
            async with asyncio.timeout(CALL_TIMEOUT):
                result = await handle.execute_update(name, arg)
        except WorkflowUpdateFailedError as exc:
            cause = exc.cause
            raise Refused(str(getattr(cause, "message", None) or cause or exc)) from exc
        except RPCError as exc:
            if exc.status is RPCStatusCode.NOT_FOUND:
                raise Refused("this order is not open for changes") from exc
            raise Unavailable(str(exc)) from exc
        except (WorkflowUpdateRPCTimeoutOrCancelledError, TimeoutError) as exc:
            raise Unavailable("the workflow did not answer in time") from exc
        if isinstance(result, Mapping):
            return merge(dict(result), self.board.job(job_id)) or {}
        return await self.view(job_id) or {"job_id": job_id}


#: Cloud-side activities whose completion marks a stage of the job's timeline.
_ACTIVITY_STAGES = {
    names.VALIDATE_JOB: timeline.VALIDATED,
    names.CREATE_DESIGN: timeline.DESIGN_READY,
    names.QUALITY_CHECK: timeline.QA_VERDICT,
    names.MARK_COMPLETE: timeline.COMPLETE,
}


def history_marks(events: Iterable[Any]) -> dict[str, float]:
    """Stage times from a workflow's history (Temporal's durable record of the job).

    The start event marks ``workflow_started``, and its memo's stage fields (``accepted_at``,
    ``sqs_sent_at``, ``sqs_received_at``, set by whoever started it) the stages before; the
    completion of ``validate_job``, ``create_design``, ``quality_check`` and ``mark_complete``
    mark theirs, the first time each completed.
    """
    marks: dict[str, float] = {}
    scheduled: dict[int, str] = {}
    for event in events:
        kind = event.WhichOneof("attributes")
        at = event.event_time.ToDatetime(tzinfo=dt.UTC).timestamp()
        if kind == "workflow_execution_started_event_attributes":
            timeline.mark(marks, timeline.WORKFLOW_STARTED, at)
            memo = event.workflow_execution_started_event_attributes.memo.fields
            for field, stage in timeline.STAGE_FIELDS.items():
                if field in memo:
                    try:
                        value = json.loads(memo[field].data)
                    except ValueError:
                        continue
                    if isinstance(value, int | float) and not isinstance(value, bool):
                        timeline.mark(marks, stage, float(value))
        elif kind == "activity_task_scheduled_event_attributes":
            name = event.activity_task_scheduled_event_attributes.activity_type.name
            scheduled[event.event_id] = name
        elif kind == "activity_task_completed_event_attributes":
            done = event.activity_task_completed_event_attributes
            reached = _ACTIVITY_STAGES.get(scheduled.get(done.scheduled_event_id, ""))
            if reached is not None:
                timeline.mark(marks, reached, at)
    return marks


async def job_timeline(temporal: Client, job_id: str) -> list[dict[str, Any]] | None:
    """The job's timeline from its workflow's history; None when there is no workflow."""
    handle = temporal.get_workflow_handle(names.workflow_id(job_id))
    try:
        async with asyncio.timeout(CALL_TIMEOUT):
            history = await handle.fetch_history()
    except RPCError as exc:
        if exc.status is RPCStatusCode.NOT_FOUND:
            return None
        raise Unavailable(str(exc)) from exc
    except TimeoutError as exc:
        raise Unavailable("the workflow service did not answer in time") from exc
    return timeline.timeline(history_marks(history.events))
