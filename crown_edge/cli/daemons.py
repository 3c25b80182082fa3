"""Daemon commands: ``run`` (the edge) and ``doctor`` (checks before calling for help)."""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
import stat
import textwrap
from pathlib import Path
from typing import Annotated, Any

import typer

from crown_edge import logs
from crown_edge.cli.common import config_path, emit, fail
from crown_edge.commission.doctor import DAEMON_OWNS_PORTS, DAEMON_UNKNOWN, machine_rows
from crown_edge.config import MqttConfig, TemporalConfig, load_config
from crown_edge.control import call
from crown_edge.errors import CrownEdgeError
from crown_edge.sync.mqtt_auth import tls_of

ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="Edge config (TOML); default $CROWN_EDGE_CONFIG or /etc/crown-edge/edge.toml.",
    ),
]


LogFormatOpt = Annotated[
    str | None,
    typer.Option(
        "--log-format",
        help="auto (journal under systemd, else text), text, journal or json; "
        "default $CROWN_EDGE_LOG_FORMAT or auto.",
    ),
]


def setup_logging(verbose: bool, log_format: str | None = None) -> None:
    """Logs on stderr in the chosen format (:mod:`crown_edge.logs`); a bad choice is one line."""
    try:
        logs.setup_logging(verbose, log_format)
    except ValueError as exc:
        fail(str(exc), 2)


def run(
    ctx: typer.Context,
    config: ConfigOpt = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
    log_format: LogFormatOpt = None,
) -> None:
    """Run the edge daemon (systemd: Type=notify)."""
    from crown_edge.daemon.app import EdgeDaemon

    try:
        cfg = load_config(config_path(ctx, config))
    except CrownEdgeError as exc:
        fail(str(exc))
    setup_logging(verbose, log_format)
    logs.bind(shop_id=cfg.shop_id)  # every line of this daemon names its workshop
    try:
        asyncio.run(EdgeDaemon(cfg).run())
    except CrownEdgeError as exc:
        fail(str(exc))
    except ExceptionGroup as group:
        fail_from_group(group)


def fail_from_group(group: ExceptionGroup[Exception]) -> None:
    """Report the crown-edge errors in a TaskGroup's exception group; re-raise anything else."""
    crown = group.subgroup(lambda e: isinstance(e, CrownEdgeError))
    if crown is None:
        raise group
    fail("; ".join(str(e) for e in crown.exceptions))


def doctor(
    ctx: typer.Context,
    config: ConfigOpt = None,
    json_out: Annotated[bool, typer.Option("--json")] = False,
    timeout: Annotated[float, typer.Option(help="Seconds per network check.")] = 3.0,
    machines: Annotated[
        bool,
        typer.Option(
            "--machines",
            help="Also ask each laser: handshake, firmware, $I buffers, laser settings "
            "($32, $30, $22, $20, $130/$131), state, interlocks. Nothing moves. Only while "
            "the daemon is stopped (it owns the serial ports).",
        ),
    ] = False,
) -> None:
    """Check the config, directories, the daemon, serial ports, MQTT and Temporal for real.

    With --machines (daemon stopped) also each laser and its interlocks; nothing moves. The
    full commissioning (homing, frame, timed dry job, interlock trips) is the HIL rig's
    `python -m hil.runner --target FILE --commissioning`.
    """
    checks: list[dict[str, Any]] = []
    ports_free = False  # the daemon is certainly not running: --machines may open the ports

    def check(name: str, ok: bool, detail: str) -> None:
        checks.append({"check": name, "ok": ok, "detail": detail})

    path = config_path(ctx, config)
    try:
        cfg = load_config(path)
        check("config", True, f"{path}: shop {cfg.shop_id}, {len(cfg.machines)} machines")
    except CrownEdgeError as exc:
        check("config", False, str(exc))
        cfg = None
    if cfg is not None:
        for name, directory in (
            ("store dir", cfg.store_path.parent),
            ("socket dir", cfg.control_socket.parent),
        ):
            check(name, *directory_problem(directory))
        try:
            result = asyncio.run(call(cfg.control_socket, "ping", timeout=timeout))
            check("daemon", True, f"answering on {cfg.control_socket} ({result['shop_id']})")
        except CrownEdgeError as exc:
            ports_free = "not running" in str(exc)
            if machines and ports_free:  # what --machines needs: not a fault
                check("daemon", True, f"{exc}: the serial ports are free for --machines")
            else:
                check("daemon", False, str(exc))
        for m in cfg.machines:
            if m.driver == "grbl" and m.port.startswith("/"):
                problem = port_problem(m.port)
                check(f"port {m.id}", problem is None, f"{m.port}: {problem or 'read/write'}")
        if cfg.mqtt.enabled:
            check("mqtt", *mqtt_problem(cfg.mqtt, timeout))
        else:
            check("mqtt", True, "disabled in [mqtt]: no events leave this workshop")
        if cfg.temporal.enabled:
            check("temporal", *temporal_problem(cfg.temporal, timeout))
        else:
            check("temporal", True, "disabled in [temporal]: standalone mode")
        if machines and not ports_free:
            daemon_row = next(c for c in checks if c["check"] == "daemon")
            check("machines", False, DAEMON_OWNS_PORTS if daemon_row["ok"] else DAEMON_UNKNOWN)
        elif machines:
            checks.extend(machine_rows(cfg, timeout))
    ok = all(c["ok"] for c in checks)
    if json_out:
        emit({"ok": ok, "checks": checks}, True)
    else:
        pad = max(len(c["check"]) for c in checks)
        for c in checks:
            head = f"{'ok  ' if c['ok'] else 'FAIL'} {c['check']:<{pad}} "
            print(
                textwrap.fill(
                    c["detail"],
                    80,
                    initial_indent=head,
                    subsequent_indent=" " * 7,
                    break_on_hyphens=False,
                    break_long_words=True,
                )
            )
    if not ok:
        raise typer.Exit(1)


