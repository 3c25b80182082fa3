"""Order API against a real moto server: intake, doors, status, WebSocket, pages, previews."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from websockets.frames import Opcode

from crown_edge.cloud import ApiSettings, Credentials, OrderApi, create_app
from crown_edge.cloud.bridge import Bridge
from crown_edge.sync import queues
from crown_edge.sync.sqs import OrderQueue
from tests.cloud.client import WsClient, WsRefused, parse_reply, post_json, request

pytestmark = pytest.mark.integration

KEY = "test-api-key-0123456789"
CREDS = Credentials(
    api_keys=(KEY,), token_secrets=("secret-new-0123456789", "secret-old-0123456789")
)
GOOD = {"job_id": "J-1", "customer_id": "C-1", "item_id": "plaque-a5", "due_date": "2026-12-01"}
AUTH = {"Authorization": f"Bearer {KEY}"}


def _settings(designs: Path | None = None, **kw: Any) -> ApiSettings:
    return ApiSettings(credentials=CREDS, designs_dir=designs, **kw)


@pytest.fixture
async def api(
    sqs_queues: dict[str, str], sqs: Any, tmp_path: Path
) -> AsyncIterator[tuple[OrderApi, Bridge]]:
    (tmp_path / "J-1.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg"/>')
    (tmp_path.parent / "secret.svg").write_text("<svg/>")
    settings = _settings(tmp_path, shops=frozenset({"s1", "s2"}))
    async with (
        Bridge(None) as bridge,
        create_app(OrderQueue(sqs, sqs_queues), bridge, settings) as app,
    ):
        yield app, bridge


def _bodies(sqs: Any, url: str) -> list[dict[str, Any]]:
    got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
    return [json.loads(m["Body"]) for m in got]


def _tok(job_id: str) -> str:
    return f"?token={CREDS.token(job_id)}"


async def test_post_orders_routes_by_rush(
    api: tuple[OrderApi, Bridge], sqs: Any, sqs_queues: dict[str, str]
) -> None:
    app, _ = api
    reply = await post_json(f"{app.url}/orders", GOOD, KEY)
    assert reply.status == 202
    body = reply.json()
    assert body["job_id"] == "J-1"
    assert body["queue"] == queues.ENGRAVING_QUEUE
    assert body["status_url"] == f"{app.url}/status/J-1{_tok('J-1')}"
    reply = await post_json(f"{app.url}/orders", {**GOOD, "job_id": "R-1", "rush": True}, KEY)
    assert reply.json()["queue"] == queues.PRIORITY_QUEUE
    assert [b["job_id"] for b in _bodies(sqs, sqs_queues[queues.ENGRAVING_QUEUE])] == ["J-1"]
    assert [b["job_id"] for b in _bodies(sqs, sqs_queues[queues.PRIORITY_QUEUE])] == ["R-1"]
    status = await request(body["order_url"])
    assert status.status == 200
    assert status.json()["status"] == "received"
    assert status.json()["label"] == "Order received"
    assert (await request(f"{app.url}/orders/J-1", headers=AUTH)).json()["status"] == "received"
    page = await request(body["status_url"])
    assert page.status == 200


async def test_keys_and_tokens_guard_every_door(api: tuple[OrderApi, Bridge]) -> None:
    app, _ = api
    missing = await post_json(f"{app.url}/orders", GOOD)
    assert missing.status == 401
    assert missing.headers["www-authenticate"] == "Bearer"
    assert missing.json()["error"] == "unauthorized"
    wrong = await post_json(f"{app.url}/orders", GOOD, "not-the-key-at-all-000")
    assert wrong.status == 403
    assert wrong.json()["error"] == "forbidden"
    assert (await post_json(f"{app.url}/orders", GOOD, KEY)).status == 202
    old_secret = Credentials((KEY,), ("secret-old-0123456789",)).token("J-1")
    other = CREDS.token("J-2")
    for url in (
        f"{app.url}/orders/J-1",
        f"{app.url}/orders/J-1?token=nope",
        f"{app.url}/orders/J-1?token={other}",
        f"{app.url}/status/J-1",
        f"{app.url}/status/J-1?token={other}",
        f"{app.url}/designs/J-1.svg",
        f"{app.url}/designs/J-1.svg?token={other}",
    ):
        reply = await request(url)
        assert reply.status == 404, url
        assert reply.json() == {"error": "not_found", "reasons": []}, url
    assert (await request(f"{app.url}/orders/J-1?token={old_secret}")).status == 200  # rotated
    assert (
        await request(f"{app.url}/orders/J-1", headers={"X-Order-Token": old_secret})
    ).status == 200
    bad_key = {"Authorization": "Bearer not-the-key-at-all-000"}
    assert (await request(f"{app.url}/orders/J-1", headers=bad_key)).status == 403
    for path in ("approval", "alternative", "rating"):
        reply = await post_json(f"{app.url}/orders/J-1/{path}", {"approved": True})
        assert reply.status == 404, path
    with pytest.raises(WsRefused) as refused:
        await WsClient.connect(f"{app.url}/ws/jobs/J-1")
    assert refused.value.status == 404
    assert (await request(f"{app.url}/metrics")).status == 401
    assert (await request(f"{app.url}/metrics", headers=AUTH)).status == 200
    assert (await request(f"{app.url}/healthz")).status == 200
    spec = (await request(f"{app.url}/openapi.json")).json()
    assert {"/orders", "/orders/{job_id}", "/orders/{job_id}/approval"} <= set(spec["paths"])
    order_schema = spec["paths"]["/orders"]["post"]["requestBody"]["content"]["application/json"]
    assert "job_id" in order_schema["schema"]["properties"]


async def test_post_orders_rejects_with_field_reasons(api: tuple[OrderApi, Bridge]) -> None:
    app, _ = api
    reply = await post_json(f"{app.url}/orders", {"job_id": "J-2", "rush": "yes"}, KEY)
    assert reply.status == 400
    reasons = reply.json()["reasons"]
    assert reply.json()["error"] == "invalid_message"
    assert "customer_id: required" in reasons
    assert any(r.startswith("rush:") for r in reasons)
    reply = await post_json(f"{app.url}/orders", b"{nope", KEY)
    assert reply.status == 400
    assert reply.json()["error"] == "invalid_json"
    assert (await request(f"{app.url}/orders/J-2", headers=AUTH)).status == 404
    gone = await request(f"{app.url}/orders", "DELETE")
    assert gone.status == 405
    assert gone.json()["error"] == "method_not_allowed"
    assert (await request(f"{app.url}/nowhere")).json() == {"error": "not_found", "reasons": []}
    text = await request(f"{app.url}/orders", "POST", b"{}", {**AUTH, "Content-Type": "text/plain"})
    assert text.status == 415


async def test_what_would_fail_later_fails_at_the_door(api: tuple[OrderApi, Bridge]) -> None:
    app, _ = api
    long_id = {**GOOD, "job_id": "J" * 65}  # the G-code job comment takes 64
    reply = await post_json(f"{app.url}/orders", long_id, KEY)
    assert reply.status == 400
    assert any(r.startswith("job_id:") for r in reply.json()["reasons"])
    assert (await post_json(f"{app.url}/orders", {**GOOD, "job_id": "J" * 64}, KEY)).status == 202
    reply = await post_json(f"{app.url}/orders", {**GOOD, "shop_id": "atlantis"}, KEY)
    assert reply.status == 400
    assert reply.json()["reasons"] == ["shop_id: unknown workshop 'atlantis'"]
    assert (await post_json(f"{app.url}/orders", {**GOOD, "shop_id": "s2"}, KEY)).status == 202
    deep = b'{"job_id": "J-9", "x": ' + b"[" * 50_000 + b"]" * 50_000 + b"}"
    reply = await post_json(f"{app.url}/orders", deep, KEY)
    assert reply.status == 400
    assert "deeper" in reply.json()["reasons"][0]
    reader, writer = await asyncio.open_connection(app.server.host, app.server.port)
    try:  # the declared length is enough to refuse: nothing of the body is read
        writer.write(
            f"POST /orders HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\n"
            "Content-Type: application/json\r\nContent-Length: 300000\r\n\r\n".encode()
        )
        async with asyncio.timeout(10):
            assert parse_reply(await reader.read()).status == 413
    finally:
        writer.close()
        await writer.wait_closed()


@pytest.mark.parametrize("length", ["²", "-1", "1x", "1, 2"])
async def test_malformed_content_length_is_answered_400(
    api: tuple[OrderApi, Bridge], length: str
) -> None:
    app, _ = api
    reader, writer = await asyncio.open_connection(app.server.host, app.server.port)
    try:
        head = (
            f"POST /orders HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n{{}}"
        )
        writer.write(head.encode())
        await writer.drain()
        async with asyncio.timeout(10):
            raw = await reader.read()
        assert parse_reply(raw).status == 400, raw
    finally:
        writer.close()
        await writer.wait_closed()


async def test_websocket_streams_latest_then_updates_without_notes(
    api: tuple[OrderApi, Bridge],
) -> None:
    app, bridge = api
    await post_json(f"{app.url}/orders", GOOD, KEY)
    ws = await WsClient.connect(f"{app.url}/ws/jobs/J-1{_tok('J-1')}")
    try:
        async with asyncio.timeout(10):
            first = await ws.recv_json()
            assert first["status"] == "received"
            assert first["label"] == "Order received"
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
            bridge.publish(
                {
                    "event_id": "e3",
                    "job_id": "J-1",
                    "seq": 3,
                    "status": "qa_failed",
                    "reason": "scratch on the left edge, operator Bob",
                    "notes": "scratch on the left edge, operator Bob",
                    "machine_id": "laser-2",
                }
            )
            assert (await ws.recv_json())["status"] == "validated"
            assert (await ws.recv_json())["queue_position"] == 1
            qa = await ws.recv_json()
            assert qa["status"] == "qa_failed"
            assert "Bob" not in json.dumps(qa)
            assert "machine_id" not in qa and "source" not in qa
            await ws.ping(b"hi")
            pong = await ws.recv()
            assert (pong.opcode, pong.data) == (Opcode.PONG, b"hi")
    finally:
        await ws.close()
    for _ in range(100):
        if bridge.subscriber_count == 0:
            break
        await asyncio.sleep(0.02)
    assert bridge.subscriber_count == 0


async def test_websocket_checks_origin(sqs_queues: dict[str, str], sqs: Any) -> None:
    settings = _settings(allowed_origins=("https://shop.example",))
    async with (
        Bridge(None) as bridge,
        create_app(OrderQueue(sqs, sqs_queues), bridge, settings) as app,
    ):
        url = f"{app.url}/ws/jobs/J-1{_tok('J-1')}"
        with pytest.raises(WsRefused) as refused:
            await WsClient.connect(url, origin="https://evil.example")
        assert refused.value.status == 403
        for origin in ("https://shop.example", app.url):
            ws = await WsClient.connect(url, origin=origin)
            assert (await ws.recv_json())["job_id"] == "J-1"
            await ws.close()


async def test_server_close_ends_open_websockets(sqs_queues: dict[str, str], sqs: Any) -> None:
    async with Bridge(None) as bridge:
        app = create_app(OrderQueue(sqs, sqs_queues), bridge, _settings())
        async with app:
            ws = await WsClient.connect(f"{app.url}/ws/jobs/J-9{_tok('J-9')}")
            assert (await ws.recv_json())["status"] == "received"  # a token means it was accepted
        try:
            async with asyncio.timeout(10):
                closing = await ws.recv()
            assert closing.opcode is Opcode.CLOSE
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
    page = await request(f"{app.url}/status/J-1{_tok('J-1')}")
    assert page.status == 200
    html = page.body.decode()
    assert "Engraving" in html
    assert "&quot;progress&quot;: 0.5" in html
    assert f"/designs/J-1.svg?token={CREDS.token('J-1')}" in html
    for control in ('id="approve"', 'id="changes"', 'id="alt-choose"', 'name="stars"'):
        assert control in html
    assert "script-src" not in page.headers["content-security-policy"]  # no inline script allowed
    assert page.headers["cache-control"] == "no-store"
    bridge.publish({"event_id": "h", "job_id": "H-1", "seq": 1, "status": "<script>x</script>"})
    page = await request(f"{app.url}/status/H-1{_tok('H-1')}")
    assert "<script>x" not in page.body.decode()
    svg = await request(f"{app.url}/designs/J-1.svg{_tok('J-1')}")
    assert svg.status == 200
    assert svg.headers["content-type"] == "image/svg+xml"
    assert "default-src 'none'" in svg.headers["content-security-policy"]
    assert svg.headers["x-content-type-options"] == "nosniff"
    assert (await request(f"{app.url}/designs/..%2Fsecret.svg{_tok('../secret')}")).status == 404
    assert (await request(f"{app.url}/designs/nope.svg{_tok('nope')}")).status == 404
    assert (await request(f"{app.url}/static/status.js")).status == 200


async def test_customer_actions_check_bodies_and_need_the_workflow(
    api: tuple[OrderApi, Bridge],
) -> None:
    app, _ = api
    base = f"{app.url}/orders/J-1"
    for path, body in (
        ("rating", {"stars": 6}),
        ("rating", {"stars": "five"}),
        ("approval", {"approved": "yes"}),
        ("approval", {"approved": True, "comment": "x" * 1001}),
        ("alternative", {}),
        ("alternative", {"item_id": "cup", "cancel": True}),
        ("alternative", {"item_id": "../etc"}),
    ):
        reply = await post_json(f"{base}/{path}{_tok('J-1')}", body)
        assert reply.status == 400, (path, body)
        assert reply.json()["error"] == "invalid_request"
        assert reply.json()["reasons"], (path, body)
    reply = await post_json(f"{base}/rating{_tok('J-1')}", {"stars": 5})
    assert reply.status == 503  # no Temporal client here: nobody to ask
    assert reply.json()["error"] == "workflow_unavailable"
    metrics = (await request(f"{app.url}/metrics", headers=AUTH)).body.decode()
    assert "crown_customer_rating_stars_count 0.0" in metrics  # a rating not taken is not counted


async def test_healthz_and_metrics(api: tuple[OrderApi, Bridge]) -> None:
    app, _ = api
    await post_json(f"{app.url}/orders", GOOD, KEY)
    await post_json(f"{app.url}/orders", {"job_id": "bad"}, KEY)
    health = await request(f"{app.url}/healthz")
    assert health.json()["ok"] is True
    metrics = (await request(f"{app.url}/metrics", headers=AUTH)).body.decode()
    assert f'crown_orders_accepted_total{{queue="{queues.ENGRAVING_QUEUE}"}} 1.0' in metrics
    assert 'crown_orders_rejected_total{reason="invalid_message"} 1.0' in metrics
    assert 'crown_http_requests_total{code="202",route="orders"} 1.0' in metrics
    assert KEY not in metrics


async def test_queue_unavailable_is_503(api: tuple[OrderApi, Bridge]) -> None:
    from crown_edge.errors import SyncError

    class DownQueue:
        async def send_order(self, message: Any) -> str:
            raise SyncError("sqs down")

    _, bridge = api
    async with create_app(DownQueue(), bridge, _settings()) as app:
        reply = await post_json(f"{app.url}/orders", {**GOOD, "job_id": "D-1"}, KEY)
    assert reply.status == 503
    assert reply.headers["retry-after"] == "5"
    assert reply.json()["error"] == "queue_unavailable"
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
                length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
                if method == "GET":
                    assert json.loads(await reader.readexactly(length))["ok"] is True
        writer.write(b"BROKEN\r\n\r\n")
        async with asyncio.timeout(10):
            assert (await reader.read()).startswith(b"HTTP/1.1 400")
    finally:
        writer.close()
        await writer.wait_closed()


async def test_oversized_head_is_refused(api: tuple[OrderApi, Bridge]) -> None:
    app, _ = api
    reply = await request(f"{app.url}/healthz", headers={"X-Big": "a" * 20_000})
    assert reply.status in (400, 431)  # h11 refuses it while it arrives, the app once it is whole
    assert reply.status == 431 or not reply.body.startswith(b"{")


async def test_connection_limit_answers_503(sqs_queues: dict[str, str], sqs: Any) -> None:
    async with Bridge(None) as bridge:
        app = OrderApi(OrderQueue(sqs, sqs_queues), bridge, _settings(), max_connections=1)
        async with app:
            reader, writer = await asyncio.open_connection(app.server.host, app.server.port)
            try:
                writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")  # keep-alive: a slot
                await writer.drain()
                async with asyncio.timeout(10):
                    await reader.readuntil(b"}")
                assert (await request(f"{app.url}/healthz")).status == 503
            finally:
                writer.close()
                await writer.wait_closed()


async def test_idle_websocket_is_pinged(sqs_queues: dict[str, str], sqs: Any) -> None:
    async with Bridge(None) as bridge:
        app = OrderApi(OrderQueue(sqs, sqs_queues), bridge, _settings(), ws_ping_interval=0.05)
        async with app:
            ws = await WsClient.connect(f"{app.url}/ws/jobs/J-idle{_tok('J-idle')}")
            try:
                async with asyncio.timeout(10):
                    await ws.recv_json()
                    assert (await ws.recv()).opcode is Opcode.PING
            finally:
                await ws.close()
