"""The commissioning run of a workshop's machines: ``python -m hil.runner --target FILE
--commissioning`` (or ``python -m hil.commissioning --target FILE``).

For each machine of the target: handshake and firmware version, ``$I`` buffers, the laser
settings (``$32``, ``$30``, ``$22``, ``$20``, ``$130``/``$131``), homing, a frame run of a
plate's bounds, a dry job (laser power held at zero) timed against the toolpath estimate, and
the interlocks: read, then each monitored one (door, e-stop) tripped through the bench's fault
injection declared in the target (``[faults.door]``, ``[faults.estop]``), or, with ``--ask``,
by the technician when asked. The checks are the
product's own (:mod:`crown_edge.commission`), on its own drivers and the ports and devices the
target names. The laser never fires.

It writes the acceptance record, JSON and a readable summary, ``0600``, into ``--report-dir``:
``commissioning-{shop}-{YYYYMMDDTHHMMSSZ}.json`` / ``.txt``. Exit status 0 when every check
passed, 1 otherwise, 2 for a usage or target error.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from pathlib import Path

from crown_edge.catalog import Catalog, load_catalog
from crown_edge.commission import Check, Options, Report, check_machines, write_report
from crown_edge.drivers.modbus import ModbusDevice
from crown_edge.errors import CrownEdgeError
from hil.bench_sim import SimBench
from hil.target import Target, load_target, read_simulator

log = logging.getLogger(__name__)

#: The interlock reasons of the device profiles and the target's fault kinds that cause them.
REASON_FAULT = {"door_open": "door", "estop_pressed": "estop"}
#: What a technician is asked to do for each interlock reason: (to make it safe, to open it).
REASON_ASK = {
    "door_open": ("close the door again", "open the door"),
    "estop_pressed": ("release the e-stop", "press the e-stop"),
}
ASK_TIMEOUT_S = 60.0
"""How long a technician has to open (and to close) an interlock when asked."""

Say = Callable[[str], Awaitable[None]]


async def say_on_stdout(text: str) -> None:
    """Tell the technician at the machine (the terminal the run was started from)."""
    print(f">>> {text}", flush=True)


class TargetTripper:
    """Trips interlocks the way the target says the bench can: a Modbus coil or relay write,
    or the fault's inject/clear commands; with ``ask``, the others by asking the technician
    (a bench without relays on its safety loops)."""

    def __init__(self, target: Target, ask: Say | None = None) -> None:
        self.target = target
        self.ask = ask
        self._devices: dict[str, ModbusDevice] = {}
        self._stack = contextlib.AsyncExitStack()

    async def __aenter__(self) -> TargetTripper:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._stack.aclose()

    def by_fault(self, machine: str, reason: str) -> bool:
        """True when the target declares the fault behind ``reason`` for ``machine``."""
        kind = REASON_FAULT.get(reason)
        return kind is not None and self.target.cannot_inject(kind, machine) is None

    def can_trip(self, machine: str, reason: str) -> bool:
        """By the target's fault, or by asking (``ask``) for the interlocks a person can work."""
        return self.by_fault(machine, reason) or (self.ask is not None and reason in REASON_ASK)

    async def trip(self, machine: str, reason: str, open_: bool) -> None:
        """Inject (``open_``) or clear the fault."""
        if not self.by_fault(machine, reason):
            assert self.ask is not None
            await self.ask(f"{machine}: {REASON_ASK[reason][open_]} now")
            return
        fault = self.target.faults[REASON_FAULT[reason]]
        if fault.by_modbus:
            assert fault.device is not None and fault.point is not None
            device = await self._device(fault.device)
            await device.write_point(fault.point, fault.value if open_ else not fault.value)
            return
        which = "inject" if open_ else "clear"
        argv = fault.argv(which, machine)
        if not argv:
            return
        proc = await asyncio.create_subprocess_exec(
            *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
        )
        out, _ = await proc.communicate()
        if proc.returncode != 0:
            text = out.decode(errors="replace").strip()
            raise CrownEdgeError(f"{fault.kind} {which} failed ({proc.returncode}): {text}")

    async def _device(self, device_id: str) -> ModbusDevice:
        if device_id not in self._devices:
            config = next(d for d in self.target.devices if d.id == device_id)
            device = ModbusDevice.from_config(config)
            self._devices[device_id] = await self._stack.enter_async_context(device)
        return self._devices[device_id]


