"""Run HIL scenarios::

    python -m hil.runner [--scenario NAME ...] [--workdir DIR]
    python -m hil.runner --target FILE [--laser-armed] [--scenario NAME ...] [--workdir DIR]
    python -m hil.runner --target FILE --commissioning [--shop ID] [--report-dir DIR] [--ask]

Without ``--target`` the scenarios run on the built-in simulators. With a target file
(:mod:`hil.target`) they run on its machines and Modbus devices, the workshop daemon as its own
process, every machine **dry** (all motion, laser power held at zero) unless ``--laser-armed``;
then the target's interlocks must read safe before each job, or the run stops with one
``REFUSED …`` line (exit 2). A scenario needing a fault the target cannot inject is reported
``SKIP name (reason)`` and does not fail the run. ``--commissioning`` checks the target's
machines instead (:mod:`hil.commissioning`) and writes the workshop's acceptance report.

Prints one line per scenario (``PASS``/``FAIL``/``SKIP``) and the closing
``N passed, M failed, K skipped`` line; exit 1 on a failure.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import tempfile
import time
import traceback
from pathlib import Path

from crown_edge.errors import ConfigError
from hil import commissioning
from hil.rig import LaserRefused, Rig, rig
from hil.scenarios import ALL, needed


def skip_reason(r: Rig, name: str) -> str | None:
    """Why scenario ``name`` cannot run on this rig (a fault it needs), or None."""
    for kind in needed(ALL[name]):
        reason = r.cannot_inject(kind)
        if reason is not None:
            return reason
    return None


async def run_on(r: Rig, names: list[str]) -> tuple[int, int, int]:
    """Run the named scenarios on ``r``: (passed, failed, skipped). LaserRefused propagates."""
    passed = failed = skipped = 0
    for name in names:
        reason = skip_reason(r, name)
        if reason is not None:
            skipped += 1
            print(f"SKIP {name} ({reason})", flush=True)
            continue
        started = time.monotonic()
        try:
            await ALL[name](r)
        except LaserRefused:
            raise
        except Exception:
            failed += 1
            print(f"FAIL {name} ({time.monotonic() - started:.1f} s)", flush=True)
            traceback.print_exc()
        else:
            passed += 1
            print(f"PASS {name} ({time.monotonic() - started:.1f} s)", flush=True)
    return passed, failed, skipped


async def run(
    names: list[str], workdir: Path, target: Path | None = None, laser_armed: bool = False
) -> int:
    """Run the named scenarios on one rig; the exit status (0 ok, 1 a failure, 2 refused)."""
    try:
        async with rig(workdir, target, laser_armed=laser_armed) as r:
            return await report(r, names)
    except LaserRefused as exc:  # refused while the rig was being built
        print(f"REFUSED {exc}", flush=True)
        return 2


async def report(r: Rig, names: list[str]) -> int:
    """Run ``names`` on ``r`` printing the report; the exit status (0, 1 a failure, 2 refused)."""
    try:
        if r.target is not None:
            mode = "laser ARMED" if r.laser_armed else "laser dry (M5/S0: motion only)"
            print(f"target {r.target.name} ({r.target.path}): {mode}", flush=True)
            if r.laser_armed:
                await r.check_armed()  # before anything moves: refuse at once
        passed, failed, skipped = await run_on(r, names)
    except LaserRefused as exc:
        print(f"REFUSED {exc}", flush=True)
        return 2
    print(f"{passed} passed, {failed} failed, {skipped} skipped", flush=True)
    return 1 if failed else 0


def main() -> None:
    """Command line entry point."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scenario", action="append", choices=sorted(ALL))
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--target", type=Path, help="a target file (hil/targets/*.toml)")
    parser.add_argument(
        "--laser-armed",
        action="store_true",
        help="fire the laser (with --target; the interlocks must read safe before each job)",
    )
    parser.add_argument("-v", "--verbose", action="store_true")
    commissioning.add_arguments(parser)
    args = parser.parse_args()
    if args.laser_armed and args.target is None:
        parser.error("--laser-armed needs --target (the simulators always fire)")
    logging.basicConfig(level=logging.INFO if args.verbose else logging.ERROR)
    if args.commissioning:
        sys.exit(commissioning.run_commissioning(args))
    names = args.scenario or list(ALL)
    with tempfile.TemporaryDirectory(prefix="crown-hil-") as tmp:
        try:
            status = asyncio.run(
                run(names, args.workdir or Path(tmp), args.target, args.laser_armed)
            )
        except ConfigError as exc:  # a target file problem: its one line
            print(exc, file=sys.stderr)
            status = 2
    sys.exit(status)


if __name__ == "__main__":
    main()
