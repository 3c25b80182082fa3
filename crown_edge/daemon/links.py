"""The daemon's links to the cloud: the MQTT link (outbox, commands) and the Temporal worker.

Both are optional and both tolerate being offline: the daemon starts and runs jobs whether or
not the broker or the Temporal server answers; the MQTT link drains the outbox whenever it is
connected, and the Temporal worker connects (and reconnects) in the background.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any, Protocol

from temporalio.client import Client

from crown_edge.catalog import Catalog
from crown_edge.config import EdgeConfig
from crown_edge.daemon.activities import EdgeActivities, edge_worker
from crown_edge.daemon.jobs import JobOps
from crown_edge.errors import CrownEdgeError
from crown_edge.scheduler import Scheduler
from crown_edge.store import Store
from crown_edge.sync import commands
from crown_edge.sync.backoff import Backoff
from crown_edge.sync.mqtt import MqttLink
from crown_edge.sync.wire import Rejected

log = logging.getLogger(__name__)


class Daemon(Protocol):
    """What the links use of the daemon (:class:`~crown_edge.daemon.app.EdgeDaemon`)."""

    config: EdgeConfig
    catalog: Catalog
    store: Store
    scheduler: Scheduler
    jobs: JobOps
    temporal_client: Any

    def add_link(self, name: str, check: Callable[[], bool]) -> None:
        """Register a link's health check for ``status``."""
        ...


#: MQTT ``commands/{verb}`` -> schema of the command (:mod:`crown_edge.sync.commands`).
COMMANDS = commands.COMMANDS


async def start_mqtt(
    d: Daemon, handlers: Mapping[str, Callable[[dict[str, Any]], Any]], stack: AsyncExitStack
) -> None:
    """Start the MQTT link when ``[mqtt] enabled``; it drains the store's outbox and hands
    commands to the control socket's ``handlers`` (one table for both)."""
    if not d.config.mqtt.enabled:
        return

    async def on_command(verb: str, payload: dict[str, Any]) -> None:
        command = commands.parse_command(verb, payload)
        if isinstance(command, Rejected):
            log.warning("mqtt command ignored: %s", command.reason)
            return
        try:
            # the link's receive loop runs commands in turn: a cancel never waits for a machine
            await handlers[command.handler]({**command.args(), "wait": False})
        except CrownEdgeError as exc:
            log.warning("mqtt command %s %s refused: %s", verb, command.model_dump(), exc)

    # fixed client id + persistent session: commands sent while offline wait at the broker
    link = MqttLink.from_config(d.config, d.store, on_command)
    await stack.enter_async_context(link)
    d.store.on_commit.append(link.wake)
    d.add_link("mqtt", lambda: link.connected)


async def start_temporal(d: Daemon, stack: AsyncExitStack) -> None:
    """Run the workshop activity worker on ``crown-edge-{shop_id}`` when enabled."""
    if not d.config.temporal.enabled:
        return
    state = {"connected": False}
    d.add_link("temporal", lambda: state["connected"])
    await stack.enter_async_context(_temporal_worker(d, state))


@asynccontextmanager
async def _temporal_worker(d: Daemon, state: dict[str, bool]) -> AsyncIterator[None]:
    task = asyncio.create_task(_serve_temporal(d, state), name="temporal-worker")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _serve_temporal(d: Daemon, state: dict[str, bool]) -> None:
    cfg = d.config.temporal
    activities = EdgeActivities.from_config(d.config, d.store, d.scheduler, d.catalog, d.jobs)
    backoff = Backoff(initial=1.0, maximum=30.0)
    me = asyncio.current_task()
    while True:
        # the SDK may turn a cancellation into an error or a normal return of run(): a stop
        # asked for must end this loop, never start another reconnect round
        if me is not None and me.cancelling():
            raise asyncio.CancelledError
        try:
            client = await Client.connect(cfg.target, namespace=cfg.namespace)
        except Exception as exc:  # offline is normal: keep running jobs, retry later
            state["connected"] = False
            delay = backoff.next()
            log.info("temporal at %s unreachable (%s); retrying in %.0f s", cfg.target, exc, delay)
            await asyncio.sleep(delay)
            continue
        backoff.reset()
        state["connected"] = True
        d.temporal_client = client
        log.info("temporal worker on %s (%s)", d.config.task_queue, cfg.target)
        try:
            worker = edge_worker(client, activities, d.config.task_queue)
            await worker.run()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("temporal worker stopped (%s); reconnecting", exc)
            await asyncio.sleep(backoff.next())
        finally:
            state["connected"] = False
            d.temporal_client = None
