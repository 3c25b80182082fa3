"""The cloud side assembled: Order API + SQS dispatcher + bridge, one async context manager.

``crown-edge cloud`` and ``crown-edge up`` build :class:`CloudServices` from their settings and a
``start_job`` (:func:`crown_edge.cloud.starter.start_job` bound to a Temporal client); the Temporal
worker for ``crown-orders`` runs beside it, with :meth:`CloudServices.cloud_sink` as the cloud
activities' sink (the bridge's, and the customer notifier's when mail is configured).
"""

from __future__ import annotations

import contextlib
import functools
import logging
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from prometheus_client import CollectorRegistry, Gauge

from crown_edge.cloud.app import ApiSettings, OrderApi, create_app, metrics_app
from crown_edge.cloud.auth import Credentials
from crown_edge.cloud.bridge import Bridge, BridgeSettings
from crown_edge.cloud.dispatcher import Dispatcher, StartJob
from crown_edge.cloud.intake import IntakeJournal
from crown_edge.cloud.jobdir import JobDirectory, TemporalShopLookup
from crown_edge.cloud.jobs import Jobs
from crown_edge.cloud.mail import MailSettings, MailTransport, transport_for
from crown_edge.cloud.notify import Notifier
from crown_edge.cloud.server import AsgiServer
from crown_edge.embedded.sqs import DEFAULT_REGION, sqs_client
from crown_edge.sync.mqtt_auth import MqttTls
from crown_edge.sync.sqs import OrderQueue

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class CloudSettings:
    """Where the cloud side listens and what it talks to.

    ``sqs_endpoint_url`` None means AWS with the default credential chain; a loopback endpoint
    (moto) gets dummy credentials. ``mqtt_host`` None runs the bridge without MQTT; the bridge
    connects as ``mqtt_username`` over ``mqtt_tls`` (None: plain TCP). ``credentials`` are the
    Order API's keys and token secrets; ``shops`` the workshops orders may name (None: any);
    ``public_url`` the base of customer links; ``metrics_port`` not None serves ``/metrics``
    without a key on ``metrics_host:metrics_port`` (a private address). ``mail`` None (or
    backend ``off``) sends no customer notifications.

    ``instance`` names one of several cloud processes on a host (None: the only one). Each
    instance has its own bridge client id (``{bridge_client_id}-{instance}``: its own broker
    session, every workshop event), its own intake journal (``intake-{instance}.db``, adopting
    the journals of instances that are gone) and shares the Order API's port with the others
    (``SO_REUSEPORT``); see docs/scaling.md.
    """

    designs_dir: Path
    credentials: Credentials = field(repr=False)
    shops: frozenset[str] | None = None
    public_url: str | None = None
    allowed_origins: tuple[str, ...] = ()
    metrics_host: str = "127.0.0.1"
    metrics_port: int | None = None
    http_host: str = "127.0.0.1"
    http_port: int = 0
    mqtt_host: str | None = "127.0.0.1"
    mqtt_port: int = 1883
    bridge_client_id: str = "crown-bridge"
    mqtt_username: str | None = None
    mqtt_password: str | None = field(default=None, repr=False)
    mqtt_tls: MqttTls | None = None
    sqs_endpoint_url: str | None = None
    sqs_region: str = DEFAULT_REGION
    dispatcher_wait_seconds: int = 1
    dispatcher_retry_delay: int | None = 30
    #: how long an intake message the dispatcher received stays hidden from the other cloud
    #: processes' dispatchers: one that dies holding it delays the job this long (not the
    #: queue's 300 s visibility timeout); see :class:`~crown_edge.sync.sqs.OrderQueue`
    dispatcher_hold_seconds: int | None = 30
    mail: MailSettings | None = None
    #: The Order API's intake journal (accepted orders, durable before the 202, then sent on to
    #: SQS: :mod:`crown_edge.cloud.intake`); None: ``intake.db`` beside ``designs_dir``.
    intake_journal: Path | None = None
    instance: str | None = None

    @property
    def intake_journal_base(self) -> Path:
        """The journal every instance's name derives from: ``intake_journal``, or ``intake.db``
        beside the designs directory."""
        if self.intake_journal is not None:
            return self.intake_journal
        return self.designs_dir.parent / "intake.db"

    @property
    def intake_journal_path(self) -> Path:
        """Where this process's intake journal lives: ``intake_journal`` (or ``intake.db``
        beside the designs directory), with ``-{instance}`` before the suffix for an instance."""
        base = self.intake_journal_base
        if self.instance is None:
            return base
        return base.with_name(f"{base.stem}-{self.instance}{base.suffix}")

    @property
    def intake_siblings(self) -> str:
        """The glob of every instance's journal (beside this one), which this one adopts when
        their process is gone."""
        base = self.intake_journal_base
        return f"{base.stem}*{base.suffix}"

    @property
    def bridge_identity(self) -> str:
        """The bridge's MQTT client id (one persistent session per instance)."""
        if self.instance is None:
            return self.bridge_client_id
        return f"{self.bridge_client_id}-{self.instance}"


