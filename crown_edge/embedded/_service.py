"""The common face of the embedded launchers: blocking ``start``/``stop`` in each launcher,
sync and async context managers and ``astart``/``astop`` here."""

from __future__ import annotations

import asyncio
import tempfile
from types import TracebackType
from typing import Self


class LocalService:
    """Base of MqttBroker, TemporalDevServer and MotoServer."""

    _tmp: tempfile.TemporaryDirectory[str] | None = None

    def start(self) -> None:
        """Start serving; returns once ready (subclasses)."""
        raise NotImplementedError

    def stop(self) -> None:
        """Stop serving; idempotent (subclasses)."""
        raise NotImplementedError

    def close(self) -> None:
        """Stop and remove the temporary files."""
        self.stop()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    async def astart(self) -> None:
        """:meth:`start` without blocking the event loop."""
        await asyncio.to_thread(self.start)

    async def astop(self) -> None:
        """:meth:`stop` without blocking the event loop."""
        await asyncio.to_thread(self.stop)

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    async def __aenter__(self) -> Self:
        try:
            await asyncio.to_thread(self.start)
        except BaseException:
            await asyncio.shield(asyncio.to_thread(self.close))
            raise
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        await asyncio.shield(asyncio.to_thread(self.close))
