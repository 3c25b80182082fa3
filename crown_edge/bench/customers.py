"""The pipeline benchmark's customers, in a process of their own.

Customers order from their own machines: ordering from threads of the benchmark's process (which
also holds the cloud side: the Order API, the workflow worker, the dispatcher) made the answer's
time partly the customers' own work, competing with the server for one interpreter. Here they
share nothing with the server but the box.

The protocol is JSON lines. The parent writes ``{"url", "key"}`` (the key travels on stdin, not
on the command line, where ``ps`` would show it), this process answers ``{"ready": true}``; then
each line ``{"orders": [...], "concurrency": k}`` is POSTed by ``k`` customers at once and
answered with one line per order as it is answered (``job_id``, ``status``, ``body``,
``accept_ms``: the POST's round trip as the customer saw it, ``accepted_at``: epoch seconds),
then ``{"done": n}``. End of input ends the process.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import IO, Any

Post = Callable[[str, str, Any, str | None], tuple[int, dict[str, Any]]]


def serve(lines: Iterable[str], out: IO[str], post: Post) -> None:
    """Answer the parent's lines (see the module docstring) on ``out``; ``post`` is the HTTP
    call (:func:`crown_edge.stack.http_json`)."""
    it = iter(lines)
    config = json.loads(next(it))
    url, key = str(config["url"]), str(config["key"])
    lock = threading.Lock()

    def say(message: dict[str, Any]) -> None:
        with lock:
            out.write(json.dumps(message) + "\n")
            out.flush()

    def one(order: dict[str, Any]) -> None:
        t0 = time.perf_counter()
        try:
            status, body = post("POST", url, order, key)
        except (OSError, ValueError) as exc:  # refused, reset, timed out, not JSON: reported
            status, body = 0, {"error": f"{type(exc).__name__}: {exc}"}
        accept_ms = (time.perf_counter() - t0) * 1000
        say(
            {
                "job_id": order.get("job_id"),
                "status": status,
                "body": body,
                "accept_ms": accept_ms,
                "accepted_at": time.time(),
            }
        )

    say({"ready": True})
    for line in it:
        if not line.strip():
            continue
        request = json.loads(line)
        orders = list(request["orders"])
        with ThreadPoolExecutor(max_workers=max(1, int(request["concurrency"]))) as pool:
            for done in [pool.submit(one, order) for order in orders]:
                done.result()
        say({"done": len(orders)})


def main() -> None:
    """``python -m crown_edge.bench.customers``: serve stdin to stdout."""
    from crown_edge.stack import http_json

    serve(sys.stdin, sys.stdout, http_json)


if __name__ == "__main__":
    main()
