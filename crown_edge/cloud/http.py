"""A small HTTP/1.1 server for the Order API: a pure request-head parser plus an asyncio shell.

Only what the API needs: ``Content-Length`` bodies (no chunked uploads), keep-alive, size limits
on head and body, an idle timeout, and an escape hatch for WebSocket upgrades (the handler gets
the raw streams). Handlers are ``async (Request) -> Response``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qs, unquote, urlsplit

log = logging.getLogger(__name__)

MAX_HEAD = 16 * 1024
MAX_BODY = 256 * 1024
IDLE_TIMEOUT = 30.0


class BadRequest(Exception):
    """The bytes are not an acceptable HTTP request; ``status`` says which error to answer."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(slots=True)
class Request:
    """A parsed request. Header names are lower-case."""

    method: str
    target: str
    path: str
    query: dict[str, list[str]]
    version: str
    headers: dict[str, str]
    body: bytes = b""
    reader: asyncio.StreamReader | None = None
    writer: asyncio.StreamWriter | None = None

    @property
    def keep_alive(self) -> bool:
        """Whether the connection stays open after the response."""
        conn = self.headers.get("connection", "").lower()
        if self.version == "HTTP/1.0":
            return conn == "keep-alive"
        return conn != "close"

    def json(self) -> Any:
        """The body as JSON (raises ``ValueError``)."""
        return json.loads(self.body)


@dataclass(slots=True)
class Response:
    """A response to serialise; ``upgraded`` means the handler took over the connection."""

    status: int = 200
    body: bytes = b""
    content_type: str = "text/plain; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)
    upgraded: bool = False

    @classmethod
    def json(cls, data: Any, status: int = 200, **headers: str) -> Response:
        """A JSON response."""
        body = json.dumps(data, sort_keys=True).encode()
        return cls(status, body, "application/json", dict(headers))

    @classmethod
    def text(cls, text: str, status: int = 200) -> Response:
        """A plain-text response."""
        return cls(status, text.encode())

    def encode(self, keep_alive: bool, head_only: bool = False) -> bytes:
        """Status line, headers and (unless ``head_only``, for HEAD) body as bytes."""
        try:
            reason = HTTPStatus(self.status).phrase
        except ValueError:
            reason = ""
        lines = [f"HTTP/1.1 {self.status} {reason}"]
        headers = {
            "Content-Type": self.content_type,
            "Content-Length": str(len(self.body)),
            "Connection": "keep-alive" if keep_alive else "close",
            "X-Content-Type-Options": "nosniff",
            **self.headers,
        }
        lines += [f"{k}: {v}" for k, v in headers.items()]
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        return head if head_only else head + self.body


def parse_head(head: bytes) -> Request:
    """Parse a request line and headers (everything before the blank line). Pure."""
    try:
        text = head.decode("latin-1")
    except UnicodeDecodeError as exc:  # pragma: no cover - latin-1 decodes every byte
        raise BadRequest("undecodable head") from exc
    lines = text.split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise BadRequest("malformed request line")
    method, target, version = parts
    if not method.isalpha() or not method.isupper():
        raise BadRequest("malformed method")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise BadRequest("malformed header line")
        key = name.lower()
        headers[key] = f"{headers[key]}, {value.strip()}" if key in headers else value.strip()
    if "transfer-encoding" in headers:
        raise BadRequest("chunked request bodies are not supported", 501)
    if not target.startswith("/"):
        raise BadRequest("only origin-form request targets are served")
    try:
        split = urlsplit(target)
    except ValueError as exc:
        raise BadRequest(f"malformed request target: {exc}") from exc
    return Request(
        method=method,
        target=target,
        path=unquote(split.path),
        query=parse_qs(split.query),
        version=version,
        headers=headers,
    )


def content_length(request: Request, limit: int = MAX_BODY) -> int:
    """The declared body length, validated against ``limit``."""
    raw = request.headers.get("content-length", "0")
    if not raw.isdigit():
        raise BadRequest("bad Content-Length")
    length = int(raw)
    if length > limit:
        raise BadRequest("request body too large", 413)
    return length


Handler = Callable[[Request], Awaitable[Response]]


class HttpServer:
    """Serves ``handler`` on ``host:port`` (port 0: ephemeral). An async context manager."""

    def __init__(
        self,
        handler: Handler,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        max_connections: int = 1024,
    ) -> None:
        self.handler = handler
        self.host = host
        self.port = port
        self.max_connections = max_connections
        self._server: asyncio.Server | None = None
        self._conns: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        """``http://host:port``."""
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        """Listen; ``port`` is set to the bound port."""
        self._server = await asyncio.start_server(self._on_connect, self.host, self.port)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        """Stop listening and end every open connection (WebSocket streams included)."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for task in list(self._conns):
            task.cancel()
        await asyncio.gather(*self._conns, return_exceptions=True)
        if server is not None:
            await server.wait_closed()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._conns.add(task)
        try:
            if len(self._conns) > self.max_connections:
                # read the head first: closing with unread input would reset the connection
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(1.0):
                        await reader.readuntil(b"\r\n\r\n")
                busy = Response.text("too many connections", 503)
                busy.headers["Retry-After"] = "1"
                await self._send(writer, busy, False)
                return
            await self._serve(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, TimeoutError):
            pass
        except Exception:
            log.exception("http connection failed")
        finally:
            self._conns.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                async with asyncio.timeout(IDLE_TIMEOUT):
                    head = await reader.readuntil(b"\r\n\r\n")
                if len(head) > MAX_HEAD:
                    raise BadRequest("request head too large", 431)
                request = parse_head(head[:-4])
                length = content_length(request)
                async with asyncio.timeout(IDLE_TIMEOUT):
                    request.body = await reader.readexactly(length) if length else b""
            except asyncio.LimitOverrunError:
                await self._send(writer, Response.text("request head too large", 431), False)
                return
            except BadRequest as exc:
                await self._send(writer, Response.text(str(exc), exc.status), False)
                return
            except asyncio.IncompleteReadError:
                return
            request.reader, request.writer = reader, writer
            try:
                response = await self.handler(request)
            except Exception:
                log.exception("handler failed for %s %s", request.method, request.path)
                response = Response.text("internal error", 500)
            if response.upgraded:
                return
            writer.write(response.encode(request.keep_alive, head_only=request.method == "HEAD"))
            await writer.drain()
            if not request.keep_alive:
                return

    @staticmethod
    async def _send(writer: asyncio.StreamWriter, response: Response, keep_alive: bool) -> None:
        writer.write(response.encode(keep_alive))
        await writer.drain()
