"""grbl's serial layer, simulated on a pseudo-terminal: the wire, the RX ring and the TX queue.

No grbl logic lives here; :class:`~crown_edge.sim.grbl.GrblSimulator` reads lines from
:attr:`SerialPort.rx` and writes its responses with :meth:`SerialPort.write`. What it models:

* the wire: bytes travel at ``baud`` 8N1 (10 bits a byte) in each direction, every duration
  multiplied by ``time_scale`` (0 = instant);
* the receive side of grbl's ``serial.c``: real-time bytes (``?`` ``!`` ``~`` 0x18, 0x80-0xFF)
  are taken out of the stream on arrival and handed to ``on_realtime``; every other byte goes
  into the RX ring (``rx_buffer`` - 1 usable), and bytes beyond it are dropped and counted in
  :attr:`SimStats.rx_overflows`;
* the cable: :meth:`SerialPort.unplug` closes the pty, :meth:`SerialPort.plug` opens a new one
  behind the same :attr:`SerialPort.device_path` (a stable symlink, like
  ``/dev/serial/by-id/…``); a :attr:`SerialPort.stalled` controller neither reads nor writes.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import tempfile
import tty
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

REALTIME = frozenset(b"?!~\x18") | frozenset(range(0x80, 0x100))
"""Bytes grbl's serial interrupt takes out of the stream instead of buffering."""
_ANY_REALTIME = re.compile(rb"[?!~\x18\x80-\xff]")
"""Finds a :data:`REALTIME` byte in a piece (most pieces have none: taken in whole)."""


@dataclass(slots=True)
class SimStats:
    """Counters a test or benchmark can check."""

    rx_bytes: int = 0
    tx_bytes: int = 0
    rx_overflows: int = 0
    rx_peak: int = 0
    lines: int = 0
    tx_dropped: int = 0
    resets: int = 0


