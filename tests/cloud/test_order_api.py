"""Order API against a real moto server: intake, status, WebSocket stream, pages, previews."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from crown_edge.cloud import OrderApi, create_app
from crown_edge.cloud.websocket import OP_PING, OP_PONG
from crown_edge.sync import queues
from crown_edge.sync.bridge import Bridge
from crown_edge.sync.sqs import OrderQueue
from tests.cloud.client import WsClient, post_json, request

pytestmark = pytest.mark.integration

GOOD = {"job_id": "J-1", "customer_id": "C-1", "item_id": "plaque-a5", "due_date": "2026-12-01"}


@pytest.fixture
async def api(
    sqs_queues: dict[str, str], sqs: Any, tmp_path: Path
) -> AsyncIterator[tuple[OrderApi, Bridge]]:
    (tmp_path / "J-1.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg"/>')
    (tmp_path.parent / "secret.svg").write_text("<svg/>")
    async with (
        Bridge(None) as bridge,
        create_app(OrderQueue(sqs, sqs_queues), bridge, designs_dir=tmp_path) as app,
    ):
        yield app, bridge


def _bodies(sqs: Any, url: str) -> list[dict[str, Any]]:
    got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
    return [json.loads(m["Body"]) for m in got]


async def test_post_orders_routes_by_rush(
    api: tuple[OrderApi, Bridge], sqs: Any, sqs_queues: dict[str, str]
) -> None:
    app, _ = api
    reply = await post_json(f"{app.url}/orders", GOOD)
    assert reply.status == 202
    assert reply.json()["job_id"] == "J-1"
    assert reply.json()["queue"] == queues.ENGRAVING_QUEUE
    reply = await post_json(f"{app.url}/orders", {**GOOD, "job_id": "R-1", "rush": True})
    assert reply.json()["queue"] == queues.PRIORITY_QUEUE
    assert [b["job_id"] for b in _bodies(sqs, sqs_queues[queues.ENGRAVING_QUEUE])] == ["J-1"]
    assert [b["job_id"] for b in _bodies(sqs, sqs_queues[queues.PRIORITY_QUEUE])] == ["R-1"]
    status = await request(f"{app.url}/orders/J-1")
    assert status.status == 200
    assert status.json()["status"] == "received"


async def test_post_orders_rejects_with_field_reasons(api: tuple[OrderApi, Bridge]) -> None:
    app, _ = api
    reply = await post_json(f"{app.url}/orders", {"job_id": "J-2", "rush": "yes"})
    assert reply.status == 400
    reasons = reply.json()["reasons"]
    assert "customer_id: required" in reasons
    assert any(r.startswith("rush:") for r in reasons)
    reply = await post_json(f"{app.url}/orders", b"{nope")
    assert reply.status == 400
    assert reply.json()["error"] == "invalid_json"
    assert (await request(f"{app.url}/orders/J-2")).status == 404
    assert (await request(f"{app.url}/orders", "DELETE")).status == 405
    assert (await request(f"{app.url}/nowhere")).status == 404


async def test_websocket_streams_latest_then_updates(api: tuple[OrderApi, Bridge]) -> None:
    app, bridge = api
    await post_json(f"{app.url}/orders", GOOD)
    ws = await WsClient.connect(f"{app.url}/ws/jobs/J-1")
    try:
        async with asyncio.timeout(10):
            assert (await ws.recv_json())["status"] == "received"
            bridge.publish({"event_id": "e1", "job_id": "J-1", "seq": 1, "status": "validated"})
            bridge.publish({"event_id": "e0", "job_id": "J-1", "seq": 1, "status": "stale"})
            bridge.publish(
                {
                    "event_id": "e2",
                    "job_id": "J-1",
                    "seq": 2,
                    "status": "queued",
                    "queue_position": 1,
                }
            )
            bridge.publish({"event_id": "x", "job_id": "OTHER", "seq": 1, "status": "queued"})
            assert (await ws.recv_json())["status"] == "validated"
            assert (await ws.recv_json())["queue_position"] == 1
            ws.send(OP_PING, b"hi")
            pong = await ws.recv()
            assert (pong.opcode, pong.data) == (OP_PONG, b"hi")
    finally:
        await ws.close()
    for _ in range(100):
        if bridge.subscriber_count == 0:
            break
        await asyncio.sleep(0.02)
    assert bridge.subscriber_count == 0


async def test_server_close_ends_open_websockets(sqs_queues: dict[str, str], sqs: Any) -> None:
    async with Bridge(None) as bridge:
        app = create_app(OrderQueue(sqs, sqs_queues), bridge)
        async with app:
            ws = await WsClient.connect(f"{app.url}/ws/jobs/J-9")
        try:
            async with asyncio.timeout(10):
                closing = await ws.recv()
            assert closing.data[:2] == (1001).to_bytes(2, "big")
        finally:
            ws.writer.close()
            await ws.writer.wait_closed()
        assert bridge.subscriber_count == 0


async def test_status_page_and_designs(api: tuple[OrderApi, Bridge]) -> None:
    app, bridge = api
    bridge.publish(
        {"event_id": "e", "job_id": "J-1", "seq": 3, "status": "engraving", "progress": 0.5}
    )
    page = await request(f"{app.url}/status/J-1")
    assert page.status == 200
    assert "Engraving" in page.body.decode()
    assert "50%" in page.body.decode()
    assert "/designs/J-1.svg" in page.body.decode()
    assert "script-src" not in page.headers["content-security-policy"]  # no inline script allowed
    bridge.publish({"event_id": "h", "job_id": "H-1", "seq": 1, "status": "<script>x</script>"})
    page = await request(f"{app.url}/status/H-1")
    assert "<script>x" not in page.body.decode()
    svg = await request(f"{app.url}/designs/J-1.svg")
    assert svg.status == 200
    assert svg.headers["content-type"] == "image/svg+xml"
    assert "default-src 'none'" in svg.headers["content-security-policy"]
    assert (await request(f"{app.url}/designs/..%2Fsecret.svg")).status == 404
    assert (await request(f"{app.url}/designs/nope.svg")).status == 404
    assert (await request(f"{app.url}/static/status.js")).status == 200


async def test_healthz_and_metrics(api: tuple[OrderApi, Bridge]) -> None:
    app, _ = api
    await post_json(f"{app.url}/orders", GOOD)
    await post_json(f"{app.url}/orders", {"job_id": "bad"})
    health = await request(f"{app.url}/healthz")
    assert health.json()["ok"] is True
    metrics = (await request(f"{app.url}/metrics")).body.decode()
    assert f'crown_orders_accepted_total{{queue="{queues.ENGRAVING_QUEUE}"}} 1.0' in metrics
    assert 'crown_orders_rejected_total{reason="invalid_message"} 1.0' in metrics


async def test_queue_unavailable_is_503(api: tuple[OrderApi, Bridge]) -> None:
    from crown_edge.errors import SyncError

    class DownQueue:
        async def send_order(self, message: Any) -> str:
            raise SyncError("sqs down")

    _, bridge = api
    async with create_app(DownQueue(), bridge) as app:
        reply = await post_json(f"{app.url}/orders", {**GOOD, "job_id": "D-1"})
    assert reply.status == 503
    assert bridge.board.job("D-1") is None


async def test_keep_alive_and_head(api: tuple[OrderApi, Bridge]) -> None:
    app, _ = api
    reader, writer = await asyncio.open_connection(app.server.host, app.server.port)
    try:
        for method in ("GET", "HEAD"):
            writer.write(f"{method} /healthz HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            await writer.drain()
            async with asyncio.timeout(10):
                head = await reader.readuntil(b"\r\n\r\n")
                assert head.startswith(b"HTTP/1.1 200")
                length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
                if method == "GET":
                    assert json.loads(await reader.readexactly(length))["ok"] is True
        writer.write(b"BROKEN\r\n\r\n")
        async with asyncio.timeout(10):
            assert (await reader.read()).startswith(b"HTTP/1.1 400")
    finally:
        writer.close()
        await writer.wait_closed()


async def test_connection_limit_answers_503() -> None:
    from crown_edge.cloud.http import HttpServer, Request, Response

    async def ok(request: Request) -> Response:
        return Response.text("ok")

    async with HttpServer(ok, max_connections=1) as server:
        reader, writer = await asyncio.open_connection(server.host, server.port)
        try:
            writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")  # keep-alive: holds the slot
            await writer.drain()
            async with asyncio.timeout(10):
                await reader.readuntil(b"ok")
            assert (await request(f"{server.url}/")).status == 503
        finally:
            writer.close()
            await writer.wait_closed()


async def test_idle_websocket_is_pinged(sqs_queues: dict[str, str], sqs: Any) -> None:
    async with Bridge(None) as bridge:
        app = OrderApi(OrderQueue(sqs, sqs_queues), bridge, ws_ping_interval=0.05)
        async with app:
            ws = await WsClient.connect(f"{app.url}/ws/jobs/J-idle")
            try:
                async with asyncio.timeout(10):
                    assert (await ws.recv()).opcode == OP_PING
            finally:
                await ws.close()
