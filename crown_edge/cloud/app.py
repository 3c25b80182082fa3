"""The Order API: intake over HTTP, the customer's page, its live WebSocket and its actions.

Routes and who may use them::

    POST /orders                          API key   intake → 202 {job_id, status_url, …} | 400
    GET  /orders/{job_id}                 token|key the job's view (JSON)
    POST /orders/{job_id}/approval        token     approve or request changes (200 view | 409)
    POST /orders/{job_id}/alternative     token     take an offered item, or cancel (200 | 409)
    POST /orders/{job_id}/rating          token     1-5 stars once complete (200 | 409)
    GET  /status/{job_id}                 token     the customer's HTML page
    GET  /ws/jobs/{job_id}                token     WebSocket: the view, then every update
    GET  /designs/{job_id}.svg            token     design preview
    GET  /metrics                         API key   Prometheus text (or its own bind address)
    GET  /healthz, /openapi.json, /static/status.js  open

"API key" is ``Authorization: Bearer <key>`` (401 without, 403 wrong). "token" is the order's
signed token (``?token=`` or ``X-Order-Token``), handed out in the 202 answer's ``status_url``;
a missing or wrong token answers 404 as if the order did not exist. Every error is JSON
``{"error": word, "reasons": [...]}``.

Why FastAPI on uvicorn: the API is a handful of JSON routes plus one WebSocket, which Starlette
serves as plain async functions; FastAPI adds the OpenAPI document (``/openapi.json``) generated
from the same pydantic models that describe the bodies, so outside tools get a contract that
cannot drift from the code; uvicorn (h11 + websockets' sans-I/O protocol) is the maintained
HTTP/1.1 and RFC 6455 implementation that replaces the hand-written one, with the same limits
(:mod:`crown_edge.cloud.server`). Bodies are still decoded by the total wire decoder
(:mod:`crown_edge.sync.wire`), so a deeply nested body is a 400, never a ``RecursionError``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import re
from collections import Counter as CounterOf
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, Self, TypeVar
from urllib.parse import urlsplit

from fastapi import FastAPI, Request, WebSocket, WebSocketDisconnect
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector
from pydantic import BaseModel, ConfigDict, Field
from pydantic import ValidationError as PydanticError
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from crown_edge.cloud import pages
from crown_edge.cloud.auth import Credentials, KeyCheck
from crown_edge.cloud.bridge import REJECT_REASONS, Bridge, Subscription
from crown_edge.cloud.jobs import (
    APPROVE_DESIGN,
    CHOOSE_ALTERNATIVE,
    RATE,
    Jobs,
    Refused,
    Unavailable,
)
from crown_edge.cloud.server import MAX_HEAD, AsgiServer
from crown_edge.cloud.words import customer_view
from crown_edge.errors import MessageInvalid, SyncError
from crown_edge.models import IntakeMessage
from crown_edge.sync import queues, wire
from crown_edge.toolpath.gcode import JOB_ID
from crown_edge.workflow.data import ApprovalDecision

log = logging.getLogger(__name__)

MAX_BODY = 256 * 1024
#: Deepest JSON nesting a body may have (an order is 2 deep: object → text array).
MAX_DEPTH = 8
MAX_SVG = 5 * 1024 * 1024
MAX_COMMENT = 1000
SVG_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
#: WebSocket close codes: server going away; policy violation (bad Origin).
CLOSE_GOING_AWAY, CLOSE_POLICY = 1001, 1008


class OrderSender(Protocol):
    """Where accepted orders go (:class:`~crown_edge.sync.sqs.OrderQueue`)."""

    async def send_order(self, message: IntakeMessage) -> str:
        """Queue the message; return the queue's message id."""
        ...


# --- bodies (they are the OpenAPI document) ---------------------------------------------------


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


