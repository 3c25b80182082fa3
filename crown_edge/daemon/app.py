"""The edge daemon: components wired by one supervisor.

Start-up order (an ``AsyncExitStack`` unwinds it in reverse): store (migrations, catalogue sync,
``engraving`` -> ``interrupted``), scheduler, machines, control socket, optional MQTT link and
Temporal workshop worker, then one TaskGroup runs the machine workers and the watchdog.
SIGTERM/SIGINT set the stop event; running jobs are feed-held, stopped and recorded as
``interrupted``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AsyncExitStack
from typing import Any

from prometheus_client import start_http_server
from temporalio.client import WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from crown_edge import __version__
from crown_edge.catalog import Catalog, load_catalog
from crown_edge.config import EdgeConfig
from crown_edge.control import ControlServer
from crown_edge.daemon.binding import build_machines
from crown_edge.daemon.handlers import build_handlers
from crown_edge.daemon.jobs import JobOps
from crown_edge.daemon.links import start_mqtt, start_temporal
from crown_edge.daemon.machines import MachineWorker
from crown_edge.daemon.notify import Notifier
from crown_edge.daemon.words import decision_done, decision_refused
from crown_edge.drivers.base import MachineDriver
from crown_edge.errors import CrownEdgeError, StoreError, SyncError, UnknownMachine
from crown_edge.metrics import EdgeMetrics
from crown_edge.scheduler import Scheduler
from crown_edge.store import Store
from crown_edge.store.files import private_dir
from crown_edge.workflow import names
from crown_edge.workflow.data import ApprovalDecision, JobView

log = logging.getLogger(__name__)

MachineFactory = Callable[[EdgeConfig, AsyncExitStack], Awaitable[dict[str, MachineDriver]]]


class EdgeDaemon:
    """The workshop daemon. ``await EdgeDaemon(config).run()`` until stopped."""

    def __init__(
        self,
        config: EdgeConfig,
        *,
        catalog: Catalog | None = None,
        clock: Callable[[], float] = time.time,
        notifier: Notifier | None = None,
    ) -> None:
        self.config = config
        self.catalog = catalog or load_catalog(config.catalog_path)
        self.clock = clock
        self.notifier = notifier or Notifier()
        self.version = __version__
        self.started_at = clock()
        self.store = Store.from_path(config.store_path)
        self.scheduler = Scheduler(self.store, config.machines, self.catalog)
        self.machines: dict[str, MachineDriver] = {}
        self.workers: dict[str, MachineWorker] = {}
        #: every job change of the control socket, MQTT commands and the Temporal activities
        self.jobs = JobOps(
            self.store,
            self.scheduler,
            self.catalog,
            machines=self.machines,
            machine_configs=config.machines,
            standalone=self.mode == "standalone",
            clock=clock,
            wake=self.wake_machines,
        )
        self.metrics = EdgeMetrics(self.store, links=self.links, version=self.version)
        self.stop_event = asyncio.Event()
        self.ready = asyncio.Event()
        self._links: dict[str, Callable[[], bool]] = {}
        #: where Prometheus scrapes, once serving (``[metrics] enabled``)
        self.metrics_url: str | None = None
        #: the Temporal client while the workshop worker is connected (for approvals)
        self.temporal_client: Any = None

    @property
    def mode(self) -> str:
        """``temporal`` when the workflow drives jobs, ``standalone`` otherwise."""
        return "temporal" if self.config.temporal.enabled else "standalone"

    def links(self) -> dict[str, bool]:
        """Connectivity of the optional links (mqtt, temporal)."""
        return {name: check() for name, check in self._links.items()}

    def add_link(self, name: str, check: Callable[[], bool]) -> None:
        """Register a link's health check for ``status``."""
        self._links[name] = check

    def wake_machines(self) -> None:
        """Tell idle machine workers to look at the queue now."""
        for worker in self.workers.values():
            worker.wake.set()

    # --- what the control socket needs beyond the job service ----------------------------------

    async def order_view(self, job_id: str, timeout: float = 2.0) -> dict[str, Any] | None:
        """The order workflow's own view of a job (its ``status`` query), or None when there is
        no Temporal link, no workflow or no answer within ``timeout``.

        The workshop sees a job only from validation and engraving on; design and approval
        happen in the cloud. ``jobs show`` lays this over a job the workshop still has as
        ``validated`` so a technician sees that it waits for the customer's approval.
        """
        client = self.temporal_client
        if client is None:
            return None
        handle = client.get_workflow_handle(names.workflow_id(job_id))
        try:
            async with asyncio.timeout(timeout):
                view = await handle.query(names.STATUS_QUERY)
        except Exception as exc:  # no workflow, no server: the local view stands alone
            log.debug("job %s: no order view (%s)", job_id, exc)
            return None
        return view if isinstance(view, dict) else None

    async def decide_design(self, job_id: str, approved: bool, comment: str) -> dict[str, Any]:
        """Answer a design for the customer (``jobs approve|reject``) via the workflow.

        Every refusal is one line saying why (walk-in or text-only job, already answered, no
        Temporal); the workflow's errors are translated here, at the daemon's boundary.
        """
        job = await self.store.get_job(job_id)  # UnknownJob: "unknown job: J-1"
        requires_design = job.intake.requires_design
        verb = "approve" if approved else "reject"
        if job.message.get("origin") == "local":
            raise SyncError(f"job {job_id} is a walk-in job: it has no design to {verb}")
        client = self.temporal_client
        if client is None:
            if self.mode == "standalone":
                raise SyncError(
                    f"job {job_id}: designs are answered through the order workflow, and this "
                    "workshop runs without Temporal"
                )
            raise SyncError("Temporal is not reachable now: try again when `status` shows it up")
        handle = client.get_workflow_handle(names.workflow_id(job_id))
        try:
            view = await handle.execute_update(
                names.APPROVE_DESIGN,
                ApprovalDecision(approved, comment, "technician"),
                result_type=JobView,
            )
        except WorkflowUpdateFailedError as exc:
            cause = exc.cause
            refusal = (cause.type or "") if isinstance(cause, ApplicationError) else ""
            status: str | None = None
            with contextlib.suppress(Exception):
                status = (await handle.query(names.STATUS_QUERY, result_type=JobView)).status
            line = decision_refused(
                job_id,
                approved,
                refusal=refusal,
                detail=str(getattr(cause, "message", None) or cause or exc),
                status=status,
                requires_design=requires_design,
            )
            raise SyncError(line) from exc
        except RPCError as exc:
            if exc.status is RPCStatusCode.NOT_FOUND:
                raise SyncError(
                    f"job {job_id} has no open order workflow: nothing to {verb}"
                ) from exc
            raise SyncError(f"job {job_id}: Temporal refused the answer: {exc.message}") from exc
        except Exception as exc:
            raise SyncError(f"job {job_id}: the design could not be answered: {exc}") from exc
        status_now = str(getattr(view, "status", "") or "")
        revision = int(getattr(view, "design_revision", 0) or 0)
        return {
            "job_id": job_id,
            "approved": approved,
            "status": status_now,
            "design_revision": revision,
            "message": decision_done(job_id, approved, status_now, revision),
        }

    async def machine_action(self, machine_id: str, action: str) -> dict[str, Any]:
        """Technician actions on a machine: home, unlock, frame."""
        machine = self.machines.get(machine_id)
        if machine is None:
            raise UnknownMachine(machine_id)
        method = getattr(machine, action, None)
        if action not in ("home", "unlock", "frame") or method is None:
            raise CrownEdgeError(f"machine {machine_id} does not support {action!r}")
        await method()
        return {"machine_id": machine_id, "action": action, "done": True}

    # --- life cycle ----------------------------------------------------------------------------

    async def run(
        self, machine_factory: MachineFactory | None = None, *, install_signals: bool = True
    ) -> None:
        """Run until ``stop_event`` is set (SIGTERM/SIGINT set it when ``install_signals``)."""
        loop = asyncio.get_running_loop()
        signals = (signal.SIGTERM, signal.SIGINT) if install_signals else ()
        for sig in signals:
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self.stop_event.set)
        try:
            async with AsyncExitStack() as stack:
                await self._start(stack, machine_factory)
                self.notifier.send(f"READY=1\nSTATUS=serving {len(self.workers)} machines")
                self.ready.set()
                log.info("crown-edge %s serving shop %s", self.version, self.config.shop_id)
                async with asyncio.TaskGroup() as tg:
                    tasks = [tg.create_task(w.run_forever()) for w in self.workers.values()]
                    tasks.append(tg.create_task(self._watchdog()))
                    await self.stop_event.wait()
                    self.notifier.send("STOPPING=1")
                    log.info("stopping: interrupting running jobs")
                    for task in tasks:
                        task.cancel()
        finally:
            for sig in signals:
                with contextlib.suppress(NotImplementedError, RuntimeError):
                    loop.remove_signal_handler(sig)

    async def _start(self, stack: AsyncExitStack, machine_factory: MachineFactory | None) -> None:
        self._private_state_dir()
        await stack.enter_async_context(self.store)
        self.store.on_commit.append(self.wake_machines)  # e.g. a job queued by an activity
        now = self.clock()
        await self.store.sync_catalog(self.catalog, now)
        recovered = await self.store.recover_on_startup(now)
        for job_id in recovered:
            log.warning("job %s was engraving when the daemon stopped: now interrupted", job_id)
        await self.scheduler.start()
        if machine_factory is None:
            machine_factory = build_machines
        self.machines.update(await machine_factory(self.config, stack))
        for cfg in self.config.machines:
            self.workers[cfg.id] = MachineWorker(
                cfg,
                self.machines[cfg.id],
                self.store,
                self.scheduler,
                self.catalog,
                clock=self.clock,
                on_change=self.wake_machines,
            )
        handlers = build_handlers(self)
        await stack.enter_async_context(ControlServer(self.config.control_socket, handlers))
        await start_mqtt(self, handlers, stack)
        await start_temporal(self, stack)
        if self.config.metrics.enabled:
            stack.enter_context(self._serve_metrics())

    def _private_state_dir(self) -> None:
        """The store's directory is the service user's alone (:mod:`crown_edge.store.files`)."""
        state_dir = self.config.store_path.parent
        shared = self.config.control_socket.parent.resolve() == state_dir.resolve()
        try:
            private_dir(state_dir, group_traverse=shared)
        except OSError as exc:
            raise StoreError(
                f"cannot prepare state directory {state_dir}: {exc}", path=str(state_dir)
            ) from exc

    async def _watchdog(self) -> None:
        interval = min(self.notifier.watchdog_interval() or 5.0, 5.0)
        active: set[tuple[str, Any]] = set()
        while True:
            if await self.store.healthy():
                self.notifier.send("WATCHDOG=1")
                snapshot = await self.metrics.refresh(self.clock())
                alerts = snapshot.alerts(self.config.heartbeat_timeout_s)
                for alert in alerts:
                    key = (alert["name"], alert.get("machine_id"))
                    if key not in active:  # log when an alert starts, not every round
                        log.warning("alert %s (%s): %s", key[0], alert["action"], alert["detail"])
                active = {(a["name"], a.get("machine_id")) for a in alerts}
            else:
                log.error("store unhealthy: withholding the systemd watchdog ping")
            await asyncio.sleep(interval)

    @contextlib.contextmanager
    def _serve_metrics(self) -> Iterator[None]:
        cfg = self.config.metrics
        server, thread = start_http_server(cfg.port, cfg.host, registry=self.metrics.registry)
        self.metrics_url = f"http://{cfg.host}:{server.server_port}/metrics"
        log.info("metrics on %s", self.metrics_url)
        try:
            yield
        finally:
            server.shutdown()
            server.server_close()
            thread.join(5.0)
