"""A bench of simulators standing in for hardware, each its own process (``[simulator]`` of a
target file such as ``hil/targets/simulated.toml``).

:class:`SimBench` starts, for each ``[simulator.devices.ID]``, ``crown-edge sim modbus`` on TCP
(its relays wired) and, for each ``[simulator.machines.ID]``, ``crown-edge sim grbl`` on a
pseudo-terminal reached through the symlink the target names as that machine's port (like
``/dev/serial/by-id/…``) with a control socket in ``BENCH/control/ID.sock``. The target is then
loaded with the variables ``bench`` (the bench directory) and ``url.ID`` (each device's URL), so
the daemon and the rig use the very paths, URLs and fault commands a real bench would.

Command line::

    python -m hil.bench_sim switch --bench DIR MACHINE off|on|reset|alarm
        the fake USB power switch (off: the simulator's port drops, on: it comes back), the
        controller's reset pin, or an ALARM:1 after line 30 of the program
    python -m hil.bench_sim up TARGET [--bench DIR]
        start the bench and print its variables until Ctrl-C (to drive it by hand)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import tempfile
import tomllib
from collections.abc import Mapping
from contextlib import AsyncExitStack
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from crown_edge.embedded._proc import log_tail, spawn, terminate
from crown_edge.sim.grbl_cli import sim_control
from hil.target import Target, TargetError, load_target, profile_ref, read_simulator

START_TIMEOUT_S = 30.0
ALARM_AFTER_LINE = 30


def control_path(bench: Path, machine_id: str) -> Path:
    """The control socket of ``machine_id``'s simulator in the bench directory."""
    return bench / "control" / f"{machine_id}.sock"


class SimBench:
    """The simulator processes of a target's ``[simulator]``; ``target`` once started."""

    def __init__(self, target_path: Path, bench: Path) -> None:
        self.target_path = Path(target_path)
        self.bench = Path(bench).absolute()
        self.variables: dict[str, str] = {}
        self.target: Target | None = None
        self._stack = AsyncExitStack()

    async def __aenter__(self) -> Self:
        try:
            await self._start()
        except BaseException:
            await self._stack.aclose()
            raise
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._stack.aclose()

    async def _start(self) -> None:
        simulator = read_simulator(self.target_path)
        if simulator is None:
            raise TargetError(self.target_path, "simulator", "", "missing: not a simulated target")
        (self.bench / "control").mkdir(parents=True, exist_ok=True)
        (self.bench / "logs").mkdir(exist_ok=True)
        self.variables["bench"] = str(self.bench)
        profiles = _device_profiles(self.target_path)
        for dev in simulator.devices:
            argv = [sys.executable, "-m", "crown_edge", "sim", "modbus", "--port", "0"]
            argv += ["--profile", profiles.get(dev.id, "rotary-io")]
            for coil, point in dev.relays:
                argv += ["--relay", f"{coil}={point}"]
            log = self.bench / "logs" / f"modbus-{dev.id}.log"
            await self._spawn(argv, log)
            line = await _first_line(log, "tcp://")
            self.variables[f"url.{dev.id}"] = line
        # the device URLs are known: the target can be read whole
        self.target = load_target(self.target_path, self.variables)
        for sm in simulator.machines:
            port = Path(self.target.machine(sm.id).port)
            control = control_path(self.bench, sm.id)
            argv = [sys.executable, "-m", "crown_edge", "sim", "grbl"]
            argv += ["--time-scale", str(sm.time_scale), "--axes", sm.axes]
            argv += ["--link", str(port), "--control", str(control)]
            argv += ["--baud", str(self.target.machine(sm.id).baud)]
            if sm.homing:
                argv.append("--homing")
            log = self.bench / "logs" / f"grbl-{sm.id}.log"
            await self._spawn(argv, log)
            await _first_line(log, "/")
            await _until_answers(control, log)

    async def _spawn(self, argv: list[str], log: Path) -> None:
        proc = await asyncio.to_thread(spawn, argv, log)
        self._stack.push_async_callback(asyncio.to_thread, terminate, proc, 10.0)

    async def control(self, machine_id: str, cmd: str, **args: Any) -> dict[str, Any]:
        """One request to ``machine_id``'s simulator (see ``crown_edge.sim.grbl_cli``)."""
        return await sim_control(control_path(self.bench, machine_id), cmd, **args)


def _device_profiles(path: Path) -> dict[str, str]:
    """Each device's profile reference from the raw file (profiles take no variables)."""
    data = tomllib.loads(path.read_text("utf-8"))
    out: dict[str, str] = {}
    for dev in data.get("devices", []):
        if isinstance(dev, dict) and isinstance(dev.get("profile"), str):
            out[str(dev.get("id"))] = profile_ref(path, dev["profile"])
    return out


async def _first_line(log: Path, prefix: str) -> str:
    """The first line starting with ``prefix`` a child wrote to its log (what it serves)."""
    async with asyncio.timeout(START_TIMEOUT_S):
        while True:
            with contextlib.suppress(OSError):
                for line in log_tail(log, 4096).splitlines():
                    if line.startswith(prefix):
                        return line.strip()
            await asyncio.sleep(0.05)


async def _until_answers(control: Path, log: Path) -> None:
    try:
        async with asyncio.timeout(START_TIMEOUT_S):
            while True:
                with contextlib.suppress(OSError):
                    await sim_control(control, "state")
                    return
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise RuntimeError(f"simulator {control} never answered: {log_tail(log)}") from None


# --- the fake switch -------------------------------------------------------------------------

SWITCH_ACTIONS: Mapping[str, tuple[str, dict[str, Any]]] = {
    "off": ("unplug", {}),
    "on": ("replug", {}),
    "reset": ("reset", {}),
    "alarm": ("alarm_after", {"line": ALARM_AFTER_LINE, "code": 1}),
}


async def switch(bench: Path, machine_id: str, action: str) -> dict[str, Any]:
    """What a bench's switch does to ``machine_id``'s simulator (see the module docstring)."""
    cmd, args = SWITCH_ACTIONS[action]
    return await sim_control(control_path(bench, machine_id), cmd, **args)


async def _up(target: Path, bench: Path) -> None:
    async with SimBench(target, bench) as sb:
        for key, value in sb.variables.items():
            print(f"{key} = {value}", flush=True)
        await asyncio.Event().wait()


def main(argv: list[str] | None = None) -> None:
    """Command line entry point (see the module docstring)."""
    parser = argparse.ArgumentParser(prog="python -m hil.bench_sim", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sw = sub.add_parser("switch", help="the fake USB power switch / reset pin / alarm")
    sw.add_argument("--bench", type=Path, required=True)
    sw.add_argument("machine")
    sw.add_argument("action", choices=sorted(SWITCH_ACTIONS))
    up = sub.add_parser("up", help="start a simulated bench until Ctrl-C")
    up.add_argument("target", type=Path)
    up.add_argument("--bench", type=Path)
    args = parser.parse_args(argv)
    if args.command == "switch":
        try:
            asyncio.run(switch(args.bench, args.machine, args.action))
        except (OSError, RuntimeError) as exc:
            print(f"switch {args.machine} {args.action}: {exc}", file=sys.stderr)
            sys.exit(1)
        return
    with (
        tempfile.TemporaryDirectory(prefix="crown-bench-") as tmp,
        contextlib.suppress(KeyboardInterrupt),
    ):
        asyncio.run(_up(args.target, args.bench or Path(tmp)))


if __name__ == "__main__":
    main()
