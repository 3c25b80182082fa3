"""``crown-edge sim modbus``: run the Modbus device simulator until SIGTERM or SIGINT.

Prints the device URL (one line, flushed) once listening, so a parent process or a technician can
point a driver at it: ``crown-edge sim modbus --port 0`` -> ``tcp://127.0.0.1:40123``.
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Annotated

import typer

from crown_edge.drivers.modbus.profile import DeviceProfile, Value, load_profile
from crown_edge.errors import ConfigError
from crown_edge.sim.modbus import ModbusSimulator


def modbus(
    profile: Annotated[
        str,
        typer.Option(help="Device profile: a TOML file or a built-in name (rotary-io)."),
    ] = "rotary-io",
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port; 0 picks a free one.")] = 0,
    framer: Annotated[
        str, typer.Option(help="Framing on the socket: tcp (MBAP) or rtu (RTU over TCP).")
    ] = "tcp",
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Start value POINT=VALUE (true/false or a number); repeat."),
    ] = None,
) -> None:
    """Run a simulated Modbus device serving a profile's points; prints its URL."""
    if framer not in ("tcp", "rtu"):
        raise ConfigError("sim", "framer", f"{framer!r} is not allowed", "tcp, rtu")
    spec = load_profile(Path(profile) if Path(profile).is_file() else profile)
    initial = parse_assignments(spec, set_ or [])
    sim = ModbusSimulator(
        spec, host=host, port=port, framer="rtu" if framer == "rtu" else "tcp", initial=initial
    )
    asyncio.run(serve(sim))


async def serve(sim: ModbusSimulator) -> None:
    """Run ``sim``, print its URL, and stop cleanly on SIGTERM or SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        async with sim:
            print(sim.url, flush=True)
            await stop.wait()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)


def parse_assignments(profile: DeviceProfile, items: list[str]) -> dict[str, Value]:
    """Turn ``POINT=VALUE`` strings into start values; a bad one is a ConfigError."""
    values: dict[str, Value] = {}
    for item in items:
        name, sep, text = item.partition("=")
        if not sep:
            raise ConfigError("sim", "set", f"{item!r} is not POINT=VALUE", "POINT=VALUE")
        spec = profile.point(name.strip())
        text = text.strip().lower()
        value: Value
        if spec.kind.is_bit:
            if text not in ("true", "false", "1", "0"):
                raise ConfigError("sim", "set", f"{item!r}: not a boolean", "true, false, 1, 0")
            value = text in ("true", "1")
        else:
            try:
                value = float(text) if any(c in text for c in ".e") else int(text)
            except ValueError:
                raise ConfigError("sim", "set", f"{item!r}: not a number", "a number") from None
        values[spec.name] = value
    return values
