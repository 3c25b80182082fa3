"""``crown-edge sim grbl``: run the GRBL simulator as a process.

Prints one line — the device path, or ``socket://127.0.0.1:PORT`` with ``--tcp`` — flushes, and
serves until SIGTERM or SIGINT. In TCP mode each client is bridged to the simulator's pty, so it
sees exactly the same byte-level behaviour (pyserial opens it as ``socket://…``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import termios
import tty
from typing import Annotated

import typer

from crown_edge.sim.grbl import GrblSimulator


def grbl(
    baud: Annotated[int, typer.Option(help="Emulated baud rate (8N1).")] = 115200,
    time_scale: Annotated[
        float, typer.Option(help="Multiplies every duration: 1 real time, 0 instant.")
    ] = 1.0,
    homing: Annotated[bool, typer.Option(help="Enable homing ($22=1): starts in Alarm.")] = False,
    tcp: Annotated[
        int | None, typer.Option(help="Serve on 127.0.0.1:PORT instead (0 picks a free port).")
    ] = None,
    axes: Annotated[str, typer.Option(help="XYZ (grbl 1.1) or XYZA (rotary A).")] = "XYZ",
) -> None:
    """Run a GRBL 1.1 laser simulator on a pseudo-terminal until SIGTERM/SIGINT."""
    asyncio.run(serve(baud=baud, time_scale=time_scale, homing=homing, tcp=tcp, axes=axes))


async def serve(
    *,
    baud: int = 115200,
    time_scale: float = 1.0,
    homing: bool = False,
    tcp: int | None = None,
    axes: str = "XYZ",
) -> None:
    """Serve the simulator until SIGTERM/SIGINT, printing where to connect."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    settings = {22: 1.0} if homing else None
    sim = GrblSimulator(baud=baud, time_scale=time_scale, settings=settings, axes=axes)
    async with sim:
        if tcp is None:
            print(sim.device_path, flush=True)
            await stop.wait()
            return
        server = await asyncio.start_server(
            lambda r, w: _bridge(sim, r, w), "127.0.0.1", tcp, reuse_address=True
        )
        async with server:
            port = server.sockets[0].getsockname()[1]
            print(f"socket://127.0.0.1:{port}", flush=True)
            await stop.wait()


async def _bridge(
    sim: GrblSimulator, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    """Relay one TCP client to the simulator's pty, both ways, until either side closes."""
    loop = asyncio.get_running_loop()
    fd = os.open(sim.device_path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    tty.setraw(fd)
    termios.tcflush(fd, termios.TCIFLUSH)
    closed = asyncio.Event()

    def pty_readable() -> None:
        try:
            data = os.read(fd, 4096)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            closed.set()
            return
        writer.write(data)

    loop.add_reader(fd, pty_readable)
    try:
        while not closed.is_set():
            data = await reader.read(4096)
            if not data:
                break
            os.write(fd, data)
    finally:
        loop.remove_reader(fd)
        os.close(fd)
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


if __name__ == "__main__":  # python -m crown_edge.sim.grbl_cli (used by the stream benchmark)
    typer.run(grbl)
