"""An SQS endpoint on a loopback ephemeral port: moto's server, in-process or as a child.

In-process (the default, for tests) is quick to start; ``process=True`` (``crown-edge up``, the
pipeline benchmark) runs it as a child process so its request handling does not compete for
the interpreter lock with the services it is serving.

Clients get dummy credentials passed explicitly (never through the environment), so nothing
here can reach real AWS or leak into other code.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

from crown_edge.embedded._proc import free_port, log_tail, spawn, terminate, wait_until
from crown_edge.embedded._service import LocalService
from crown_edge.errors import SyncError
from crown_edge.sync.queues import ALL_QUEUES, QueueSpec, create_queues

log = logging.getLogger(__name__)

DUMMY_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
DEFAULT_REGION = "us-east-1"


def sqs_client(endpoint_url: str | None, region: str = DEFAULT_REGION, **credentials: str) -> Any:
    """A boto3 SQS client on its own session; dummy credentials unless some are given.

    With ``endpoint_url=None`` and real credentials this talks to AWS. Close it with ``.close()``.
    """
    import boto3.session

    creds = credentials or DUMMY_CREDENTIALS
    session = boto3.session.Session(region_name=region, **creds)
    return session.client("sqs", endpoint_url=endpoint_url)


#: How many ports a moto child process is started on before giving up.
MOTO_START_ATTEMPTS = 3


def _is_moto(endpoint_url: str) -> bool:
    """Whether moto answers at ``endpoint_url`` (its own API, not merely an open port)."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"{endpoint_url}/moto-api/data.json", timeout=2) as answer:
            return bool(answer.status == 200)
    except (urllib.error.URLError, OSError, ValueError):
        return False


class MotoServer(LocalService):
    """moto's server (all AWS services it emulates) on ``127.0.0.1`` and an ephemeral port.

    moto keeps its backends per *process*: two servers started in one process share their queues,
    and :meth:`reset` clears both.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        region: str = DEFAULT_REGION,
        quiet: bool = True,
        process: bool = False,
    ) -> None:
        self.host = host
        self.port = port
        self.region = region
        self.quiet = quiet
        self.process = process
        self._server: Any = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._lock = threading.Lock()

    @property
    def endpoint_url(self) -> str:
        """``http://127.0.0.1:PORT`` for boto3's ``endpoint_url``."""
        if not self.port:
            raise SyncError("moto server not started")
        return f"http://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        """Whether the server is serving."""
        return self._server is not None or self._proc is not None

    def _start_process(self) -> None:
        """moto as a child on a free port. "Something listens on the port" is not enough: a
        port found free can be taken by another service starting at the same moment (Temporal's
        dev server opens several), and moto then fails to bind and exits while the other
        answers. So it is ready when moto itself answers; a moto that exited is started again on
        another port (a port given by the caller is tried once)."""
        chosen = self.port
        self._tmp = tempfile.TemporaryDirectory(prefix="crown-moto-")
        log_path = Path(self._tmp.name) / "moto.log"
        for _attempt in range(1 if chosen else MOTO_START_ATTEMPTS):
            self.port = chosen or free_port(self.host)
            argv = [sys.executable, "-m", "moto.server", "-H", self.host, "-p", str(self.port)]
            proc = spawn(argv, log_path)
            self._proc = proc

            def settled(proc: subprocess.Popen[bytes] = proc) -> bool:
                return proc.poll() is not None or _is_moto(self.endpoint_url)

            if wait_until(settled, 60.0):
                if proc.poll() is None:
                    log.info("moto server (child process) ready at %s", self.endpoint_url)
                    return
                log.warning("moto server exited at start on port %s, trying again", self.port)
            terminate(proc)
            self._proc = None
        raise SyncError(f"moto server did not start: {log_tail(log_path)}")

    def start(self) -> None:
        """Start serving; returns once the socket listens."""
        from moto.server import ThreadedMotoServer

        with self._lock:
            if self.running:
                return
            if self.process:
                self._start_process()
                return
            if self.quiet:  # werkzeug logs every request at INFO: noise in `crown-edge up`
                logging.getLogger("werkzeug").setLevel(logging.WARNING)
            server = ThreadedMotoServer(ip_address=self.host, port=self.port, verbose=False)
            server.start()
            self._server = server
            self.port = int(server.get_host_and_port()[1])
            log.info("moto server ready at %s", self.endpoint_url)

    def stop(self) -> None:
        """Stop serving and close the listening socket. Idempotent."""
        with self._lock:
            proc, self._proc = self._proc, None
            if proc is not None:
                terminate(proc)
                if self._tmp is not None:
                    self._tmp.cleanup()
                    self._tmp = None
            server, self._server = self._server, None
            if server is None:
                return
            server.stop()
            inner = getattr(server, "_server", None)
            if inner is not None:
                inner.server_close()

    def client(self) -> Any:
        """A boto3 SQS client for this server (close it when done)."""
        return sqs_client(self.endpoint_url, self.region)

    def create_queues(self, specs: tuple[QueueSpec, ...] = ALL_QUEUES) -> dict[str, str]:
        """Create the crown-edge queues here; return ``{name: queue_url}``."""
        client = self.client()
        try:
            return create_queues(client, specs)
        finally:
            client.close()

    def reset(self) -> None:
        """Forget every queue and message (moto's ``/moto-api/reset``)."""
        import urllib.request

        req = urllib.request.Request(f"{self.endpoint_url}/moto-api/reset", method="POST")
        with urllib.request.urlopen(req, timeout=10) as resp:
            resp.read()
