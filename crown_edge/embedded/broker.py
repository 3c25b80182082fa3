"""A locked-down mosquitto on a loopback ephemeral port: TLS, passwords and per-workshop ACLs.

mosquitto runs as a child process from a config written into its state directory: one TLS
listener that requires a client certificate, ``allow_anonymous false``, a password file and an
ACL file (:mod:`crown_edge.embedded.mosquitto_files`), and sessions persisted in the state
directory (``persist/``), so a stop and start keeps the bridge's session and its queued events.
The CA, the server certificate and one client certificate per identity come from
:mod:`crown_edge.embedded.pki`.
:meth:`MqttBroker.workshop` registers a workshop (``crown-edge-{shop_id}``) at any time — the
files are rewritten and mosquitto reloads them on SIGHUP; :meth:`MqttBroker.cloud` is the cloud
side's identity (``crown-cloud``).

**mosquitto is required** (Debian/Ubuntu: ``apt-get install mosquitto``); there is no pure-Python
fallback any more. The amqtt broker used to stand in, but enforcing the same door there would mean
a second, weaker implementation of it: amqtt's topic ACLs are static per-username lists in its
config (no reload when a workshop is added), its password plugin verifies only ``crypt``
hashes (gone from Python 3.13) or argon2/bcrypt (extra dependencies), and its behaviour on
refused publishes, Last-Will ACL checks and persistent sessions differs from mosquitto's — the
broker real deployments use (mosquitto or AWS IoT Core). Tests against a broker that
enforces security differently would prove little, so one broker it is.
"""

from __future__ import annotations

import logging
import os
import secrets
import signal
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import aiomqtt

from crown_edge.cloud.bridge import BridgeSettings
from crown_edge.config import MqttConfig
from crown_edge.embedded import mosquitto_files as files
from crown_edge.embedded._proc import (
    find_binary,
    free_port,
    log_tail,
    port_open,
    spawn,
    terminate,
    wait_until,
)
from crown_edge.embedded._service import LocalService
from crown_edge.embedded.pki import LocalCa, write_private
from crown_edge.errors import SyncError
from crown_edge.sync.mqtt import MqttSettings
from crown_edge.sync.mqtt_auth import MqttTls, mqtt_client

log = logging.getLogger(__name__)

INSTALL_HINT = "mosquitto not found: install it (Debian/Ubuntu: apt-get install mosquitto)"
_RELOADED = "Reloading config."


def find_mosquitto() -> Path | None:
    """The mosquitto binary on PATH or in the usual sbin directories, if any."""
    return find_binary("mosquitto", extra_dirs=(Path("/usr/sbin"), Path("/usr/local/sbin")))


@dataclass(frozen=True, slots=True)
class BrokerLogin:
    """One identity on the broker: username, password and the TLS files that go with it."""

    username: str
    password: str = field(repr=False)
    tls: MqttTls
    #: the 0600 file holding ``password`` (what a config's ``password_file`` points at)
    password_file: Path | None = None


