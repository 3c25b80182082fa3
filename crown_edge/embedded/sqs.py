"""An SQS endpoint on a loopback ephemeral port: moto's threaded server, in-process.

Clients get dummy credentials passed explicitly (never through the environment), so nothing
here can reach real AWS or leak into other code.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from types import TracebackType
from typing import Any, Self

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


class MotoServer:
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
    ) -> None:
        self.host = host
        self.port = port
        self.region = region
        self.quiet = quiet
        self._server: Any = None
        self._lock = threading.Lock()

    @property
    def endpoint_url(self) -> str:
        """``http://127.0.0.1:PORT`` for boto3's ``endpoint_url``."""
        if not self.port:
            raise SyncError("moto server not started")
        return f"http://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        """Whether the server thread is serving."""
        return self._server is not None

    def start(self) -> None:
        """Start serving; returns once the socket listens."""
        from moto.server import ThreadedMotoServer

        with self._lock:
            if self._server is not None:
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

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    async def __aenter__(self) -> Self:
        await asyncio.to_thread(self.start)
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        await asyncio.shield(asyncio.to_thread(self.stop))
