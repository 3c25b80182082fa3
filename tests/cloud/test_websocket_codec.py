"""RFC 6455 codec and HTTP head parsing: pure tests."""

from __future__ import annotations

import os

import pytest

from crown_edge.cloud.http import BadRequest, Response, content_length, parse_head
from crown_edge.cloud.websocket import (
    CLOSE_TOO_BIG,
    OP_BINARY,
    OP_CONT,
    OP_PING,
    OP_TEXT,
    FrameDecoder,
    Message,
    WebSocketError,
    accept_key,
    encode_frame,
    handshake,
)


def test_accept_key_rfc_example() -> None:
    assert accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


@pytest.mark.parametrize("size", [0, 5, 125, 126, 65535, 65536, 70000])
def test_masked_round_trip_all_length_forms(size: int) -> None:
    payload = os.urandom(size)
    frame = encode_frame(OP_BINARY, payload, mask=b"\x01\x02\x03\x04")
    decoder = FrameDecoder(max_message=1 << 20)
    assert decoder.feed(frame) == [Message(OP_BINARY, payload)]


def test_byte_by_byte_equals_one_chunk_and_fragments_reassemble() -> None:
    mask = b"abcd"
    first = bytearray(encode_frame(OP_TEXT, b"hel", mask=mask))
    first[0] &= 0x7F  # not final
    data = (
        bytes(first)
        + encode_frame(OP_PING, b"p", mask=mask)
        + encode_frame(OP_CONT, b"lo", mask=mask)
    )
    decoder = FrameDecoder()
    out: list[Message] = []
    for byte in data:
        out += decoder.feed(bytes([byte]))
    assert out == [Message(OP_PING, b"p"), Message(OP_TEXT, b"hello")]
    assert FrameDecoder().feed(data) == out


def test_protocol_violations() -> None:
    with pytest.raises(WebSocketError):
        FrameDecoder().feed(encode_frame(OP_TEXT, b"x"))  # unmasked from a client
    with pytest.raises(WebSocketError) as info:
        FrameDecoder(max_message=10).feed(encode_frame(OP_TEXT, b"x" * 11, mask=b"abcd"))
    assert info.value.code == CLOSE_TOO_BIG
    with pytest.raises(WebSocketError):
        FrameDecoder().feed(encode_frame(OP_CONT, b"x", mask=b"abcd"))
    with pytest.raises(WebSocketError):
        FrameDecoder().feed(bytes([0x80 | 0x3, 0x80]) + b"abcd")  # reserved opcode


def _head(extra: str = "") -> bytes:
    return (
        "GET /ws/jobs/J-1 HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13{extra}"
    ).encode()


def test_parse_head_and_handshake() -> None:
    request = parse_head(_head())
    assert request.path == "/ws/jobs/J-1"
    assert request.headers["upgrade"] == "websocket"
    assert handshake(request) == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    request.headers["sec-websocket-version"] = "8"
    result = handshake(request)
    assert isinstance(result, Response) and result.status == 426


@pytest.mark.parametrize(
    "head",
    [b"GARBAGE", b"GET / HTTP/2\r\n", b"get / HTTP/1.1", b"GET / HTTP/1.1\r\nNoColon"],
)
def test_bad_heads_rejected(head: bytes) -> None:
    with pytest.raises(BadRequest):
        parse_head(head)


def test_chunked_and_oversized_bodies_rejected() -> None:
    with pytest.raises(BadRequest) as info:
        parse_head(b"POST /orders HTTP/1.1\r\nTransfer-Encoding: chunked")
    assert info.value.status == 501
    request = parse_head(b"POST /orders HTTP/1.1\r\nContent-Length: 999999999")
    with pytest.raises(BadRequest) as info:
        content_length(request)
    assert info.value.status == 413
