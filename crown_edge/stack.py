"""The whole flow on one machine: what ``crown-edge up`` runs, and what the HIL rig and the
pipeline benchmark drive.

Started in order (and stopped in reverse, nothing left behind):

1. embedded services: Temporal dev server (state in ``workdir/temporal.db``), mosquitto locked
   down (TLS, passwords, per-workshop ACLs; CA and identities in ``workdir/mqtt``), an SQS
   endpoint (moto) with the four FIFO queues;
2. a Modbus device simulator (rotary chuck, door, e-stop, air, exhaust) for the rotary laser;
3. the workshop daemon (:class:`~crown_edge.daemon.app.EdgeDaemon`) with N simulated GRBL lasers
   on pseudo-terminals, its MQTT link and its Temporal activity worker;
4. a local mail sink (``workdir/mail``, one ``.eml`` file per message): customer notifications
   go there, nothing leaves the machine;
5. the cloud side: Order API + SQS dispatcher + MQTT bridge + customer notifier
   (:class:`~crown_edge.cloud.service.CloudServices`) and the workflow worker on ``crown-orders``.

A fleet (``StackSettings(shops=N)``, N > 1; ``crown-edge up --shops N``): workshops ``shop-1`` …
``shop-N``, each one a :class:`Workshop` with its own state directory ``workdir/shops/<id>/``
(edge.db, control socket, edge.toml, edge.log), its own simulated lasers and rotary simulator, its
own broker identity and task queue ``crown-edge-<id>``, and its daemon as its own
``crown-edge run`` process (:class:`EdgeProcess`, which a test may stop and start again). One
cloud serves them all; an order names its workshop with ``shop_id`` (none: the first).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import sys
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from crown_edge.catalog import Catalog, load_catalog
from crown_edge.cloud.auth import Credentials
from crown_edge.cloud.mail import MailSettings
from crown_edge.config import (
    DeviceConfig,
    EdgeConfig,
    MachineConfig,
    MqttConfig,
    TemporalConfig,
    mqtt_toml,
)
from crown_edge.daemon.app import EdgeDaemon
from crown_edge.embedded.pki import write_private
from crown_edge.models import IntakeMessage

if TYPE_CHECKING:
    from crown_edge.cloud.process import CloudProcess

log = logging.getLogger(__name__)

FLAT_MATERIALS = ("anodised-aluminium", "brass", "acrylic", "wood")


@dataclass(frozen=True, slots=True)
class StackSettings:
    """What ``up`` starts."""

    workdir: Path
    shop_id: str = "demo"
    lasers: int = 3
    rotary: bool = True
    time_scale: float = 0.02
    qa_mode: str = "auto"
    http_port: int = 0
    machine_speed_factor: float = 1.0
    extra_machines: tuple[MachineConfig, ...] = field(default=())
    #: Modbus devices beyond the simulated rotary chuck (e.g. a hardware target's I/O modules)
    extra_devices: tuple[DeviceConfig, ...] = field(default=())
    #: run the workshop daemon as its own ``crown-edge run`` process (as on a real workshop PC)
    edge_process: bool = False
    #: the Order API key; None: ``$CROWN_API_KEY``, else ``workdir/api-key`` (made on first use)
    api_key: str | None = field(default=None, repr=False)
    #: where customer notifications go; None: the local mail sink (``workdir/mail``)
    mail: MailSettings | None = None
    #: take the status events off ``crown-trophy-job-events.fifo`` as a downstream consumer
    #: would (the benchmark): the SQS emulator's sends slow down with every message a queue
    #: holds, so an undrained events queue makes every relay dearer as jobs go by
    drain_events: bool = False
    #: the workshops: 1 (today's single workshop ``shop_id``, state in ``workdir``), N > 1
    #: (``shop-1`` … ``shop-N``), or the shop ids themselves. With more than one, each
    #: workshop daemon is its own ``crown-edge run`` process with its own state directory
    #: ``workdir/shops/<id>/``, its own simulated lasers (``lasers`` each, plus its own Modbus
    #: rotary simulator with ``rotary``), broker identity and task queue ``crown-edge-<id>``.
    shops: int | tuple[str, ...] = 1
    #: cloud processes: 1 (the cloud side runs inside ``up``), N > 1: ``up`` runs replica
    #: ``c1`` and starts ``c2`` … ``cN`` as ``crown-edge cloud --instance`` processes; all share
    #: the Order API's port, the queues, the workflow task queue and the notice store
    cloud_processes: int = 1

    @property
    def shop_ids(self) -> tuple[str, ...]:
        """The workshops' ids, in order (the first is the default for an order naming none)."""
        if isinstance(self.shops, tuple):
            if not self.shops or len(set(self.shops)) != len(self.shops):
                raise ValueError(f"shops: distinct shop ids needed, got {self.shops!r}")
            return self.shops
        if self.shops < 1:
            raise ValueError(f"shops: at least 1, got {self.shops}")
        if self.shops == 1:
            return (self.shop_id,)
        return tuple(f"shop-{i}" for i in range(1, self.shops + 1))

    @property
    def fleet(self) -> bool:
        """More than one workshop (each daemon its own process, state in ``workdir/shops``)."""
        return len(self.shop_ids) > 1


