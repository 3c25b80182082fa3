"""A loopback HTTP server for tests, served from a thread while a block runs."""

from __future__ import annotations

import contextlib
import socketserver
import threading
from collections.abc import Iterator


@contextlib.contextmanager
def serving(server: socketserver.TCPServer, join_s: float = 10.0) -> Iterator[str]:
    """Serve ``server`` (bound to 127.0.0.1) from a thread; yields ``http://127.0.0.1:PORT``.

    Afterwards the server is shut down and closed, and its thread joined (at most ``join_s``).
    """
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(join_s)
