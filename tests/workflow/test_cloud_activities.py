"""Cloud activities on their own: preview files, sink events, unknown items."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from crown_edge.catalog import load_catalog
from crown_edge.cloud.activities import CloudActivities
from crown_edge.toolpath import ArtworkLimits
from crown_edge.workflow.data import DesignInput, JobStatusEvent, Notification, StatusReport
from crown_edge.workflow.names import ERR_UNKNOWN_ITEM


class AsyncSink:
    """An async sink, as the cloud side may wire one."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    async def __call__(self, kind: str, payload: dict[str, Any]) -> None:
        self.events.append((kind, payload))


async def test_create_design_writes_the_preview_and_announces_it(tmp_path: Path) -> None:
    sink = AsyncSink()
    cloud = CloudActivities(tmp_path / "designs", load_catalog(), sink)
    request = DesignInput("J-9", "C-9", "plaque-a5", ("Best <Bowler>", "2026"))

    result = await ActivityEnvironment().run(cloud.create_design, request)

    assert (result.design_url, result.fits, result.warnings) == ("/designs/J-9.svg", True, ())
    svg = (tmp_path / "designs" / "J-9.svg").read_text()
    assert svg.startswith("<svg") and "<polyline" in svg
    assert sink.events == [
        (
            "design_ready",
            {
                "job_id": "J-9",
                "customer_id": "C-9",
                "design_url": "/designs/J-9.svg",
                "fits": True,
                "warnings": [],
                "revision": 0,
            },
        )
    ]


async def test_create_design_shows_text_that_does_not_fit(tmp_path: Path) -> None:
    cloud = CloudActivities(tmp_path, load_catalog())
    lines = tuple(f"Zanzibar <{i}> & more" for i in range(9))

    result = await ActivityEnvironment().run(
        cloud.create_design, DesignInput("J-10", "C-1", "plaque-a5", lines)
    )

    assert not result.fits
    assert result.warnings
    svg = (tmp_path / "J-10.svg").read_text()
    assert svg.startswith("<svg")
    assert "Zanzibar" not in svg  # customer text never goes into the document as characters


async def test_create_design_includes_fetched_artwork(tmp_path: Path) -> None:
    logo = tmp_path / "logo.svg"
    logo.write_text(
        '<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10">'
        '<rect x="1" y="1" width="8" height="8"/></svg>'
    )
    cloud = CloudActivities(
        tmp_path / "d", load_catalog(), artwork_limits=ArtworkLimits(allow_file=True)
    )
    plain = await ActivityEnvironment().run(
        cloud.create_design, DesignInput("J-12", "C-1", "plaque-a5", ("Cup",))
    )
    with_art = await ActivityEnvironment().run(
        cloud.create_design,
        DesignInput("J-13", "C-1", "plaque-a5", ("Cup",), artwork_url=logo.as_uri()),
    )

    assert plain.warnings == with_art.warnings == ()
    art_svg = (tmp_path / "d" / "J-13.svg").read_text()
    assert art_svg.count("<polyline") > (tmp_path / "d" / "J-12.svg").read_text().count("<polyline")


async def test_artwork_that_cannot_be_fetched_is_a_warning(tmp_path: Path) -> None:
    cloud = CloudActivities(tmp_path, load_catalog())  # customer limits: no file:// URLs
    result = await ActivityEnvironment().run(
        cloud.create_design,
        DesignInput("J-14", "C-1", "plaque-a5", ("Cup",), artwork_url="file:///etc/passwd"),
    )

    assert result.fits
    assert result.warnings[0].startswith("artwork left out")


async def test_create_design_for_an_unknown_item_is_not_retried(tmp_path: Path) -> None:
    cloud = CloudActivities(tmp_path, load_catalog())
    with pytest.raises(ApplicationError) as info:
        await ActivityEnvironment().run(
            cloud.create_design, DesignInput("J-11", "C-1", "no-such-item", ("x",))
        )
    assert info.value.type == ERR_UNKNOWN_ITEM
    assert info.value.non_retryable


async def test_publish_and_notify_go_to_the_sink(tmp_path: Path) -> None:
    seen: list[tuple[str, dict[str, Any]]] = []
    cloud = CloudActivities(tmp_path, load_catalog(), lambda k, p: seen.append((k, p)))
    env = ActivityEnvironment()
    event = JobStatusEvent("J-1:3", "J-1", 3, "queued", "2026-01-01T00:00:00+00:00", "s1")

    await env.run(cloud.publish_status, event)
    await env.run(cloud.notify_customer, Notification("J-1", "C-1", "complete", "done"))

    assert seen[0] == ("status", event.to_dict())
    assert "reason" not in seen[0][1]
    assert seen[1][1]["kind"] == "complete"


async def test_a_status_report_publishes_its_statuses_in_order_then_the_notices(
    tmp_path: Path,
) -> None:
    sink = AsyncSink()
    cloud = CloudActivities(tmp_path, load_catalog(), sink)
    at = "2026-01-01T00:00:00+00:00"
    events = tuple(
        JobStatusEvent(f"J-2:{seq}", "J-2", seq, word, at, "s1")
        for seq, word in enumerate(("qa_pending", "complete"), start=4)
    )
    note = Notification("J-2", "C-2", "complete", "Your engraving is complete.")

    await ActivityEnvironment().run(cloud.report_status, StatusReport("J-2", events, (note,)))

    assert sink.events == [
        ("status", events[0].to_dict()),
        ("status", events[1].to_dict()),
        (
            "notification",
            {
                "job_id": "J-2",
                "customer_id": "C-2",
                "kind": "complete",
                "message": "Your engraving is complete.",
            },
        ),
    ]
