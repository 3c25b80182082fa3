"""Small HTTP and WebSocket clients for the cloud tests (raw asyncio streams).

HTTP is written by hand so tests can send what no polite client would (broken heads, odd
``Content-Length`` values); the WebSocket side is websockets' sans-I/O client protocol over a raw
stream, so tests see every frame (pings included).
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.uri import parse_uri


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
    target = split.path or "/"
    if split.query:
        target += "?" + split.query
    try:
        head = [f"{method} {target} HTTP/1.1", f"Host: {split.netloc}"]
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
    return parse_reply(raw)


def parse_reply(raw: bytes) -> Reply:
    """A raw HTTP/1.1 response (``Content-Length`` or read-to-close body)."""
    head_raw, _, payload = raw.partition(b"\r\n\r\n")
    lines = head_raw.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    parsed = {}
    for line in lines[1:]:
        key, _, value = line.partition(":")
        parsed[key.strip().lower()] = value.strip()
    if "content-length" in parsed:
        payload = payload[: int(parsed["content-length"])]
    return Reply(status, parsed, payload)


async def post_json(url: str, data: Any, key: str | None = None) -> Reply:
    """POST a JSON body (with ``Authorization: Bearer key`` when given)."""
    body = data if isinstance(data, bytes) else json.dumps(data).encode()
    headers = {"Content-Type": "application/json"}
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    return await request(url, "POST", body, headers)


class WsRefused(Exception):
    """The server answered the upgrade with an HTTP error."""

    def __init__(self, status: int) -> None:
        super().__init__(f"upgrade refused: {status}")
        self.status = status


class WsClient:
    """A WebSocket client that shows every frame."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, proto: ClientProtocol
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.proto = proto
        self.pending: list[Frame] = []

    @classmethod
    async def connect(cls, url: str, origin: str | None = None) -> WsClient:
        """Open and upgrade (raises :class:`WsRefused` with the HTTP status otherwise)."""
        split = urlsplit(url)
        reader, writer = await asyncio.open_connection(split.hostname, split.port)
        proto = ClientProtocol(parse_uri(url.replace("http", "ws", 1)))
        req = proto.connect()
        if origin is not None:
            req.headers["Origin"] = origin
        proto.send_request(req)
        client = cls(reader, writer, proto)
        await client._flush()
        async with asyncio.timeout(10):
            while True:
                data = await reader.read(4096)
                if not data:
                    break
                proto.receive_data(data)
                events = proto.events_received()
                if events:
                    first, rest = events[0], events[1:]
                    assert isinstance(first, Response)
                    if first.status_code != 101:
                        writer.close()
                        await writer.wait_closed()
                        raise WsRefused(first.status_code)
                    client.pending.extend(e for e in rest if isinstance(e, Frame))
                    return client
        raise ConnectionError("closed during the handshake")

    async def _flush(self) -> None:
        for chunk in self.proto.data_to_send():
            if chunk:
                self.writer.write(chunk)
        await self.writer.drain()

    async def recv(self) -> Frame:
        """The next frame (control frames included; pings are answered)."""
        while not self.pending:
            data = await self.reader.read(4096)
            if not data:
                raise ConnectionError("closed")
            self.proto.receive_data(data)
            self.pending.extend(e for e in self.proto.events_received() if isinstance(e, Frame))
            await self._flush()
        return self.pending.pop(0)

    async def recv_json(self) -> Any:
        """The next text message as JSON."""
        frame = await self.recv()
        assert frame.opcode is Opcode.TEXT, frame
        return json.loads(frame.data)

    async def ping(self, data: bytes) -> None:
        """Send a ping."""
        self.proto.send_ping(data)
        await self._flush()

    async def close(self) -> None:
        """Close handshake, then the socket."""
        try:
            self.proto.send_close(1000)
            await self._flush()
            async with asyncio.timeout(5):
                while (await self.recv()).opcode is not Opcode.CLOSE:
                    pass
        except (ConnectionError, Exception):
            pass
        self.writer.close()
        await self.writer.wait_closed()
