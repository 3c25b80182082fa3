"""Shared CLI plumbing: finding the daemon, calling it, printing tables or JSON."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.table import Table

from crown_edge.config import load_config
from crown_edge.control import call
from crown_edge.errors import CrownEdgeError

DEFAULT_CONFIG = Path("/etc/crown-edge/edge.toml")
console = Console()


def fail(message: str, code: int = 1) -> NoReturn:
    """One clear line on stderr, non-zero exit."""
    print(f"crown-edge: {message}", file=sys.stderr)
    raise typer.Exit(code)


def config_path(ctx: typer.Context | None, config: Path | None = None) -> Path:
    """The edge config: ``--config`` (on the command or before it), $CROWN_EDGE_CONFIG, or
    /etc/crown-edge/edge.toml."""
    if config is None and ctx is not None:
        config = (ctx.find_root().obj or {}).get("config")
    if config is not None:
        return config
    env = os.environ.get("CROWN_EDGE_CONFIG")
    return Path(env) if env else DEFAULT_CONFIG


def socket_path(config: Path | None, socket: Path | None) -> Path:
    """The control socket: --socket, $CROWN_EDGE_SOCKET, the config's, or ./var/crown-edge.sock."""
    if socket is not None:
        return socket
    env = os.environ.get("CROWN_EDGE_SOCKET")
    if env:
        return Path(env)
    cfg = config or (
        Path(os.environ["CROWN_EDGE_CONFIG"]) if "CROWN_EDGE_CONFIG" in os.environ else None
    )
    if cfg is None and DEFAULT_CONFIG.exists():
        cfg = DEFAULT_CONFIG
    if cfg is not None:
        try:
            return load_config(cfg).control_socket
        except CrownEdgeError as exc:
            fail(str(exc))
    return Path("var/crown-edge.sock")


def rpc(ctx: typer.Context, cmd: str, args: dict[str, Any] | None = None) -> Any:
    """Call the daemon; any error is one line and exit 1."""
    obj = ctx.find_root().obj or {}
    path = socket_path(obj.get("config"), obj.get("socket"))
    try:
        return asyncio.run(call(path, cmd, args))
    except CrownEdgeError as exc:
        fail(str(exc))


def emit(data: Any, as_json: bool, table: Table | None = None) -> None:
    """Print JSON for scripts or a rich table for people."""
    if as_json:
        print(json.dumps(data, sort_keys=True, default=str))
    elif table is not None:
        console.print(table)
    else:
        console.print(data)


def ts(value: float | None) -> str:
    """A POSIX time as a short local date-time."""
    if value is None:
        return "-"
    import datetime as dt

    return dt.datetime.fromtimestamp(value).strftime("%Y-%m-%d %H:%M")


def pct(value: float | None) -> str:
    """0..1 as a percentage."""
    return "-" if value is None else f"{value * 100:.0f}%"
