"""The Order API: intake over HTTP, the customer's page, its live WebSocket and its actions.

Routes and who may use them::

    POST /orders                          API key   intake → 202 {job_id, status_url, …} | 400
    GET  /orders/{job_id}                 token|key the job's view (JSON)
    GET  /orders/{job_id}/timeline        API key   [{stage, at, gap_ms}] from its workflow
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

An order may carry ``customer_email`` (checked at the door; ``customer_id`` alone means no
email) and ``notify_engraving``: the contact is kept with the order's signed ``status_url``
before the order is queued, and the notifier (:mod:`crown_edge.cloud.notify`) writes to it.

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
import functools
import json
import logging
from pathlib import Path
from types import TracebackType
from typing import Any, Self
from urllib.parse import urlsplit

from fastapi import FastAPI, Request, WebSocket, WebSocketDisconnect
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.exceptions import HTTPException

from crown_edge.cloud import pages
from crown_edge.cloud.api_settings import ApiSettings, ContactBook, OrderSender
from crown_edge.cloud.auth import KeyCheck
from crown_edge.cloud.bodies import (
    ERRORS,
    AlternativeIn,
    ApprovalIn,
    JobViewOut,
    OrderAccepted,
    OrderIn,
    RatingIn,
    body_of,
)
from crown_edge.cloud.bridge import Bridge
from crown_edge.cloud.door import Door, Metrics, door_reasons, metrics_app
from crown_edge.cloud.errors import (
    ApiError,
    error_response,
    on_api_error,
    on_http_error,
    on_validation_error,
    parse_body,
    read_json,
)
from crown_edge.cloud.jobs import (
    APPROVE_DESIGN,
    CHOOSE_ALTERNATIVE,
    RATE,
    Jobs,
    Refused,
    Unavailable,
)
from crown_edge.cloud.live import overlay, pump
from crown_edge.cloud.notify_words import Contact
from crown_edge.cloud.server import AsgiServer
from crown_edge.cloud.words import customer_view
from crown_edge.errors import MessageInvalid, SyncError
from crown_edge.models import IntakeMessage
from crown_edge.sync import queues
from crown_edge.toolpath.gcode import JOB_ID
from crown_edge.workflow.data import ApprovalDecision

__all__ = [
    "ApiSettings",
    "ContactBook",
    "OrderApi",
    "OrderSender",
    "create_app",
    "metrics_app",
    "overlay",
]

log = logging.getLogger(__name__)

MAX_SVG = 5 * 1024 * 1024
SVG_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"


class OrderApi:
    """The HTTP face of the cloud side. Serve it with ``async with`` (``url`` once started)."""

    def __init__(
        self,
        orders: OrderSender,
        bridge: Bridge,
        settings: ApiSettings,
        *,
        jobs: Jobs | None = None,
        contacts: ContactBook | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        registry: CollectorRegistry | None = None,
        ws_ping_interval: float = 20.0,
        max_connections: int = 1024,
    ) -> None:
        """``contacts`` keeps the customer's email of an order (None: notifications are off,
        ``customer_email`` is still checked)."""
        self.orders = orders
        self.contacts = contacts
        self.bridge = bridge
        self.settings = settings
        self.credentials = settings.credentials
        self.jobs = jobs if jobs is not None else Jobs(bridge.board)
        self.registry = registry or CollectorRegistry()
        self.metrics = Metrics(self.registry, bridge)
        self._closing = asyncio.Event()
        self.app = self._build()
        self.server = AsgiServer(
            Door(self.app, self.metrics),
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
                ApiError: on_api_error,
                HTTPException: on_http_error,
                RequestValidationError: on_validation_error,
            },
        )
        r = self._routes
        app.add_api_route(
            "/orders",
            r.post_order,
            methods=["POST"],
            status_code=202,
            response_model=OrderAccepted,
            responses=ERRORS,
            openapi_extra=body_of(OrderIn),
            summary="Place an order (API key)",
        )
        app.add_api_route(
            "/orders/{job_id}",
            r.get_order,
            methods=["GET"],
            response_model=JobViewOut,
            responses=ERRORS,
            summary="The order's view (order token or API key)",
        )
        app.add_api_route(
            "/orders/{job_id}/timeline",
            r.timeline,
            methods=["GET"],
            responses=ERRORS,
            summary="The order's stages with their times (API key)",
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
                responses=ERRORS,
                openapi_extra=body_of(model),
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
            data = await read_json(request)
        except ApiError as exc:
            api.metrics.rejected.labels(exc.error).inc()
            raise
        reasons = door_reasons(data, api.settings.shops)
        try:
            message = IntakeMessage.parse(data)
        except MessageInvalid as exc:
            reasons = [*exc.reasons, *(r for r in reasons if r not in exc.reasons)]
        if reasons:
            api.metrics.rejected.labels("invalid_message").inc()
            raise ApiError(400, "invalid_message", reasons)
        queue = queues.PRIORITY_QUEUE if message.rush else queues.ENGRAVING_QUEUE
        links = api._links(request, message.job_id)
        await self._remember_contact(data, message, links["status_url"])
        try:
            await api.orders.send_order(message)
        except SyncError as exc:
            log.warning("could not queue order %s: %s", message.job_id, exc)
            raise ApiError(
                503, "queue_unavailable", ["try again shortly"], {"Retry-After": "5"}
            ) from exc
        api.metrics.accepted.labels(queue).inc()
        api.bridge.accept(message.job_id)
        body = {"job_id": message.job_id, "status": "received", "queue": queue, **links}
        return JSONResponse(body, 202, headers={"Location": links["order_url"]})

    async def _remember_contact(
        self, data: dict[str, Any], message: IntakeMessage, status_url: str
    ) -> None:
        """Keep the customer's email (checked at the door) with the order's signed link."""
        email = data.get("customer_email")
        contacts = self.api.contacts
        if not isinstance(email, str) or contacts is None:
            return
        contact = Contact(
            message.job_id,
            email,
            status_url,
            notify_engraving=data.get("notify_engraving") is True,
            text=tuple(message.text),
        )
        try:
            await contacts.remember(contact)
        except Exception as exc:
            log.warning("could not keep the contact of order %s: %r", message.job_id, exc)
            raise ApiError(
                503, "contacts_unavailable", ["try again shortly"], {"Retry-After": "5"}
            ) from exc

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

    async def timeline(self, request: Request, job_id: str) -> Response:
        api = self.api
        api._require_key(request)
        if not JOB_ID.fullmatch(job_id):
            raise ApiError(404, "not_found")
        try:
            rows = await api.jobs.timeline(job_id)
        except Unavailable as exc:
            raise ApiError(
                503, "workflow_unavailable", ["try again shortly"], {"Retry-After": "5"}
            ) from exc
        if rows is None:
            raise ApiError(404, "not_found")
        return JSONResponse(rows)

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
        body = parse_body(ApprovalIn, await read_json(request))
        decision = ApprovalDecision(approved=body.approved, comment=body.comment)
        return await self._act(request, job_id, "approval", APPROVE_DESIGN, decision)

    async def alternative(self, request: Request, job_id: str) -> Response:
        self.api._require_token(request, job_id)
        body = parse_body(AlternativeIn, await read_json(request))
        if (body.item_id is None) == (not body.cancel):
            raise ApiError(400, "invalid_request", ["give either item_id or cancel: true"])
        arg = {"item_id": body.item_id, "cancel": body.cancel, "by": "customer"}
        return await self._act(request, job_id, "alternative", CHOOSE_ALTERNATIVE, arg)

    async def rating(self, request: Request, job_id: str) -> Response:
        self.api._require_token(request, job_id)
        body = parse_body(RatingIn, await read_json(request))
        arg = {"stars": body.stars, "comment": body.comment}
        answer = await self._act(request, job_id, "rating", RATE, arg)
        self.api.metrics.ratings.observe(body.stars)  # taken once: a second rating is refused
        return answer

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
            await ws.send_denial_response(error_response(404, "not_found"))
            return
        if not api._origin_ok(ws):
            await ws.send_denial_response(error_response(403, "forbidden", ["origin not allowed"]))
            return
        await ws.accept()
        api.metrics.ws_clients.inc()
        try:
            initial = api.bridge.board.job(job_id)
            with api.bridge.subscribe(job_id) as sub:
                first = await self._view(job_id, True) or {"job_id": job_id}
                await ws.send_text(json.dumps(customer_view(first), sort_keys=True))
                refresh = functools.partial(self._view, job_id, True)
                await pump(ws, sub, initial, first, refresh, api._closing)
        except (WebSocketDisconnect, ConnectionError):
            pass
        finally:
            api.metrics.ws_clients.dec()


def create_app(
    orders: OrderSender,
    bridge: Bridge,
    settings: ApiSettings,
    *,
    jobs: Jobs | None = None,
    contacts: ContactBook | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
    registry: CollectorRegistry | None = None,
    ws_ping_interval: float = 20.0,
) -> OrderApi:
    """The Order API wired to an order sender and a bridge; serve with ``async with``."""
    return OrderApi(
        orders,
        bridge,
        settings,
        jobs=jobs,
        contacts=contacts,
        host=host,
        port=port,
        registry=registry,
        ws_ping_interval=ws_ping_interval,
    )
