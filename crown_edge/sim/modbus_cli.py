"""``crown-edge sim modbus``: run the Modbus device simulator until SIGTERM or SIGINT.

Prints the device URL (one line, flushed) once listening, so a parent process or a technician can
point a driver at it: ``crown-edge sim modbus --port 0`` -> ``tcp://127.0.0.1:40123``.

``--relay COIL=INPUT`` wires a relay as a HIL bench does: while the coil is on, the input reads
the opposite of its resting value (a normally-closed contact in series with the door switch, so
writing the coil opens the door as far as every client can tell). Relays switch within
:data:`RELAY_PERIOD_S`.
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

#: How often the relays follow their coils (a relay's switching time).
RELAY_PERIOD_S = 0.005


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
    relay: Annotated[
        list[str] | None,
        typer.Option(help="COIL=INPUT: the coil on inverts the input (a bench relay); repeat."),
    ] = None,
) -> None:
    """Run a simulated Modbus device serving a profile's points; prints its URL."""
    if framer not in ("tcp", "rtu"):
        raise ConfigError("sim", "framer", f"{framer!r} is not allowed", "tcp, rtu")
    spec = load_profile(Path(profile) if Path(profile).is_file() else profile)
    initial = parse_assignments(spec, set_ or [])
    relays = parse_relays(spec, relay or [])
    sim = ModbusSimulator(
        spec, host=host, port=port, framer="rtu" if framer == "rtu" else "tcp", initial=initial
    )
    asyncio.run(serve(sim, relays))


async def serve(sim: ModbusSimulator, relays: list[tuple[str, str]] | None = None) -> None:
    """Run ``sim`` (its ``relays`` wired), print its URL, stop cleanly on SIGTERM or SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        async with sim:
            wiring = asyncio.create_task(follow_relays(sim, relays)) if relays else None
            print(sim.url, flush=True)
            await stop.wait()
            if wiring is not None:
                wiring.cancel()
                await asyncio.gather(wiring, return_exceptions=True)
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)


def parse_relays(profile: DeviceProfile, items: list[str]) -> list[tuple[str, str]]:
    """``COIL=INPUT`` strings as (coil, input) pairs of bit points; a bad one is a ConfigError."""
    relays: list[tuple[str, str]] = []
    for item in items:
        coil, sep, target = (part.strip() for part in item.partition("="))
        if not sep:
            raise ConfigError("sim", "relay", f"{item!r} is not COIL=INPUT", "COIL=INPUT")
        for name in (coil, target):
            if not profile.point(name).kind.is_bit:
                raise ConfigError("sim", "relay", f"{item!r}: {name} is not a bit", "bit points")
        relays.append((coil, target))
    return relays


async def follow_relays(sim: ModbusSimulator, relays: list[tuple[str, str]]) -> None:
    """Keep each input at its resting value, inverted while its coil is on (until cancelled)."""
    rest = {target: bool(sim.get_point(target)) for _, target in relays}
    while True:
        for coil, target in relays:
            value = rest[target] != bool(sim.get_point(coil))
            if sim.get_point(target) != value:
                sim.set_point(target, value)
        await asyncio.sleep(RELAY_PERIOD_S)


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
