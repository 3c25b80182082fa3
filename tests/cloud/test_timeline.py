"""The cloud's timeline of an order: stages read from recorded workflow histories, and the
Order API's ``GET /orders/{job_id}/timeline`` doors. Content only, never durations."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import WorkflowHistory

from crown_edge.cloud import ApiSettings, Credentials, OrderApi, create_app
from crown_edge.cloud.bridge import Bridge
from crown_edge.cloud.jobs import history_marks
from crown_edge.sync.sqs import OrderQueue
from crown_edge.workflow import timeline as tl
from tests.cloud.client import request

HISTORIES = Path(__file__).parents[1] / "workflow" / "histories"
KEY = "timeline-test-key-0123456789"
CREDS = Credentials(api_keys=(KEY,), token_secrets=("timeline-secret-0123456789",))


def _history(name: str) -> WorkflowHistory:
    return WorkflowHistory.from_json(name, (HISTORIES / f"{name}.json").read_text())


def _known(marks: dict[str, float]) -> list[str]:
    return [row["stage"] for row in tl.timeline(marks) if row["at"] is not None]


def test_a_text_job_history_gives_its_cloud_stages_in_order() -> None:
    marks = history_marks(_history("v2-text-complete").events)
    assert _known(marks) == [tl.WORKFLOW_STARTED, tl.VALIDATED, tl.QA_VERDICT, tl.COMPLETE]
    rows = tl.timeline(marks)
    assert all(r["gap_ms"] is None or r["gap_ms"] >= 0 for r in rows)
    first = _history("v2-text-complete").events[0]
    assert marks[tl.WORKFLOW_STARTED] == pytest.approx(first.event_time.ToMicroseconds() / 1e6)


def test_a_design_job_has_its_design_stage_and_a_retried_qa_keeps_the_first_verdict() -> None:
    design = history_marks(_history("v2-design-approved-update").events)
    assert _known(design) == [
        tl.WORKFLOW_STARTED,
        tl.VALIDATED,
        tl.DESIGN_READY,
        tl.QA_VERDICT,
        tl.COMPLETE,
    ]
    retried = _history("v2-qa-fail-then-complete").events
    marks = history_marks(retried)
    checks = [
        e.event_id
        for e in retried
        if e.WhichOneof("attributes") == "activity_task_scheduled_event_attributes"
        and e.activity_task_scheduled_event_attributes.activity_type.name == "quality_check"
    ]
    assert len(checks) == 2
    first_done = next(
        e
        for e in retried
        if e.WhichOneof("attributes") == "activity_task_completed_event_attributes"
        and e.activity_task_completed_event_attributes.scheduled_event_id == checks[0]
    )
    assert marks[tl.QA_VERDICT] == pytest.approx(first_done.event_time.ToMicroseconds() / 1e6)


def test_a_refused_order_shows_every_later_stage_missing() -> None:
    rows = tl.timeline(history_marks(_history("v2-validation-failed").events))
    known = [r["stage"] for r in rows if r["at"] is not None]
    assert known == [tl.WORKFLOW_STARTED]
    assert {r["stage"]: r["gap_ms"] for r in rows if r["at"] is None}.keys() == set(tl.STAGES) - {
        tl.WORKFLOW_STARTED
    }


@pytest.fixture
async def api(sqs_queues: dict[str, str], sqs: Any) -> AsyncIterator[OrderApi]:
    settings = ApiSettings(credentials=CREDS)
    async with (
        Bridge(None) as bridge,
        create_app(OrderQueue(sqs, sqs_queues), bridge, settings) as app,
    ):
        yield app


@pytest.mark.integration
async def test_the_timeline_door_needs_the_key_and_a_known_order(api: OrderApi) -> None:
    url = f"{api.url}/orders/J-1/timeline"
    assert (await request(url)).status == 401
    wrong = await request(url, headers={"Authorization": "Bearer nope-nope-nope"})
    assert wrong.status == 403
    token = await request(f"{url}?token={CREDS.token('J-1')}")
    assert token.status == 401  # a customer's token does not open the back office's timeline
    unknown = await request(url, headers={"Authorization": f"Bearer {KEY}"})
    assert unknown.status == 404 and unknown.json()["error"] == "not_found"
    bad = await request(
        f"{api.url}/orders/no%20such/timeline", headers={"Authorization": f"Bearer {KEY}"}
    )
    assert bad.status == 404
