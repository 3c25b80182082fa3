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
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import sys
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from crown_edge.catalog import Catalog, load_catalog
from crown_edge.cloud.auth import Credentials
from crown_edge.cloud.mail import MailSettings
from crown_edge.config import (
    DeviceConfig,
    EdgeConfig,
    MachineConfig,
    TemporalConfig,
    mqtt_toml,
)
from crown_edge.daemon.app import EdgeDaemon
from crown_edge.embedded.pki import write_private
from crown_edge.models import IntakeMessage

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


class FullStack:
    """Every role of the flow on loopback ports, as one async context manager."""

    def __init__(self, settings: StackSettings, catalog: Catalog | None = None) -> None:
        self.settings = settings
        self.catalog = catalog or load_catalog()
        self._stack = AsyncExitStack()
        self.services: Any = None
        self.client: Any = None
        self.cloud: Any = None
        self.modbus: Any = None
        self.mail_sink: Any = None
        self.daemon: EdgeDaemon | None = None
        self.config: EdgeConfig | None = None
        self.credentials: Credentials | None = None
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
        from crown_edge.cloud.mail_sink import MailSink
        from crown_edge.cloud.service import CloudServices, CloudSettings
        from crown_edge.cloud.starter import start_job, workflow_worker
        from crown_edge.embedded.stack import EmbeddedServices
        from crown_edge.sim.modbus import ModbusSimulator
        from crown_edge.store.files import private_dir

        s = self.settings
        private_dir(s.workdir)  # keys, logins, the database: the user's own (0700)
        log.info("starting Temporal dev server, MQTT broker and SQS endpoint")
        self.services = await self._stack.enter_async_context(
            EmbeddedServices(
                temporal_db=s.workdir / "temporal.db",
                mqtt_state_dir=s.workdir / "mqtt",
                shops=(s.shop_id,),
            )
        )
        broker = self.services.broker
        cloud_login = await asyncio.to_thread(broker.cloud)
        target = self.services.temporal.target
        self.client = await Client.connect(target)
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
            self.modbus = await self._stack.enter_async_context(ModbusSimulator("rotary-io"))
            devices = (DeviceConfig(id="rotary-1", profile="rotary-io", url=self.modbus.url),)
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
        self.config = EdgeConfig(
            shop_id=s.shop_id,
            store_path=s.workdir / "edge.db",
            control_socket=s.workdir / "control.sock",
            qa_mode=s.qa_mode,
            machines=tuple(machines),
            devices=devices,
            temporal=TemporalConfig(enabled=True, target=target),
            mqtt=broker.workshop_config(s.shop_id),
        )
        log.info("starting the workshop daemon with %s simulated lasers", len(machines))
        if s.edge_process:
            path = s.workdir / "edge.toml"
            write_private(path, edge_config_toml(self.config).encode())
            await self._stack.enter_async_context(_edge_process(path, self.config))
        else:
            self.daemon = EdgeDaemon(self.config, catalog=self.catalog)
            await self._stack.enter_async_context(_running(self.daemon))

        async def start(msg: IntakeMessage) -> None:
            await start_job(self.client, msg, default_shop_id=s.shop_id)

        self.credentials = _credentials(s)
        mail = s.mail
        if mail is None:
            self.mail_sink = await self._stack.enter_async_context(MailSink(s.workdir / "mail"))
            mail = sink_mail_settings(s.workdir, self.mail_sink.host, self.mail_sink.port)
        settings = CloudSettings(
            designs_dir=s.workdir / "designs",
            credentials=self.credentials,
            shops=frozenset({s.shop_id}),
            http_port=s.http_port,
            mqtt_host=broker.host,
            mqtt_port=broker.port,
            mqtt_username=cloud_login.username,
            mqtt_password=cloud_login.password,
            mqtt_tls=cloud_login.tls,
            sqs_endpoint_url=self.services.moto.endpoint_url,
            mail=mail,
        )
        log.info("starting the cloud side: Order API, dispatcher, bridge, workflow worker")
        self.cloud = await self._stack.enter_async_context(
            CloudServices(settings, start, temporal=self.client)
        )
        activities = CloudActivities(settings.designs_dir, self.catalog, self.cloud.cloud_sink)
        worker = workflow_worker(self.client, activities)
        await self._stack.enter_async_context(worker)
        if s.drain_events:
            drain = asyncio.create_task(_drain_events(self.cloud.orders), name="events-drain")
            self._stack.push_async_callback(_cancelled, drain)

    # --- helpers for the demo, the HIL rig and the benchmark -----------------------------------

    async def post_order(self, order: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """POST an order to the Order API over HTTP; returns (status, JSON body)."""
        loop = asyncio.get_running_loop()
        url = f"{self.api_url}/orders"
        return await loop.run_in_executor(self._http, _http_json, "POST", url, order, self.api_key)

    async def get_order(self, job_id: str) -> tuple[int, dict[str, Any]]:
        """GET an order's view (with the API key)."""
        loop = asyncio.get_running_loop()
        url = f"{self.api_url}/orders/{job_id}"
        return await loop.run_in_executor(self._http, _http_json, "GET", url, None, self.api_key)

    async def customer_action(
        self, job_id: str, action: str, body: dict[str, Any]
    ) -> tuple[int, dict[str, Any]]:
        """POST a customer action (``approval``, ``alternative``, ``rating``) as the page does."""
        assert self.credentials is not None
        loop = asyncio.get_running_loop()
        token = self.credentials.token(job_id)
        url = f"{self.api_url}/orders/{job_id}/{action}?token={token}"
        return await loop.run_in_executor(self._http, _http_json, "POST", url, body)

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


async def _drain_events(orders: Any) -> None:
    """Receive and delete the job-events queue's messages until cancelled (a stand-in for the
    downstream consumer; see :attr:`StackSettings.drain_events`)."""
    from crown_edge.sync import queues

    url = orders.url(queues.EVENTS_QUEUE)
    while True:
        try:
            got = await orders.receive(queues.EVENTS_QUEUE, 10, 1)
            if got:  # one request for the lot: the drain must not cost more than the relays
                entries = [
                    {"Id": str(i), "ReceiptHandle": m.receipt_handle} for i, m in enumerate(got)
                ]
                await asyncio.to_thread(
                    orders.client.delete_message_batch, QueueUrl=url, Entries=entries
                )
        except Exception as exc:  # the emulator restarting: try again shortly
            log.warning("events drain: %s", exc)
            await asyncio.sleep(1.0)


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


@contextlib.asynccontextmanager
async def _edge_process(path: Path, config: EdgeConfig) -> Any:
    from crown_edge.control import call
    from crown_edge.embedded._proc import spawn, terminate

    proc = await asyncio.to_thread(
        spawn,
        [sys.executable, "-m", "crown_edge", "run", "--config", str(path)],
        path.with_suffix(".log"),
    )
    try:
        async with asyncio.timeout(60):
            while True:
                try:
                    status = await call(config.control_socket, "status", timeout=2.0)
                    if status["links"].get("temporal"):
                        break
                except Exception as exc:
                    if proc.poll() is not None:
                        raise RuntimeError(
                            f"the edge daemon exited; see {path.with_suffix('.log')}"
                        ) from exc
                await asyncio.sleep(0.2)
        yield proc
    finally:
        await asyncio.to_thread(terminate, proc, 30.0)


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


def _http_json(
    method: str, url: str, body: Any, key: str | None = None
) -> tuple[int, dict[str, Any]]:
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
