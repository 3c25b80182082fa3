"""A cloud replica as its own ``crown-edge cloud --instance NAME`` process.

``crown-edge up --cloud-processes N`` (and the tests and benchmarks that scale the cloud out)
runs the first replica inside its own process and the others through this module: the same
code as a deployed cloud, configured by the TOML file :func:`cloud_config_toml` writes (mode
0600: it names the key and secret files, never their contents), logging to ``cloud-NAME.log``
beside it. A replica is stopped, or killed outright, at will.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crown_edge.cloud.mail import MailSettings
from crown_edge.config import MqttConfig, mqtt_toml

#: The line a cloud process prints once its Order API listens and its workers run.
READY_MARK = "Order API on"


@dataclass(frozen=True, slots=True)
class ReplicaConfig:
    """What a replica's config file says (the first replica's settings, shared)."""

    designs_dir: Path
    intake_journal: Path
    default_shop_id: str
    shops: tuple[str, ...]
    http_host: str
    http_port: int
    temporal_target: str
    sqs_endpoint_url: str | None
    sqs_region: str
    mqtt: MqttConfig | None
    key_file: Path
    token_secret_file: Path
    mail: MailSettings | None = None


def cloud_config_toml(cfg: ReplicaConfig) -> str:
    """The cloud config TOML that ``crown-edge cloud --config`` reads back."""

    def q(value: object) -> str:
        return json.dumps(value)

    out = [
        "# written by crown-edge for a cloud replica: the first replica's settings",
        "[cloud]",
        f"designs_dir = {q(str(cfg.designs_dir))}",
        f"intake_journal = {q(str(cfg.intake_journal))}",
        f"default_shop_id = {q(cfg.default_shop_id)}",
        f"shops = {q(list(cfg.shops))}",
        f"[http]\nhost = {q(cfg.http_host)}\nport = {cfg.http_port}",
        f"[temporal]\ntarget = {q(cfg.temporal_target)}",
        f"[sqs]\nregion = {q(cfg.sqs_region)}",
    ]
    if cfg.sqs_endpoint_url is not None:
        out.append(f"endpoint_url = {q(cfg.sqs_endpoint_url)}")
    out.append(
        f"[api]\nkey_file = {q(str(cfg.key_file))}\n"
        f"token_secret_file = {q(str(cfg.token_secret_file))}"
    )
    if cfg.mqtt is not None:
        out.append(mqtt_toml(cfg.mqtt))
    if cfg.mail is not None:
        out.append(_mail_toml(cfg.mail))
    return "\n".join(out) + "\n"


def _mail_toml(mail: MailSettings) -> str:
    if mail.smtp_password is not None:
        raise ValueError("a replica's mail settings cannot carry an SMTP password in a file")
    lines = ["[mail]"]
    for name in mail.__dataclass_fields__:
        value: Any = getattr(mail, name)
        if value is None or name == "smtp_password":
            continue
        lines.append(f"{name} = {json.dumps(str(value) if isinstance(value, Path) else value)}")
    return "\n".join(lines)


class CloudProcess:
    """``crown-edge cloud --config PATH --instance NAME`` as a child process."""

    def __init__(self, path: Path, instance: str, *, http_port: int) -> None:
        self.path = path
        self.instance = instance
        self.http_port = http_port
        self.log_path = path.with_name(f"cloud-{instance}.log")
        self.proc: Any = None

    @property
    def running(self) -> bool:
        """Whether the process is alive."""
        return self.proc is not None and self.proc.poll() is None

    def argv(self) -> list[str]:
        """The command line (the shared port; its own instance name)."""
        return [
            sys.executable,
            "-m",
            "crown_edge",
            "cloud",
            "--config",
            str(self.path),
            "--instance",
            self.instance,
            "--http-port",
            str(self.http_port),
        ]

    async def start(self, timeout: float = 90.0) -> None:
        """Start it; return once it says its Order API listens (RuntimeError if it exits)."""
        from crown_edge.embedded._proc import spawn
        from crown_edge.store.files import private_file

        self.log_path.touch(mode=0o600, exist_ok=True)
        private_file(self.log_path)
        start = self.log_path.stat().st_size
        self.proc = await asyncio.to_thread(spawn, self.argv(), self.log_path)
        try:
            async with asyncio.timeout(timeout):
                while READY_MARK not in _tail(self.log_path, start):
                    if self.proc.poll() is not None:
                        raise RuntimeError(
                            f"cloud instance {self.instance} exited; see {self.log_path}"
                        )
                    await asyncio.sleep(0.2)
        except BaseException:
            await self.stop(kill=True)
            raise

    async def stop(self, *, kill: bool = False, grace: float = 30.0) -> int | None:
        """Stop it (SIGTERM, SIGKILL after ``grace`` s; ``kill``: SIGKILL at once, as a crash);
        its exit code, None if it was not running."""
        from crown_edge.embedded._proc import stop_child

        proc, self.proc = self.proc, None
        return await stop_child(proc, kill=kill, grace=grace)


def _tail(path: Path, start: int) -> str:
    try:
        with path.open("rb") as f:
            f.seek(start)
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""


def instance_names(count: int) -> Iterable[str]:
    """``c1`` … ``cN``: the replicas of ``up --cloud-processes N`` (``c1`` runs in ``up``)."""
    return (f"c{i}" for i in range(1, count + 1))


__all__ = [
    "READY_MARK",
    "CloudProcess",
    "ReplicaConfig",
    "cloud_config_toml",
    "instance_names",
]
