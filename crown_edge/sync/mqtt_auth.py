"""How a crown-edge MQTT client proves who it is and checks who the broker is.

Both MQTT clients — the workshop's link (:mod:`crown_edge.sync.mqtt`) and the cloud's bridge
(:mod:`crown_edge.cloud.bridge`) — connect through :func:`mqtt_client`, so TLS and credentials are
set up in one place:

- **TLS** (:class:`MqttTls`): the broker's certificate is verified against ``ca_file`` (or the
  system trust store when None, e.g. AWS IoT Core's Amazon root CA), host name included; an
  optional client certificate + key gives mutual TLS (AWS IoT Core requires it; the embedded
  mosquitto does too). TLS 1.2 is the minimum.
- **username / password**: sent inside the TLS session only (a plain-TCP link is for a broker on
  loopback or behind a TLS terminator, and must be asked for with ``tls = false``).

Passwords never appear in a ``repr`` or a log line.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiomqtt

from crown_edge.errors import SyncError

if TYPE_CHECKING:
    from crown_edge.config import MqttConfig


@dataclass(frozen=True, slots=True)
class MqttTls:
    """TLS for a broker connection: the CA to trust and an optional client certificate."""

    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None

    def context(self) -> ssl.SSLContext:
        """A client-side SSL context (TLS ≥ 1.2, server certificate and host name verified).

        Raises :class:`SyncError` naming the file when a CA, certificate or key cannot be loaded.
        """
        try:
            ctx = ssl.create_default_context(
                cafile=str(self.ca_file) if self.ca_file is not None else None
            )
        except (OSError, ssl.SSLError) as exc:
            raise SyncError(f"cannot load MQTT CA file {self.ca_file}: {exc}") from exc
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        if self.cert_file is not None:
            try:
                ctx.load_cert_chain(self.cert_file, self.key_file)
            except (OSError, ssl.SSLError) as exc:
                raise SyncError(
                    f"cannot load MQTT client certificate {self.cert_file} / {self.key_file}: {exc}"
                ) from exc
        return ctx


def tls_of(config: MqttConfig) -> MqttTls | None:
    """The TLS settings of an ``[mqtt]`` config (None when ``tls = false``)."""
    if not config.tls:
        return None
    return MqttTls(config.ca_file, config.cert_file, config.key_file)


def mqtt_client(
    host: str,
    port: int,
    *,
    identifier: str,
    username: str | None,
    password: str | None,
    tls: MqttTls | None,
    **options: Any,
) -> aiomqtt.Client:
    """An aiomqtt client for ``host:port`` with this identity; ``tls`` None means plain TCP.

    ``options`` go to :class:`aiomqtt.Client` unchanged (keepalive, will, clean_session …).
    """
    return aiomqtt.Client(
        host,
        port,
        identifier=identifier,
        username=username,
        password=password,
        tls_context=tls.context() if tls is not None else None,
        **options,
    )