def time_scales(target: Target) -> dict[str, float]:
    """Wall seconds per estimated second, per machine: a simulator's scale, else 1."""
    if target.simulator is None:
        return {}
    return {m.id: m.time_scale for m in target.simulator.machines}


async def commission(
    target: Target,
    catalog: Catalog,
    *,
    shop: str | None = None,
    options: Options = Options(motion=True),
    ask: Say | None = None,
) -> Report:
    """Run every check of every machine of ``target``; the report (not yet written).

    ``ask``: the interlocks the bench cannot trip itself are opened by the technician, asked
    through this (each with :data:`ASK_TIMEOUT_S` to do it).
    """
    started = time.time()
    scales = time_scales(target)
    if ask is not None:
        options = replace(options, trip_timeout_s=max(options.trip_timeout_s, ASK_TIMEOUT_S))
    checks: list[Check] = []
    async with TargetTripper(target, ask) as tripper:
        for machine in target.machines:  # one at a time: a technician watches each
            mine = replace(options, time_scale=scales.get(machine.id, options.time_scale))
            checks += await check_machines(
                [machine],
                target.devices,
                catalog.items.values(),
                catalog.materials,
                mine,
                tripper,
            )
    return Report(
        shop or target.name,
        "commissioning",
        started,
        time.time(),
        tuple(checks),
        source=str(target.path),
    )


@contextlib.asynccontextmanager
async def open_target(path: Path, workdir: Path) -> AsyncIterator[Target]:
    """The target, with its simulators running first when it is a simulated bench."""
    if read_simulator(path) is None:
        yield load_target(path)
        return
    async with SimBench(path, workdir / "bench") as bench:
        assert bench.target is not None
        yield bench.target


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The runner's commissioning options (``--target`` and ``--workdir`` are the runner's)."""
    group = parser.add_argument_group("commissioning (with --target)")
    group.add_argument(
        "--commissioning",
        action="store_true",
        help="commission the target's machines and write the acceptance report",
    )
    group.add_argument(
        "--report-dir",
        type=Path,
        default=Path("commissioning"),
        help="where the report goes (created 0700; files 0600); default ./commissioning",
    )
    group.add_argument("--shop", help="the workshop named in the report (default: the target's)")
    group.add_argument(
        "--ask",
        action="store_true",
        help="trip the interlocks the target has no fault for by asking the technician "
        f"(open the door, press the e-stop; {ASK_TIMEOUT_S:g} s each)",
    )
    group.add_argument(
        "--catalog", type=Path, help="the workshop's catalogue TOML (default: the packaged one)"
    )


async def _run(args: argparse.Namespace, workdir: Path) -> int:
    catalog = load_catalog(args.catalog)
    async with open_target(Path(args.target), workdir) as target:
        ask = say_on_stdout if getattr(args, "ask", False) else None
        report = await commission(target, catalog, shop=args.shop, ask=ask)
    json_path, text_path = write_report(report, args.report_dir)
    sys.stdout.write(report.summary())
    print(f"report: {json_path}\nsummary: {text_path}", flush=True)
    return 0 if report.ok else 1


def run_commissioning(args: argparse.Namespace) -> int:
    """``--commissioning``: run it, print the summary and the report's paths; the exit status."""
    if not getattr(args, "target", None):
        print("--commissioning needs --target FILE (the machines to commission)", file=sys.stderr)
        return 2
    workdir = getattr(args, "workdir", None)
    try:
        if workdir is not None:
            return asyncio.run(_run(args, Path(workdir)))
        with tempfile.TemporaryDirectory(prefix="crown-commission-") as tmp:
            return asyncio.run(_run(args, Path(tmp)))
    except CrownEdgeError as exc:
        print(str(exc), file=sys.stderr)
        return 2


def main(argv: list[str] | None = None) -> None:
    """``python -m hil.commissioning --target FILE [--report-dir DIR]``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", type=Path, required=True)
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("-v", "--verbose", action="store_true")
    add_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.ERROR)
    sys.exit(run_commissioning(args))


if __name__ == "__main__":
    main()
