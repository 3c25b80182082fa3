"""A child Python process that says when it is ready, for tests that kill it mid-work."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator


@contextlib.contextmanager
def ready_child(code: str, *args: str, ready: str) -> Iterator[subprocess.Popen[str]]:
    """``python -c code args…``, yielded once it printed the line ``ready``; killed and reaped
    on the way out whatever happened (a test SIGKILLs it itself to play a crash)."""
    child = subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == ready
        yield child
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        if child.stdout is not None:
            child.stdout.close()