class SerialPort:
    """A serial line on a pty with grbl's RX ring behind it.

    ``on_realtime(byte)`` runs for each real-time byte as it arrives; ``on_received()`` after
    each piece of the stream has been taken in (the main loop may have a line to read).
    """

    def __init__(
        self,
        *,
        baud: int,
        time_scale: float,
        rx_buffer: int,
        stats: SimStats,
        on_realtime: Callable[[int], None],
        on_received: Callable[[], None],
    ) -> None:
        self.baud = baud
        self.time_scale = time_scale
        self.rx_buffer = rx_buffer
        self.stats = stats
        self.rx = bytearray()
        """grbl's RX ring: bytes received and not yet read by the main loop."""
        self.stalled = False
        """A hung controller: nothing is taken in from the wire and nothing goes out."""
        self._on_realtime = on_realtime
        self._on_received = on_received
        self._byte_time = 10.0 / baud
        self._dir: str | None = None
        self._master: int | None = None
        self._slave: int | None = None
        self._pty_path = ""
        self._wire: deque[tuple[float, bytes]] = deque()
        self._tx: deque[tuple[float, bytes]] = deque()
        self._rx_free_at = 0.0
        self._tx_free_at = 0.0
        self._sending = False  # the transmit loop holds a response it has not written yet
        self._wake_wire = asyncio.Event()
        self._wake_tx = asyncio.Event()

    # --- the device ------------------------------------------------------------------------------

    def open(self) -> None:
        """Create the directory of the device symlink and plug the cable in."""
        self._dir = tempfile.mkdtemp(prefix="grbl-sim-")
        self.plug()

    def close(self) -> None:
        """Close the pty and remove the symlink with its directory."""
        self._close_fds()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    @property
    def device_path(self) -> str:
        """Stable path of the serial device (a symlink to the current pty)."""
        if self._dir is None:
            raise RuntimeError("simulator not started")
        return os.path.join(self._dir, "ttyGRBL0")

    @property
    def pty_path(self) -> str:
        """The current ``/dev/pts/N`` behind :attr:`device_path`."""
        return self._pty_path

    @property
    def plugged(self) -> bool:
        """False after :meth:`unplug` until :meth:`plug`."""
        return self._master is not None

    def plug(self) -> None:
        """Open a new pty behind :attr:`device_path`, with empty buffers."""
        master, slave = os.openpty()
        tty.setraw(slave)
        os.set_blocking(master, False)
        self._master, self._slave = master, slave
        self._pty_path = os.ttyname(slave)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.device_path)
        os.symlink(self._pty_path, self.device_path)
        asyncio.get_running_loop().add_reader(master, self._on_readable)
        self.clear()

    def unplug(self) -> None:
        """Pull the cable: bytes in flight are lost, the pty closes and the port vanishes."""
        self.clear()
        self._close_fds()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.device_path)

    def clear(self) -> None:
        """Forget every byte on the wire, in the RX ring and waiting to be sent."""
        self._wire.clear()
        self.rx.clear()
        self._tx.clear()

    def _close_fds(self) -> None:
        if self._master is not None:
            asyncio.get_running_loop().remove_reader(self._master)
            os.close(self._master)
            self._master = None
        if self._slave is not None:
            os.close(self._slave)
            self._slave = None

    # --- bytes -----------------------------------------------------------------------------------

    def write(self, data: bytes, ready: float) -> None:
        """Send ``data`` to the host once the loop clock reaches ``ready`` and the wire is free.

        A response due now on an idle wire that takes no time (``time_scale`` 0) is written at
        once: the transmit loop would only write it one loop turn later, and a zero-time laser
        answers thousands of lines a job. Anything queued or on its way goes first.
        """
        if (
            not self._tx
            and not self._sending
            and not self.stalled
            and self.time_scale == 0
            and self._master is not None
        ):
            now = asyncio.get_running_loop().time()
            if ready <= now and self._tx_free_at <= now:
                self._put(data)
                return
        self._tx.append((ready, data))
        self._wake_tx.set()

    def _put(self, data: bytes) -> None:
        """Write ``data`` on the pty now (bytes nobody reads fall off the wire)."""
        if self._master is None:
            return
        try:
            written = os.write(self._master, data)
        except OSError:
            written = 0
        self.stats.tx_bytes += written
        self.stats.tx_dropped += len(data) - written

    def wake(self) -> None:
        """Make both loops look again (after :attr:`stalled` was cleared)."""
        self._wake_wire.set()
        self._wake_tx.set()

    def _on_readable(self) -> None:
        if self._master is None:
            return
        try:
            data = os.read(self._master, 4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            return  # no slave open: nothing to read
        now = asyncio.get_running_loop().time()
        start = 0
        while start < len(data):
            end = data.find(b"\n", start)
            end = len(data) if end < 0 else end + 1
            piece = data[start:end]
            self._rx_free_at = (
                max(self._rx_free_at, now) + len(piece) * self._byte_time * self.time_scale
            )
            if self._rx_free_at <= now and not self._wire and not self.stalled:
                # arrived already (a zero-time wire) and nothing ahead of it: take it in now
                # rather than one loop turn later in the receive loop
                self._take_in(piece)
            else:
                self._wire.append((self._rx_free_at, piece))
            start = end
        if self._wire:
            self._wake_wire.set()

    async def receive_loop(self) -> None:
        """Take each piece of the stream in when its last byte has crossed the wire."""
        while True:
            if not self._wire or self.stalled:
                self._wake_wire.clear()
                await self._wake_wire.wait()
                continue
            arrival, piece = self._wire[0]
            await _sleep_until(arrival)
            if self.stalled or not self._wire or self._wire[0][1] is not piece:
                continue
            self._wire.popleft()
            self._take_in(piece)

    def _take_in(self, piece: bytes) -> None:
        """A piece has crossed the wire: real-time bytes to ``on_realtime``, the rest into the
        RX ring (CR as LF, like grbl's line reader), what does not fit dropped and counted."""
        stats, rx = self.stats, self.rx
        stats.rx_bytes += len(piece)
        if len(rx) + len(piece) < self.rx_buffer and _ANY_REALTIME.search(piece) is None:
            rx += piece.replace(b"\r", b"\n")  # the common case, without a loop per byte
            stats.rx_peak = max(stats.rx_peak, len(rx))
        else:
            for byte in piece:
                if byte in REALTIME:
                    self._on_realtime(byte)  # may reset: the ring is emptied under us
                elif len(rx) >= self.rx_buffer - 1:
                    stats.rx_overflows += 1
                else:
                    rx.append(0x0A if byte == 0x0D else byte)
                    stats.rx_peak = max(stats.rx_peak, len(rx))
        self._on_received()

    async def transmit_loop(self) -> None:
        """Put queued responses on the wire at the baud rate, in order."""
        loop = asyncio.get_running_loop()
        while True:
            if not self._tx or self.stalled:
                self._wake_tx.clear()
                await self._wake_tx.wait()
                continue
            ready, data = self._tx.popleft()
            start = max(loop.time(), ready, self._tx_free_at)
            self._tx_free_at = start + len(data) * self._byte_time * self.time_scale
            self._sending = True  # a write() meanwhile must queue behind this one
            try:
                await _sleep_until(self._tx_free_at)
                self._put(data)
            finally:
                self._sending = False


async def _sleep_until(deadline: float) -> None:
    delay = deadline - asyncio.get_running_loop().time()
    await asyncio.sleep(delay if delay > 0 else 0)
