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
from concurrent.futures import ThreadPoolExecutor
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


def _load_prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl: Callable[..., int] = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    return prctl


# resolved once here: the forked child should only make the call, not load libraries
_PRCTL = _load_prctl()


def _child_setup() -> None:  # pragma: no cover - runs in the forked child
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, int(signal.SIGTERM))


def _popen(argv: list[str], log_path: Path) -> subprocess.Popen[bytes]:
    with open(log_path, "ab") as out:
        return subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_child_setup,  # see spawn()
        )


# Linux delivers the parent-death signal when the *thread* that forked exits, not the process.
# Children are therefore forked from one thread that lives as long as the process: asyncio's
# worker threads (``to_thread``) come and go and would take the children with them.
_SPAWNER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="crown-spawner")


def spawn(argv: Sequence[str | os.PathLike[str]], log_path: Path) -> subprocess.Popen[bytes]:
    """Start a child with stdout and stderr going to ``log_path``; tracked until :func:`terminate`.

    The child gets SIGTERM if this process dies without stopping it (killed, or a SIGTERM nobody
    handles), so embedded services never outlive ``crown-edge up`` or a test run.
    """
    proc = _SPAWNER.submit(_popen, [os.fspath(a) for a in argv], log_path).result()
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


async def stop_child(
    proc: subprocess.Popen[bytes] | None, *, kill: bool = False, grace: float = 30.0
) -> int | None:
    """Stop a child of :func:`spawn` from a coroutine: SIGTERM, SIGKILL after ``grace`` s
    (``kill``: SIGKILL at once, as a crash or a power cut); its exit code, None without one."""
    import asyncio

    if proc is None:
        return None
    if kill and proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
    return await asyncio.to_thread(terminate, proc, grace)


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