def _body(model: type[BaseModel]) -> dict[str, Any]:
    """``openapi_extra`` declaring ``model`` as the JSON body (parsed by :func:`_read_json`)."""
    schema = model.model_json_schema()
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorOut} for code in (400, 401, 403, 404, 409, 413, 415, 503)
}


# --- errors ------------------------------------------------------------------------------------


class ApiError(Exception):
    """An error answer: status, error word, reasons, extra headers."""

    def __init__(
        self,
        status: int,
        error: str,
        reasons: Iterable[str] = (),
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(error)
        self.status = status
        self.error = error
        self.reasons = list(reasons)
        self.headers = dict(headers or {})


def _error(status: int, error: str, reasons: Iterable[str] = (), **headers: str) -> JSONResponse:
    return JSONResponse({"error": error, "reasons": list(reasons)}, status, headers=headers or None)


_HTTP_WORDS = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "body_too_large",
    415: "unsupported_media_type",
}


async def _on_api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return _error(exc.status, exc.error, exc.reasons, **exc.headers)


async def _on_http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    word = _HTTP_WORDS.get(exc.status_code, "error")
    return _error(exc.status_code, word, **(exc.headers or {}))


async def _on_validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    return _error(400, "invalid_request", _reasons(exc.errors()))


def _reasons(errors: Iterable[Any]) -> list[str]:
    out = []
    for err in errors:
        where = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "body"
        out.append(f"{where}: {err.get('msg', 'invalid')}")
    return out


# --- metrics -----------------------------------------------------------------------------------


def _count(counter: CounterOf[str], key: str) -> float:
    return float(counter[key])


class _Metrics:
    def __init__(self, registry: CollectorRegistry, bridge: Bridge) -> None:
        self.accepted = Counter(
            "crown_orders_accepted", "Orders queued", ["queue"], registry=registry
        )
        self.rejected = Counter(
            "crown_orders_rejected", "Orders refused at intake", ["reason"], registry=registry
        )
        self.requests = Counter(
            "crown_http_requests", "HTTP requests", ["route", "code"], registry=registry
        )
        self.actions = Counter(
            "crown_customer_actions", "Customer actions", ["action", "outcome"], registry=registry
        )
        self.ws_clients = Gauge("crown_ws_clients", "Open status WebSockets", registry=registry)
        backlog = Gauge("crown_bridge_relay_backlog", "Events waiting", registry=registry)
        backlog.set_function(lambda: bridge.relay_backlog)
        registry.register(_BridgeCounters(bridge))


class _BridgeCounters(Collector):
    """The bridge's own running counts as Prometheus counters (``…_total``): they only grow,
    so dashboards take ``increase()`` of them."""

    def __init__(self, bridge: Bridge) -> None:
        self.bridge = bridge

    def collect(self) -> Iterator[Metric]:
        relayed = CounterMetricFamily("crown_bridge_relayed", "Events relayed to SQS")
        relayed.add_metric([], self.bridge.relayed)
        yield relayed
        rejected = CounterMetricFamily(
            "crown_bridge_rejected",
            "Workshop messages the bridge rejected (forged, malformed, implausible)",
            labels=["reason"],
        )
        for reason in REJECT_REASONS:
            rejected.add_metric([reason], _count(self.bridge.rejected, reason))
        yield rejected


