"""The ``crown-edge`` command line (typer + rich).

Sub-command groups live in their own modules and are attached here. Errors from crown-edge are
printed as one clear line and exit non-zero.
"""

from __future__ import annotations

import importlib
import json
import sys
import time
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from crown_edge import __version__
from crown_edge.errors import CrownEdgeError

app = typer.Typer(
    name="crown-edge",
    help="Shop-floor controller for Crown Trophy engraving workshops.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=True,
)

# Commands contributed by other packages: group -> command -> "module:function". The function is a
# typer-annotated command. A module not present in this build is skipped.
_COMMANDS: dict[str, dict[str, str]] = {
    "gcode": {"render": "crown_edge.toolpath.cli:render"},
    "sim": {"grbl": "crown_edge.sim.grbl_cli:grbl", "modbus": "crown_edge.sim.modbus_cli:modbus"},
}
_GROUP_HELP = {
    "gcode": "Render engraving content to G-code.",
    "sim": "Run machine simulators (GRBL laser on a pty, Modbus device).",
}

# Benchmarks by name -> module exposing ``run(quick: bool) -> dict``.
BENCHMARKS: dict[str, str] = {
    "scheduler": "crown_edge.bench.scheduler",
    "stream": "crown_edge.bench.stream",
    "toolpath": "crown_edge.bench.toolpath",
    "pipeline": "crown_edge.bench.pipeline",
    "fleet": "crown_edge.bench.fleet",
}


def _version(value: bool) -> None:
    if value:
        print(f"crown-edge {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="Edge config, to find the daemon.")
    ] = None,
    socket: Annotated[
        Path | None, typer.Option("--socket", help="The daemon's control socket.")
    ] = None,
    version: Annotated[
        bool,
        typer.Option(
            "--version", help="Print the version and exit.", is_eager=True, callback=_version
        ),
    ] = False,
) -> None:
    """Shop-floor controller for Crown Trophy engraving workshops."""
    ctx.obj = {"config": config, "socket": socket}


def _register() -> None:
    from crown_edge.cli import cloud, daemons, tech, up

    app.command()(up.up)
    app.command()(cloud.cloud)
    app.add_typer(cloud.order_app, name="order")
    app.command()(daemons.run)
    app.command()(daemons.doctor)
    app.command()(tech.status)
    app.command()(tech.queue)
    app.add_typer(tech.jobs_app, name="jobs")
    app.add_typer(tech.machines_app, name="machines")
    app.add_typer(tech.inventory_app, name="inventory")
    app.add_typer(tech.qa_app, name="qa")


@app.command()
def bench(
    name: Annotated[str, typer.Argument(help="Benchmark: " + ", ".join(BENCHMARKS))],
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON object last.")] = False,
    quick: Annotated[bool, typer.Option("--quick", help="A smaller run (smoke test).")] = False,
) -> None:
    """Run a benchmark and print its figures."""
    module_name = BENCHMARKS.get(name)
    if module_name is None:
        fail(f"unknown benchmark {name!r} (choose from: {', '.join(BENCHMARKS)})")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError:
        fail(f"benchmark {name!r} is not available in this build")
    started = time.perf_counter()
    result: dict[str, Any] = module.run(quick=quick)
    result.setdefault("bench", name)
    result.setdefault("elapsed_s", round(time.perf_counter() - started, 3))
    if json_out:
        print(json.dumps(result, sort_keys=True))
    else:
        for key, value in sorted(result.items()):
            print(f"{key:32s} {value}")


def fail(message: str, code: int = 1) -> NoReturn:
    """Print one line to stderr and exit non-zero."""
    print(f"crown-edge: {message}", file=sys.stderr)
    raise typer.Exit(code)


def _attach_subapps() -> None:
    for group, commands in _COMMANDS.items():
        sub = typer.Typer(no_args_is_help=True, help=_GROUP_HELP.get(group))
        found = False
        for command, target in commands.items():
            module_name, func_name = target.split(":")
            try:
                module = importlib.import_module(module_name)
            except ModuleNotFoundError as exc:
                if exc.name and module_name.startswith(exc.name):
                    continue
                raise
            sub.command(command)(getattr(module, func_name))
            found = True
        if found:
            app.add_typer(sub, name=group)


def main() -> None:
    """Console entry point."""
    _register()
    _attach_subapps()
    try:
        app()
    except CrownEdgeError as exc:
        print(f"crown-edge: {exc}", file=sys.stderr)
        sys.exit(1)
