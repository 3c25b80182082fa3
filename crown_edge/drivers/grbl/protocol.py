"""grbl 1.1 serial protocol as pure sans-I/O objects (h11 style).

Bytes from the controller go in with :meth:`GrblProtocol.receive_data`; typed events come out of
:meth:`GrblProtocol.next_event`. Commands go the other way through :func:`encode_line` and the
:class:`RealTime` bytes. Nothing here touches a port or a clock.

Wire format (grbl 1.1, every message ends ``\\r\\n``)::

    ok                              the line was accepted (planned, not yet executed)
    error:N                         the line was refused; N from codes.ERROR_CODES
    ALARM:N                         motion stopped; N from codes.ALARM_CODES
    <Idle|MPos:0.000,0.000,0.000|FS:0,0|WCO:0.000,0.000,0.000>     status, fields in any order
    [MSG:Caution: Unlocked]  [VER:1.1h.20190825:]  [OPT:V,15,128]  [GC:G0 G54 ...]   feedback
    Grbl 1.1h ['$' for help]        welcome banner after power-up or soft reset
    $110=5000.000                   one setting, answer to ``$$``
    >G21G54:ok                      a startup line was executed

Host side quirks: real-time bytes (``?`` ``!`` ``~`` 0x18 0x84 0x85 0x90..0xA1) are picked out of
the byte stream by the controller's serial interrupt wherever they occur, so a line must never
contain them; grbl keeps at most 79 characters of a line (after dropping spaces and comments) and
answers ``error:11`` otherwise, so such lines are refused before sending.

Anything unparseable raises :class:`~crown_edge.errors.ProtocolError`; the offending line is
consumed so the caller can log it and keep reading.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import Enum
from typing import Final

from crown_edge.drivers.grbl.codes import alarm_info, error_info
from crown_edge.errors import ProtocolError

LINE_BUFFER_SIZE: Final = 80
"""grbl's line buffer; the longest accepted line is one less (the terminating NUL)."""
MAX_LINE_CHARS: Final = LINE_BUFFER_SIZE - 1
DEFAULT_RX_BUFFER: Final = 128
"""grbl 1.1's serial receive buffer (127 bytes usable: the ring keeps one slot free)."""
DEFAULT_PLANNER_BLOCKS: Final = 15
MAX_INCOMING_LINE: Final = 256
"""Longest controller line accepted; longer runs of bytes without a newline are garbage."""


class RealTime(bytes, Enum):
    """Real-time command bytes: acted on at once, never counted against the RX buffer."""

    STATUS = b"?"
    CYCLE_START = b"~"
    FEED_HOLD = b"!"
    SOFT_RESET = b"\x18"
    SAFETY_DOOR = b"\x84"
    JOG_CANCEL = b"\x85"
    FEED_OV_RESET = b"\x90"
    FEED_OV_PLUS_10 = b"\x91"
    FEED_OV_MINUS_10 = b"\x92"
    FEED_OV_PLUS_1 = b"\x93"
    FEED_OV_MINUS_1 = b"\x94"
    RAPID_OV_RESET = b"\x95"
    RAPID_OV_50 = b"\x96"
    RAPID_OV_25 = b"\x97"
    SPINDLE_OV_RESET = b"\x99"
    SPINDLE_OV_PLUS_10 = b"\x9a"
    SPINDLE_OV_MINUS_10 = b"\x9b"
    SPINDLE_OV_PLUS_1 = b"\x9c"
    SPINDLE_OV_MINUS_1 = b"\x9d"
    SPINDLE_STOP = b"\x9e"
    COOLANT_FLOOD = b"\xa0"
    COOLANT_MIST = b"\xa1"


REALTIME_BYTES: Final = frozenset(b for rt in RealTime for b in rt.value)
"""Every byte value grbl's serial interrupt takes out of the stream (plus the 0x80-0xFF range)."""


def is_realtime(byte: int) -> bool:
    """True if grbl intercepts ``byte`` as a real-time command (all of 0x80-0xFF are reserved)."""
    return byte in REALTIME_BYTES or byte >= 0x80


# --- events --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Ok:
    """``ok``: the oldest unacknowledged line was accepted."""


@dataclass(frozen=True, slots=True)
class Error:
    """``error:N``: the oldest unacknowledged line was refused."""

    code: int
    name: str
    text: str


@dataclass(frozen=True, slots=True)
class Alarm:
    """``ALARM:N``: the controller stopped and locked itself."""

    code: int
    name: str
    text: str


@dataclass(frozen=True, slots=True)
class Status:
    """A ``<...>`` status report. Absent fields are ``None``; unknown fields land in ``extra``."""

    state: str
    substate: int | None = None
    mpos: tuple[float, ...] | None = None
    wpos: tuple[float, ...] | None = None
    wco: tuple[float, ...] | None = None
    feed: float | None = None
    spindle: float | None = None
    planner_free: int | None = None
    rx_free: int | None = None
    line: int | None = None
    overrides: tuple[int, int, int] | None = None
    pins: str | None = None
    accessories: str | None = None
    extra: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Welcome:
    """The banner grbl prints after power-up or a soft reset, e.g. ``Grbl 1.1h ['$' for help]``."""

    version: str