def _client_for(settings: CloudSettings) -> Any:
    url = settings.sqs_endpoint_url
    if url is None:
        import boto3.session

        return boto3.session.Session(region_name=settings.sqs_region).client("sqs")
    return sqs_client(url, settings.sqs_region)


def _stat(stats: object, name: str) -> float:
    return float(getattr(stats, name))


class CloudServices:
    """Order API, intake journal, dispatcher and bridge sharing one SQS client; stopped in
    reverse order (the API stops taking orders before the journal sends its last rows)."""

    def __init__(
        self,
        settings: CloudSettings,
        start_job: StartJob,
        *,
        client: Any | None = None,
        temporal: Any | None = None,
        mail_transport: MailTransport | None = None,
        jobs: JobDirectory | None = None,
    ) -> None:
        """``client`` is an SQS client (default: one for ``settings``); ``temporal`` a Temporal
        client the bridge uses to find the shop of a job it has not heard of (the workflow's
        input), e.g. after a cloud restart; ``mail_transport`` replaces the one ``settings.mail``
        names; ``jobs`` is the bridge's job directory (default: one looking jobs up in
        ``temporal``), given when ``start_job`` teaches it each new job's workshop
        (:func:`~crown_edge.cloud.starter.start_job`'s ``learn``)."""
        self.settings = settings
        self.start_job = start_job
        self._own_client = client is None
        self.client = client if client is not None else _client_for(settings)
        self.orders = OrderQueue(self.client, hold_seconds=settings.dispatcher_hold_seconds)
        owner = f"cloud {settings.instance or '(single)'}"
        self.intake = IntakeJournal(
            settings.intake_journal_path,
            self.orders,
            owner=owner,
            siblings=settings.intake_siblings,
        )
        bridge_settings = (
            BridgeSettings(
                settings.mqtt_host,
                settings.mqtt_port,
                settings.bridge_identity,
                username=settings.mqtt_username,
                password=settings.mqtt_password,
                tls=settings.mqtt_tls,
                instance=settings.instance,
            )
            if settings.mqtt_host is not None
            else None
        )
        if jobs is None and temporal is not None:
            jobs = JobDirectory(TemporalShopLookup(temporal))
        self.bridge = Bridge(bridge_settings, self.orders, jobs=jobs)
        self.dispatcher = Dispatcher(
            self.orders,
            start_job,
            wait_seconds=settings.dispatcher_wait_seconds,
            retry_delay=settings.dispatcher_retry_delay,
        )
        api_settings = ApiSettings(
            credentials=settings.credentials,
            designs_dir=settings.designs_dir,
            shops=settings.shops,
            public_url=settings.public_url,
            allowed_origins=settings.allowed_origins,
        )
        registry = CollectorRegistry()
        views = Jobs(self.bridge.board, temporal, shops=self.bridge.jobs)
        mail = settings.mail
        transport = mail_transport or (transport_for(mail) if mail is not None else None)
        self.notifier = (
            Notifier(
                mail,
                transport,
                designs_dir=settings.designs_dir,
                view=views.view,
                registry=registry,
                on_failed=self.orders.send_event,
                owner=owner,
            )
            if mail is not None and transport is not None
            else None
        )
        self.api: OrderApi = create_app(
            self.intake,
            self.bridge,
            api_settings,
            jobs=views,
            contacts=self.notifier,
            host=settings.http_host,
            port=settings.http_port,
            registry=registry,
        )
        # instances share the API's port; the kernel spreads connections over them
        self.api.server.reuse_port = settings.instance is not None
        self.metrics_server = (
            AsgiServer(metrics_app(self.api.registry), settings.metrics_host, settings.metrics_port)
            if settings.metrics_port is not None
            else None
        )
        self._stack = contextlib.AsyncExitStack()
        self._register_metrics()

    def _register_metrics(self) -> None:
        stats = self.dispatcher.stats
        gauge = Gauge(
            "crown_dispatcher_messages",
            "Intake messages handled by the dispatcher, by outcome",
            ["outcome"],
            registry=self.api.registry,
        )
        for outcome in ("received", "started", "duplicates", "rejected", "failed"):
            gauge.labels(outcome).set_function(functools.partial(_stat, stats, outcome))

    async def __aenter__(self) -> Self:
        try:
            await self.orders.resolve()
            if self.notifier is not None:
                await self._stack.enter_async_context(self.notifier)
            await self._stack.enter_async_context(self.bridge)
            await self._stack.enter_async_context(self.dispatcher)
            await self._stack.enter_async_context(self.intake)
            await self._stack.enter_async_context(self.api)
            if self.metrics_server is not None:
                await self._stack.enter_async_context(self.metrics_server)
        except BaseException:
            await self._close()
            raise
        log.info("cloud services up: api %s", self.api.url)
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._close()

    async def cloud_sink(self, kind: str, payload: dict[str, Any]) -> None:
        """The cloud activities' sink: the bridge (board, SQS, live pages), then the notifier,
        which only records the notice (it never waits for a mail server)."""
        await self.bridge.cloud_sink(kind, payload)
        if self.notifier is not None:
            await self.notifier.record(kind, payload)

    async def _close(self) -> None:
        try:
            await self._stack.aclose()
        finally:
            if self._own_client:
                self.client.close()