def directory_problem(directory: Path) -> tuple[bool, str]:
    """(ok, detail) for a directory the daemon writes in: it must exist and be writable."""
    if not directory.exists():
        return False, f"{directory}: missing (create it, owned by the service user)"
    if not directory.is_dir():
        return False, f"{directory}: not a directory"
    if not os.access(directory, os.W_OK | os.X_OK):
        return False, f"{directory}: not writable by this user"
    return True, str(directory)


def port_problem(port: str) -> str | None:
    """Why a serial port cannot be used, or None when it can be opened for reading and writing."""
    try:
        mode = os.stat(port).st_mode
    except FileNotFoundError:
        return "no such device (unplugged, or another name: see /dev/serial/by-id)"
    except OSError as exc:
        return exc.strerror or str(exc)
    if not stat.S_ISCHR(mode):
        return "not a character device"
    if not os.access(port, os.R_OK | os.W_OK):
        return "permission denied (add the user to the device's group, e.g. dialout)"
    return None


def _split_target(target: str, default_port: int) -> tuple[str, int]:
    host, sep, port = target.rpartition(":")
    if not sep:
        return target, default_port
    return host.strip("[]"), int(port)


def tcp_problem(target: str, timeout: float) -> tuple[bool, str]:
    """(ok, detail) of a TCP connect to ``host:port``."""
    try:
        host, port = _split_target(target, 7233)
    except ValueError:
        return False, f"{target}: not host:port"
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True, f"{target}: accepting connections"
    except TimeoutError:
        return False, f"{target}: no answer within {timeout:g} s"
    except OSError as exc:
        return False, f"{target}: {exc.strerror or exc}"


def temporal_problem(temporal: TemporalConfig, timeout: float) -> tuple[bool, str]:
    """(ok, detail) of the Temporal frontend: a TCP connect, then a real client that finds the
    configured namespace (a port that accepts but is not Temporal fails here)."""
    ok, detail = tcp_problem(temporal.target, timeout)
    if not ok:
        return ok, detail

    async def ask() -> str:
        from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
        from temporalio.client import Client

        async with asyncio.timeout(timeout):
            client = await Client.connect(temporal.target, namespace=temporal.namespace)
            info = await client.workflow_service.describe_namespace(
                DescribeNamespaceRequest(namespace=temporal.namespace)
            )
        return str(info.namespace_info.name)

    try:
        name = asyncio.run(ask())
    except TimeoutError:
        return False, f"{temporal.target}: no Temporal answer within {timeout:g} s"
    except Exception as exc:  # the SDK's RPC and connect errors: the reason is what counts
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return False, f"{temporal.target}: not answering as Temporal ({reason})"
    return True, f"{temporal.target}: Temporal answering, namespace {name!r} found"


def mqtt_problem(mqtt: MqttConfig, timeout: float) -> tuple[bool, str]:
    """(ok, detail) of the configured broker: a TCP connect, then a TLS handshake when ``tls``
    is on, with the configured CA (and client certificate)."""
    target = f"{mqtt.host}:{mqtt.port}"
    tls = tls_of(mqtt)
    context: ssl.SSLContext | None = None
    if tls is not None:
        try:
            context = tls.context()
        except CrownEdgeError as exc:
            return False, str(exc)
    try:
        with socket.create_connection((mqtt.host, mqtt.port), timeout=timeout) as sock:
            if context is None:
                return True, f"{target}: accepting connections (no TLS)"
            with context.wrap_socket(sock, server_hostname=mqtt.host) as tls_sock:
                return True, f"{target}: TLS handshake ok ({tls_sock.version()})"
    except ssl.SSLCertVerificationError as exc:
        return False, f"{target}: broker certificate refused: {exc.verify_message}"
    except ssl.SSLError as exc:
        return False, f"{target}: TLS handshake failed: {exc.reason or exc}"
    except TimeoutError:
        return False, f"{target}: no answer within {timeout:g} s"
    except OSError as exc:
        return False, f"{target}: {exc.strerror or exc}"
