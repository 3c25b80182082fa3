"""The Order API: intake over HTTP, job status as JSON, live WebSocket, status page, previews.

Routes::

    POST /orders                  intake message → 202 {job_id, queue} | 400 {reasons}
    GET  /orders/{job_id}         latest status known to the bridge | 404
    GET  /ws/jobs/{job_id}        WebSocket: latest status, then every update (JSON text)
    GET  /status/{job_id}         customer HTML page (live via the WebSocket)
    GET  /designs/{job_id}.svg    design preview from ``designs_dir``
    GET  /healthz, /metrics       liveness JSON, Prometheus text
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import re
from collections import Counter as CounterOf
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, Self

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    generate_latest,
)

from crown_edge.cloud import pages
from crown_edge.cloud.http import HttpServer, Request, Response
from crown_edge.cloud.websocket import CLOSE_GOING_AWAY, WebSocket
from crown_edge.errors import MessageInvalid, SyncError
from crown_edge.models import IntakeMessage
from crown_edge.sync import queues
from crown_edge.sync.bridge import REJECT_REASONS, Bridge, Subscription

log = logging.getLogger(__name__)

_JOB = r"(?P<job_id>[A-Za-z0-9._-]{1,128})"
MAX_SVG = 5 * 1024 * 1024
SVG_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"


class OrderSender(Protocol):
    """Where accepted orders go (:class:`~crown_edge.sync.sqs.OrderQueue`)."""

    async def send_order(self, message: IntakeMessage) -> str:
        """Queue the message; return the queue's message id."""
        ...


Route = Callable[[Request, str], Awaitable[Response]]


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
        self.ws_clients = Gauge("crown_ws_clients", "Open status WebSockets", registry=registry)
        relayed = Gauge("crown_bridge_relayed", "Events relayed to SQS", registry=registry)
        relayed.set_function(lambda: bridge.relayed)
        backlog = Gauge("crown_bridge_relay_backlog", "Events waiting", registry=registry)
        backlog.set_function(lambda: bridge.relay_backlog)
        rejected = Gauge(
            "crown_bridge_rejected",
            "Workshop messages the bridge rejected (forged, malformed, implausible)",
            ["reason"],
            registry=registry,
        )
        for reason in REJECT_REASONS:
            rejected.labels(reason).set_function(functools.partial(_count, bridge.rejected, reason))