def sink_mail_settings(workdir: Path, host: str, port: int) -> MailSettings:
    """Notifications to the local sink: quick retries, the notices' store in ``workdir``."""
    return MailSettings(
        backend="smtp",
        sender="Crown Trophy (demo) <orders@crown-trophy.localhost>",
        shop_name="Crown Trophy (demo)",
        store=workdir / "notifications.db",
        smtp_host=host,
        smtp_port=port,
        timeout=10.0,
        retry_initial=0.5,
        retry_max=10.0,
    )


@dataclass(slots=True)
class Workshop:
    """One workshop of the stack: its config, state directory and how its daemon runs."""

    shop_id: str
    #: its state directory: edge.db, control.sock, edge.toml and edge.log (a process's)
    directory: Path
    config: EdgeConfig
    #: its simulated rotary chuck's Modbus device (None without ``rotary``)
    modbus: Any = None
    #: the in-process daemon (single workshop without ``edge_process`` only)
    daemon: EdgeDaemon | None = None
    #: its ``crown-edge run`` process (``edge_process`` or a fleet)
    process: EdgeProcess | None = None

    @property
    def control_socket(self) -> Path:
        """The daemon's control socket (``crown-edge`` technician commands)."""
        return self.config.control_socket

    @property
    def task_queue(self) -> str:
        """The Temporal task queue its daemon serves: ``crown-edge-{shop_id}``."""
        from crown_edge.workflow.names import workshop_task_queue

        return workshop_task_queue(self.shop_id)

    async def call(self, cmd: str, **args: Any) -> Any:
        """A technician command over this workshop's control socket."""
        from crown_edge.control import call

        return await call(self.config.control_socket, cmd, args)


class EdgeProcess:
    """A workshop daemon as its own ``crown-edge run --config PATH`` process (log next to the
    config, ``edge.log``); stopped and started again at will (an outage of one workshop)."""

    def __init__(self, path: Path, config: EdgeConfig) -> None:
        self.path = path
        self.config = config
        self.log_path = path.with_suffix(".log")
        self.proc: Any = None

    @property
    def running(self) -> bool:
        """Whether the process is alive."""
        return self.proc is not None and self.proc.poll() is None

    async def start(self, timeout: float = 60.0) -> None:
        """Start the daemon; return once its Temporal worker serves (RuntimeError if it exits)."""
        from crown_edge.control import call
        from crown_edge.embedded._proc import spawn

        if self.running:
            return
        argv = [sys.executable, "-m", "crown_edge", "run", "--config", str(self.path)]
        os.close(os.open(self.log_path, os.O_CREAT | os.O_APPEND | os.O_WRONLY, 0o600))
        self.proc = await asyncio.to_thread(spawn, argv, self.log_path)
        try:
            async with asyncio.timeout(timeout):
                while True:
                    try:
                        status = await call(self.config.control_socket, "status", timeout=2.0)
                        if status["links"].get("temporal"):
                            return
                    except Exception as exc:
                        if self.proc.poll() is not None:
                            raise RuntimeError(
                                f"the edge daemon exited; see {self.log_path}"
                            ) from exc
                    await asyncio.sleep(0.2)
        except BaseException:
            await self.stop()
            raise

    async def stop(self, *, kill: bool = False, grace: float = 30.0) -> int | None:
        """Stop the daemon (SIGTERM, SIGKILL after ``grace`` s; ``kill``: SIGKILL at once, as a
        power cut); its exit code, None if it was not running."""
        from crown_edge.embedded._proc import stop_child

        proc, self.proc = self.proc, None
        return await stop_child(proc, kill=kill, grace=grace)


