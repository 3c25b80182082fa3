"""``crown-edge cloud`` as a real process: ``order create`` places an order, a workflow starts."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from temporalio.client import Client
from temporalio.service import RPCError

from crown_edge.cli.cloud import load_cloud_config
from crown_edge.config import mqtt_toml
from crown_edge.embedded import MotoServer, MqttBroker, TemporalDevServer
from crown_edge.embedded._proc import free_port
from crown_edge.errors import ConfigError
from crown_edge.workflow import names

pytestmark = pytest.mark.integration

KEY = "cli-test-key-0123456789"


def test_cloud_config_errors_are_one_line(tmp_path: Path) -> None:
    path = tmp_path / "cloud.toml"
    path.write_text("[http]\nport = 99999\n")
    with pytest.raises(ConfigError, match=r"\[http\] port: got 99999 \(allowed: 0..65535\)"):
        load_cloud_config(path)
    path.write_text("[temporal]\ntarget = 7\n")
    with pytest.raises(ConfigError, match=r"\[temporal\] target"):
        load_cloud_config(path)
    with pytest.raises(ConfigError, match="cannot read"):
        load_cloud_config(tmp_path / "missing.toml")
    path.write_text('[api]\ntoken_secrets = ["s" ]\n')
    with pytest.raises(ConfigError, match=r"\[api\] keys: no API key"):
        load_cloud_config(path, env={})
    path.write_text('[cloud]\nshops = ["a"]\ndefault_shop_id = "b"\n')
    with pytest.raises(ConfigError, match=r"\[cloud\] shops"):
        load_cloud_config(path, env={"CROWN_API_KEY": KEY})


def test_cloud_keys_come_from_env_config_or_credentials(tmp_path: Path) -> None:
    path = tmp_path / "cloud.toml"
    (tmp_path / "key").write_text("# rotated 2026-01\nfile-key-0123456789abc\n")
    path.write_text(
        '[api]\nkey_file = "key"\n'
        'token_secrets = ["new-secret-0123456789", "old-secret-012345678"]\n'
    )
    cfg = load_cloud_config(path, env={})
    assert cfg.api_keys == ("file-key-0123456789abc",)
    assert cfg.token_secrets[0] == "new-secret-0123456789"
    assert "secret" not in repr(cfg) and "file-key" not in repr(cfg)
    assert load_cloud_config(path, env={"CROWN_API_KEY": KEY}).api_keys == (KEY,)
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "api-key").write_text("cred-key-0123456789abc\n")
    (creds / "token-secret").write_text("cred-secret-0123456789\n")
    path.write_text("[cloud]\n")
    cfg = load_cloud_config(path, env={"CREDENTIALS_DIRECTORY": str(creds)})
    assert cfg.api_keys == ("cred-key-0123456789abc",)
    assert cfg.token_secrets == ("cred-secret-0123456789",)
    assert cfg.intake_journal is None  # the service puts it beside designs_dir
    path.write_text('[cloud]\nintake_journal = "state/intake.db"\n')
    cfg = load_cloud_config(path, env={"CREDENTIALS_DIRECTORY": str(creds)})
    assert cfg.intake_journal == tmp_path / "state" / "intake.db"


def test_cloud_process_starts_workflows_from_orders(
    tmp_path: Path,
    temporal_dev_server: TemporalDevServer,
    mqtt_broker: MqttBroker,
    moto_server: MotoServer,
    sqs_queues: dict[str, str],
) -> None:
    port = free_port()
    config = tmp_path / "cloud.toml"
    config.write_text(
        f'[cloud]\ndefault_shop_id = "nowhere"\ndesigns_dir = "designs"\n'
        f'intake_journal = "journal/intake.db"\n'
        f'[api]\ntoken_secrets = ["cli-test-secret-0123456789"]\n'
        f'[http]\nport = {port}\n[temporal]\ntarget = "{temporal_dev_server.target}"\n'
        f'[sqs]\nendpoint_url = "{moto_server.endpoint_url}"\n'
        f"{mqtt_toml(mqtt_broker.cloud_config())}\n"
    )
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)  # systemd's side of sd_notify
    notify.bind(str(tmp_path / "notify.sock"))
    notify.settimeout(0.2)
    env = {
        **os.environ,
        "CROWN_API_KEY": KEY,
        "NOTIFY_SOCKET": str(tmp_path / "notify.sock"),
        "WATCHDOG_USEC": "1000000",
    }
    env.pop("WATCHDOG_PID", None)
    with open(tmp_path / "cloud.log", "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "crown_edge", "cloud", "--config", str(config)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
    try:
        job_id = f"CLI-{time.time_ns() % 10**9}"
        for _ in range(150):
            placed = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "crown_edge",
                    "order",
                    "create",
                    job_id,
                    "--item",
                    "plaque-a5",
                    "--line",
                    "Hello",
                    "--api",
                    f"http://127.0.0.1:{port}",
                ],
                capture_output=True,
                text=True,
                timeout=60,
                env=env,
            )
            if placed.returncode == 0:
                break
            time.sleep(0.2)
        assert placed.returncode == 0, placed.stderr + (tmp_path / "cloud.log").read_text()
        answer = json.loads(placed.stdout)
        assert answer["status"] == "received"
        assert answer["status_url"].startswith(f"http://127.0.0.1:{port}/status/{job_id}?token=")
        assert KEY not in (tmp_path / "cloud.log").read_text()
        # the order went through the configured journal, the owner's alone
        journal = tmp_path / "journal" / "intake.db"
        assert stat.S_IMODE(journal.stat().st_mode) == 0o600
        assert asyncio.run(_workflow_type(temporal_dev_server.target, job_id)) == (
            names.WORKFLOW_NAME
        )
        states = _notified(notify, until="WATCHDOG=1")
        assert any(s.startswith("READY=1") for s in states) and "WATCHDOG=1" in states
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    assert "STOPPING=1" in _notified(notify, until="STOPPING=1")
    notify.close()


def _notified(sock: socket.socket, until: str, timeout: float = 30.0) -> list[str]:
    """sd_notify datagrams received until ``until`` (or the timeout)."""
    states: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and until not in states:
        try:
            states.extend(sock.recv(4096).decode().split("\n"))
        except TimeoutError:
            continue
    return states


async def _workflow_type(target: str, job_id: str) -> str:
    client = await Client.connect(target)
    handle = client.get_workflow_handle(names.workflow_id(job_id))
    for _ in range(150):
        try:
            described = await handle.describe()
        except RPCError:
            await asyncio.sleep(0.2)
            continue
        await handle.terminate("test over")
        return described.workflow_type
    raise AssertionError(f"no workflow for {job_id}")