@dataclass(frozen=True, slots=True)
class Feedback:
    """A bracketed message: ``[MSG:…]``, ``[GC:…]``, ``[HLP:…]``, ``[G54:…]``, ``[echo:…]``…"""

    tag: str
    text: str


@dataclass(frozen=True, slots=True)
class Version:
    """``[VER:1.1h.20190825:name]`` from ``$I``."""

    version: str
    info: str


@dataclass(frozen=True, slots=True)
class Options:
    """``[OPT:codes,blocks,rx]`` from ``$I``: build option letters, planner blocks, RX buffer."""

    codes: str
    planner_blocks: int | None
    rx_buffer: int | None


@dataclass(frozen=True, slots=True)
class Setting:
    """``$N=value`` from ``$$``."""

    number: int
    value: str


@dataclass(frozen=True, slots=True)
class StartupLine:
    """``>line:ok`` (or ``>line:error:N``): a stored startup block was executed."""

    line: str
    result: str


Event = Ok | Error | Alarm | Status | Welcome | Feedback | Version | Options | Setting | StartupLine

_WELCOME = re.compile(r"^Grbl\s+(\S+)\s*(?:\[.*\])?\s*$")
_SETTING = re.compile(r"^\$(\d+)=(\S*)$")
_STATES = frozenset(
    {"Idle", "Run", "Hold", "Jog", "Alarm", "Door", "Check", "Home", "Sleep", "Tool"}
)


def _floats(text: str) -> tuple[float, ...]:
    return tuple(float(part) for part in text.split(","))


def _parse_status(body: str) -> Status:
    parts = body.split("|")
    head, _, sub = parts[0].partition(":")
    if head not in _STATES:
        raise ValueError(f"unknown state {head!r}")
    values: dict[str, object] = {"state": head, "substate": int(sub) if sub else None}
    extra: dict[str, str] = {}
    for part in parts[1:]:
        key, sep, value = part.partition(":")
        if not sep and key:
            extra[key] = ""
            continue
        if key in ("MPos", "WPos", "WCO"):
            values[key.lower()] = _floats(value)
        elif key == "FS":
            feed, spindle = _floats(value)
            values["feed"], values["spindle"] = feed, spindle
        elif key == "F":
            values["feed"] = float(value)
        elif key == "Bf":
            blocks, rx = (int(v) for v in value.split(","))
            values["planner_free"], values["rx_free"] = blocks, rx
        elif key == "Ln":
            values["line"] = int(value)
        elif key == "Ov":
            feed_ov, rapid_ov, spindle_ov = (int(v) for v in value.split(","))
            values["overrides"] = (feed_ov, rapid_ov, spindle_ov)
        elif key == "Pn":
            values["pins"] = value
        elif key == "A":
            values["accessories"] = value
        else:
            extra[key] = value
    return Status(extra=extra, **values)  # type: ignore[arg-type]


def parse_line(line: str) -> Event | None:
    """Parse one controller line (no line ending). ``None`` for blank lines.

    Raises ProtocolError when the line is not grbl 1.1 output.
    """
    text = line.strip()
    if not text:
        return None
    try:
        if text == "ok":
            return Ok()
        if text.startswith("error:"):
            code = int(text[6:])
            return Error(code, *error_info(code))
        if text.startswith("ALARM:"):
            code = int(text[6:])
            return Alarm(code, *alarm_info(code))
        if text.startswith("<") and text.endswith(">"):
            return _parse_status(text[1:-1])
        if text.startswith("[") and text.endswith("]"):
            tag, sep, body = text[1:-1].partition(":")
            if not sep or not tag:
                raise ValueError("feedback without tag")
            if tag == "VER":
                version, _, info = body.partition(":")
                return Version(version, info)
            if tag == "OPT":
                fields = body.split(",")
                blocks = int(fields[1]) if len(fields) > 1 and fields[1] else None
                rx = int(fields[2]) if len(fields) > 2 and fields[2] else None
                return Options(fields[0], blocks, rx)
            return Feedback(tag, body)
        if text.startswith(">"):
            body, sep, result = text[1:].rpartition(":")
            if result.isdigit() and body.endswith(":error"):
                body, result = body[:-6], f"error:{result}"
            elif not sep:
                raise ValueError("startup line without result")
            return StartupLine(body, result)
        if match := _SETTING.match(text):
            return Setting(int(match[1]), match[2])
        if match := _WELCOME.match(text):
            return Welcome(match[1])
    except (ValueError, TypeError) as exc:
        raise ProtocolError(f"malformed controller line {text!r}: {exc}", line=text) from exc
    raise ProtocolError(f"unexpected controller line {text!r}", line=text)


