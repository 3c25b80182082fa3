"""A local mail sink for ``crown-edge up`` and the tests: an SMTP server that delivers nowhere.

Every message it receives becomes one ``.eml`` file (the message exactly as sent, RFC 5322) in
its directory, named by arrival order, so the demo's notifications can be read with any mail
program or ``cat``; nothing leaves the machine. Built on ``aiosmtpd`` (the maintained asyncio
SMTP server) and served on the caller's event loop, on a loopback port.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import itertools
import os
import tempfile
from email.message import EmailMessage
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from aiosmtpd.smtp import SMTP, Envelope, Session


class EmlHandler:
    """aiosmtpd handler: each message's bytes to ``{directory}/{n:06d}.eml`` (atomically)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        existing = [int(p.stem) for p in directory.glob("*.eml") if p.stem.isdigit()]
        self._numbers = itertools.count(max(existing, default=0) + 1)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        """Store the message; answer 250."""
        content = envelope.original_content or envelope.content or b""
        data = content if isinstance(content, bytes) else content.encode()
        path = self.directory / f"{next(self._numbers):06d}.eml"
        await asyncio.to_thread(_write_atomic, path, data)
        return "250 Message accepted for delivery"


class MailSink:
    """The sink as an async context manager; ``host``/``port`` once started."""

    def __init__(
        self,
        directory: Path,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        handler: Any | None = None,
    ) -> None:
        self.directory = directory
        self.host = host
        self.port = port
        self.handler = handler
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> Self:
        self.directory.mkdir(parents=True, exist_ok=True)
        handler = self.handler if self.handler is not None else EmlHandler(self.directory)
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: SMTP(handler, hostname="crown-edge-mail-sink", loop=loop),
            self.host,
            self.port,
        )
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    def files(self) -> list[Path]:
        """The stored messages' files, in arrival order."""
        return sorted(self.directory.glob("*.eml"))

    def messages(self) -> list[EmailMessage]:
        """The stored messages, parsed, in arrival order."""
        return [read_eml(p) for p in self.files()]


def read_eml(path: Path) -> EmailMessage:
    """One ``.eml`` file as a message."""
    parsed = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def _write_atomic(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
