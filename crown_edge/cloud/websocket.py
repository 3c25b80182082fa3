"""Minimal RFC 6455 WebSocket server side: handshake, a sans-I/O frame codec, a stream wrapper.

Frame layout (RFC 6455 §5.2)::

     0               1               2               3
    |F|R|R|R| opcode|M| payload len |  extended length (16/64)  | masking key (client only) | data

Clients must mask, servers must not. Only what a status stream needs: text and binary messages
(fragmented ones reassembled), ping/pong, close; messages over ``max_message`` close with 1009.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import struct
from collections import deque
from dataclasses import dataclass

from crown_edge.cloud.http import Request, Response

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
CLOSE_NORMAL, CLOSE_GOING_AWAY, CLOSE_PROTOCOL, CLOSE_TOO_BIG = 1000, 1001, 1002, 1009


class WebSocketError(Exception):
    """The peer broke the protocol; ``code`` is the close code to answer with."""

    def __init__(self, message: str, code: int = CLOSE_PROTOCOL) -> None:
        super().__init__(message)
        self.code = code


def accept_key(key: str) -> str:
    """``Sec-WebSocket-Accept`` for a client's ``Sec-WebSocket-Key``."""
    digest = hashlib.sha1((key + GUID).encode("ascii"), usedforsecurity=False).digest()
    return base64.b64encode(digest).decode("ascii")


def handshake(request: Request) -> Response | str:
    """The 101 answer's key if ``request`` is a valid upgrade, else an error response."""
    if request.method != "GET":
        return Response.text("websocket needs GET", 405)
    if "websocket" not in request.headers.get("upgrade", "").lower():
        return Response.text("expected a websocket upgrade", 426)
    if "upgrade" not in request.headers.get("connection", "").lower():
        return Response.text("expected Connection: Upgrade", 400)
    if request.headers.get("sec-websocket-version") != "13":
        return Response(426, b"unsupported version", headers={"Sec-WebSocket-Version": "13"})
    key = request.headers.get("sec-websocket-key", "")
    try:
        if len(base64.b64decode(key, validate=True)) != 16:
            raise ValueError(key)
    except ValueError:
        return Response.text("bad Sec-WebSocket-Key", 400)
    return accept_key(key)


def encode_frame(opcode: int, payload: bytes = b"", *, mask: bytes | None = None) -> bytes:
    """One final frame. Servers leave ``mask`` unset; clients (tests) pass four bytes."""
    length = len(payload)
    head = bytes([0x80 | opcode])
    mask_bit = 0x80 if mask is not None else 0
    if length < 126:
        head += bytes([mask_bit | length])
    elif length < 1 << 16:
        head += bytes([mask_bit | 126]) + struct.pack("!H", length)
    else:
        head += bytes([mask_bit | 127]) + struct.pack("!Q", length)
    if mask is not None:
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        head += mask
    return head + payload


@dataclass(frozen=True, slots=True)
class Message:
    """A complete message or control frame received from the peer."""

    opcode: int
    data: bytes