class GrblProtocol:
    """Incremental parser for controller output: ``receive_data`` then ``next_event`` until None.

    A bad line raises ProtocolError once and is dropped; parsing continues with the next line.
    Feeding the same bytes in any chunking yields the same events and errors.
    """

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._discarding = False

    def receive_data(self, data: bytes) -> None:
        """Append bytes read from the port."""
        self._buffer += data

    def next_event(self) -> Event | None:
        """The next complete event, or None when more bytes are needed."""
        while True:
            newline = self._buffer.find(b"\n")
            if newline < 0:
                if len(self._buffer) > MAX_INCOMING_LINE and not self._discarding:
                    self._buffer.clear()
                    self._discarding = True
                    raise ProtocolError("controller line too long (no newline)")
                if self._discarding:
                    self._buffer.clear()
                return None
            raw = bytes(self._buffer[:newline])
            del self._buffer[: newline + 1]
            if self._discarding:
                self._discarding = False
                continue
            if len(raw) > MAX_INCOMING_LINE:
                raise ProtocolError("controller line too long")
            try:
                text = raw.decode("ascii")
            except UnicodeDecodeError as exc:
                raise ProtocolError(f"non-ASCII bytes from controller: {raw!r}") from exc
            if any(ord(c) < 0x20 and c not in "\r\t" for c in text):
                raise ProtocolError(f"control bytes in controller line: {raw!r}")
            event = parse_line(text)
            if event is not None:
                return event

    def events(self, data: bytes = b"") -> list[Event]:
        """Feed ``data`` and return every complete event. Stops at the first bad line (raised)."""
        self.receive_data(data)
        out: list[Event] = []
        while (event := self.next_event()) is not None:
            out.append(event)
        return out


# --- commands ------------------------------------------------------------------------------------


_BLANKS = {c: None for c in range(0x21)}
"""Spaces and control characters: grbl's line reader drops them (``str.translate`` table)."""
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f]")
"""Control characters a line may not hold (a tab is only white space)."""
_REALTIME_CHARS = re.compile(r"[?!~]")
"""The printable ASCII real-time commands (0x18 is a control character, 0x80+ not ASCII)."""


def effective_length(line: str) -> int:
    """Characters grbl keeps of ``line``: spaces, control chars and comments are dropped."""
    if "(" not in line and ";" not in line:
        return len(line.translate(_BLANKS))  # no comment: one pass in C, not one per character
    count = 0
    in_paren = False
    for char in line:
        if in_paren:
            in_paren = char != ")"
        elif char == "(":
            in_paren = True
        elif char == ";":
            break
        elif char > " ":
            count += 1
    return count


def encode_line(line: str, *, rx_buffer: int = DEFAULT_RX_BUFFER) -> bytes:
    """Encode one G-code or ``$`` line with its newline, refusing what grbl would mangle.

    Raises ProtocolError for non-ASCII text, embedded newlines or real-time characters, a line grbl
    would overflow (error:11) or one that cannot fit the controller's RX buffer at all.
    """
    text = line.strip()
    if not text.isascii():
        raise ProtocolError(f"line is not ASCII: {text!r}", line=text)
    # one regex scan each instead of a Python loop per character: every line of every
    # program passes here before it is streamed
    if _CONTROL.search(text):
        raise ProtocolError(f"line contains control characters: {text!r}", line=text)
    if _REALTIME_CHARS.search(text):
        raise ProtocolError(f"line contains a real-time command character: {text!r}", line=text)
    if effective_length(text) > MAX_LINE_CHARS:
        raise ProtocolError(
            f"line longer than grbl's {LINE_BUFFER_SIZE}-char line buffer: {text!r}", line=text
        )
    data = text.encode("ascii") + b"\n"
    if len(data) > rx_buffer - 1:
        raise ProtocolError(f"line does not fit the {rx_buffer}-byte RX buffer", line=text)
    return data


_WORD = re.compile(r"([A-Z])\s*([-+]?(?:\d+\.?\d*|\.\d+))")
_COMMENT = re.compile(r"\([^)]*\)|;.*$")


def words_of(line: str) -> list[tuple[str, float]]:
    """The (letter, value) words of a G-code line, comments dropped, letters upper-cased."""
    return [(m[1], float(m[2])) for m in _WORD.finditer(_COMMENT.sub("", line.upper()))]


def is_send_response(line: str) -> bool:
    """True for lines that must be sent alone (send-response): ``$`` commands and EEPROM writes.

    ``$`` settings, ``$N`` startup lines and ``$RST`` write EEPROM; so do G10 L2/L20, G28.1, G30.1.
    grbl does not buffer while writing EEPROM, so streaming after them could overflow its RX buffer.
    ``$J=`` jogs are motion and may be streamed.
    """
    text = line.strip().upper().replace(" ", "")
    if text.startswith("$"):
        return not text.startswith("$J=")
    return bool(re.search(r"G10L2|G10L20|G28\.1|G30\.1", text))
