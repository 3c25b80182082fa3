"""Streaming decisions, pure: which line may go out now, and which line an answer belongs to.

**Character counting** (grbl's recommended streaming): the host keeps the sum of the bytes of every
line sent but not yet answered; a line may go out while that sum plus its own length stays within
the controller's RX buffer (127 of 128 bytes usable). Every ``ok`` / ``error:N`` answers the oldest
line in flight, so the controller's buffer is always full and its planner never starves.

**Send-response** waits for each answer before the next line; it is used for ``$`` commands and
EEPROM-writing lines (grbl stops serving its RX buffer while it writes EEPROM), and for a whole
program when ``send_response=True`` (the benchmark's baseline).

Real-time bytes never pass through here: they bypass the count.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

from crown_edge.drivers.grbl.protocol import (
    DEFAULT_RX_BUFFER,
    encode_line,
    is_send_response,
    words_of,
)
from crown_edge.errors import ProtocolError


class Streamer:
    """Character-counting (or send-response) bookkeeping for one program.

    Lines are numbered 1..total. ``start_line`` skips lines 1..start_line. Every line is encoded
    and checked up front, so a program that cannot be sent is refused before any byte goes out.
    """

    def __init__(
        self,
        lines: Sequence[str],
        *,
        rx_buffer: int = DEFAULT_RX_BUFFER,
        start_line: int = 0,
        send_response: bool = False,
        preamble: Sequence[str] = (),
    ) -> None:
        if not 0 <= start_line <= len(lines):
            raise ValueError(f"start_line {start_line} outside 0..{len(lines)}")
        self.total = len(lines)
        self.start_line = start_line
        self.capacity = rx_buffer - 1
        self.send_response = send_response
        # (line number or 0 for preamble, bytes, send-response?)
        self._queue: deque[tuple[int, bytes, bool]] = deque()
        for text in preamble:
            self._queue.append((0, encode_line(text, rx_buffer=rx_buffer), False))
        for number in range(start_line + 1, len(lines) + 1):
            text = lines[number - 1]
            if not text.strip():
                continue  # grbl answers blank lines, but they carry nothing: do not send them
            try:
                data = encode_line(text, rx_buffer=rx_buffer)
            except ProtocolError as exc:
                raise ProtocolError(f"line {number}: {exc}", line=number, text=text) from exc
            self._queue.append((number, data, is_send_response(text)))
        self._in_flight: deque[tuple[int, int]] = deque()  # (line number, bytes)
        self._alone_in_flight = False
        self.in_flight_bytes = 0
        self.bytes_sent = 0
        self.acked_lines = 0
        self.last_acked_line = start_line
        self.last_sent_line = start_line
        """The highest program line written so far (``start_line`` before any)."""
        self.send_limit: int | None = None
        """No program line above this number goes out (None: no limit). The run raises it once
        the resume mark covering the next lines is durable."""

    @property
    def finished_sending(self) -> bool:
        """True when every line has gone out."""
        return not self._queue

    @property
    def all_acked(self) -> bool:
        """True when every line was sent and answered."""
        return not self._queue and not self._in_flight

    @property
    def in_flight(self) -> int:
        """Lines sent and not yet answered."""
        return len(self._in_flight)

    @property
    def next_line(self) -> int | None:
        """The number of the next program line to send (None: only preamble or nothing left)."""
        for number, _, _ in self._queue:
            if number:
                return number
        return None

    def next_to_send(self) -> bytes | None:
        """The next line's bytes if it may go out now (and account it as in flight), else None."""
        if not self._queue:
            return None
        number, data, alone = self._queue[0]
        if self.send_limit is not None and number > self.send_limit:
            return None
        if self._in_flight and (alone or self.send_response or self._alone_in_flight):
            return None
        if self.in_flight_bytes + len(data) > self.capacity:
            return None
        self._queue.popleft()
        self._in_flight.append((number, len(data)))
        self._alone_in_flight = alone
        self.in_flight_bytes += len(data)
        self.bytes_sent += len(data)
        if number:
            self.last_sent_line = number
        return data

    def answer(self) -> int:
        """Account an answer for the oldest line in flight; return its number (0: preamble).

        Raises ProtocolError for an answer with nothing in flight.
        """
        if not self._in_flight:
            raise ProtocolError("controller answered a line that was never sent")
        number, size = self._in_flight.popleft()
        self.in_flight_bytes -= size
        if not self._in_flight:
            self._alone_in_flight = False
        return number

    def on_ok(self) -> int:
        """An ``ok`` arrived; return the acknowledged line number (0 for a preamble line)."""
        number = self.answer()
        if number:
            self.acked_lines = self._acked_count(number)
            self.last_acked_line = number
        return number

    def _acked_count(self, number: int) -> int:
        return number - self.start_line

    def pending_lines(self) -> list[int]:
        """Numbers of the lines in flight, oldest first."""
        return [number for number, _ in self._in_flight]


def position_after(lines: Sequence[str], count: int) -> dict[str, float]:
    """Where lines 1..``count`` leave the head, on the axes they moved (work coordinates)."""
    absolute = True
    pos: dict[str, float] = {}
    for line in lines[:count]:
        parsed = words_of(line)
        for letter, value in parsed:
            if letter == "G" and value in (90.0, 91.0):
                absolute = value == 90.0
        for letter, value in parsed:
            if letter in "XYZA":
                pos[letter] = value if absolute else pos.get(letter, 0.0) + value
    return pos


def resume_preamble(lines: Sequence[str], start_line: int) -> list[str]:
    """Lines that restore the machine before continuing after ``start_line``.

    The ``(job …)`` header comments are repeated, the laser is switched off, units, distance mode
    and feed are restored, and a rapid move (laser off) goes to where line ``start_line`` ended
    (on the axes the program moved; others, such as a focus Z it never names, stay put).
    The laser comes back in M4 (dynamic power, dark at standstill) at the last programmed S, so
    nothing burns where the head waits.
    """
    if start_line <= 0:
        return []
    header = [line.strip() for line in lines[: min(start_line, 3)] if line.strip().startswith("(")]
    units, absolute, feed, spindle = "G21", True, 0.0, "M5"
    power = 0.0
    for line in lines[:start_line]:
        for letter, value in words_of(line):
            if letter == "G" and value in (20.0, 21.0):
                units = f"G{int(value)}"
            elif letter == "G" and value in (90.0, 91.0):
                absolute = value == 90.0
            elif letter == "F":
                feed = value
            elif letter == "S":
                power = value
            elif letter == "M" and value in (3.0, 4.0, 5.0):
                spindle = f"M{int(value)}"
    pos = position_after(lines, start_line)  # only the axes the program itself has moved
    out = [*header, "M5", units, "G90"]
    if pos:
        out.append("G0" + "".join(f"{axis}{pos[axis]:.3f}" for axis in "XYZA" if axis in pos))
    if not absolute:
        out.append("G91")
    if feed:
        out.append(f"F{feed:g}")
    if spindle != "M5":
        out.append(f"M4S{power:g}")
    return out
