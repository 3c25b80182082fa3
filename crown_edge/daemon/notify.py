"""systemd notification, written directly against ``$NOTIFY_SOCKET`` (no libsystemd).

``READY=1`` once the daemon serves; ``WATCHDOG=1`` only while the event loop turns and the store
answers; ``STOPPING=1`` on shutdown. Without ``$NOTIFY_SOCKET`` every call is a no-op.
"""

from __future__ import annotations

import os
import socket


class Notifier:
    """Sends sd_notify datagrams."""

    def __init__(self, address: str | None = None) -> None:
        self.address = address if address is not None else os.environ.get("NOTIFY_SOCKET")

    @property
    def enabled(self) -> bool:
        """True under systemd (Type=notify)."""
        return bool(self.address)

    def watchdog_interval(self) -> float | None:
        """Half of ``$WATCHDOG_USEC`` in seconds, when systemd asked for a watchdog."""
        usec = os.environ.get("WATCHDOG_USEC")
        if not usec or not usec.isdigit():
            return None
        pid = os.environ.get("WATCHDOG_PID")
        if pid and pid.isdigit() and int(pid) != os.getpid():
            return None
        return int(usec) / 2_000_000

    def send(self, state: str) -> bool:
        """Send one state string (``READY=1``, ``WATCHDOG=1``...); False when not delivered."""
        if not self.address:
            return False
        addr = self.address
        if addr.startswith("@"):
            addr = "\0" + addr[1:]
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.connect(addr)
                sock.sendall(state.encode())
        except OSError:
            return False
        return True
