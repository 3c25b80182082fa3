"""A small local certificate authority for the embedded broker: a CA, a server certificate and one
client certificate per identity, made with ``cryptography`` (a well-kept library; no ``openssl``
command lines to get subtly wrong).

Everything lives in one directory (mode 0700) that the caller keeps — ``crown-edge up`` uses its
state directory, so a second start reuses the same CA and identities. Private keys are written
0600 (atomically: a crash never leaves half a key). A certificate is reused while it is valid for
at least :data:`RENEW_BEFORE` more, was issued by the current CA and, for the server, names every
requested host; otherwise it is issued again.

Keys are ECDSA P-256: small, fast to make at start-up, and accepted by mosquitto and AWS IoT.

::

    <dir>/ca.crt  ca.key                 the trust anchor clients verify the broker with
    <dir>/server.crt  server.key         the broker's (SAN: 127.0.0.1, localhost, …)
    <dir>/<name>.crt  <name>.key         one per client identity (CN = the MQTT username)
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

#: a certificate closer to its end than this is issued again
RENEW_BEFORE = dt.timedelta(days=30)
CA_VALIDITY = dt.timedelta(days=3650)
LEAF_VALIDITY = dt.timedelta(days=825)


@dataclass(frozen=True, slots=True)
class CertPair:
    """A certificate and its private key, as files."""

    cert_file: Path
    key_file: Path


def write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` with mode 0600 from the first byte, replacing atomically."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)


def _write_public(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def _load(pair: CertPair) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None:
    try:
        cert = x509.load_pem_x509_certificate(pair.cert_file.read_bytes())
        key = serialization.load_pem_private_key(pair.key_file.read_bytes(), password=None)
    except (OSError, ValueError):
        return None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        return None
    if cert.public_key() != key.public_key():
        return None
    return cert, key


def _fresh(cert: x509.Certificate, now: dt.datetime) -> bool:
    return cert.not_valid_before_utc <= now and cert.not_valid_after_utc - now > RENEW_BEFORE


def _save(pair: CertPair, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> None:
    pem_key = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    write_private(pair.key_file, pem_key)
    _write_public(pair.cert_file, cert.public_bytes(serialization.Encoding.PEM))


class LocalCa:
    """The CA in ``directory`` (created, or reused when present and valid)."""

    def __init__(self, directory: Path, *, common_name: str = "crown-edge local MQTT CA") -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        os.chmod(directory, 0o700)
        self.pair = CertPair(directory / "ca.crt", directory / "ca.key")
        now = dt.datetime.now(dt.UTC)
        loaded = _load(self.pair)
        if loaded is not None and _fresh(loaded[0], now) and _is_ca(loaded[0]):
            self._cert, self._key = loaded
            return
        self._key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        self._cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + CA_VALIDITY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=False,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(self._key.public_key()), critical=False
            )
            .sign(self._key, hashes.SHA256())
        )
        _save(self.pair, self._cert, self._key)

    @property
    def cert_file(self) -> Path:
        """The CA certificate clients (and the broker) trust."""
        return self.pair.cert_file

    def server(self, hosts: tuple[str, ...] = ("127.0.0.1", "localhost")) -> CertPair:
        """The broker's certificate, valid for every name or IP address in ``hosts``."""
        return self._leaf("server", hosts=hosts, server=True)

    def client(self, name: str) -> CertPair:
        """A client certificate with ``CN = name`` (the MQTT username it goes with)."""
        if not name or not all(c.isascii() and (c.isalnum() or c in "-_.") for c in name):
            raise ValueError(f"bad identity name {name!r}")
        return self._leaf(name, hosts=(), server=False)

    def _leaf(self, name: str, *, hosts: tuple[str, ...], server: bool) -> CertPair:
        pair = CertPair(self.directory / f"{name}.crt", self.directory / f"{name}.key")
        now = dt.datetime.now(dt.UTC)
        loaded = _load(pair)
        if loaded is not None and self._still_good(loaded[0], hosts, now):
            return pair
        key = ec.generate_private_key(ec.SECP256R1())
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(self._cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + LEAF_VALIDITY)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key()),
                critical=False,
            )
        )
        if hosts:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([_general_name(h) for h in hosts]), critical=False
            )
        _save(pair, builder.sign(self._key, hashes.SHA256()), key)
        return pair

    def _still_good(self, cert: x509.Certificate, hosts: tuple[str, ...], now: dt.datetime) -> bool:
        if not _fresh(cert, now) or cert.issuer != self._cert.subject:
            return False
        try:
            cert.verify_directly_issued_by(self._cert)
        except (ValueError, TypeError, InvalidSignature):
            return False
        if not hosts:
            return True
        try:
            san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        except x509.ExtensionNotFound:
            return False
        return all(_general_name(h) in san for h in hosts)


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def _general_name(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)
