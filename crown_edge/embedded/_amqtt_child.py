"""Child-process entry point running the amqtt broker: ``python -m ... HOST PORT``.

Running amqtt in its own process keeps its event loop, its warnings and any connection it leaks
away from the parent, exactly like mosquitto. SIGTERM shuts it down.
"""

from __future__ import annotations

import asyncio
import signal
import sys


async def serve(host: str, port: int) -> None:
    """Run the broker on ``host:port`` with anonymous access until SIGTERM or SIGINT."""
    from amqtt.broker import Broker

    config = {
        "listeners": {"default": {"type": "tcp", "bind": f"{host}:{port}"}},
        "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
    }
    broker = Broker(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await broker.start()
    await stop.wait()
    await broker.shutdown()


def main() -> None:
    """Parse ``HOST PORT`` and serve."""
    host, port = sys.argv[1], int(sys.argv[2])
    asyncio.run(serve(host, port))


if __name__ == "__main__":
    main()
