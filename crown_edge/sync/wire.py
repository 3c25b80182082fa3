"""Untrusted bytes → a JSON object, totally: a value or a :class:`Rejected`, never an exception.

Every consumer of outside messages (the dispatcher's SQS intake, the bridge's MQTT events, the
workshop's MQTT commands) decodes through :func:`decode_object` first, so one poison message can
only ever be turned away with a reason — it cannot stop the loop that serves the next one.

Beyond "valid UTF-8 JSON whose top level is an object" the decoder refuses what Python's
``json`` module would accept but nothing downstream can use safely:

- more than ``max_bytes`` of payload (checked before parsing);
- nesting deeper than ``max_depth`` (a 50,000-deep array makes the C parser raise
  ``RecursionError``; a merely deep one would make every later ``json.dumps`` recurse as deep);
- ``NaN``/``Infinity`` and floats that overflow to infinity (not JSON, RFC 8259 §6);
- integers outside the signed 64-bit range (not portable; Python would otherwise parse up to
  4,300 digits and refuse longer ones only with a ``ValueError``).

Pure: no I/O.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

#: A job id as intake accepts it (:meth:`crown_edge.models.IntakeMessage.parse`).
JOB_ID_PATTERN = r"^[A-Za-z0-9._-]{1,128}$"
#: A machine or workshop id as the configuration accepts it (``[[machines]] id``, ``shop_id``).
IDENT_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"

MAX_BYTES = 256 * 1024  # the SQS message cap; MQTT consumers pass smaller bounds
MAX_DEPTH = 32
INT_MIN, INT_MAX = -(2**63), 2**63 - 1
_MAX_INT_DIGITS = 19


@dataclass(frozen=True, slots=True)
class Rejected:
    """Why a message was turned away (a short, log-safe sentence)."""

    reason: str


class _Refused(ValueError):
    """Raised inside the parser's hooks; becomes a :class:`Rejected`."""


def _parse_int(text: str) -> int:
    if len(text.lstrip("-")) > _MAX_INT_DIGITS:
        raise _Refused("integer outside the 64-bit range")
    value = int(text)
    if not INT_MIN <= value <= INT_MAX:
        raise _Refused("integer outside the 64-bit range")
    return value


def _parse_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _Refused(f"number {text[:20]!r} overflows")
    return value


def _parse_constant(name: str) -> Any:
    raise _Refused(f"{name} is not JSON")


def _depth_exceeds(value: Any, limit: int) -> bool:
    """Whether containers nest deeper than ``limit`` (iterative: no recursion to exhaust)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        children: Any
        if isinstance(node, dict):
            children = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def decode_object(
    raw: object, *, max_bytes: int = MAX_BYTES, max_depth: int = MAX_DEPTH
) -> dict[str, Any] | Rejected:
    """The JSON object in ``raw`` (bytes or str), or why there is none. Never raises."""
    try:
        return _decode(raw, max_bytes, max_depth)
    except Exception as exc:  # total by contract: anything left is a rejection
        return Rejected(f"undecodable payload ({type(exc).__name__})")


def _decode(raw: object, max_bytes: int, max_depth: int) -> dict[str, Any] | Rejected:
    if isinstance(raw, bytearray | memoryview):
        raw = bytes(raw)
    if isinstance(raw, str):
        # a str from SQS or a test: measured as the UTF-8 it travelled as
        if len(raw) > max_bytes:
            return Rejected(f"payload larger than {max_bytes} bytes")
        try:
            data = raw.encode("utf-8")
        except UnicodeEncodeError:
            return Rejected("payload is not valid UTF-8 (lone surrogate)")
    elif isinstance(raw, bytes):
        data = raw
    else:
        return Rejected(f"payload must be bytes or text, got {type(raw).__name__}")
    if len(data) > max_bytes:
        return Rejected(f"payload larger than {max_bytes} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return Rejected(f"payload is not valid UTF-8 (byte {exc.start})")
    try:
        value = json.loads(
            text,
            parse_int=_parse_int,
            parse_float=_parse_float,
            parse_constant=_parse_constant,
        )
    except _Refused as exc:
        return Rejected(f"payload refused: {exc}")
    except RecursionError:
        return Rejected(f"payload nests deeper than {max_depth} levels")
    except ValueError as exc:
        return Rejected(f"payload is not JSON: {str(exc)[:120]}")
    if not isinstance(value, dict):
        return Rejected(f"payload must be a JSON object, got {type(value).__name__}")
    if _depth_exceeds(value, max_depth):
        return Rejected(f"payload nests deeper than {max_depth} levels")
    return value