class _Door:
    """ASGI middleware: ``nosniff`` on every answer, and requests counted by route and code."""

    def __init__(self, app: ASGIApp, metrics: _Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        route = _route_name(scope.get("path", ""))
        head = sum(len(k) + len(v) + 4 for k, v in scope.get("headers", ()))
        if head + len(scope.get("raw_path", b"")) > MAX_HEAD:
            self.metrics.requests.labels(route, "431").inc()
            response = _error(431, "request_head_too_large", [f"at most {MAX_HEAD} bytes"])
            await response(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.append((b"x-content-type-options", b"nosniff"))
                message = {**message, "headers": headers}
                self.metrics.requests.labels(route, str(message["status"])).inc()
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _route_name(path: str) -> str:
    parts = [p for p in path.split("/") if p]
    if not parts:
        return "root"
    if parts[0] == "orders" and len(parts) == 3:
        return parts[2] if parts[2] in ("approval", "alternative", "rating") else "other"
    if parts[0] == "orders":
        return "orders" if len(parts) == 1 else "order"
    return (
        parts[0]
        if parts[0] in ("status", "designs", "ws", "static", "healthz", "metrics")
        else ("other")
    )


# --- the service -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ApiSettings:
    """How the Order API answers.

    ``shops`` lists the workshops an order may name (None: any); ``public_url`` is the base of
    the links handed to customers (None: the address the request came to); ``allowed_origins``
    are pages besides the API's own that may open the status WebSocket; ``metrics_open`` serves
    ``/metrics`` without a key (set when it listens on its own, private address).
    """

    credentials: Credentials = field(repr=False)
    designs_dir: Path | None = None
    shops: frozenset[str] | None = None
    public_url: str | None = None
    allowed_origins: tuple[str, ...] = ()
    metrics_open: bool = False


class OrderApi:
    """The HTTP face of the cloud side. Serve it with ``async with`` (``url`` once started)."""

    def __init__(
        self,
        orders: OrderSender,
        bridge: Bridge,
        settings: ApiSettings,
        *,
        jobs: Jobs | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        registry: CollectorRegistry | None = None,
        ws_ping_interval: float = 20.0,
        max_connections: int = 1024,
    ) -> None:
        self.orders = orders
        self.bridge = bridge
        self.settings = settings
        self.credentials = settings.credentials
        self.jobs = jobs if jobs is not None else Jobs(bridge.board)
        self.registry = registry or CollectorRegistry()
        self.metrics = _Metrics(self.registry, bridge)
        self._closing = asyncio.Event()
        self.app = self._build()
        self.server = AsgiServer(
            _Door(self.app, self.metrics),
            host,
            port,
            max_connections=max_connections,
            ws_ping_interval=ws_ping_interval,
        )

    @property
    def url(self) -> str:
        """``http://host:port`` of the running server."""
        return self.server.url

    async def __aenter__(self) -> Self:
        await self.server.start()
        log.info("order api listening on %s", self.url)
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._closing.set()  # open WebSockets say goodbye (1001) before the server stops
        await self.server.close()

    # -- doors -------------------------------------------------------------------------------

    def _require_key(self, request: Request | WebSocket) -> None:
        check = self.credentials.check_key(request.headers.get("authorization"))
        if check is KeyCheck.MISSING:
            raise ApiError(
                401, "unauthorized", ["an API key is required"], {"WWW-Authenticate": "Bearer"}
            )
        if check is KeyCheck.WRONG:
            raise ApiError(403, "forbidden", ["the API key is not valid"])

    def _token_of(self, request: Request | WebSocket) -> str | None:
        return request.query_params.get("token") or request.headers.get("x-order-token")

    def _require_token(self, request: Request | WebSocket, job_id: str) -> None:
        if not JOB_ID.fullmatch(job_id) or not self.credentials.check_token(
            job_id, self._token_of(request)
        ):
            raise ApiError(404, "not_found")

    def _links(self, request: Request, job_id: str) -> dict[str, str]:
        base = (self.settings.public_url or str(request.base_url)).rstrip("/")
        token = self.credentials.token(job_id)
        ws_base = "ws" + base[4:] if base.startswith("http") else base
        return {
            "status_url": f"{base}/status/{job_id}?token={token}",
            "order_url": f"{base}/orders/{job_id}?token={token}",
            "ws_url": f"{ws_base}/ws/jobs/{job_id}?token={token}",
        }

    def _origin_ok(self, ws: WebSocket) -> bool:
        origin = ws.headers.get("origin")
        if origin is None:
            return True  # not a browser: browsers always send Origin on WebSocket upgrades
        if origin in self.settings.allowed_origins:
            return True
        host = ws.headers.get("host", "")
        return bool(host) and urlsplit(origin).netloc.lower() == host.lower()

    # -- the app -----------------------------------------------------------------------------

    def _build(self) -> FastAPI:
        app = FastAPI(
            title="crown-edge Order API",
            version="1",
            docs_url=None,
            redoc_url=None,
            exception_handlers={
                ApiError: _on_api_error,
                HTTPException: _on_http_error,
                RequestValidationError: _on_validation_error,
            },
        )
        r = self._routes
        app.add_api_route(
            "/orders",
            r.post_order,
            methods=["POST"],
            status_code=202,
            response_model=OrderAccepted,
            responses=_ERRORS,
            openapi_extra=_body(OrderIn),
            summary="Place an order (API key)",
        )
        app.add_api_route(
            "/orders/{job_id}",
            r.get_order,
            methods=["GET"],
            response_model=JobViewOut,
            responses=_ERRORS,
            summary="The order's view (order token or API key)",
        )
        for path, handler, model in (
            ("approval", r.approval, ApprovalIn),
            ("alternative", r.alternative, AlternativeIn),
            ("rating", r.rating, RatingIn),
        ):
            app.add_api_route(
                f"/orders/{{job_id}}/{path}",
                handler,
                methods=["POST"],
                response_model=JobViewOut,
                responses=_ERRORS,
                openapi_extra=_body(model),
                summary=f"Customer action: {path} (order token)",
            )
        app.add_api_route(
            "/status/{job_id}", r.status_page, methods=["GET"], include_in_schema=False
        )
        app.add_api_route("/designs/{name}", r.design, methods=["GET"], include_in_schema=False)
        app.add_api_route(
            "/static/status.js", r.status_js, methods=["GET"], include_in_schema=False
        )
        app.add_api_route("/healthz", r.healthz, methods=["GET"], summary="Liveness")
        app.add_api_route("/healthz", r.healthz, methods=["HEAD"], include_in_schema=False)
        app.add_api_route("/metrics", r.metrics, methods=["GET"], include_in_schema=False)
        app.add_api_websocket_route("/ws/jobs/{job_id}", r.ws_job)
        return app

    @functools.cached_property
    def _routes(self) -> _Routes:
        return _Routes(self)


class _Routes:
    """The route handlers of one :class:`OrderApi`."""

    def __init__(self, api: OrderApi) -> None:
        self.api = api

    async def post_order(self, request: Request) -> Response:
        api = self.api
        api._require_key(request)
        try:
            data = await _read_json(request)
        except ApiError as exc:
            api.metrics.rejected.labels(exc.error).inc()
            raise
        reasons = _door_reasons(data, api.settings.shops)
        try:
            message = IntakeMessage.parse(data)
        except MessageInvalid as exc:
            reasons = [*exc.reasons, *(r for r in reasons if r not in exc.reasons)]
        if reasons:
            api.metrics.rejected.labels("invalid_message").inc()
            raise ApiError(400, "invalid_message", reasons)
        queue = queues.PRIORITY_QUEUE if message.rush else queues.ENGRAVING_QUEUE
        try:
            await api.orders.send_order(message)
        except SyncError as exc:
            log.warning("could not queue order %s: %s", message.job_id, exc)
            raise ApiError(
                503, "queue_unavailable", ["try again shortly"], {"Retry-After": "5"}
            ) from exc
        api.metrics.accepted.labels(queue).inc()
        api.bridge.accept(message.job_id)
        links = api._links(request, message.job_id)
        body = {"job_id": message.job_id, "status": "received", "queue": queue, **links}
        return JSONResponse(body, 202, headers={"Location": links["order_url"]})

    async def get_order(self, request: Request, job_id: str) -> Response:
        api = self.api
        by_token = api.credentials.check_token(job_id, api._token_of(request))
        if not by_token:
            if request.headers.get("authorization") is None:
                raise ApiError(404, "not_found")
            api._require_key(request)
        view = await self._view(job_id, by_token)
        if view is None:
            raise ApiError(404, "not_found")
        shown = customer_view(view)
        if not by_token:  # the back office sees the raw view (reasons, machine) as well
            shown = {**view, **shown, "reason": view.get("reason")}
        return JSONResponse(shown)

    async def _view(self, job_id: str, by_token: bool) -> dict[str, Any] | None:
        view = await self.api.jobs.view(job_id)
        if view is None and by_token:
            # a valid token is only ever issued with a 202: the order exists, even when this
            # process never saw it and the dispatcher has not started its workflow yet
            view = {"job_id": job_id, "status": "received"}
        return view

    async def _act(
        self, request: Request, job_id: str, action: str, name: str, arg: Any
    ) -> Response:
        api = self.api
        try:
            result = await api.jobs.update(job_id, name, arg)
        except Refused as exc:
            api.metrics.actions.labels(action, "refused").inc()
            raise ApiError(409, "refused", [exc.reason]) from exc
        except Unavailable as exc:
            api.metrics.actions.labels(action, "unavailable").inc()
            raise ApiError(
                503, "workflow_unavailable", ["try again shortly"], {"Retry-After": "5"}
            ) from exc
        api.metrics.actions.labels(action, "ok").inc()
        return JSONResponse(customer_view(result))

    async def approval(self, request: Request, job_id: str) -> Response:
        self.api._require_token(request, job_id)
        body = _model(ApprovalIn, await _read_json(request))
        decision = ApprovalDecision(approved=body.approved, comment=body.comment)
        return await self._act(request, job_id, "approval", APPROVE_DESIGN, decision)

    async def alternative(self, request: Request, job_id: str) -> Response:
        self.api._require_token(request, job_id)
        body = _model(AlternativeIn, await _read_json(request))
        if (body.item_id is None) == (not body.cancel):
            raise ApiError(400, "invalid_request", ["give either item_id or cancel: true"])
        arg = {"item_id": body.item_id, "cancel": body.cancel, "by": "customer"}
        return await self._act(request, job_id, "alternative", CHOOSE_ALTERNATIVE, arg)

    async def rating(self, request: Request, job_id: str) -> Response:
        self.api._require_token(request, job_id)
        body = _model(RatingIn, await _read_json(request))
        arg = {"stars": body.stars, "comment": body.comment}
        return await self._act(request, job_id, "rating", RATE, arg)

    async def status_page(self, request: Request, job_id: str) -> Response:
        api = self.api
        api._require_token(request, job_id)
        view = await self._view(job_id, True)
        token = api._token_of(request) or ""
        page = pages.status_page(job_id, view, token)
        headers = {
            "Content-Security-Policy": pages.PAGE_CSP,
            "Cache-Control": "no-store",
            "Referrer-Policy": "no-referrer",
        }
        return Response(page, 200, headers=headers, media_type="text/html; charset=utf-8")

    async def status_js(self) -> Response:
        return Response(pages.STATUS_JS, media_type="text/javascript; charset=utf-8")

    def _design_path(self, job_id: str) -> Path | None:
        designs = self.api.settings.designs_dir
        if designs is None:
            return None
        root = designs.resolve()
        path = (root / f"{job_id}.svg").resolve()
        if not path.is_relative_to(root) or not path.is_file():
            return None
        return path

    async def design(self, request: Request, name: str) -> Response:
        job_id = name.removesuffix(".svg")
        if job_id == name:
            raise ApiError(404, "not_found")
        self.api._require_token(request, job_id)
        path = self._design_path(job_id)
        if path is None:
            raise ApiError(404, "not_found", ["no design yet"])
        if path.stat().st_size > MAX_SVG:
            raise ApiError(500, "design_too_large")
        data = await asyncio.to_thread(path.read_bytes)
        headers = {"Content-Security-Policy": SVG_CSP, "Cache-Control": "no-cache"}
        return Response(data, 200, headers=headers, media_type="image/svg+xml")

    async def healthz(self) -> Response:
        bridge = self.api.bridge
        return JSONResponse(
            {
                "ok": True,
                "bridge_connected": bridge.connected,
                "relay_backlog": bridge.relay_backlog,
                "ws_clients": bridge.subscriber_count,
            }
        )

    async def metrics(self, request: Request) -> Response:
        if not self.api.settings.metrics_open:
            self.api._require_key(request)
        return Response(generate_latest(self.api.registry), media_type=CONTENT_TYPE_LATEST)

    async def ws_job(self, ws: WebSocket, job_id: str) -> None:
        api = self.api
        if not JOB_ID.fullmatch(job_id) or not api.credentials.check_token(
            job_id, api._token_of(ws)
        ):
            await ws.send_denial_response(_error(404, "not_found"))
            return
        if not api._origin_ok(ws):
            await ws.send_denial_response(_error(403, "forbidden", ["origin not allowed"]))
            return
        await ws.accept()
        api.metrics.ws_clients.inc()
        try:
            initial = api.bridge.board.job(job_id)
            with api.bridge.subscribe(job_id) as sub:
                first = await self._view(job_id, True) or {"job_id": job_id}
                await ws.send_text(json.dumps(customer_view(first), sort_keys=True))
                refresh = functools.partial(self._view, job_id, True)
                await _pump(ws, sub, initial, first, refresh, api._closing)
        except (WebSocketDisconnect, ConnectionError):
            pass
        finally:
            api.metrics.ws_clients.dec()


# --- helpers -----------------------------------------------------------------------------------


#: the rest of a refused body is not read: the connection cannot be reused
_CLOSE = {"Connection": "close"}


async def _read_json(request: Request) -> dict[str, Any]:
    """The body as a JSON object: size-limited, depth-limited, never a parser exception."""
    ctype = request.headers.get("content-type", "application/json")
    if "json" not in ctype:
        raise ApiError(415, "unsupported_media_type", ["send application/json"])
    declared = request.headers.get("content-length")
    too_large = ApiError(413, "body_too_large", [f"at most {MAX_BODY} bytes"], _CLOSE)
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            raise too_large
        chunks.append(chunk)
    decoded = wire.decode_object(b"".join(chunks), max_bytes=MAX_BODY, max_depth=MAX_DEPTH)
    if isinstance(decoded, wire.Rejected):
        raise ApiError(400, "invalid_json", [decoded.reason])
    return decoded


_M = TypeVar("_M", bound=BaseModel)


def _model(model: type[_M], data: dict[str, Any]) -> _M:
    try:
        return model.model_validate(data)
    except PydanticError as exc:
        raise ApiError(400, "invalid_request", _reasons(exc.errors())) from exc


_IDENT = re.compile(wire.IDENT_PATTERN)


def _door_reasons(data: dict[str, Any], shops: frozenset[str] | None) -> list[str]:
    """What would fail later and so fails here: the job id's G-code charset, the workshop."""
    reasons = []
    job_id = data.get("job_id")
    if isinstance(job_id, str) and job_id and not JOB_ID.fullmatch(job_id):
        reasons.append("job_id: at most 64 letters, digits, '.', '_' or '-'")
    shop = data.get("shop_id")
    if isinstance(shop, str) and shop:
        if not _IDENT.fullmatch(shop):
            reasons.append("shop_id: at most 64 letters, digits, '_' or '-'")
        elif shops is not None and shop not in shops:
            reasons.append(f"shop_id: unknown workshop {shop!r}")
    return reasons


#: What a live event changes of the view last sent (the rest - steps, timeline, item - stays).
_LIVE_OVERLAY = ("status", "reason", "progress", "queue_position", "retry_count", "design_url")


def overlay(last: Mapping[str, Any], event: Mapping[str, Any]) -> dict[str, Any]:
    """The view after a live ``event``: ``last`` with the event's status and live details.

    The bridge fans out only an event that is the job's latest, so it wins over ``last``; a
    new status also drops the old status' details.
    """
    out = dict(last)
    if event.get("status") != last.get("status"):
        for key in ("reason", "progress", "queue_position"):
            out.pop(key, None)
    out.update({k: event[k] for k in _LIVE_OVERLAY if event.get(k) is not None})
    return out


LIVE_STATUSES = frozenset({"queued", "engraving", "blocked"})
"""Statuses whose view changes between status events (progress, queue, offers)."""
LIVE_REFRESH_S = 2.0


async def _pump(
    ws: WebSocket,
    sub: Subscription,
    initial: dict[str, Any] | None,
    last: dict[str, Any],
    refresh: Callable[[], Awaitable[dict[str, Any] | None]],
    closing: asyncio.Event,
) -> None:
    """Send the view after every update of ``sub`` until the client or the server goes.

    ``initial`` is the board's event the subscription starts with: the first message (``last``)
    already showed it, so it is skipped. A new status re-reads the durable view (``refresh``) so
    the steps and timeline move on too; the event is laid over it (:func:`overlay`). Only
    :func:`~crown_edge.cloud.words.customer_view` of it is sent. Pings are uvicorn's.

    Progress, queue position and offered alternatives change without a new status event, so
    while a job is queued, engraving or blocked the view is also re-read every
    :data:`LIVE_REFRESH_S` and sent when what the customer sees changed.
    """
    reader = asyncio.create_task(_drain_client(ws))
    stop = asyncio.create_task(closing.wait())
    update: asyncio.Task[dict[str, Any]] | None = None
    tick: asyncio.Task[None] | None = None
    try:
        while True:
            if update is None:
                update = asyncio.create_task(sub.get())
            if tick is None and last.get("status") in LIVE_STATUSES:
                tick = asyncio.create_task(asyncio.sleep(LIVE_REFRESH_S))
            waits = {update, reader, stop} | ({tick} if tick is not None else set())
            done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            if reader in done:
                return
            if stop in done:
                with contextlib.suppress(Exception):
                    await ws.close(CLOSE_GOING_AWAY)
                return
            if tick is not None and tick in done:
                tick = None
                fresh = await refresh()
                if fresh is not None and customer_view(fresh) != customer_view(last):
                    last = fresh
                    await ws.send_text(json.dumps(customer_view(last), sort_keys=True))
                if update not in done:
                    continue
            event = update.result()
            update = None
            if event is initial:
                initial = None
                continue
            initial = None
            if event.get("status") != last.get("status"):
                last = await refresh() or last
            last = overlay(last, event)
            await ws.send_text(json.dumps(customer_view(last), sort_keys=True))
    finally:
        pending = [t for t in (reader, stop, update, tick) if t is not None]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)


async def _drain_client(ws: WebSocket) -> None:
    """Read (and ignore) client messages until it closes."""
    while True:
        message = await ws.receive()
        if message["type"] == "websocket.disconnect":
            return


def metrics_app(registry: CollectorRegistry) -> FastAPI:
    """``GET /metrics`` alone, without a key: serve it only on a private address."""
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)

    async def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    app.add_api_route("/metrics", metrics, methods=["GET"])
    return app


def create_app(
    orders: OrderSender,
    bridge: Bridge,
    settings: ApiSettings,
    *,
    jobs: Jobs | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
    ws_ping_interval: float = 20.0,
) -> OrderApi:
    """The Order API wired to an order sender and a bridge; serve with ``async with``."""
    return OrderApi(
        orders, bridge, settings, jobs=jobs, host=host, port=port, ws_ping_interval=ws_ping_interval
    )
