"""The HTTP server's socket: TCP_NODELAY on every connection, and a port shared on request."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest

from crown_edge.cloud.server import AsgiServer


async def _app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    assert scope["type"] == "http"
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


async def _get(port: int) -> tuple[bytes, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")  # keep-alive: the connection stays
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    return head, writer


async def test_connections_are_not_held_back_by_nagle() -> None:
    """A keep-alive answer goes out at once: the accepted sockets have TCP_NODELAY (asyncio sets
    it only on sockets created as IPPROTO_TCP)."""
    async with AsgiServer(_app) as server:
        head, writer = await _get(server.port)
        assert head.startswith(b"HTTP/1.1 200")
        conns = list(server._server.server_state.connections)
        assert conns
        for conn in conns:
            sock = conn.transport.get_extra_info("socket")
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
        writer.close()
        await writer.wait_closed()


async def test_a_port_is_shared_only_when_asked() -> None:
    async with AsgiServer(_app, reuse_port=True) as first:
        async with AsgiServer(_app, port=first.port, reuse_port=True) as second:
            assert second.port == first.port
            head, writer = await _get(first.port)
            assert head.startswith(b"HTTP/1.1 200")
            writer.close()
            await writer.wait_closed()
        with pytest.raises(OSError):
            async with AsgiServer(_app, port=first.port):
                pass
