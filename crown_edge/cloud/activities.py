"""Cloud activities of the engraving workflow (task queue ``crown-orders``).

They touch no workshop state: stock, machines and QA belong to the workshop activities. What they
produce leaves through one injectable *sink* ``sink(kind, payload)`` (sync or async) that the cloud
side wires to the WebSocket status stream, the bridge and the ``job-events`` queue; without a sink
the events are only logged. Kinds: ``status`` (a :class:`JobStatusEvent`), ``design_ready``,
``notification``, ``revision_requested``, ``alternatives_offered``, ``escalation``, ``rating``
(the customer's 1-5 stars for a complete job: the ``customer_satisfaction`` metric's source).

The design preview is rendered with :func:`crown_edge.toolpath.render_job` (the strokes the
machine will cut, artwork included when it can be fetched within limits) and written to
``{designs_dir}/{job_id}.svg``, served as ``/designs/{job_id}.svg``; a revised design (the customer
asked for changes) goes to ``{job_id}-r{revision}.svg`` so the page never shows a cached old one.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import os
import tempfile
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from crown_edge.artwork import load_job_artwork
from crown_edge.catalog import Catalog
from crown_edge.errors import ArtworkError, TextDoesNotFit, UnknownItem, ValidationError
from crown_edge.models import Item, MaterialProfile
from crown_edge.toolpath import Artwork, ArtworkLimits, render_job
from crown_edge.toolpath.preview import preview_svg
from crown_edge.workflow import names
from crown_edge.workflow.data import (
    DesignInput,
    DesignResult,
    EscalateInput,
    JobStatusEvent,
    Notification,
    OfferAlternativesInput,
    RatingEvent,
    RevisionInput,
    StatusReport,
)

log = logging.getLogger(__name__)

EventSink = Callable[[str, dict[str, Any]], Awaitable[None] | None]
"""Where cloud events go: ``sink(kind, payload)``; may be a plain or an async function."""


def design_name(job_id: str, revision: int = 0) -> str:
    """File name stem of a job's design preview (``{job_id}``, ``{job_id}-r{revision}``)."""
    return job_id if revision <= 0 else f"{job_id}-r{revision}"


def design_url(job_id: str, revision: int = 0) -> str:
    """URL path of a job's design preview (a revision has its own)."""
    return f"/designs/{design_name(job_id, revision)}.svg"


