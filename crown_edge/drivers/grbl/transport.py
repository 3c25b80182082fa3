"""The serial link: pyserial + pyserial-asyncio-fast behind a small byte-pipe API.

Any pyserial URL works: ``/dev/ttyUSB0``, a pty path, ``socket://host:port``, ``loop://``.
Port errors become :class:`~crown_edge.errors.LinkLost` at this boundary.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import serial
import serial_asyncio_fast

from crown_edge.errors import LinkLost

log = logging.getLogger(__name__)

CLOSE_TIMEOUT_S = 2.0


class SerialLink:
    """An open serial port: ``write`` bytes, ``await read()`` bytes, ``await close()``."""

    def __init__(
        self, url: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.url = url
        self._reader = reader
        self._writer = writer
        self.bytes_written = 0

    @classmethod
    async def open(cls, url: str, baud: int = 115200, *, timeout: float = 5.0) -> SerialLink:
        """Open ``url`` at ``baud`` 8N1; raise LinkLost if the port cannot be opened."""
        try:
            async with asyncio.timeout(timeout):
                reader, writer = await serial_asyncio_fast.open_serial_connection(
                    url=url, baudrate=baud
                )
        except (OSError, serial.SerialException, TimeoutError, ValueError) as exc:
            raise LinkLost(f"cannot open {url}: {exc}", url=url) from exc
        return cls(url, reader, writer)

    @property
    def closing(self) -> bool:
        """True once the port is closed or lost."""
        return self._writer.is_closing()

    async def read(self) -> bytes:
        """The next bytes from the port; raise LinkLost when the port closes or fails."""
        try:
            data = await self._reader.read(4096)
        except (OSError, serial.SerialException) as exc:
            raise LinkLost(f"port {self.url} lost: {exc}", url=self.url) from exc
        if not data:
            raise LinkLost(f"port {self.url} closed", url=self.url)
        return data

    def write(self, data: bytes) -> None:
        """Queue ``data`` for the port (never blocks); raise LinkLost if the port is gone."""
        if self._writer.is_closing():
            raise LinkLost(f"port {self.url} is closed", url=self.url)
        try:
            self._writer.write(data)
        except (OSError, serial.SerialException, RuntimeError) as exc:
            raise LinkLost(f"write to {self.url} failed: {exc}", url=self.url) from exc
        self.bytes_written += len(data)

    async def close(self) -> None:
        """Close the port and wait (bounded) until it is released."""
        transport = self._writer.transport
        if not transport.is_closing():
            transport.abort()  # drop unsent bytes: a closing driver has nothing left to say
        with contextlib.suppress(Exception):
            async with asyncio.timeout(CLOSE_TIMEOUT_S):
                await self._writer.wait_closed()
