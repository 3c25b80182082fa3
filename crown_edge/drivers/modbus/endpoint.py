"""Where a Modbus device is reached, parsed from a URL (pure).

Accepted forms::

    tcp://HOST[:PORT]                  Modbus TCP (MBAP framing); PORT defaults to 502
    rtu+tcp://HOST:PORT                RTU framing over a TCP socket (transparent RS-485 gateways)
    rtu:///dev/ttyUSB0[?baud=19200&parity=N&stopbits=1&bytesize=8]
                                       Modbus RTU on a serial line; the query is optional

A bad URL is a :class:`~crown_edge.errors.ConfigError` naming the part that is wrong.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import parse_qs, urlsplit

from crown_edge.errors import ConfigError

URL_FORMS = "tcp://HOST[:PORT], rtu+tcp://HOST:PORT, rtu:///dev/ttyX?baud=19200"
_BAUDS = (1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200)


class Transport(StrEnum):
    """How bytes reach the device, and how they are framed."""

    TCP = "tcp"
    RTU_TCP = "rtu+tcp"
    RTU = "rtu"


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A parsed device URL."""

    transport: Transport
    host: str = ""
    port: int = 0
    device: str = ""
    baud: int = 19200
    parity: str = "N"
    stopbits: int = 1
    bytesize: int = 8

    @classmethod
    def parse(cls, url: str) -> Endpoint:
        """Parse ``url`` (see the module docstring for the forms)."""
        parts = urlsplit(url)
        try:
            transport = Transport(parts.scheme)
        except ValueError:
            raise ConfigError("device", "url", f"unknown scheme in {url!r}", URL_FORMS) from None
        if transport is Transport.RTU:
            return cls._parse_serial(url, parts.netloc, parts.path, parts.query)
        try:
            port = parts.port
        except ValueError:
            raise ConfigError("device", "url", f"bad port in {url!r}", "1..65535") from None
        if not parts.hostname or parts.path not in ("", "/") or parts.query:
            raise ConfigError("device", "url", f"{url!r} is not host[:port]", URL_FORMS)
        if port is None:
            if transport is Transport.RTU_TCP:
                raise ConfigError("device", "url", f"{url!r} needs a port", URL_FORMS)
            port = 502
        if not 1 <= port <= 65535:
            raise ConfigError("device", "url", f"bad port in {url!r}", "1..65535")
        return cls(transport=transport, host=parts.hostname, port=port)

    @classmethod
    def _parse_serial(cls, url: str, netloc: str, path: str, query: str) -> Endpoint:
        if netloc or not path or path == "/":
            raise ConfigError("device", "url", f"{url!r} names no serial device", URL_FORMS)
        params = {key: values[-1] for key, values in parse_qs(query, strict_parsing=False).items()}
        unknown = set(params) - {"baud", "parity", "stopbits", "bytesize"}
        if unknown:
            raise ConfigError(
                "device",
                "url",
                f"unknown option {sorted(unknown)[0]!r}",
                "baud, parity, stopbits, bytesize",
            )
        baud = _choice(params, "baud", "19200", tuple(str(b) for b in _BAUDS))
        parity = _choice(params, "parity", "N", ("N", "E", "O"))
        stopbits = _choice(params, "stopbits", "1", ("1", "2"))
        bytesize = _choice(params, "bytesize", "8", ("7", "8"))
        return cls(
            transport=Transport.RTU,
            device=path,
            baud=int(baud),
            parity=parity,
            stopbits=int(stopbits),
            bytesize=int(bytesize),
        )

    def __str__(self) -> str:
        if self.transport is Transport.RTU:
            return (
                f"rtu://{self.device}?baud={self.baud}&parity={self.parity}"
                f"&stopbits={self.stopbits}&bytesize={self.bytesize}"
            )
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.transport.value}://{host}:{self.port}"


def _choice(params: dict[str, str], key: str, default: str, allowed: tuple[str, ...]) -> str:
    value = params.get(key, default)
    if value not in allowed:
        raise ConfigError("device", f"url.{key}", f"{value!r} is not allowed", ", ".join(allowed))
    return value
