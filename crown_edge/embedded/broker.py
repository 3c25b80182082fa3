"""An MQTT broker on a loopback ephemeral port: mosquitto when installed, else amqtt in-process.

mosquitto runs as a child process from a throw-away config (one loopback listener, anonymous
access, no persistence). Without it, the pure-Python amqtt broker runs the same way, in a child
Python process, so its loop, warnings and leaks stay out of ours.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Literal

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
from crown_edge.errors import SyncError

log = logging.getLogger(__name__)

BrokerKind = Literal["auto", "mosquitto", "amqtt"]


def find_mosquitto() -> Path | None:
    """The mosquitto binary on PATH or in the usual sbin directories, if any."""
    return find_binary("mosquitto", extra_dirs=(Path("/usr/sbin"), Path("/usr/local/sbin")))


class MqttBroker(LocalService):
    """A throw-away MQTT broker on ``host:port`` (an ephemeral loopback port by default).

    ``stop()`` then ``start()`` keeps the same port, so tests can take the broker away and bring it
    back to prove store-and-forward. ``kind`` says which implementation actually runs.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        prefer: BrokerKind = "auto",
        startup_timeout: float = 15.0,
    ) -> None:
        self.host = host
        self.port = port or 0
        self.prefer = prefer
        self.startup_timeout = startup_timeout
        self.kind: Literal["mosquitto", "amqtt"] | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        """``mqtt://host:port``."""
        return f"mqtt://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        """Whether the broker is up."""
        return self._proc is not None and self._proc.poll() is None

    def _workdir(self) -> Path:
        if self._tmp is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="crown-mqtt-")
        return Path(self._tmp.name)

    def start(self) -> None:
        """Start the broker and block until it accepts connections."""
        with self._lock:
            if self.running:
                return
            mosquitto = find_mosquitto() if self.prefer in ("auto", "mosquitto") else None
            if self.prefer == "mosquitto" and mosquitto is None:
                raise SyncError("mosquitto not found")
            fixed_port = bool(self.port)
            for _attempt in range(5):
                if not fixed_port:
                    self.port = free_port(self.host)
                if mosquitto is not None:
                    if self._start_mosquitto(mosquitto):
                        return
                elif self._start_amqtt():
                    return
                time.sleep(0.3)
            last_error = log_tail(self._workdir() / f"{'mosquitto' if mosquitto else 'amqtt'}.log")
            raise SyncError(
                f"MQTT broker did not start on {self.host}:{self.port}: {last_error}",
                host=self.host,
                port=self.port,
            )

    def _start_mosquitto(self, binary: Path) -> bool:
        conf = self._workdir() / "mosquitto.conf"
        # as root, mosquitto would switch to user "mosquitto", which clears the parent-death
        # signal: stay who we are (a loopback broker in a temp dir needs no privilege drop)
        user = "user root\n" if os.geteuid() == 0 else ""
        conf.write_text(
            f"listener {self.port} {self.host}\n"
            f"{user}"
            "allow_anonymous true\n"
            "persistence false\n"
            "log_dest stderr\n"
            "log_type error\n"
            "log_type warning\n"
        )
        return self._spawn_and_wait([str(binary), "-c", str(conf)], "mosquitto")

    def _spawn_and_wait(self, argv: list[str], kind: Literal["mosquitto", "amqtt"]) -> bool:
        proc = spawn(argv, self._workdir() / f"{kind}.log")
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
            self.kind = kind
            log.info("%s ready on %s:%s", kind, self.host, self.port)
            return True
        terminate(proc, grace=5.0)
        return False

    def _start_amqtt(self) -> bool:
        argv = [sys.executable, "-m", "crown_edge.embedded._amqtt_child", self.host, str(self.port)]
        return self._spawn_and_wait(argv, "amqtt")

    def stop(self) -> None:
        """Stop the broker (keeps ``port`` for a later :meth:`start`). Idempotent."""
        with self._lock:
            proc, self._proc = self._proc, None
            if proc is not None:
                terminate(proc, grace=5.0)