class FrameDecoder:
    """Feed bytes, get :class:`Message` objects. Pure; raises :class:`WebSocketError`."""

    def __init__(self, *, require_mask: bool = True, max_message: int = 64 * 1024) -> None:
        self.require_mask = require_mask
        self.max_message = max_message
        self._buf = bytearray()
        self._frag_op: int | None = None
        self._frag = bytearray()

    def feed(self, data: bytes) -> list[Message]:
        """Consume ``data``; return every message now complete."""
        self._buf += data
        out: list[Message] = []
        while (frame := self._next_frame()) is not None:
            fin, opcode, payload = frame
            if opcode >= 0x8:
                if not fin or len(payload) > 125:
                    raise WebSocketError("bad control frame")
                out.append(Message(opcode, payload))
            elif opcode == OP_CONT:
                if self._frag_op is None:
                    raise WebSocketError("continuation without a message")
                self._append(payload)
                if fin:
                    out.append(Message(self._frag_op, bytes(self._frag)))
                    self._frag_op, self._frag = None, bytearray()
            elif opcode in (OP_TEXT, OP_BINARY):
                if self._frag_op is not None:
                    raise WebSocketError("new message inside a fragmented one")
                if fin:
                    self._check(len(payload))
                    out.append(Message(opcode, payload))
                else:
                    self._frag_op = opcode
                    self._append(payload)
            else:
                raise WebSocketError(f"unknown opcode {opcode:#x}")
        return out

    def _append(self, payload: bytes) -> None:
        self._check(len(self._frag) + len(payload))
        self._frag += payload

    def _check(self, size: int) -> None:
        if size > self.max_message:
            raise WebSocketError("message too big", CLOSE_TOO_BIG)

    def _next_frame(self) -> tuple[bool, int, bytes] | None:
        buf = self._buf
        if len(buf) < 2:
            return None
        b0, b1 = buf[0], buf[1]
        if b0 & 0x70:
            raise WebSocketError("reserved bits set")
        masked, length, pos = bool(b1 & 0x80), b1 & 0x7F, 2
        if masked != self.require_mask:
            raise WebSocketError("frame masking is wrong for this side")
        if length == 126:
            if len(buf) < 4:
                return None
            length, pos = struct.unpack_from("!H", buf, 2)[0], 4
        elif length == 127:
            if len(buf) < 10:
                return None
            length, pos = struct.unpack_from("!Q", buf, 2)[0], 10
        self._check(length)
        key = b""
        if masked:
            key, pos = bytes(buf[pos : pos + 4]), pos + 4
        if len(buf) < pos + length:
            return None
        payload = bytes(buf[pos : pos + length])
        del buf[: pos + length]
        if masked:
            payload = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
        return bool(b0 & 0x80), b0 & 0x0F, payload


class WebSocket:
    """The server end of an upgraded connection (the HTTP server owns and closes the streams)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.decoder = FrameDecoder()
        self.closed = False
        self.close_code: int | None = None
        self._pending: deque[Message] = deque()

    @classmethod
    async def accept(cls, request: Request) -> WebSocket | Response:
        """Answer the handshake; returns the socket, or the error response to send instead."""
        result = handshake(request)
        if isinstance(result, Response):
            return result
        assert request.reader is not None and request.writer is not None
        request.writer.write(
            (
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Accept: {result}\r\n\r\n"
            ).encode("ascii")
        )
        await request.writer.drain()
        return cls(request.reader, request.writer)

    async def send_text(self, text: str) -> None:
        """Send a text message."""
        self.writer.write(encode_frame(OP_TEXT, text.encode()))
        await self.writer.drain()

    async def ping(self, data: bytes = b"") -> None:
        """Send a ping (keeps proxies from timing out; a dead peer fails the write)."""
        self.writer.write(encode_frame(OP_PING, data))
        await self.writer.drain()

    async def receive(self) -> Message | None:
        """The next data message; answers pings; ``None`` once the peer closed."""
        while True:
            while self._pending:
                message = self._pending.popleft()
                if message.opcode == OP_PING:
                    self.writer.write(encode_frame(OP_PONG, message.data))
                elif message.opcode == OP_CLOSE:
                    data = message.data
                    self.close_code = struct.unpack("!H", data[:2])[0] if len(data) >= 2 else None
                    await self.close(self.close_code or CLOSE_NORMAL)
                    return None
                elif message.opcode in (OP_TEXT, OP_BINARY):
                    return message
            if self.closed:
                return None
            data = await self.reader.read(4096)
            if not data:
                self.closed = True
                return None
            try:
                self._pending.extend(self.decoder.feed(data))
            except WebSocketError as exc:
                await self.close(exc.code)
                return None

    async def close(self, code: int = CLOSE_NORMAL) -> None:
        """Send a close frame (once)."""
        if self.closed:
            return
        self.closed = True
        with contextlib.suppress(ConnectionError, RuntimeError):
            self.writer.write(encode_frame(OP_CLOSE, struct.pack("!H", code)))
            await self.writer.drain()
