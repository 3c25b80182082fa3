"""Tiny HTTP and WebSocket clients for the cloud tests (raw asyncio streams, no dependencies)."""

from __future__ import annotations

import asyncio
import base64
import json
import os
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from crown_edge.cloud.websocket import OP_CLOSE, OP_TEXT, FrameDecoder, Message, encode_frame


@dataclass
class Reply:
    """A parsed HTTP response."""

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        """Body as JSON."""
        return json.loads(self.body)


async def request(
    url: str, method: str = "GET", body: bytes | None = None, headers: dict[str, str] | None = None
) -> Reply:
    """One request with ``Connection: close``; the whole response."""
    split = urlsplit(url)
    reader, writer = await asyncio.open_connection(split.hostname, split.port)
    try:
        head = [f"{method} {split.path or '/'} HTTP/1.1", f"Host: {split.netloc}"]
        head.append("Connection: close")
        for key, value in (headers or {}).items():
            head.append(f"{key}: {value}")
        if body is not None:
            head.append(f"Content-Length: {len(body)}")
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + (body or b""))
        await writer.drain()
        async with asyncio.timeout(10):
            raw = await reader.read()
    finally:
        writer.close()
        await writer.wait_closed()
    head_raw, _, payload = raw.partition(b"\r\n\r\n")
    lines = head_raw.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    parsed = {}
    for line in lines[1:]:
        key, _, value = line.partition(":")
        parsed[key.strip().lower()] = value.strip()
    return Reply(status, parsed, payload)


async def post_json(url: str, data: Any) -> Reply:
    """POST a JSON body."""
    body = data if isinstance(data, bytes) else json.dumps(data).encode()
    return await request(url, "POST", body, {"Content-Type": "application/json"})


class WsClient:
    """A masked-frame WebSocket client for tests."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.decoder = FrameDecoder(require_mask=False)
        self.pending: list[Message] = []

    @classmethod
    async def connect(cls, url: str) -> WsClient:
        """Open and upgrade."""
        split = urlsplit(url)
        reader, writer = await asyncio.open_connection(split.hostname, split.port)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(
            (
                f"GET {split.path} HTTP/1.1\r\nHost: {split.netloc}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101"), head
        return cls(reader, writer)

    async def recv(self) -> Message:
        """The next message (control frames included)."""
        while not self.pending:
            data = await self.reader.read(4096)
            if not data:
                raise ConnectionError("closed")
            self.pending.extend(self.decoder.feed(data))
        return self.pending.pop(0)

    async def recv_json(self) -> Any:
        """The next text message as JSON."""
        message = await self.recv()
        assert message.opcode == OP_TEXT, message
        return json.loads(message.data)

    def send(self, opcode: int, data: bytes) -> None:
        """Send one masked frame."""
        self.writer.write(encode_frame(opcode, data, mask=os.urandom(4)))

    async def close(self) -> None:
        """Close handshake, then the socket."""
        self.send(OP_CLOSE, (1000).to_bytes(2, "big"))
        try:
            async with asyncio.timeout(5):
                while (await self.recv()).opcode != OP_CLOSE:
                    pass
        except ConnectionError:
            pass
        self.writer.close()
        await self.writer.wait_closed()