class FullStack:
    """Every role of the flow on loopback ports, as one async context manager."""

    def __init__(self, settings: StackSettings, catalog: Catalog | None = None) -> None:
        # absolute: the configs written for child processes (cloud replicas, workshops) name
        # files under it, and a config's relative paths are read from the config's own folder
        self.settings = dataclasses.replace(settings, workdir=settings.workdir.absolute())
        self.catalog = catalog or load_catalog()
        self._stack = AsyncExitStack()
        self.services: Any = None
        self.client: Any = None
        self.cloud: Any = None
        self.modbus: Any = None
        self.mail_sink: Any = None
        #: the in-process daemon (a single workshop without ``edge_process``), else None
        self.daemon: EdgeDaemon | None = None
        #: the first workshop's config (the only one's, without a fleet)
        self.config: EdgeConfig | None = None
        #: every workshop by shop id, in :attr:`StackSettings.shop_ids` order
        self.workshops: dict[str, Workshop] = {}
        self.credentials: Credentials | None = None
        #: cloud replicas ``c2`` … as processes (``cloud_processes`` > 1), by instance name
        self.cloud_replicas: dict[str, CloudProcess] = {}
        self._job_shops: dict[str, str] = {}
        # the HTTP client side gets its own threads: sharing the loop's default executor with
        # the Order API's own blocking calls (boto3) deadlocks under a burst of orders
        self._http = ThreadPoolExecutor(max_workers=16, thread_name_prefix="stack-http")
        self._stack.callback(self._http.shutdown, wait=False, cancel_futures=True)

    @property
    def api_url(self) -> str:
        """Base URL of the Order API."""
        return str(self.cloud.api.url).rstrip("/")

    @property
    def api_key(self) -> str:
        """The Order API key in force (the demo's own; see :attr:`StackSettings.api_key`)."""
        assert self.credentials is not None
        return self.credentials.api_keys[0]

    def customer_link(self, job_id: str) -> str:
        """The customer's page of ``job_id``, with its signed token."""
        assert self.credentials is not None
        return f"{self.api_url}/status/{job_id}?token={self.credentials.token(job_id)}"

    async def __aenter__(self) -> Self:
        try:
            await self._start()
        except BaseException:
            await self._stack.aclose()
            raise
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._stack.aclose()

    async def _start(self) -> None:
        from temporalio.client import Client

        from crown_edge.cloud.activities import CloudActivities
        from crown_edge.cloud.jobdir import JobDirectory, TemporalShopLookup
        from crown_edge.cloud.mail_sink import MailSink
        from crown_edge.cloud.service import CloudServices, CloudSettings
        from crown_edge.cloud.starter import start_job, workflow_worker
        from crown_edge.embedded.stack import EmbeddedServices
        from crown_edge.store.files import private_dir

        s = self.settings
        shop_ids = s.shop_ids
        private_dir(s.workdir)  # keys, logins, the database: the user's own (0700)
        log.info("starting Temporal dev server, MQTT broker and SQS endpoint")
        self.services = await self._stack.enter_async_context(
            EmbeddedServices(
                temporal_db=s.workdir / "temporal.db",
                mqtt_state_dir=s.workdir / "mqtt",
                shops=shop_ids,
            )
        )
        broker = self.services.broker
        cloud_login = await asyncio.to_thread(broker.cloud)
        target = self.services.temporal.target
        self.client = await Client.connect(target)
        for shop_id in shop_ids:
            shop = await self._workshop(shop_id, target)
            self.workshops[shop_id] = shop
        first = self.workshops[shop_ids[0]]
        self.config, self.modbus = first.config, first.modbus
        processes = s.edge_process or s.fleet
        machines = len(first.config.machines)
        if not processes:
            log.info("starting the workshop daemon with %s simulated lasers", machines)
            self.daemon = first.daemon = EdgeDaemon(first.config, catalog=self.catalog)
            await self._stack.enter_async_context(_running(self.daemon))
        else:
            log.info(
                "starting %s workshop daemon process(es) with %s simulated lasers each",
                len(shop_ids),
                machines,
            )
            for shop in self.workshops.values():
                path = shop.directory / "edge.toml"
                write_private(path, edge_config_toml(shop.config).encode())
                shop.process = EdgeProcess(path, shop.config)
                self._stack.push_async_callback(shop.process.stop)
            # in parallel: each waits for its Temporal worker, the slow part of a start
            await asyncio.gather(*(w.process.start() for w in self.workshops.values() if w.process))

        # the bridge learns each new job's workshop from its start, not from a Temporal lookup
        directory = JobDirectory(TemporalShopLookup(self.client))

        async def start(msg: IntakeMessage) -> None:
            await start_job(self.client, msg, default_shop_id=shop_ids[0], learn=directory.learn)

        self.credentials = _credentials(s)
        mail = s.mail
        if mail is None:
            self.mail_sink = await self._stack.enter_async_context(MailSink(s.workdir / "mail"))
            mail = sink_mail_settings(s.workdir, self.mail_sink.host, self.mail_sink.port)
        settings = CloudSettings(
            designs_dir=s.workdir / "designs",
            credentials=self.credentials,
            shops=frozenset(shop_ids),
            http_port=s.http_port,
            mqtt_host=broker.host,
            mqtt_port=broker.port,
            mqtt_username=cloud_login.username,
            mqtt_password=cloud_login.password,
            mqtt_tls=cloud_login.tls,
            sqs_endpoint_url=self.services.moto.endpoint_url,
            mail=mail,
            instance="c1" if s.cloud_processes > 1 else None,
        )
        log.info("starting the cloud side: Order API, dispatcher, bridge, workflow worker")
        self.cloud = await self._stack.enter_async_context(
            CloudServices(settings, start, temporal=self.client, jobs=directory)
        )
        activities = CloudActivities(settings.designs_dir, self.catalog, self.cloud.cloud_sink)
        worker = workflow_worker(self.client, activities)
        await self._stack.enter_async_context(worker)
        if s.drain_events:
            drain = asyncio.create_task(consume_events(self.cloud.orders), name="events-drain")
            self._stack.push_async_callback(_cancelled, drain)
        if s.cloud_processes > 1:
            await self._cloud_replicas(settings, target, cloud_login_config=broker.cloud_config())

    async def _cloud_replicas(
        self, settings: Any, target: str, *, cloud_login_config: MqttConfig
    ) -> None:
        """Start cloud replicas ``c2`` … as processes on the first one's port and services."""
        from crown_edge.cloud.process import (
            CloudProcess,
            ReplicaConfig,
            cloud_config_toml,
            instance_names,
        )

        s = self.settings
        assert self.credentials is not None
        key_file = s.workdir / "cloud-api-key"
        write_private(key_file, (self.credentials.api_keys[0] + "\n").encode())
        secret_file = s.workdir / "cloud-token-secret"
        write_private(secret_file, (self.credentials.token_secrets[0] + "\n").encode())
        port = self.cloud.api.server.port
        replica = ReplicaConfig(
            designs_dir=settings.designs_dir,
            intake_journal=settings.intake_journal_base,
            default_shop_id=self.shop_ids[0],
            shops=self.shop_ids,
            http_host=settings.http_host,
            http_port=port,
            temporal_target=target,
            sqs_endpoint_url=settings.sqs_endpoint_url,
            sqs_region=settings.sqs_region,
            mqtt=cloud_login_config,
            key_file=key_file,
            token_secret_file=secret_file,
            mail=settings.mail,
        )
        path = s.workdir / "cloud-replica.toml"
        write_private(path, cloud_config_toml(replica).encode())
        names = list(instance_names(s.cloud_processes))[1:]
        log.info("starting cloud replicas %s on port %s", ", ".join(names), port)
        for name in names:
            proc = CloudProcess(path, name, http_port=port)
            self.cloud_replicas[name] = proc
            self._stack.push_async_callback(proc.stop)
        await asyncio.gather(*(p.start() for p in self.cloud_replicas.values()))

    async def _workshop(self, shop_id: str, target: str) -> Workshop:
        """One workshop's config (and its Modbus rotary simulator): state in ``workdir`` for a
        single workshop (as always), in ``workdir/shops/<id>/`` (0700) in a fleet."""
        from crown_edge.sim.modbus import ModbusSimulator
        from crown_edge.store.files import private_dir

        s = self.settings
        directory = s.workdir / "shops" / shop_id if s.fleet else s.workdir
        if s.fleet:
            private_dir(s.workdir / "shops")
            private_dir(directory)
        modbus: Any = None
        devices: tuple[DeviceConfig, ...] = ()
        machines = [
            MachineConfig(
                id=f"laser-{i}",
                driver="sim",
                materials=FLAT_MATERIALS,
                sim_time_scale=s.time_scale,
                speed_factor=s.machine_speed_factor,
            )
            for i in range(1, s.lasers + 1)
        ]
        if s.rotary:
            modbus = await self._stack.enter_async_context(ModbusSimulator("rotary-io"))
            devices = (DeviceConfig(id="rotary-1", profile="rotary-io", url=modbus.url),)
            machines.append(
                MachineConfig(
                    id="rotary-laser",
                    driver="sim",
                    materials=("glass", "brass"),
                    rotary="rotary-1",
                    sim_time_scale=s.time_scale,
                )
            )
        machines.extend(s.extra_machines)
        devices += s.extra_devices
        config = EdgeConfig(
            shop_id=shop_id,
            store_path=directory / "edge.db",
            control_socket=directory / "control.sock",
            qa_mode=s.qa_mode,
            machines=tuple(machines),
            devices=devices,
            temporal=TemporalConfig(enabled=True, target=target),
            mqtt=self.services.broker.workshop_config(shop_id),
        )
        return Workshop(shop_id=shop_id, directory=directory, config=config, modbus=modbus)

    # --- helpers for the demo, the HIL rig and the benchmark -----------------------------------

    async def post_order(self, order: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """POST an order to the Order API over HTTP; returns (status, JSON body).

        An order naming no ``shop_id`` goes to the first workshop (the cloud's default)."""
        loop = asyncio.get_running_loop()
        url = f"{self.api_url}/orders"
        answer = await loop.run_in_executor(self._http, http_json, "POST", url, order, self.api_key)
        if answer[0] == 202 and isinstance(order.get("job_id"), str):
            shop = order.get("shop_id")
            self._job_shops[order["job_id"]] = shop if isinstance(shop, str) else self.shop_ids[0]
        return answer

    # --- the workshops ---------------------------------------------------------------------------

    @property
    def shop_ids(self) -> tuple[str, ...]:
        """The workshops' ids (the first takes orders that name none)."""
        return self.settings.shop_ids

    def workshop(self, shop_id: str | None = None) -> Workshop:
        """Workshop ``shop_id`` (default: the first); KeyError for a shop the stack lacks."""
        return self.workshops[shop_id or self.shop_ids[0]]

    async def shop_of(self, job_id: str) -> str | None:
        """The workshop that makes ``job_id``: as ordered here, else the workflow's input (as
        the cloud's bridge knows it); None for a job with no workflow."""
        known = self._job_shops.get(job_id)
        if known is not None:
            return known
        from crown_edge.cloud.jobdir import TemporalShopLookup

        shop = await TemporalShopLookup(self.client)(job_id)
        if shop is not None:
            self._job_shops[job_id] = shop
        return shop

    async def workshop_of(self, job_id: str) -> Workshop:
        """The :class:`Workshop` that makes ``job_id`` (LookupError if none of this stack's)."""
        shop = await self.shop_of(job_id)
        if shop is None or shop not in self.workshops:
            raise LookupError(f"{job_id}: no workshop of this stack makes it (shop {shop})")
        return self.workshops[shop]

    async def edge_job(self, job_id: str) -> dict[str, Any] | None:
        """The job's record in its own workshop's store (``jobs.show`` over that workshop's
        control socket); None while the workshop has not got it, or its daemon is down."""
        shop = await self.workshop_of(job_id)
        try:
            return dict(await shop.call("jobs.show", job_id=job_id))
        except Exception:
            return None

    async def stop_workshop(self, shop_id: str, *, kill: bool = False) -> None:
        """Stop workshop ``shop_id``'s daemon process (``kill``: SIGKILL, as a power cut)."""
        shop = self.workshop(shop_id)
        if shop.process is None:
            raise RuntimeError(f"workshop {shop_id} runs in-process; it cannot be stopped alone")
        await shop.process.stop(kill=kill)

    async def start_workshop(self, shop_id: str) -> None:
        """Start workshop ``shop_id``'s daemon process again (same config, same store)."""
        shop = self.workshop(shop_id)
        if shop.process is None:
            raise RuntimeError(f"workshop {shop_id} runs in-process; it cannot be started alone")
        await shop.process.start()

    async def get_order(self, job_id: str) -> tuple[int, dict[str, Any]]:
        """GET an order's view (with the API key)."""
        loop = asyncio.get_running_loop()
        url = f"{self.api_url}/orders/{job_id}"
        return await loop.run_in_executor(self._http, http_json, "GET", url, None, self.api_key)

    async def customer_action(
        self, job_id: str, action: str, body: dict[str, Any]
    ) -> tuple[int, dict[str, Any]]:
        """POST a customer action (``approval``, ``alternative``, ``rating``) as the page does."""
        assert self.credentials is not None
        loop = asyncio.get_running_loop()
        token = self.credentials.token(job_id)
        url = f"{self.api_url}/orders/{job_id}/{action}?token={token}"
        return await loop.run_in_executor(self._http, http_json, "POST", url, body)

    async def job_view(self, job_id: str) -> dict[str, Any] | None:
        """The workflow's ``status`` query (None before the workflow exists)."""
        from temporalio.service import RPCError

        from crown_edge.workflow import names

        handle = self.client.get_workflow_handle(names.workflow_id(job_id))
        try:
            view = await handle.query(names.STATUS_QUERY)
        except RPCError:
            return None
        return _as_dict(view)

    async def approve(self, job_id: str, approved: bool = True, comment: str = "") -> None:
        """The customer's answer to a design (the workflow's ``approve_design`` update)."""
        from crown_edge.workflow import names
        from crown_edge.workflow.data import ApprovalDecision

        handle = self.client.get_workflow_handle(names.workflow_id(job_id))
        await handle.execute_update(
            names.APPROVE_DESIGN, ApprovalDecision(approved=approved, comment=comment)
        )

    async def result(self, job_id: str, timeout: float = 600.0) -> dict[str, Any]:
        """Wait until the job has settled; its JobResult (or settled JobView) as a dict.

        Settled: the workflow closed, or its view says the job ended (``complete``,
        ``escalated``, ``cancelled``, ``failed``) or waits on the customer while ``blocked``
        (a complete job's workflow stays open for the rating, a blocked one for an alternative).
        ``attempts`` is set from the view's ``attempt`` then.
        """
        from temporalio.client import WorkflowExecutionStatus

        from crown_edge.workflow import names

        handle = self.client.get_workflow_handle(names.workflow_id(job_id))
        async with asyncio.timeout(timeout):
            while True:  # the dispatcher starts the workflow a moment after the order
                view = await self.job_view(job_id)
                if view is not None:
                    described = await handle.describe()
                    if described.status is not WorkflowExecutionStatus.RUNNING:
                        return _as_dict(await handle.result())
                    if view.get("status") in SETTLED or view.get("status") == "blocked":
                        return {**view, "attempts": view.get("attempt", 0)}
                await asyncio.sleep(0.2)


#: Job statuses after which ``FullStack.result`` stops waiting.
SETTLED = frozenset({"complete", "escalated", "cancelled", "failed"})


#: the events consumer waits this long after a receive that did not fill a batch
EVENTS_LINGER_S = 0.1


async def consume_events(orders: Any, linger_s: float = EVENTS_LINGER_S) -> None:
    """Take the job-events queue's messages off as a downstream consumer would, until cancelled
    (see :attr:`StackSettings.drain_events`; the benchmarks' consumer).

    Up to ten per receive, deleted in one request; after a receive that did not fill a batch it
    waits ``linger_s`` so the next one finds several (the events trickle in one by one, and the
    SQS emulator serves a request at a time). The queue stays short: the emulator's requests
    get dearer with every message a queue holds.
    """
    from crown_edge.sync import queues

    while True:
        try:
            got = await orders.receive(queues.EVENTS_QUEUE, 10, 1)
            if got:
                await orders.delete_batch(got)
        except Exception as exc:  # the emulator restarting: try again shortly
            log.warning("events consumer: %s", exc)
            await asyncio.sleep(1.0)
            continue
        if len(got) < 10:
            await asyncio.sleep(linger_s)


async def _cancelled(task: asyncio.Task[None]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


def _as_dict(value: Any) -> dict[str, Any]:
    """A workflow result or query answer as a dict (untyped handles already give dicts)."""
    return value if isinstance(value, dict) else dataclasses.asdict(value)


@contextlib.asynccontextmanager
async def _running(daemon: EdgeDaemon) -> Any:
    # the process owner (``up``, a test) handles signals and stops the whole stack
    task = asyncio.create_task(daemon.run(install_signals=False), name="edge-daemon")
    ready = asyncio.create_task(daemon.ready.wait())
    done, _ = await asyncio.wait({task, ready}, return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        ready.cancel()
        task.result()  # raises what stopped the daemon
        raise RuntimeError("the daemon stopped during start-up")
    try:
        yield daemon
    finally:
        daemon.stop_event.set()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, 30)


def edge_config_toml(cfg: EdgeConfig) -> str:
    """The edge config as a TOML file ``crown-edge run --config`` reads back."""

    def q(value: object) -> str:
        return json.dumps(value)

    out = [
        f"[edge]\nshop_id = {q(cfg.shop_id)}",
        f"[store]\npath = {q(str(cfg.store_path))}",
        f"[control]\nsocket = {q(str(cfg.control_socket))}",
        f"[qa]\nmode = {q(cfg.qa_mode)}",
        f"[temporal]\nenabled = {q(cfg.temporal.enabled)}\ntarget = {q(cfg.temporal.target)}",
        mqtt_toml(cfg.mqtt),
    ]
    for d in cfg.devices:
        out.append(f"[[devices]]\nid = {q(d.id)}\nprofile = {q(d.profile)}\nurl = {q(d.url)}")
    for m in cfg.machines:
        lines = [
            "[[machines]]",
            f"id = {q(m.id)}",
            f"driver = {q(m.driver)}",
            f"baud = {m.baud}",
            f"bed_width_mm = {m.bed_width_mm}",
            f"bed_height_mm = {m.bed_height_mm}",
            f"materials = {q(list(m.materials))}",
            f"rotary_axis = {q(m.rotary_axis)}",
            f"speed_factor = {m.speed_factor}",
            f"sim_time_scale = {m.sim_time_scale}",
            f"stall_timeout_s = {m.stall_timeout_s}",
            f"rotary_per_rotation = {m.rotary_per_rotation}",
            f"laser = {q(m.laser)}",
        ]
        if m.port:
            lines.append(f"port = {q(m.port)}")
        if m.rotary:
            lines.append(f"rotary = {q(m.rotary)}")
        out.append("\n".join(lines))
    return "\n\n".join(out) + "\n"


def _credentials(s: StackSettings) -> Credentials:
    """The demo's key (settings, ``$CROWN_API_KEY`` or ``workdir/api-key``) and token secret
    (``workdir/token-secret``); both files mode 0600, so links survive a restart of ``up``."""
    from crown_edge.cloud import keys

    from_env = keys.api_keys((), keys.environ())
    key = s.api_key or (from_env[0] if from_env else keys.local_secret(s.workdir / "api-key"))
    secret = keys.local_secret(s.workdir / "token-secret")
    return Credentials(api_keys=(key,), token_secrets=(secret,))


def http_json(
    method: str, url: str, body: Any, key: str | None = None
) -> tuple[int, dict[str, Any]]:
    """``method`` ``url`` with a JSON body (None: none) and the API key; (status, JSON answer).

    Blocking (urllib): call it from a thread. An HTTP error status is returned, not raised.
    """
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json"}
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, json.loads(exc.read() or b"{}")
