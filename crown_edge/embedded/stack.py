"""Everything ``crown-edge up`` needs from outside, started together on loopback ports.

Temporal dev server, MQTT broker and moto start in parallel (each in a worker thread); the four
SQS queues are created once moto listens. If any of them fails, the others are stopped before the
error propagates, so nothing outlives the context.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from types import TracebackType
from typing import Self

from crown_edge.embedded.broker import INSTALL_HINT, MqttBroker, find_mosquitto
from crown_edge.embedded.sqs import MotoServer
from crown_edge.embedded.temporal import TemporalDevServer
from crown_edge.errors import SyncError

log = logging.getLogger(__name__)


class EmbeddedServices:
    """Temporal + MQTT + SQS on loopback ephemeral ports, as one async context manager.

    ``temporal_db``: keep workflow state in this SQLite file (survives restarts). Pass
    ``temporal=False`` to skip Temporal (e.g. a workshop-only demo). ``mqtt_state_dir`` keeps
    the broker's CA and identities (reused on the next start); ``shops`` are the workshops the
    broker lets in from the start (more with ``broker.workshop(shop_id)``).
    """

    def __init__(
        self,
        *,
        temporal_db: Path | None = None,
        temporal: bool = True,
        temporal_binary: Path | None = None,
        mqtt_state_dir: Path | None = None,
        shops: tuple[str, ...] = (),
    ) -> None:
        self.temporal: TemporalDevServer | None = (
            TemporalDevServer(db_filename=temporal_db, binary=temporal_binary) if temporal else None
        )
        self.broker = MqttBroker(state_dir=mqtt_state_dir, shops=shops)
        self.moto = MotoServer(process=True)
        self.queue_urls: dict[str, str] = {}

    def summary(self) -> dict[str, str]:
        """Where each service listens, for logs and ``--json`` output."""
        out = {
            "mqtt": f"{self.broker.host}:{self.broker.port}",
            "sqs": self.moto.endpoint_url,
        }
        if self.temporal is not None:
            out["temporal"] = self.temporal.target
        return out

    def _close_all(self) -> None:
        for close in (self.moto.stop, self.broker.close):
            try:
                close()
            except Exception:
                log.exception("stopping an embedded service failed")
        if self.temporal is not None:
            self.temporal.close()

    async def __aenter__(self) -> Self:
        if find_mosquitto() is None:  # before anything starts: one clear line, nothing to stop
            raise SyncError(INSTALL_HINT)
        starts = [asyncio.to_thread(self.broker.start), asyncio.to_thread(self.moto.start)]
        if self.temporal is not None:
            starts.append(asyncio.to_thread(self.temporal.start))
        try:
            results = await asyncio.gather(*starts, return_exceptions=True)
            errors = [r for r in results if isinstance(r, BaseException)]
            if errors:
                raise errors[0]
            self.queue_urls = await asyncio.to_thread(self.moto.create_queues)
        except BaseException:
            await asyncio.shield(asyncio.to_thread(self._close_all))
            raise
        log.info("embedded services up: %s", self.summary())
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        await asyncio.shield(asyncio.to_thread(self._close_all))
