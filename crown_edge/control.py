"""The local control socket: how technician commands reach the running daemon.

Protocol: one JSON object per line over a Unix stream socket (mode 0660, owner and group only).
Request ``{"cmd": "jobs.show", "args": {...}}``; reply ``{"ok": true, "result": ...}`` or
``{"ok": false, "error": {"error": "UnknownJob", "message": "unknown job: J-1", ...}}``.
The CLI never edits the daemon's database behind its back.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from crown_edge.errors import ControlError, CrownEdgeError

log = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any]], Awaitable[Any]]
MAX_REQUEST = 1 << 20


class ControlServer:
    """Serves registered command handlers on a Unix socket."""

    def __init__(self, path: Path, handlers: dict[str, Handler], mode: int = 0o660) -> None:
        self.path = path
        self.handlers = handlers
        self.mode = mode
        self._server: asyncio.AbstractServer | None = None

    async def __aenter__(self) -> Self:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists():
            if await _alive(self.path):
                raise ControlError(
                    f"another daemon is already listening on {self.path}", path=str(self.path)
                )
            self.path.unlink()
        old = os.umask(0o117)
        try:
            self._server = await asyncio.start_unix_server(
                self._serve, path=str(self.path), limit=MAX_REQUEST
            )
        finally:
            os.umask(old)
        os.chmod(self.path, self.mode)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 5.0)
            self._server = None
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    line = await reader.readline()
                except (ValueError, asyncio.LimitOverrunError):
                    await _send(writer, _error("ControlError", "request too large"))
                    break
                if not line:
                    break
                await _send(writer, await self._dispatch(line))
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _dispatch(self, line: bytes) -> dict[str, Any]:
        try:
            request = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError):
            return _error("ControlError", "request is not JSON")
        if not isinstance(request, dict) or not isinstance(request.get("cmd"), str):
            return _error("ControlError", "request needs a string 'cmd'")
        handler = self.handlers.get(request["cmd"])
        if handler is None:
            return _error("ControlError", f"unknown command {request['cmd']!r}")
        args = request.get("args") or {}
        if not isinstance(args, dict):
            return _error("ControlError", "'args' must be an object")
        try:
            return {"ok": True, "result": await handler(args)}
        except CrownEdgeError as exc:
            return {"ok": False, "error": exc.to_dict()}
        except (KeyError, TypeError, ValueError) as exc:
            return _error("ControlError", f"bad arguments: {exc}")
        except Exception as exc:  # a handler bug must not kill the daemon's socket
            log.exception("control command %s failed", request["cmd"])
            return _error("InternalError", f"{type(exc).__name__}: {exc}")


def _error(kind: str, message: str) -> dict[str, Any]:
    return {"ok": False, "error": {"error": kind, "message": message}}


async def _send(writer: asyncio.StreamWriter, reply: dict[str, Any]) -> None:
    writer.write(json.dumps(reply, default=str).encode() + b"\n")
    await writer.drain()


async def _alive(path: Path) -> bool:
    try:
        _, writer = await asyncio.wait_for(asyncio.open_unix_connection(str(path)), 1.0)
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(Exception):
        await writer.wait_closed()
    return True


async def call(
    path: Path, cmd: str, args: dict[str, Any] | None = None, timeout: float = 30.0
) -> Any:
    """Send one command to the daemon and return its result; errors become ControlError."""
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_unix_connection(str(path), limit=64 << 20), timeout
        )
    except (FileNotFoundError, ConnectionRefusedError):
        raise ControlError(
            f"the daemon is not running (no control socket at {path})", path=str(path)
        ) from None
    except PermissionError:
        raise ControlError(f"permission denied on {path}", path=str(path)) from None
    except (OSError, TimeoutError) as exc:
        raise ControlError(f"cannot reach the daemon at {path}: {exc}", path=str(path)) from exc
    try:
        writer.write(json.dumps({"cmd": cmd, "args": args or {}}).encode() + b"\n")
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), timeout)
    except (OSError, TimeoutError) as exc:
        raise ControlError(f"the daemon did not answer {cmd!r}: {exc}", path=str(path)) from exc
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()
    if not line:
        raise ControlError(f"the daemon closed the connection during {cmd!r}", path=str(path))
    reply = json.loads(line)
    if not reply.get("ok"):
        err = dict(reply.get("error") or {})
        message = str(err.pop("message", "unknown error"))
        raise ControlError(message, remote_error=err.pop("error", "Error"), **err)
    return reply.get("result")
