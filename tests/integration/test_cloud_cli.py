"""``crown-edge cloud`` as a real process: ``order create`` places an order, a workflow starts."""

from __future__ import annotations

import asyncio
import signal
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
        f'[http]\nport = {port}\n[temporal]\ntarget = "{temporal_dev_server.target}"\n'
        f'[sqs]\nendpoint_url = "{moto_server.endpoint_url}"\n'
        f"{mqtt_toml(mqtt_broker.cloud_config())}\n"
    )
    with open(tmp_path / "cloud.log", "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "crown_edge", "cloud", "--config", str(config)],
            stdout=log,
            stderr=subprocess.STDOUT,
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
            )
            if placed.returncode == 0:
                break
            time.sleep(0.2)
        assert placed.returncode == 0, placed.stderr + (tmp_path / "cloud.log").read_text()
        assert '"status": "received"' in placed.stdout
        assert asyncio.run(_workflow_type(temporal_dev_server.target, job_id)) == (
            names.WORKFLOW_NAME
        )
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0


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
