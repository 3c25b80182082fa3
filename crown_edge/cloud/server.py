"""Serve an ASGI app with uvicorn inside the caller's event loop, as an async context manager.

uvicorn does the HTTP/1.1 (h11) and WebSocket (websockets, sans-I/O) protocol work; this module
only fixes the door's limits and lets the process owner (``crown-edge up``, ``cloud``, a test)
keep its own signal handling:

- request head at most ``MAX_HEAD`` bytes (h11 refuses a longer one still arriving with 400;
  the app answers 431 to one that arrived whole), malformed heads and ``Content-Length`` values
  are answered 400 by h11;
- ``IDLE_TIMEOUT`` seconds of keep-alive idleness; at most ``max_connections`` at once (503 past
  that); WebSocket messages from clients at most ``MAX_WS_MESSAGE`` bytes, pings every
  ``ws_ping_interval`` seconds so a vanished client is noticed;
- no access log (customer links carry their token in the query string) and no ``Server`` header.

``reuse_port`` lets several processes of the same user listen on one port (``SO_REUSEPORT``):
the kernel spreads new connections over them, so cloud replicas on one host share the Order
API's port without a load balancer, and a replica that dies only drops the connections it held.

The body limit is the app's (see :mod:`crown_edge.cloud.errors`): h11 has none.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Generator
from types import TracebackType
from typing import Any, Self

import uvicorn

log = logging.getLogger(__name__)

MAX_HEAD = 16 * 1024
IDLE_TIMEOUT = 30.0
MAX_WS_MESSAGE = 64 * 1024


class _Server(uvicorn.Server):
    """A uvicorn server that leaves SIGINT/SIGTERM to the process owner."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


class AsgiServer:
    """``app`` served on ``host:port`` (port 0: an ephemeral one); ``url`` once started."""

    def __init__(
        self,
        app: Any,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        max_connections: int = 1024,
        ws_ping_interval: float = 20.0,
        reuse_port: bool = False,
    ) -> None:
        self.host = host
        self.port = port
        self.reuse_port = reuse_port
        self.config = uvicorn.Config(
            app,
            host=host,
            port=port,
            http="h11",
            ws="websockets-sansio",
            lifespan="off",
            log_config=None,
            access_log=False,
            server_header=False,
            date_header=True,
            proxy_headers=False,
            timeout_keep_alive=int(IDLE_TIMEOUT),
            timeout_graceful_shutdown=5,
            h11_max_incomplete_event_size=MAX_HEAD,
            # uvicorn counts the connection being answered too
            limit_concurrency=max_connections + 1,
            ws_max_size=MAX_WS_MESSAGE,
            ws_ping_interval=ws_ping_interval,
            ws_ping_timeout=ws_ping_interval,
        )
        self._server = _Server(self.config)
        self._task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        """``http://host:port``."""
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        """Bind, then serve in a task of this loop; ``port`` is the bound port."""
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        # IPPROTO_TCP, not 0: asyncio turns Nagle's algorithm off only on sockets that say
        # they are TCP; without it a keep-alive answer waits ≈ 40 ms for its body (delayed ACK)
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if self.reuse_port:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind((self.host, self.port))
        except OSError:
            sock.close()
            raise
        self.port = int(sock.getsockname()[1])
        self._task = asyncio.create_task(self._server.serve([sock]), name=f"http:{self.port}")
        while not self._server.started:
            if self._task.done():
                sock.close()
                self._task.result()
                raise RuntimeError(f"the HTTP server on {self.url} stopped during start-up")
            await asyncio.sleep(0.01)

    async def close(self) -> None:
        """Stop listening, let open requests finish (briefly), then end every connection."""
        task, self._task = self._task, None
        if task is None:
            return
        self._server.should_exit = True
        try:
            await task
        except asyncio.CancelledError:
            if (current := asyncio.current_task()) is not None and current.cancelling():
                raise

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()
