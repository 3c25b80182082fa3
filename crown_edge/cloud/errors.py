"""The Order API's error answers and its body reader: every error is JSON
``{"error": word, "reasons": [...]}``, and a body is read size- and depth-limited by the total wire
decoder (:mod:`crown_edge.sync.wire`), so a deeply nested body is a 400, never a
``RecursionError``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from pydantic import ValidationError as PydanticError
from starlette.exceptions import HTTPException

from crown_edge.sync import wire

MAX_BODY = 256 * 1024
#: Deepest JSON nesting a body may have (an order is 2 deep: object → text array).
MAX_DEPTH = 8


class ApiError(Exception):
    """An error answer: status, error word, reasons, extra headers."""

    def __init__(
        self,
        status: int,
        error: str,
        reasons: Iterable[str] = (),
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(error)
        self.status = status
        self.error = error
        self.reasons = list(reasons)
        self.headers = dict(headers or {})


def error_response(
    status: int, error: str, reasons: Iterable[str] = (), **headers: str
) -> JSONResponse:
    """The JSON error answer ``{"error": error, "reasons": [...]}`` with extra ``headers``."""
    return JSONResponse({"error": error, "reasons": list(reasons)}, status, headers=headers or None)


_HTTP_WORDS = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "body_too_large",
    415: "unsupported_media_type",
}


async def on_api_error(request: Request, exc: Exception) -> Response:
    """FastAPI handler: an :class:`ApiError` as its answer."""
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.error, exc.reasons, **exc.headers)


async def on_http_error(request: Request, exc: Exception) -> Response:
    """FastAPI handler: Starlette's own errors (404, 405…) in the same JSON shape."""
    assert isinstance(exc, HTTPException)
    word = _HTTP_WORDS.get(exc.status_code, "error")
    return error_response(exc.status_code, word, **(exc.headers or {}))


async def on_validation_error(request: Request, exc: Exception) -> Response:
    """FastAPI handler: a request that does not fit a route's parameters is a 400."""
    assert isinstance(exc, RequestValidationError)
    return error_response(400, "invalid_request", reasons_of(exc.errors()))


def reasons_of(errors: Iterable[Any]) -> list[str]:
    """Pydantic errors as ``field: message`` lines."""
    out = []
    for err in errors:
        where = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "body"
        out.append(f"{where}: {err.get('msg', 'invalid')}")
    return out


#: the rest of a refused body is not read: the connection cannot be reused
_CLOSE = {"Connection": "close"}


async def read_json(request: Request) -> dict[str, Any]:
    """The body as a JSON object: size-limited, depth-limited, never a parser exception."""
    ctype = request.headers.get("content-type", "application/json")
    if "json" not in ctype:
        raise ApiError(415, "unsupported_media_type", ["send application/json"])
    declared = request.headers.get("content-length")
    too_large = ApiError(413, "body_too_large", [f"at most {MAX_BODY} bytes"], _CLOSE)
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            raise too_large
        chunks.append(chunk)
    decoded = wire.decode_object(b"".join(chunks), max_bytes=MAX_BODY, max_depth=MAX_DEPTH)
    if isinstance(decoded, wire.Rejected):
        raise ApiError(400, "invalid_json", [decoded.reason])
    return decoded


_M = TypeVar("_M", bound=BaseModel)


def parse_body(kind: type[_M], data: dict[str, Any]) -> _M:
    """``data`` validated by the body model ``kind``; a 400 with every reason if it does not fit."""
    try:
        return kind.model_validate(data)
    except PydanticError as exc:
        raise ApiError(400, "invalid_request", reasons_of(exc.errors())) from exc
