"""``crown-edge sim grbl``: run the GRBL simulator as a process.

Prints one line — the device path, or ``socket://127.0.0.1:PORT`` with ``--tcp`` — flushes, and
serves until SIGTERM or SIGINT. In TCP mode each client is bridged to the simulator's pty, so it
sees exactly the same byte-level behaviour (pyserial opens it as ``socket://…``).

For a bench of simulators standing in for hardware (the HIL rig's ``hil.bench_sim``):

``--link PATH``
    a symlink at PATH to the device (like udev's ``/dev/serial/by-id/…``); it dangles while the
    simulator is unplugged, as a by-id link vanishes with the device.
``--control PATH``
    a Unix socket taking one JSON object per line, answering one per line: ``{"cmd": "state"}``,
    ``"unplug"`` / ``"replug"`` (the USB cable or its power), ``"reset"`` (the controller's own
    reset pin: grbl resets as on Ctrl-X), ``"alarm_after"`` (``line``, ``code``),
    ``"time_scale"`` (``value``), ``"programs"`` (optional ``job_id``: every program received,
    its lines, and how many had been received at each reset). Answers ``{"ok": true, ...}`` or
    ``{"ok": false, "error": "..."}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import termios
import tty
from pathlib import Path
from typing import Annotated, Any

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
    link: Annotated[
        Path | None, typer.Option(help="Also reach the device through a symlink at this path.")
    ] = None,
    control: Annotated[
        Path | None, typer.Option(help="Unix socket for faults and records (JSON lines).")
    ] = None,
) -> None:
    """Run a GRBL 1.1 laser simulator on a pseudo-terminal until SIGTERM/SIGINT."""
    asyncio.run(
        serve(
            baud=baud,
            time_scale=time_scale,
            homing=homing,
            tcp=tcp,
            axes=axes,
            link=link,
            control=control,
        )
    )


class BenchSimulator(GrblSimulator):
    """The simulator with the reset pin a bench can pull and a record of every reset: how many
    lines of the current program had been received when it came (nothing may follow it)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.resets: list[tuple[int, int]] = []  # (program index, lines received by then)

    def reset_pin(self) -> None:
        """The controller's reset input: grbl resets exactly as on a Ctrl-X."""
        self._realtime(0x18)

    def _soft_reset(self) -> None:
        record = self.core.record
        if record is not None:
            index = next(i for i, p in enumerate(self.programs) if p is record)
            self.resets.append((index, len(record.received)))
        super()._soft_reset()

    def answer(self, request: dict[str, Any]) -> dict[str, Any]:
        """One control request (see the module docstring); raises on a bad one."""
        cmd = request.get("cmd")
        if cmd == "unplug":
            self.unplug()
        elif cmd == "replug":
            self.replug()
        elif cmd == "reset":
            self.reset_pin()
        elif cmd == "alarm_after":
            self.alarm_after_line(int(request["line"]), int(request.get("code", 1)))
        elif cmd == "time_scale":
            self.time_scale = float(request["value"])
        elif cmd == "programs":
            job = request.get("job_id")
            return {"ok": True, "programs": [
                {
                    "index": i,
                    "job_id": p.job_id,
                    "received": p.received,
                    "executed": len(p.executed),
                    "interrupted": p.interrupted,
                    "resets_at": [n for index, n in self.resets if index == i],
                }
                for i, p in enumerate(self.programs)
                if job is None or p.job_id == job
            ]}  # fmt: skip
        elif cmd != "state":
            raise ValueError(f"unknown command {cmd!r}")
        return {
            "ok": True,
            "state": self.state,
            "plugged": self.plugged,
            "laser_on": self.laser_on,
            "device": self.device_path,
            "resets": len(self.resets),
        }


async def serve(
    *,
    baud: int = 115200,
    time_scale: float = 1.0,
    homing: bool = False,
    tcp: int | None = None,
    axes: str = "XYZ",
    link: Path | None = None,
    control: Path | None = None,
) -> None:
    """Serve the simulator until SIGTERM/SIGINT, printing where to connect."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    settings = {22: 1.0} if homing else None
    sim = BenchSimulator(baud=baud, time_scale=time_scale, settings=settings, axes=axes)
    async with sim, contextlib.AsyncExitStack() as extras:
        if link is not None:
            _symlink(link, sim.device_path)
            extras.callback(link.unlink, missing_ok=True)
        if control is not None:
            _symlink(control, None)
            server = await asyncio.start_unix_server(
                lambda r, w: _control(sim, r, w), path=str(control)
            )
            await extras.enter_async_context(server)
            extras.callback(control.unlink, missing_ok=True)
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


def _symlink(path: Path, target: str | None) -> None:
    """Replace whatever is at ``path`` by a symlink to ``target`` (None: just remove it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    if target is not None:
        path.symlink_to(target)


async def _control(
    sim: BenchSimulator, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    """Answer one JSON request per line until the client closes."""
    try:
        while line := await reader.readline():
            try:
                answer = sim.answer(json.loads(line))
            except Exception as exc:  # a bad request is answered, never fatal to the simulator
                answer = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
            writer.write(json.dumps(answer).encode() + b"\n")
            await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def sim_control(path: Path | str, cmd: str, **args: Any) -> dict[str, Any]:
    """Send one request to a ``--control`` socket; its answer (RuntimeError when not ok)."""
    reader, writer = await asyncio.open_unix_connection(str(path), limit=2**26)
    try:
        writer.write(json.dumps({"cmd": cmd, **args}).encode() + b"\n")
        await writer.drain()
        answer: dict[str, Any] = json.loads(await reader.readline())
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    if not answer.get("ok"):
        raise RuntimeError(f"grbl simulator {path}: {answer.get('error')}")
    return answer


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
