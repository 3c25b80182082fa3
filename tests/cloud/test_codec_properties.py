"""Property tests: the WebSocket codec, the HTTP head parser and topic decoding never misbehave."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crown_edge.cloud.http import BadRequest, parse_head
from crown_edge.cloud.websocket import (
    OP_BINARY,
    OP_TEXT,
    FrameDecoder,
    WebSocketError,
    encode_frame,
)
from crown_edge.sync import topics

messages = st.lists(
    st.tuples(st.sampled_from([OP_TEXT, OP_BINARY]), st.binary(max_size=300)), max_size=8
)


@settings(max_examples=200, deadline=None)
@given(messages, st.binary(min_size=4, max_size=4), st.integers(min_value=1, max_value=50))
def test_round_trip_in_any_chunking(
    frames: list[tuple[int, bytes]], mask: bytes, chunk: int
) -> None:
    wire = b"".join(encode_frame(op, data, mask=mask) for op, data in frames)
    decoder = FrameDecoder()
    got = []
    for i in range(0, len(wire), chunk):
        got += decoder.feed(wire[i : i + chunk])
    assert [(m.opcode, m.data) for m in got] == frames


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_only_raise_websocket_error(data: bytes) -> None:
    with contextlib.suppress(WebSocketError):
        FrameDecoder(max_message=1024).feed(data)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_random_heads_only_raise_bad_request(data: bytes) -> None:
    with contextlib.suppress(BadRequest):
        parse_head(data)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=100))
def test_topic_payload_decode_is_total(data: bytes) -> None:
    result = topics.decode(data)
    assert result is None or isinstance(result, dict)


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(["GET", "POST", "get", "", "G ET"]),
    st.text(max_size=40),
    st.sampled_from(["HTTP/1.1", "HTTP/1.0", "HTTP/2", ""]),
    st.lists(st.text(max_size=30), max_size=4),
)
def test_structured_random_heads_only_raise_bad_request(
    method: str, target: str, version: str, headers: list[str]
) -> None:
    head = "\r\n".join([f"{method} {target} {version}", *headers])
    with contextlib.suppress(BadRequest):
        request = parse_head(head.encode("utf-8", "replace"))
        assert request.path.startswith("/")


@pytest.mark.parametrize("target", ["http://[", "*", "example.com", "http://x/"])
def test_absolute_and_broken_targets_rejected(target: str) -> None:
    with pytest.raises(BadRequest):
        parse_head(f"GET {target} HTTP/1.1".encode())
