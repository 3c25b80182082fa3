"""``crown-edge cloud`` (Order API, dispatcher, bridge, workflow worker) and ``order create``."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import tomllib
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import typer

from crown_edge.cli.common import fail
from crown_edge.cloud.mail import MailSettings
from crown_edge.config import MQTT_KEYS, MqttConfig, known_keys, parse_mqtt
from crown_edge.daemon.notify import Notifier
from crown_edge.errors import ConfigError, CrownEdgeError
from crown_edge.sync.mqtt_auth import tls_of

#: The systemd credential holding the bridge's broker password when ``[mqtt]`` names none.
MQTT_PASSWORD_CREDENTIAL = "mqtt-password"

order_app = typer.Typer(help="Place orders through an Order API (a tool for tests and demos).")


@dataclass(frozen=True, slots=True)
class CloudConfig:
    """The cloud roles' settings (``config/cloud.example.toml`` documents them).

    ``mqtt`` is the bridge's broker link and identity (the ``[mqtt]`` table, parsed like the
    workshop's, see :func:`crown_edge.config.parse_mqtt`); None when the table names no host.
    ``api_keys`` and ``token_secrets`` are resolved as :mod:`crown_edge.cloud.keys` says (the
    environment's ``CROWN_API_KEY`` first); ``shops`` are the workshops orders may name.
    """

    default_shop_id: str
    designs_dir: Path
    http_host: str
    http_port: int
    temporal_target: str
    temporal_namespace: str
    sqs_region: str
    sqs_endpoint_url: str | None
    mqtt: MqttConfig | None
    api_keys: tuple[str, ...] = field(default=(), repr=False)
    token_secrets: tuple[str, ...] = field(default=(), repr=False)
    shops: frozenset[str] = frozenset()
    public_url: str | None = None
    allowed_origins: tuple[str, ...] = ()
    metrics_host: str = "127.0.0.1"
    metrics_port: int | None = None
    #: customer notifications (the ``[mail]`` table); None: off
    mail: MailSettings | None = None
    #: the Order API's intake journal (``[cloud] intake_journal``); None: ``intake.db`` beside
    #: ``designs_dir``
    intake_journal: Path | None = None
    #: one of several cloud processes on a host (``--instance``); None: the only one
    instance: str | None = None


def load_cloud_config(path: Path, env: Mapping[str, str] | None = None) -> CloudConfig:
    """Parse and validate; every problem is one ConfigError line.

    ``env`` (default: the process environment) supplies ``CROWN_API_KEY`` and
    ``CREDENTIALS_DIRECTORY`` (the credentials ``api-key``, ``token-secret`` and, when
    ``[mqtt]`` has no password of its own, ``mqtt-password``).
    """
    from crown_edge.cloud import keys

    env = os.environ if env is None else env
    try:
        data = tomllib.loads(path.read_text("utf-8"))
    except OSError as exc:
        raise ConfigError("(file)", str(path), f"cannot read: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("(file)", str(path), f"invalid TOML: {exc}") from exc

    def get(section: str, key: str, default: Any, kind: type) -> Any:
        table = data.get(section, {})
        value = table.get(key, default) if isinstance(table, dict) else default
        if value is None and default is None:
            return None
        if not isinstance(value, kind) or isinstance(value, bool) != (kind is bool):
            raise ConfigError(section, key, f"got {value!r}", f"a {kind.__name__}")
        return value

    port = get("http", "port", 8080, int)
    if not 0 <= port <= 65535:
        raise ConfigError("http", "port", f"got {port}", "0..65535")
    raw_mqtt = data.get("mqtt", {})
    if not isinstance(raw_mqtt, dict):
        raise ConfigError("mqtt", "", "must be a table")
    known_keys("mqtt", raw_mqtt, MQTT_KEYS)
    mqtt = parse_mqtt(raw_mqtt, path.parent) if "host" in raw_mqtt else None
    if (
        mqtt is not None
        and mqtt.password is None
        and (found := keys.credential(MQTT_PASSWORD_CREDENTIAL, env))
    ):
        # systemd's credential: one file for every instance of crown-edge-cloud@.service,
        # each reading it from its own $CREDENTIALS_DIRECTORY
        mqtt = dataclasses.replace(mqtt, password=found[0])
    designs = Path(get("cloud", "designs_dir", "var/designs", str))
    journal = get("cloud", "intake_journal", None, str)
    intake = None if journal is None else Path(journal)
    default_shop = get("cloud", "default_shop_id", "shop-1", str)
    shops = _strings(data, "cloud", "shops") or (default_shop,)
    if default_shop not in shops:
        raise ConfigError("cloud", "shops", f"does not list default_shop_id {default_shop!r}")

    def values(list_key: str, file_key: str) -> tuple[str, ...]:
        listed = _strings(data, "api", list_key)
        file = get("api", file_key, None, str)
        if file is None:
            return listed
        file_path = Path(file) if Path(file).is_absolute() else path.parent / file
        return listed + keys.read_values(file_path, "api", file_key)

    plain = {
        "http_host": get("http", "host", "127.0.0.1", str),
        "temporal_target": get("temporal", "target", "127.0.0.1:7233", str),
        "temporal_namespace": get("temporal", "namespace", "default", str),
        "sqs_region": get("sqs", "region", "us-east-1", str),
        "sqs_endpoint_url": get("sqs", "endpoint_url", None, str),
    }
    api_keys = keys.api_keys(values("keys", "key_file"), env)
    if not api_keys:
        raise ConfigError(
            "api", "keys", "no API key", f"${keys.ENV_API_KEY}, keys, key_file or a credential"
        )
    secrets = keys.token_secrets(values("token_secrets", "token_secret_file"), env)
    if not secrets:
        raise ConfigError(
            "api",
            "token_secrets",
            "no token secret",
            "token_secrets, token_secret_file or a credential",
        )
    raw_mail = data.get("mail")
    if raw_mail is not None and not isinstance(raw_mail, dict):
        raise ConfigError("mail", "", "must be a table")
    mail = MailSettings.from_config(raw_mail, path.parent) if raw_mail is not None else None
    metrics_port = get("metrics", "port", None, int)
    if metrics_port is not None and not 0 <= metrics_port <= 65535:
        raise ConfigError("metrics", "port", f"got {metrics_port}", "0..65535")
    return CloudConfig(
        api_keys=api_keys,
        token_secrets=secrets,
        shops=frozenset(shops),
        public_url=get("api", "public_url", None, str),
        allowed_origins=_strings(data, "api", "allowed_origins"),
        metrics_host=get("metrics", "host", "127.0.0.1", str),
        metrics_port=metrics_port,
        default_shop_id=default_shop,
        designs_dir=designs if designs.is_absolute() else path.parent / designs,
        intake_journal=intake if intake is None or intake.is_absolute() else path.parent / intake,
        http_port=port,
        mqtt=mqtt if mqtt is not None and mqtt.enabled else None,
        mail=mail if mail is not None and mail.backend != "off" else None,
        **plain,
    )


def _strings(data: dict[str, Any], section: str, key: str) -> tuple[str, ...]:
    table = data.get(section, {})
    value = table.get(key, []) if isinstance(table, dict) else []
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(section, key, "must be a list of non-empty strings")
    return tuple(value)


#: An instance name: it goes into a file name, a broker client id and a log line.
INSTANCE_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_-]{0,31}"


def with_instance(
    cfg: CloudConfig,
    instance: str | None,
    http_port: int | None = None,
    metrics_port: int | None = None,
) -> CloudConfig:
    """``cfg`` for one of several cloud processes: its name and, if given, its own ports."""
    import re

    if instance is not None and not re.fullmatch(INSTANCE_PATTERN, instance):
        raise ConfigError(
            "--instance", instance, "not an instance name", "1-32 letters, digits, - or _"
        )
    for flag, port in (("--http-port", http_port), ("--metrics-port", metrics_port)):
        if port is not None and not 0 <= port <= 65535:
            raise ConfigError(flag, str(port), "not a port", "0..65535")
    return dataclasses.replace(
        cfg,
        instance=instance,
        http_port=cfg.http_port if http_port is None else http_port,
        metrics_port=cfg.metrics_port if metrics_port is None else metrics_port,
    )


def cloud(
    config: Annotated[Path, typer.Option("--config", "-c", help="Cloud config (TOML).")],
    instance: Annotated[
        str | None,
        typer.Option(
            help="Run as one of several cloud processes on this host, named so (its own "
            "journal and broker session; the Order API's port is shared)."
        ),
    ] = None,
    http_port: Annotated[
        int | None, typer.Option(help="The Order API's port (default: the config's http port).")
    ] = None,
    metrics_port: Annotated[
        int | None, typer.Option(help="This process's /metrics port (default: the config's).")
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Run the cloud roles: Order API, SQS dispatcher, MQTT bridge, workflow worker."""
    from crown_edge.cli.daemons import setup_logging

    try:
        cfg = with_instance(load_cloud_config(config), instance, http_port, metrics_port)
    except CrownEdgeError as exc:
        fail(str(exc))
    setup_logging(verbose)
    try:
        asyncio.run(_serve(cfg))
    except KeyboardInterrupt:
        pass
    except CrownEdgeError as exc:
        fail(str(exc))


async def _serve(cfg: CloudConfig) -> None:
    import signal

    from temporalio.client import Client

    from crown_edge.catalog import load_catalog
    from crown_edge.cloud.activities import CloudActivities
    from crown_edge.cloud.auth import Credentials
    from crown_edge.cloud.jobdir import JobDirectory, TemporalShopLookup
    from crown_edge.cloud.service import CloudServices, CloudSettings
    from crown_edge.cloud.starter import start_job, workflow_worker
    from crown_edge.models import IntakeMessage

    client = await Client.connect(cfg.temporal_target, namespace=cfg.temporal_namespace)

    # the bridge learns each new job's workshop from its start, not from a Temporal lookup
    directory = JobDirectory(TemporalShopLookup(client))

    async def start(msg: IntakeMessage) -> None:
        await start_job(client, msg, default_shop_id=cfg.default_shop_id, learn=directory.learn)

    mqtt = cfg.mqtt
    settings = CloudSettings(
        designs_dir=cfg.designs_dir,
        intake_journal=cfg.intake_journal,
        credentials=Credentials(cfg.api_keys, cfg.token_secrets),
        shops=cfg.shops,
        public_url=cfg.public_url,
        allowed_origins=cfg.allowed_origins,
        metrics_host=cfg.metrics_host,
        metrics_port=cfg.metrics_port,
        http_host=cfg.http_host,
        http_port=cfg.http_port,
        mqtt_host=mqtt.host if mqtt is not None else None,
        mqtt_port=mqtt.port if mqtt is not None else 8883,
        bridge_client_id=(mqtt.client_id if mqtt is not None else None) or "crown-bridge",
        mqtt_username=mqtt.username if mqtt is not None else None,
        mqtt_password=mqtt.password if mqtt is not None else None,
        mqtt_tls=tls_of(mqtt) if mqtt is not None else None,
        sqs_endpoint_url=cfg.sqs_endpoint_url,
        sqs_region=cfg.sqs_region,
        mail=cfg.mail,
        instance=cfg.instance,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    notifier = Notifier()
    async with CloudServices(settings, start, temporal=client, jobs=directory) as services:
        activities = CloudActivities(cfg.designs_dir, load_catalog(), services.cloud_sink)
        async with workflow_worker(client, activities):
            name = f" (instance {cfg.instance})" if cfg.instance else ""
            print(f"crown-edge cloud{name}: Order API on {services.api.url}", flush=True)
            notifier.send(f"READY=1\nSTATUS=Order API on {services.api.url}")
            watchdog = asyncio.create_task(_watchdog(notifier), name="cloud-watchdog")
            try:
                await stop.wait()
            finally:
                notifier.send("STOPPING=1")
                watchdog.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watchdog


async def _watchdog(notifier: Notifier) -> None:
    """``WATCHDOG=1`` while the event loop turns (systemd restarts a wedged cloud process)."""
    interval = min(notifier.watchdog_interval() or 5.0, 5.0)
    while True:
        notifier.send("WATCHDOG=1")
        await asyncio.sleep(interval)


@order_app.command("create")
def order_create(
    job_id: str,
    item: Annotated[str, typer.Option(help="Item id.")],
    line: Annotated[list[str] | None, typer.Option("--line", help="A line of text.")] = None,
    api: Annotated[str, typer.Option(help="Order API base URL.")] = "http://127.0.0.1:8080",
    customer: Annotated[str, typer.Option(help="Customer id.")] = "walk-in",
    due: Annotated[str, typer.Option(help="Due date, ISO 8601.")] = "2099-01-01",
    rush: Annotated[bool, typer.Option("--rush")] = False,
    artwork: Annotated[str | None, typer.Option(help="Artwork URL or library:NAME.")] = None,
    shop: Annotated[str | None, typer.Option(help="Workshop id.")] = None,
    api_key: Annotated[
        str | None,
        typer.Option(envvar="CROWN_API_KEY", help="Order API key (default: $CROWN_API_KEY)."),
    ] = None,
) -> None:
    """POST one order to the Order API and print its answer (JSON, with the customer's link)."""
    if not api_key:
        fail("no API key: pass --api-key or set CROWN_API_KEY")
    order: dict[str, Any] = {
        "job_id": job_id,
        "customer_id": customer,
        "item_id": item,
        "due_date": due,
        "text": line or [],
        "rush": rush,
    }
    if artwork:
        order["artwork_url"] = artwork
    if shop:
        order["shop_id"] = shop
    request = urllib.request.Request(
        f"{api.rstrip('/')}/orders",
        data=json.dumps(order).encode(),
        method="POST",
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {api_key}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            print(response.read().decode())
    except urllib.error.HTTPError as exc:
        with exc:
            fail(f"order refused ({exc.code}): {exc.read().decode()}")
    except (urllib.error.URLError, OSError) as exc:
        fail(f"cannot reach the Order API at {api}: {exc}")
