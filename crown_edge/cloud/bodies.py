"""The Order API's bodies: pydantic models that are also its OpenAPI document.

Bodies are decoded by :func:`crown_edge.cloud.errors.read_json` (total, size- and depth-limited)
and then validated by these models (:func:`crown_edge.cloud.errors.model`); ``OrderIn`` documents
the intake message, which :class:`~crown_edge.models.IntakeMessage` validates.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from crown_edge.toolpath.gcode import JOB_ID

MAX_COMMENT = 1000


class OrderIn(BaseModel):
    """An intake message (the seed's schema); unknown fields are kept."""

    model_config = ConfigDict(extra="allow")

    job_id: str = Field(pattern=JOB_ID.pattern, max_length=64)
    customer_id: str
    item_id: str
    due_date: str = Field(description="ISO 8601 date or date-time")
    text: list[str] = Field(default_factory=list, max_length=20)
    artwork_url: str | None = None
    rush: bool = False
    font: str | None = None
    material: str | None = None
    price_cents: int | None = Field(default=None, ge=0)
    shop_id: str | None = Field(default=None, description="a workshop this service knows")
    requires_design: bool = False
    customer_email: str | None = Field(
        default=None,
        max_length=254,
        description="where notifications go (with the order's signed link); none: no email",
    )
    notify_engraving: bool = Field(
        default=False, description="also tell the customer when engraving starts"
    )


class OrderAccepted(BaseModel):
    """The 202 answer: where the customer (``status_url``) and tools follow the order."""

    job_id: str
    status: str
    queue: str
    status_url: str = Field(description="the customer's page, with its signed token")
    order_url: str = Field(description="the JSON view, with the token")
    ws_url: str


class ApprovalIn(BaseModel):
    """The customer's answer to a design."""

    model_config = ConfigDict(extra="forbid", strict=True)

    approved: bool
    comment: str = Field(default="", max_length=MAX_COMMENT)


class AlternativeIn(BaseModel):
    """One of the offered items, or ``{"cancel": true}``."""

    model_config = ConfigDict(extra="forbid", strict=True)

    item_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9._-]{1,128}$")
    cancel: bool = False


class RatingIn(BaseModel):
    """1-5 stars and an optional comment, once the job is complete."""

    model_config = ConfigDict(extra="forbid", strict=True)

    stars: int = Field(ge=1, le=5)
    comment: str = Field(default="", max_length=MAX_COMMENT)


class JobViewOut(BaseModel):
    """What the customer sees of a job (more fields may appear)."""

    model_config = ConfigDict(extra="allow")

    job_id: str
    status: str
    label: str
    detail: str
    reason: str | None = None
    reason_text: str | None = None
    progress: float | None = None
    queue_position: int | None = None


class ErrorOut(BaseModel):
    """Every error answer."""

    error: str
    reasons: list[str] = Field(default_factory=list)


def body_of(model: type[BaseModel]) -> dict[str, Any]:
    """``openapi_extra`` declaring ``model`` as the JSON body (read by ``errors.read_json``)."""
    schema = model.model_json_schema()
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorOut} for code in (400, 401, 403, 404, 409, 413, 415, 503)
}
