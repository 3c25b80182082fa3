"""Run HIL scenarios: ``python -m hil.runner [--scenario NAME ...] [--workdir DIR]``.

Prints one line per scenario and the closing ``N passed, M failed`` line; exit 1 on a failure.
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

from hil.rig import rig
from hil.scenarios import ALL


async def run(names: list[str], workdir: Path) -> int:
    """Run the named scenarios on one rig; returns the number of failures."""
    failed = 0
    async with rig(workdir) as r:
        for name in names:
            started = time.monotonic()
            try:
                await ALL[name](r)
            except Exception:
                failed += 1
                print(f"FAIL {name} ({time.monotonic() - started:.1f} s)", flush=True)
                traceback.print_exc()
            else:
                print(f"PASS {name} ({time.monotonic() - started:.1f} s)", flush=True)
    print(f"{len(names) - failed} passed, {failed} failed", flush=True)
    return failed


def main() -> None:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scenario", action="append", choices=sorted(ALL))
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO if args.verbose else logging.ERROR)
    names = args.scenario or list(ALL)
    with tempfile.TemporaryDirectory(prefix="crown-hil-") as tmp:
        failed = asyncio.run(run(names, args.workdir or Path(tmp)))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
