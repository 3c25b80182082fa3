"""Child-process plumbing shared by the embedded launchers.

Every child is started in its own session (a Ctrl-C in the terminal reaches the parent only,
which then stops the children in order), asked to die with the parent when the parent is killed
outright (Linux ``PR_SET_PDEATHSIG``), registered for an ``atexit`` sweep, and stopped with SIGTERM
then SIGKILL.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

log = logging.getLogger(__name__)

_LIVE: set[subprocess.Popen[bytes]] = set()
_LIVE_LOCK = threading.Lock()
_PR_SET_PDEATHSIG = 1


def free_port(host: str = "127.0.0.1") -> int:
    """An ephemeral TCP port on ``host`` that was free a moment ago (callers retry on a race)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """Whether something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def find_binary(name: str, extra_dirs: Sequence[Path] = ()) -> Path | None:
    """Locate ``name`` next to the interpreter (a venv's bin/), in ``extra_dirs``, or on PATH."""
    candidates = [Path(sys.executable).parent / name, *(Path(d) / name for d in extra_dirs)]
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which(name)
    return Path(found) if found else None


def _child_setup() -> None:  # pragma: no cover - runs in the forked child
    if sys.platform.startswith("linux"):
        with contextlib.suppress(Exception):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def spawn(argv: Sequence[str | os.PathLike[str]], log_path: Path) -> subprocess.Popen[bytes]:
    """Start a child with stdout and stderr going to ``log_path``; tracked until :func:`terminate`.

    The parent-death signal is only requested from the main thread, because Linux delivers it when
    the *thread* that forked exits, and worker threads come and go.
    """
    preexec: Callable[[], None] | None = None
    if threading.current_thread() is threading.main_thread():
        preexec = _child_setup
    with open(log_path, "ab") as out:
        proc = subprocess.Popen(
            [os.fspath(a) for a in argv],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=preexec,  # see docstring
        )
    with _LIVE_LOCK:
        _LIVE.add(proc)
    return proc


def terminate(proc: subprocess.Popen[bytes], grace: float = 10.0) -> int | None:
    """Stop ``proc``: SIGTERM, wait ``grace`` seconds, then SIGKILL; always reaps it."""
    try:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                log.warning("pid %s ignored SIGTERM for %.0fs, killing", proc.pid, grace)
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                proc.wait(timeout=grace)
        return proc.returncode
    finally:
        with _LIVE_LOCK:
            _LIVE.discard(proc)


def log_tail(path: Path, limit: int = 2000) -> str:
    """The last ``limit`` characters of a child's log, for error messages."""
    try:
        return path.read_text(errors="replace")[-limit:]
    except OSError:
        return ""


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    """Poll ``predicate`` until it is true or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


@atexit.register
def _sweep() -> None:
    with _LIVE_LOCK:
        leftovers = list(_LIVE)
    for proc in leftovers:
        terminate(proc, grace=5.0)
