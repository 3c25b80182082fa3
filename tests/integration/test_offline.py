"""Offline is normal: the daemon killed mid-job, and Temporal down while a technician decides.

Real Temporal dev server (with a database file so it can restart), real MQTT broker, the edge
daemon (a real process where it is killed), GRBL simulators.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client

from crown_edge.catalog import load_catalog
from crown_edge.cloud.activities import CloudActivities
from crown_edge.cloud.starter import start_job, workflow_worker
from crown_edge.config import mqtt_toml
from crown_edge.control import call
from crown_edge.embedded import MqttBroker, TemporalDevServer
from crown_edge.models import IntakeMessage
from crown_edge.stack import SETTLED, FullStack, StackSettings
from crown_edge.workflow import names

pytestmark = pytest.mark.integration


async def _settled(handle: Any, timeout: float) -> dict[str, Any]:
    """The job's view once it has settled: a complete job's workflow stays open for the rating,
    so waiting on ``handle.result()`` would wait out the rating window."""

    async def done() -> Any:
        view = await handle.query(names.STATUS_QUERY)
        return view if view.get("status") in SETTLED else None

    result: dict[str, Any] = await _until(done, timeout=timeout, what="a settled job")
    return result


async def _until(predicate: Any, timeout: float = 90.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = await predicate()
        if last:
            return last
        await asyncio.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}; last: {last}")


class EdgeProcess:
    """``crown-edge run`` as a child process (so the test can SIGKILL it)."""

    def __init__(self, tmp: Path, temporal: str, broker: MqttBroker) -> None:
        self.tmp = tmp
        self.socket = tmp / "ctl.sock"
        self.config = tmp / "edge.toml"
        self.config.write_text(
            '[edge]\nshop_id = "offline"\n[store]\npath = "edge.db"\n[control]\n'
            'socket = "ctl.sock"\n[qa]\nmode = "manual"\n'
            f'[temporal]\ntarget = "{temporal}"\n'
            f"{mqtt_toml(broker.workshop_config('offline'))}\n"
            '[[machines]]\nid = "m1"\ndriver = "sim"\nsim_time_scale = 1.0\n'
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def _spawn(self) -> None:
        with open(self.tmp / "daemon.log", "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "crown_edge", "run", "--config", str(self.config)],
                stdout=subprocess.DEVNULL,
                stderr=log,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )

    async def start(self) -> None:
        await asyncio.to_thread(self._spawn)

        async def temporal_up() -> bool:
            try:
                status = await call(self.socket, "status", timeout=2.0)
            except Exception:
                return False
            return bool(status["links"].get("temporal"))

        await _until(temporal_up, what="the daemon and its Temporal worker")

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=30)

    async def ctl(self, cmd: str, **args: Any) -> Any:
        return await call(self.socket, cmd, args)


@pytest.fixture
async def cloud(tmp_path: Path, temporal_dev_server: TemporalDevServer) -> AsyncIterator[Client]:
    client = await Client.connect(temporal_dev_server.target)
    activities = CloudActivities(tmp_path / "designs", load_catalog())
    async with workflow_worker(client, activities):
        yield client


async def test_daemon_killed_mid_job_then_resumed_workflow_completes(
    tmp_path: Path,
    cloud: Client,
    temporal_dev_server: TemporalDevServer,
    mqtt_broker: MqttBroker,
) -> None:
    edge = EdgeProcess(tmp_path, temporal_dev_server.target, mqtt_broker)
    await edge.start()
    try:
        job_id = f"KILL-{int(time.time() * 1000) % 10**8}"
        msg = IntakeMessage.parse(
            {
                "job_id": job_id,
                "customer_id": "C",
                "item_id": "plaque-a5",
                "due_date": "2026-12-01",
                "text": ["Club Champion", "2026"],
                "shop_id": "offline",
            }
        )
        handle = await start_job(cloud, msg, default_shop_id="offline")

        async def engraving() -> bool:
            try:
                job = await edge.ctl("jobs.show", job_id=job_id)
            except Exception:
                return False
            return job["status"] == "engraving" and (job["progress"] or 0) > 0

        await _until(engraving, what="engraving")
        edge.kill()
        await edge.start()
        job = await edge.ctl("jobs.show", job_id=job_id)
        assert job["status"] == "interrupted" and job["reason"] == "daemon_restart"
        await asyncio.sleep(2.0)
        job = await edge.ctl("jobs.show", job_id=job_id)
        assert job["status"] == "interrupted" and len(job["runs"]) == 1  # not re-engraved
        await edge.ctl("jobs.resume", job_id=job_id, mode="restart")

        async def qa_pending() -> bool:
            return (await edge.ctl("jobs.show", job_id=job_id))["status"] == "qa_pending"

        await _until(qa_pending, timeout=120, what="the second run")
        await edge.ctl("qa.verdict", job_id=job_id, passed=True, notes="fresh item ok")
        result = await _settled(handle, 120)
        assert result["status"] == "complete"
        job = await edge.ctl("jobs.show", job_id=job_id)
        assert [r["outcome"] for r in job["runs"]] == ["interrupted", "completed"]
    finally:
        edge.stop()


async def test_qa_verdict_while_temporal_is_down_is_delivered_after(tmp_path: Path) -> None:
    settings = StackSettings(workdir=tmp_path, lasers=1, rotary=False, qa_mode="manual")
    async with FullStack(settings) as stack:
        assert stack.config is not None
        sock = stack.config.control_socket
        status, _ = await stack.post_order(
            {
                "job_id": "QA-OFF-1",
                "customer_id": "C",
                "item_id": "trophy-plate",
                "due_date": "2026-12-01",
                "text": ["Most Improved"],
            }
        )
        assert status == 202

        async def qa_pending() -> bool:
            try:
                job = await call(sock, "jobs.show", {"job_id": "QA-OFF-1"})
            except Exception:
                return False
            return job["status"] == "qa_pending"

        await _until(qa_pending, what="qa_pending")
        await stack.services.temporal.astop()
        try:
            job = await call(sock, "qa.verdict", {"job_id": "QA-OFF-1", "passed": True})
            assert job["status"] == "complete"  # stored on the workshop at once
        finally:
            await stack.services.temporal.astart()
        client = await Client.connect(stack.services.temporal.target)
        handle = client.get_workflow_handle(names.workflow_id("QA-OFF-1"))
        result = await _settled(handle, 180)
        assert result["status"] == "complete"