class OrderApi:
    """The HTTP face of the cloud side. Serve it with ``async with`` (``url`` once started)."""

    def __init__(
        self,
        orders: OrderSender,
        bridge: Bridge,
        *,
        designs_dir: Path | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        registry: CollectorRegistry | None = None,
        ws_ping_interval: float = 20.0,
    ) -> None:
        self.orders = orders
        self.ws_ping_interval = ws_ping_interval
        self.bridge = bridge
        self.designs_dir = designs_dir
        self.registry = registry or CollectorRegistry()
        self.metrics = _Metrics(self.registry, bridge)
        self.server = HttpServer(self.handle, host, port)
        self._routes: list[tuple[str, re.Pattern[str], str, Route]] = [
            ("POST", re.compile(r"/orders/?"), "orders", self._post_order),
            ("GET", re.compile(rf"/orders/{_JOB}"), "order", self._get_order),
            ("GET", re.compile(rf"/ws/jobs/{_JOB}"), "ws", self._ws_job),
            ("GET", re.compile(rf"/status/{_JOB}"), "status", self._status_page),
            ("GET", re.compile(rf"/designs/{_JOB}\.svg"), "design", self._design),
            ("GET", re.compile(r"/static/status\.js"), "static", self._status_js),
            ("GET", re.compile(r"/healthz"), "healthz", self._healthz),
            ("GET", re.compile(r"/metrics"), "metrics", self._metrics),
        ]

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
        await self.server.close()

    async def handle(self, request: Request) -> Response:
        """Route one request."""
        path_matched = False
        for method, pattern, name, route in self._routes:
            match = pattern.fullmatch(request.path)
            if match is None:
                continue
            path_matched = True
            if request.method != method and not (method == "GET" and request.method == "HEAD"):
                continue
            response = await route(request, match.groupdict().get("job_id") or "")
            self.metrics.requests.labels(name, str(response.status)).inc()
            return response
        if path_matched:
            return Response.json({"error": "method_not_allowed"}, 405)
        return Response.json({"error": "not_found"}, 404)

    # -- routes ------------------------------------------------------------------------------------

    async def _post_order(self, request: Request, _: str) -> Response:
        if "json" not in request.headers.get("content-type", "application/json"):
            self.metrics.rejected.labels("content_type").inc()
            return Response.json({"error": "unsupported_media_type"}, 415)
        try:
            data = request.json()
        except ValueError as exc:
            self.metrics.rejected.labels("invalid_json").inc()
            return Response.json({"error": "invalid_json", "reasons": [str(exc)]}, 400)
        try:
            message = IntakeMessage.parse(data)
        except MessageInvalid as exc:
            self.metrics.rejected.labels("invalid_message").inc()
            return Response.json({"error": "invalid_message", "reasons": exc.reasons}, 400)
        queue = queues.PRIORITY_QUEUE if message.rush else queues.ENGRAVING_QUEUE
        try:
            await self.orders.send_order(message)
        except SyncError as exc:
            log.warning("could not queue order %s: %s", message.job_id, exc)
            return Response.json({"error": "queue_unavailable"}, 503, **{"Retry-After": "5"})
        self.metrics.accepted.labels(queue).inc()
        self.bridge.accept(message.job_id)
        body = {
            "job_id": message.job_id,
            "status": "received",
            "queue": queue,
            "status_url": f"/orders/{message.job_id}",
            "ws_url": f"/ws/jobs/{message.job_id}",
        }
        return Response.json(body, 202, Location=f"/orders/{message.job_id}")

    async def _get_order(self, request: Request, job_id: str) -> Response:
        event = self.bridge.board.job(job_id)
        if event is None:
            return Response.json({"error": "unknown_job", "job_id": job_id}, 404)
        return Response.json(event)

    async def _ws_job(self, request: Request, job_id: str) -> Response:
        ws = await WebSocket.accept(request)
        if isinstance(ws, Response):
            return ws
        self.metrics.ws_clients.inc()
        try:
            with self.bridge.subscribe(job_id) as sub:
                await _pump(ws, sub, self.ws_ping_interval)
        except ConnectionError:
            pass
        finally:
            self.metrics.ws_clients.dec()
        return Response(101, upgraded=True)

    async def _status_page(self, request: Request, job_id: str) -> Response:
        event = self.bridge.board.job(job_id)
        page = pages.status_page(job_id, event, self._design_path(job_id) is not None)
        return Response(
            200 if event else 404,
            page.encode(),
            "text/html; charset=utf-8",
            {"Content-Security-Policy": pages.PAGE_CSP, "Cache-Control": "no-store"},
        )

    async def _status_js(self, request: Request, _: str) -> Response:
        return Response(200, pages.STATUS_JS.encode(), "text/javascript; charset=utf-8")

    def _design_path(self, job_id: str) -> Path | None:
        if self.designs_dir is None:
            return None
        root = self.designs_dir.resolve()
        path = (root / f"{job_id}.svg").resolve()
        if not path.is_relative_to(root) or not path.is_file():
            return None
        return path

    async def _design(self, request: Request, job_id: str) -> Response:
        path = self._design_path(job_id)
        if path is None:
            return Response.json({"error": "no_design", "job_id": job_id}, 404)
        if path.stat().st_size > MAX_SVG:
            return Response.json({"error": "design_too_large"}, 500)
        data = await asyncio.to_thread(path.read_bytes)
        headers = {"Content-Security-Policy": SVG_CSP, "Cache-Control": "no-cache"}
        return Response(200, data, "image/svg+xml", headers)

    async def _healthz(self, request: Request, _: str) -> Response:
        return Response.json(
            {
                "ok": True,
                "bridge_connected": self.bridge.connected,
                "relay_backlog": self.bridge.relay_backlog,
                "ws_clients": self.bridge.subscriber_count,
            }
        )

    async def _metrics(self, request: Request, _: str) -> Response:
        return Response(200, generate_latest(self.registry), CONTENT_TYPE_LATEST)


async def _pump(ws: WebSocket, sub: Subscription, ping_interval: float) -> None:
    """Send every update of ``sub`` to ``ws`` until the client goes away (or we are cancelled).

    An idle stream is pinged every ``ping_interval`` seconds, so a vanished client is noticed.
    """
    reader = asyncio.create_task(_drain_client(ws))
    update: asyncio.Task[dict[str, Any]] | None = None
    try:
        while True:
            if update is None:
                update = asyncio.create_task(sub.get())
            done, _ = await asyncio.wait(
                {update, reader}, timeout=ping_interval, return_when=asyncio.FIRST_COMPLETED
            )
            if reader in done:
                break
            if update in done:
                await ws.send_text(json.dumps(update.result(), sort_keys=True))
                update = None
            else:
                await ws.ping()
    finally:
        pending = [t for t in (reader, update) if t is not None]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        await ws.close(CLOSE_GOING_AWAY)


async def _drain_client(ws: WebSocket) -> None:
    """Read (and ignore) client messages until it closes; answers pings on the way."""
    while await ws.receive() is not None:
        pass


def create_app(
    orders: OrderSender,
    bridge: Bridge,
    *,
    designs_dir: Path | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
) -> OrderApi:
    """The Order API wired to an order sender and a bridge; serve with ``async with``."""
    return OrderApi(orders, bridge, designs_dir=designs_dir, host=host, port=port)