class MqttBroker(LocalService):
    """A locked-down mosquitto on ``host:port`` (an ephemeral loopback port by default).

    ``state_dir`` keeps the CA, certificates, passwords and broker files (created 0700, reused
    when present — ``crown-edge up`` passes its work directory); None uses a temporary one.
    ``shops`` are registered up front (more with :meth:`workshop`). ``stop()`` then ``start()``
    keeps the same port and identities, so tests can take the broker away and bring it back.
    """

    kind: Literal["mosquitto"] = "mosquitto"

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        state_dir: Path | None = None,
        shops: tuple[str, ...] = (),
        startup_timeout: float = 15.0,
    ) -> None:
        self.host = host
        self.port = port or 0
        self.startup_timeout = startup_timeout
        self._state_dir = state_dir
        self._proc: subprocess.Popen[bytes] | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._lock = threading.RLock()
        self._ca: LocalCa | None = None
        self._logins: dict[str, BrokerLogin] = {}
        self._shops: set[str] = set()
        for shop_id in shops:
            self._check_shop(shop_id)
            self._shops.add(shop_id)

    # -- where things are --------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """``mqtts://host:port``."""
        return f"mqtts://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        """Whether the broker is up."""
        return self._proc is not None and self._proc.poll() is None

    @property
    def state_dir(self) -> Path:
        """The directory holding the CA, the identities' certificates, keys and passwords."""
        if self._state_dir is None:
            if self._tmp is None:
                self._tmp = tempfile.TemporaryDirectory(prefix="crown-mqtt-")
            self._state_dir = Path(self._tmp.name) / "mqtt"
        self._state_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self._state_dir, 0o700)
        return self._state_dir

    @property
    def ca_file(self) -> Path:
        """The CA certificate clients verify the broker with (public; safe to print)."""
        return self._authority().cert_file

    def _authority(self) -> LocalCa:
        if self._ca is None:
            self._ca = LocalCa(self.state_dir)
        return self._ca

    # -- identities --------------------------------------------------------------------------------

    def workshop(self, shop_id: str) -> BrokerLogin:
        """Workshop ``shop_id``'s login, registering it (ACL + password, live) if it is new."""
        self._check_shop(shop_id)
        with self._lock:
            if shop_id not in self._shops:
                self._shops.add(shop_id)
                if self.running:
                    self._write_access_files()
                    self._reload()
            return self._login(files.workshop_user(shop_id))

    def cloud(self) -> BrokerLogin:
        """The cloud side's login (``crown-cloud``): publishes commands, reads every workshop."""
        with self._lock:
            return self._login(files.CLOUD_USER)

    def workshop_settings(self, shop_id: str, **overrides: Any) -> MqttSettings:
        """:class:`MqttSettings` for workshop ``shop_id`` on this broker (fixed client id)."""
        login = self.workshop(shop_id)
        values: dict[str, Any] = {
            "client_id": login.username,
            "username": login.username,
            "password": login.password,
            "tls": login.tls,
        }
        values.update(overrides)
        return MqttSettings(self.host, self.port, shop_id, **values)

    def workshop_config(self, shop_id: str) -> MqttConfig:
        """The ``[mqtt]`` config of workshop ``shop_id`` (password by file), see ``mqtt_toml``."""
        return self._config(self.workshop(shop_id))

    def cloud_config(self) -> MqttConfig:
        """The ``[mqtt]`` config of the cloud side (``crown-edge cloud``)."""
        return self._config(self.cloud())

    def _config(self, login: BrokerLogin) -> MqttConfig:
        return MqttConfig(
            host=self.host,
            port=self.port,
            tls=True,
            ca_file=login.tls.ca_file,
            cert_file=login.tls.cert_file,
            key_file=login.tls.key_file,
            client_id=login.username,
            username=login.username,
            password=login.password,
            password_file=login.password_file,
        )

    def bridge_settings(self, **overrides: Any) -> BridgeSettings:
        """:class:`BridgeSettings` for the cloud identity on this broker."""
        login = self.cloud()
        values: dict[str, Any] = {
            "username": login.username,
            "password": login.password,
            "tls": login.tls,
        }
        values.update(overrides)
        return BridgeSettings(self.host, self.port, **values)

    def client(self, login: BrokerLogin | None, **options: Any) -> aiomqtt.Client:
        """An aiomqtt client for this broker as ``login`` (None: anonymous, with TLS)."""
        identifier = options.pop("identifier", f"crown-tool-{secrets.token_hex(4)}")
        return mqtt_client(
            self.host,
            self.port,
            identifier=identifier,
            username=login.username if login else None,
            password=login.password if login else None,
            tls=login.tls if login else MqttTls(ca_file=self.ca_file),
            **options,
        )

    def _check_shop(self, shop_id: str) -> None:
        if not files.valid_shop_id(shop_id):
            raise SyncError(f"invalid shop id for the broker: {shop_id!r}", shop_id=shop_id)

    def _login(self, username: str) -> BrokerLogin:
        login = self._logins.get(username)
        if login is None:
            pair = self._authority().client(username)
            login = BrokerLogin(
                username,
                self._password(username),
                MqttTls(self.ca_file, pair.cert_file, pair.key_file),
                self._password_path(username),
            )
            self._logins[username] = login
        return login

    def _password_path(self, username: str) -> Path:
        return self.state_dir / f"{username}.password"

    def _password(self, username: str) -> str:
        path = self._password_path(username)
        try:
            existing = path.read_text("ascii").strip()
        except (OSError, UnicodeDecodeError):
            existing = ""
        if existing:
            return existing
        password = secrets.token_urlsafe(32)
        write_private(path, (password + "\n").encode())
        return password

    def _write_access_files(self) -> tuple[Path, Path]:
        users = [files.CLOUD_USER, *(files.workshop_user(s) for s in self._shops)]
        passwords = {user: self._login(user).password for user in users}
        passwd = self.state_dir / "passwd"
        acl = self.state_dir / "acl"
        write_private(passwd, files.password_file(passwords).encode())
        write_private(acl, files.acl_file(self._shops).encode())
        return passwd, acl

    def _reload(self) -> None:
        """SIGHUP mosquitto and wait until it has re-read the password and ACL files."""
        proc = self._proc
        assert proc is not None
        log_path = self.state_dir / "mosquitto.log"
        before = log_tail(log_path, limit=1_000_000).count(_RELOADED)
        proc.send_signal(signal.SIGHUP)
        # mosquitto logs the line, then reloads before it handles any other network event
        if not wait_until(
            lambda: log_tail(log_path, limit=1_000_000).count(_RELOADED) > before,
            self.startup_timeout,
        ):
            raise SyncError("mosquitto did not reload its access files", port=self.port)

    # -- life cycle --------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the broker and block until it accepts connections.

        Raises :class:`SyncError` with :data:`INSTALL_HINT` when mosquitto is not installed.
        """
        with self._lock:
            if self.running:
                return
            binary = find_mosquitto()
            if binary is None:
                raise SyncError(INSTALL_HINT)
            ca = self._authority()
            server = ca.server((self.host, "localhost"))
            passwd, acl = self._write_access_files()
            fixed_port = bool(self.port)
            for _attempt in range(5):
                if not fixed_port:
                    self.port = free_port(self.host)
                conf = self.state_dir / "mosquitto.conf"
                conf.write_text(
                    files.broker_conf(
                        self.host,
                        self.port,
                        ca_file=ca.cert_file,
                        cert_file=server.cert_file,
                        key_file=server.key_file,
                        password_path=passwd,
                        acl_path=acl,
                        run_as_root=os.geteuid() == 0,
                        persistence_dir=self._persistence_dir(),
                    )
                )
                if self._spawn_and_wait([str(binary), "-c", str(conf)]):
                    return
                time.sleep(0.3)
            raise SyncError(
                f"MQTT broker did not start on {self.host}:{self.port}: "
                f"{log_tail(self.state_dir / 'mosquitto.log')}",
                host=self.host,
                port=self.port,
            )

    def _persistence_dir(self) -> Path:
        path = self.state_dir / "persist"
        path.mkdir(mode=0o700, exist_ok=True)
        return path

    def _spawn_and_wait(self, argv: list[str]) -> bool:
        proc = spawn(argv, self.state_dir / "mosquitto.log")
        ready = wait_until(
            lambda: proc.poll() is not None or port_open(self.host, self.port),
            self.startup_timeout,
        )
        if ready and proc.poll() is None:
            # the port may belong to someone else who took it first: a broker that lost the
            # race exits at once, so look again before trusting the open port
            time.sleep(0.1)
        if ready and proc.poll() is None:
            self._proc = proc
            log.info("mosquitto ready on %s:%s (TLS)", self.host, self.port)
            return True
        terminate(proc, grace=5.0)
        return False

    def stop(self) -> None:
        """Stop the broker (keeps ``port`` and identities for a later :meth:`start`). Idempotent."""
        with self._lock:
            proc, self._proc = self._proc, None
            if proc is not None:
                terminate(proc, grace=5.0)
