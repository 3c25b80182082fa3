"""The Order API's door: its Prometheus metrics, the ASGI middleware every request passes
(``nosniff``, the request-head limit, requests counted by route and code) and the intake checks
that would fail later and so fail here.
"""

from __future__ import annotations

import re
from collections import Counter as CounterOf
from collections.abc import Iterator
from typing import Any

from fastapi import FastAPI
from fastapi.responses import Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from crown_edge.cloud.bridge import REJECT_REASONS, Bridge
from crown_edge.cloud.errors import error_response
from crown_edge.cloud.mail import email_problem
from crown_edge.cloud.server import MAX_HEAD
from crown_edge.sync import wire
from crown_edge.toolpath.gcode import JOB_ID


def _count(counter: CounterOf[str], key: str) -> float:
    return float(counter[key])


class Metrics:
    """The Order API's own counters and gauges, registered in ``registry``."""

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
        # the seed's customer_satisfaction score: _sum / _count over a window is the mean stars
        self.ratings = Histogram(
            "crown_customer_rating_stars",
            "Customers' ratings of complete jobs (1-5 stars, one per job)",
            buckets=(1, 2, 3, 4, 5),
            registry=registry,
        )
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
        echoes = CounterMetricFamily(
            "crown_bridge_echoes_skipped",
            "Workflow statuses left off the job-events queue (the workshop's report is there)",
        )
        echoes.add_metric([], self.bridge.echoes.skipped)
        yield echoes
        rejected = CounterMetricFamily(
            "crown_bridge_rejected",
            "Workshop messages the bridge rejected (forged, malformed, implausible)",
            labels=["reason"],
        )
        for reason in REJECT_REASONS:
            rejected.add_metric([reason], _count(self.bridge.rejected, reason))
        yield rejected


class Door:
    """ASGI middleware: ``nosniff`` on every answer, and requests counted by route and code."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
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
            response = error_response(431, "request_head_too_large", [f"at most {MAX_HEAD} bytes"])
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


_IDENT = re.compile(wire.IDENT_PATTERN)


def door_reasons(data: dict[str, Any], shops: frozenset[str] | None) -> list[str]:
    """What would fail later and so fails here: the job id's G-code charset, the workshop, the
    customer's email address (a notification to it would bounce, or bend a mail header)."""
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
    email = data.get("customer_email")
    if email is not None and (problem := email_problem(email)) is not None:
        reasons.append(f"customer_email: {problem}")
    if not isinstance(data.get("notify_engraving", False), bool):
        reasons.append("notify_engraving: must be true or false")
    return reasons


def metrics_app(registry: CollectorRegistry) -> FastAPI:
    """``GET /metrics`` alone, without a key: serve it only on a private address."""
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)

    async def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    app.add_api_route("/metrics", metrics, methods=["GET"])
    return app
