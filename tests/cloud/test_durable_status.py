"""Two ``crown-edge cloud`` processes on one Temporal and one SQS answer every order the same,
also after one of them restarts; customer actions reach the workflow as updates."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from temporalio import activity
from temporalio.client import Client
from temporalio.exceptions import ApplicationError
from temporalio.worker import Worker

from crown_edge.cloud.auth import Credentials
from crown_edge.embedded import MotoServer, TemporalDevServer
from crown_edge.embedded._proc import free_port
from crown_edge.workflow import names

pytestmark = pytest.mark.integration

KEY = "durable-test-key-0123456789"
SECRET = "durable-test-secret-0123456789"
SHOP = "durable-shop"


@activity.defn(name=names.VALIDATE_JOB)
async def validate_job(req: Any) -> Any:
    if req["item_id"] == "unicorn-horn":
        raise ApplicationError("not sold", type=names.ERR_UNKNOWN_ITEM, non_retryable=True)
    return {"job_id": req["job_id"], "item_id": req["item_id"], "material": "brass"}


@activity.defn(name=names.RELEASE_RESERVATION)
async def release_reservation(req: Any) -> None:
    return None


def _http(method: str, url: str, body: Any = None) -> tuple[int, dict[str, Any]]:
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {KEY}"}
    if "token=" in url:
        del headers["Authorization"]
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, json.loads(exc.read() or b"{}")
    except (urllib.error.URLError, ConnectionError):
        return 0, {}


class CloudProcess:
    """One ``crown-edge cloud --instance NAME`` process on a fixed port (its own journal)."""

    def __init__(self, tmp: Path, name: str, temporal: str, sqs: str) -> None:
        self.name = name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config = tmp / f"{name}.toml"
        self.log = tmp / f"{name}.log"
        self.config.write_text(
            f'[cloud]\ndefault_shop_id = "{SHOP}"\nshops = ["{SHOP}"]\n'
            f'designs_dir = "designs"\n[api]\ntoken_secrets = ["{SECRET}"]\n'
            f'[http]\nport = {self.port}\n[temporal]\ntarget = "{temporal}"\n'
            f'[sqs]\nendpoint_url = "{sqs}"\n'
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [
                    *(sys.executable, "-m", "crown_edge", "cloud"),
                    *("--config", str(self.config), "--instance", self.name),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "CROWN_API_KEY": KEY},
            )
        for _ in range(300):
            if _http("GET", f"{self.url}/healthz")[0] == 200:
                return
            assert self.proc.poll() is None, self.log.read_text()
            time.sleep(0.1)
        raise AssertionError(f"cloud did not start: {self.log.read_text()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            assert self.proc.wait(timeout=30) == 0, self.log.read_text()


@pytest.fixture
def clouds(
    tmp_path: Path,
    temporal_dev_server: TemporalDevServer,
    moto_server: MotoServer,
    sqs_queues: dict[str, str],
) -> Iterator[tuple[CloudProcess, CloudProcess]]:
    a = CloudProcess(tmp_path, "a", temporal_dev_server.target, moto_server.endpoint_url)
    b = CloudProcess(tmp_path, "b", temporal_dev_server.target, moto_server.endpoint_url)
    try:
        a.start()
        b.start()
        yield a, b
    finally:
        a.stop()
        b.stop()


def _wait_status(url: str, status: str) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for _ in range(300):
        code, seen = _http("GET", url)
        if code == 200 and seen.get("status") == status:
            return seen
        time.sleep(0.1)
    raise AssertionError(f"{url}: never {status}, last {seen}")


async def test_every_process_answers_the_same_after_a_restart(
    clouds: tuple[CloudProcess, CloudProcess], temporal_dev_server: TemporalDevServer
) -> None:
    import asyncio

    a, b = clouds
    client = await Client.connect(temporal_dev_server.target)
    worker = Worker(
        client,
        task_queue=names.workshop_task_queue(SHOP),
        activities=[validate_job, release_reservation],
    )
    async with worker:
        job_id = f"DUR-{time.time_ns() % 10**9}"
        order = {
            "job_id": job_id,
            "customer_id": "C-1",
            "item_id": "unicorn-horn",
            "due_date": "2099-01-01",
        }
        code, accepted = await asyncio.to_thread(_http, "POST", f"{a.url}/orders", order)
        assert code == 202, accepted
        token = Credentials((KEY,), (SECRET,)).token(job_id)
        path = f"/orders/{job_id}?token={token}"
        view_a = await asyncio.to_thread(_wait_status, a.url + path, "blocked")
        assert view_a["reason_text"] == "We do not stock the item you chose."
        view_b = await asyncio.to_thread(_wait_status, b.url + path, "blocked")
        assert view_b == view_a
        # the page of process B shows the same, although B never saw the order
        page = await asyncio.to_thread(
            urllib.request.urlopen, f"{b.url}/status/{job_id}?token={token}", None, 30
        )
        with page:
            assert "On hold" in page.read().decode()
        # a customer action on a job that is not waiting for it is refused with a reason
        code, refused = await asyncio.to_thread(
            _http, "POST", f"{b.url}/orders/{job_id}/rating?token={token}", {"stars": 5}
        )
        assert code == 409, refused
        assert refused["error"] == "refused" and refused["reasons"]
        await asyncio.to_thread(a.stop)
        await asyncio.to_thread(a.start)
        assert await asyncio.to_thread(_wait_status, a.url + path, "blocked") == view_a
        code, by_key = await asyncio.to_thread(_http, "GET", f"{a.url}/orders/{job_id}")
        assert code == 200 and by_key["status"] == "blocked"
        code, _ = await asyncio.to_thread(_http, "GET", f"{a.url}/orders/NOPE-{job_id}")
        assert code == 404

        # a design to approve: the customer answers on process B, the preview is on A
        order = {**order, "job_id": f"{job_id}-D", "item_id": "plaque-a5", "text": ["Hi"]}
        order["requires_design"] = True
        code, accepted = await asyncio.to_thread(_http, "POST", f"{b.url}/orders", order)
        assert code == 202, accepted
        token = Credentials((KEY,), (SECRET,)).token(order["job_id"])
        path = f"/orders/{order['job_id']}?token={token}"
        view = await asyncio.to_thread(_wait_status, a.url + path, "pending_approval")
        assert view["awaiting"] == "approval"
        svg = await asyncio.to_thread(
            urllib.request.urlopen, f"{a.url}/designs/{order['job_id']}.svg?token={token}", None, 30
        )
        with svg:
            assert svg.headers["Content-Type"] == "image/svg+xml"
        code, answered = await asyncio.to_thread(
            _http, "POST", f"{b.url}{path.replace('?', '/approval?')}", {"approved": True}
        )
        assert code == 200, answered
        assert answered["status"] not in ("pending_approval", "designing")
        assert "approved" in answered["history"]
        code, again = await asyncio.to_thread(
            _http, "POST", f"{a.url}{path.replace('?', '/approval?')}", {"approved": True}
        )
        assert code == 409, again
