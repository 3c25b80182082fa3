"""Daemon commands: ``run`` (the edge) and ``doctor`` (checks before calling for help)."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from crown_edge.cli.common import emit, fail
from crown_edge.config import load_config
from crown_edge.errors import CrownEdgeError

ConfigOpt = Annotated[Path, typer.Option("--config", "-c", help="Edge config (TOML).")]


def setup_logging(verbose: bool) -> None:
    """Plain logs to stderr (journald adds time stamps under systemd)."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # pymodbus logs every timeout with frame dumps at ERROR; our DeviceError already says it
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)


def run(
    config: ConfigOpt,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Run the edge daemon (systemd: Type=notify)."""
    from crown_edge.daemon.app import EdgeDaemon

    try:
        cfg = load_config(config)
    except CrownEdgeError as exc:
        fail(str(exc))
    setup_logging(verbose)
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
    config: ConfigOpt,
    json_out: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Check the config, the store, the control socket, serial ports and tools."""
    checks: list[dict[str, Any]] = []

    def check(name: str, ok: bool, detail: str) -> None:
        checks.append({"check": name, "ok": ok, "detail": detail})

    try:
        cfg = load_config(config)
        check("config", True, f"shop {cfg.shop_id}, {len(cfg.machines)} machines")
    except CrownEdgeError as exc:
        check("config", False, str(exc))
        cfg = None
    if cfg is not None:
        parent = cfg.store_path.parent
        check(
            "store directory",
            (parent.exists() and os.access(parent, os.W_OK)) or not parent.exists(),
            str(parent),
        )
        from crown_edge.control import call

        try:
            result = asyncio.run(call(cfg.control_socket, "ping", timeout=3.0))
            check("daemon", True, f"answering on {cfg.control_socket} ({result['shop_id']})")
        except CrownEdgeError as exc:
            check("daemon", False, str(exc))
        for m in cfg.machines:
            if m.driver == "grbl" and m.port.startswith("/"):
                check(f"port {m.id}", os.path.exists(m.port), m.port)
    temporal = Path(sys.executable).parent / "temporal"
    check("temporal cli", temporal.exists() or bool(shutil.which("temporal")), str(temporal))
    broker = shutil.which("mosquitto") or (
        "/usr/sbin/mosquitto" if os.path.exists("/usr/sbin/mosquitto") else None
    )
    # only `up` runs a local broker; a workshop PC talks to a remote one and needs none
    check(
        "mqtt broker", True, broker or "mosquitto not found: `up` needs it (apt install mosquitto)"
    )
    if json_out:
        emit({"ok": all(c["ok"] for c in checks), "checks": checks}, True)
    else:
        for c in checks:
            print(f"{'ok  ' if c['ok'] else 'FAIL'} {c['check']:18s} {c['detail']}")
    if not all(c["ok"] for c in checks):
        raise typer.Exit(1)