class CloudActivities:
    """The cloud activities, bound to a designs directory, the catalogue and an event sink."""

    def __init__(
        self,
        designs_dir: Path,
        catalog: Catalog,
        sink: EventSink | None = None,
        *,
        artwork_limits: ArtworkLimits | None = None,
    ) -> None:
        self.designs_dir = Path(designs_dir)
        self.catalog = catalog
        self.sink = sink
        #: Limits for fetching customer artwork (default: https to public hosts only).
        self.artwork_limits = artwork_limits

    def activities(self) -> list[Callable[..., Any]]:
        """Every activity, ready for ``Worker(activities=...)``."""
        return [
            self.create_design,
            self.request_revision,
            self.notify_customer,
            self.offer_alternatives,
            self.escalate,
            self.publish_status,
            self.record_rating,
            self.report_status,
        ]

    async def _emit(self, kind: str, payload: dict[str, Any]) -> None:
        log.info("cloud event %s job=%s", kind, payload.get("job_id"))
        if self.sink is None:
            return
        result = self.sink(kind, payload)
        if inspect.isawaitable(result):
            await result

    @activity.defn(name=names.CREATE_DESIGN)
    async def create_design(self, request: DesignInput) -> DesignResult:
        """Lay out the text on the item, write the preview SVG and tell the customer."""
        try:
            item = self.catalog.item(request.item_id)
        except UnknownItem as exc:
            raise ApplicationError(
                str(exc), type=names.ERR_UNKNOWN_ITEM, non_retryable=True
            ) from exc
        warnings: list[str] = []
        artwork: Artwork | None = None
        if request.artwork_url:
            try:
                artwork = await asyncio.to_thread(
                    load_job_artwork, request.artwork_url, self.artwork_limits
                )
            except ArtworkError as exc:
                warnings.append(f"artwork left out: {exc}")
        material = self.catalog.material(request.material or item.material)
        svg, fits, render_warnings = await asyncio.to_thread(
            functools.partial(
                render_preview,
                item,
                request.lines,
                request.font,
                job_id=request.job_id,
                material=material,
                artwork=artwork,
            )
        )
        warnings.extend(render_warnings)
        name = design_name(request.job_id, request.revision)
        await asyncio.to_thread(_write_atomic, self.designs_dir / f"{name}.svg", svg)
        url = design_url(request.job_id, request.revision)
        result = DesignResult(request.job_id, url, fits, tuple(warnings))
        await self._emit(
            "design_ready",
            {
                "job_id": request.job_id,
                "customer_id": request.customer_id,
                "design_url": url,
                "fits": fits,
                "warnings": list(warnings),
                "revision": request.revision,
            },
        )
        return result

    @activity.defn(name=names.REQUEST_REVISION)
    async def request_revision(self, request: RevisionInput) -> None:
        """Tell the customer (and the design desk) that a revised design is needed."""
        await self._emit(
            "revision_requested",
            {
                "job_id": request.job_id,
                "customer_id": request.customer_id,
                "design_url": request.design_url,
                "comment": request.comment,
                "revision": request.revision,
            },
        )

    @activity.defn(name=names.NOTIFY_CUSTOMER)
    async def notify_customer(self, note: Notification) -> None:
        """Send the customer a notification about a transition of their job."""
        await self._emit("notification", _notification(note))

    @activity.defn(name=names.OFFER_ALTERNATIVES)
    async def offer_alternatives(self, offer: OfferAlternativesInput) -> None:
        """Tell the customer the item is out of stock and which in-stock items could replace it."""
        items = [
            {"item_id": a.item_id, "name": a.name, "material": a.material, "available": a.available}
            for a in offer.alternatives
        ]
        await self._emit(
            "alternatives_offered",
            {
                "job_id": offer.job_id,
                "customer_id": offer.customer_id,
                "item_id": offer.item_id,
                "alternatives": items,
            },
        )

    @activity.defn(name=names.ESCALATE)
    async def escalate(self, request: EscalateInput) -> None:
        """Hand the job to a manager (QA failed too often, or the job failed)."""
        log.warning(
            "job %s escalated after %s attempts: %s",
            request.job_id,
            request.attempts,
            request.reason,
        )
        await self._emit(
            "escalation",
            {
                "job_id": request.job_id,
                "customer_id": request.customer_id,
                "reason": request.reason,
                "attempts": request.attempts,
                "notes": list(request.notes),
            },
        )

    @activity.defn(name=names.PUBLISH_STATUS)
    async def publish_status(self, event: JobStatusEvent) -> None:
        """Publish one status change of the workflow."""
        await self._emit("status", event.to_dict())

    @activity.defn(name=names.REPORT_STATUS)
    async def report_status(self, report: StatusReport) -> None:
        """Publish status changes in order, then send the customer's notices.

        One call per batch instead of ``publish_status`` per change plus ``notify_customer``:
        the events and their order are the same. A retry publishes the batch again; consumers
        drop the repeated statuses by ``event_id``, as they do for a retried ``publish_status``.
        """
        for event in report.statuses:
            await self._emit("status", event.to_dict())
        for note in report.notifications:
            await self._emit("notification", _notification(note))

    @activity.defn(name=names.RECORD_RATING)
    async def record_rating(self, rating: RatingEvent) -> None:
        """Publish the customer's rating of a complete job (kind ``rating``, once per job)."""
        await self._emit(
            "rating",
            {
                "event_id": f"{rating.job_id}:rating",
                "job_id": rating.job_id,
                "customer_id": rating.customer_id,
                "shop_id": rating.shop_id,
                "item_id": rating.item_id,
                "stars": rating.stars,
                "comment": rating.comment,
                "at": rating.at,
            },
        )


def _notification(note: Notification) -> dict[str, Any]:
    return {
        "job_id": note.job_id,
        "customer_id": note.customer_id,
        "kind": note.kind,
        "message": note.message,
        **note.data,
    }


# --- preview -------------------------------------------------------------------------------------


def render_preview(
    item: Item,
    lines: Sequence[str],
    font: str | None,
    *,
    job_id: str,
    material: MaterialProfile | None = None,
    artwork: Artwork | None = None,
) -> tuple[str, bool, list[str]]:
    """The preview SVG of the job on the item, whether it fits, and layout warnings.

    Rendered by :func:`crown_edge.toolpath.render_job`, so the preview shows the strokes the
    machine will cut. When the job does not render (text too big, a missing glyph), the preview
    shows the bare item and the reason comes back as a warning; customer text never goes into
    the SVG as characters.
    """
    try:
        result = render_job(item, lines, material, job_id=job_id, font=font, artwork=artwork)
    except ValidationError as exc:
        return preview_svg(item, ()), not isinstance(exc, TextDoesNotFit), [str(exc)]
    return result.preview_svg(), True, []


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
