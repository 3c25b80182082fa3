"""The daemon end to end in standalone mode, driven over its control socket.

Machines here are a fake that implements the Machine protocol (instant runs with scripted
outcomes); the GRBL-simulator-backed runs are in tests/integration.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest

from crown_edge.config import EdgeConfig, MachineConfig, MqttConfig, TemporalConfig
from crown_edge.control import call
from crown_edge.daemon.app import EdgeDaemon
from crown_edge.errors import ControlError
from tests.fakes import FakeMachine


@pytest.fixture
async def daemon(tmp_path: Path) -> AsyncIterator[tuple[EdgeDaemon, dict[str, FakeMachine]]]:
    config = EdgeConfig(
        shop_id="test",
        store_path=tmp_path / "edge.db",
        control_socket=tmp_path / "ctl.sock",
        machines=(
            MachineConfig(id="m1", driver="sim", materials=("anodised-aluminium", "brass")),
            MachineConfig(id="m2", driver="sim", materials=("anodised-aluminium",)),
        ),
        temporal=TemporalConfig(enabled=False),
        mqtt=MqttConfig(enabled=False),
    )
    fakes = {m.id: FakeMachine(m.id) for m in config.machines}

    async def factory(cfg: EdgeConfig, stack: AsyncExitStack) -> dict[str, Any]:
        return dict(fakes)

    d = EdgeDaemon(config)
    task = asyncio.create_task(d.run(machine_factory=factory))
    await asyncio.wait_for(d.ready.wait(), 30)
    try:
        yield d, fakes
    finally:
        d.stop_event.set()
        await asyncio.wait_for(task, 30)


async def rpc(d: EdgeDaemon, cmd: str, **args: Any) -> Any:
    return await call(d.config.control_socket, cmd, args)


async def wait_status(d: EdgeDaemon, job_id: str, status: str) -> dict[str, Any]:
    for _ in range(400):
        job: dict[str, Any] = await rpc(d, "jobs.show", job_id=job_id)
        if job["status"] == status:
            return job
        await asyncio.sleep(0.02)
    raise AssertionError(f"{job_id} never reached {status}: {job['status']}")


def order(job_id: str, **kw: Any) -> dict[str, Any]:
    return {
        "job_id": job_id,
        "customer_id": "C-1",
        "item_id": "plaque-a5",
        "due_date": "2026-12-01",
        "text": ["Club Champion", "2026"],
        **kw,
    }


async def test_happy_path_over_the_control_socket(daemon: Any) -> None:
    d, fakes = daemon
    await rpc(d, "jobs.submit", message=order("J-1"))
    job = await wait_status(d, "J-1", "qa_pending")
    assert job["machine_id"] in fakes and job["progress"] == 1.0
    await rpc(d, "qa.verdict", job_id="J-1", passed=True)
    job = await wait_status(d, "J-1", "complete")
    statuses = [e["status"] for e in job["events"]]
    assert statuses == ["received", "validated", "queued", "engraving", "qa_pending", "complete"]
    assert sum(len(f.programs) for f in fakes.values()) == 1
    stock = {s["item_id"]: s for s in await rpc(d, "inventory.list")}["plaque-a5"]
    assert stock["consumed"] == 1 and stock["reserved"] == 0


async def test_qa_fail_reengraves_then_escalates_after_three(daemon: Any) -> None:
    d, fakes = daemon
    await rpc(d, "jobs.submit", message=order("J-2"))
    for attempt in (1, 2, 3):
        job = await wait_status(d, "J-2", "qa_pending")
        assert job["attempt"] == attempt
        await rpc(d, "qa.verdict", job_id="J-2", passed=False, notes="blurred")
    job = await wait_status(d, "J-2", "escalated")
    assert job["retry_count"] == 3
    assert sum(len(f.programs) for f in fakes.values()) == 3


async def test_alarm_mid_job_interrupts_and_waits_for_technician(daemon: Any) -> None:
    d, fakes = daemon
    for fake in fakes.values():
        fake.script = ["alarm"]
    await rpc(d, "jobs.submit", message=order("J-3"))
    job = await wait_status(d, "J-3", "interrupted")
    assert job["last_acked_line"] == 5
    for fake in fakes.values():
        fake.script = []  # the controller is fine again, whichever machine takes the job
    await asyncio.sleep(0.3)
    assert sum(len(f.programs) for f in fakes.values()) == 1  # never re-run on its own
    with pytest.raises(ControlError, match="explicit choice"):
        await rpc(d, "jobs.resume", job_id="J-3")
    await rpc(d, "jobs.resume", job_id="J-3", mode="from_line", line=5)
    await wait_status(d, "J-3", "qa_pending")
    runs = [p for f in fakes.values() for p in f.programs]
    assert sorted(r[1] for r in runs) == [0, 5]


async def test_error_line_fails_the_job(daemon: Any) -> None:
    d, fakes = daemon
    for fake in fakes.values():
        fake.script = ["error"]
    await rpc(d, "jobs.submit", message=order("J-4"))
    job = await wait_status(d, "J-4", "failed")
    assert job["reason"] == "error:20" and job["last_acked_line"] == 3


async def test_bad_input_is_a_clear_error_and_loses_nothing(daemon: Any) -> None:
    d, _ = daemon
    with pytest.raises(ControlError, match="unknown job: nope"):
        await rpc(d, "jobs.show", job_id="nope")
    with pytest.raises(ControlError, match="invalid message"):
        await rpc(d, "jobs.submit", message={"job_id": 3})
    with pytest.raises(ControlError, match="unknown item"):
        await rpc(d, "jobs.submit", message=order("J-5", item_id="no-such"))
    blocked = await rpc(d, "jobs.show", job_id="J-5")
    assert blocked["status"] == "blocked" and blocked["reason"] == "unknown_item"
    with pytest.raises(ControlError, match="unknown command"):
        await rpc(d, "self.destruct")
    with pytest.raises(ControlError, match="unknown machine"):
        await rpc(d, "machines.pause", machine_id="m9")


async def test_no_inventory_blocks(daemon: Any) -> None:
    d, _ = daemon
    await rpc(d, "inventory.set", item_id="plaque-a5", available=0)
    with pytest.raises(ControlError, match="no inventory"):
        await rpc(d, "jobs.submit", message=order("J-6"))
    job = await rpc(d, "jobs.show", job_id="J-6")
    assert job["status"] == "blocked" and job["reason"] == "no_inventory"


async def test_pause_machine_and_queue_positions(daemon: Any) -> None:
    d, fakes = daemon
    await rpc(d, "machines.pause", machine_id="m1")
    await rpc(d, "machines.pause", machine_id="m2")
    await rpc(d, "jobs.submit", message=order("A"))
    await rpc(d, "jobs.submit", message=order("B", rush=True))
    queue = await rpc(d, "queue")
    assert [(r["position"], r["job_id"]) for r in queue] == [(1, "B"), (2, "A")]
    await rpc(d, "jobs.top", job_id="A")
    assert (await rpc(d, "jobs.show", job_id="A"))["queue_position"] == 1
    stock = {s["item_id"]: s for s in await rpc(d, "inventory.list")}["plaque-a5"]
    await rpc(d, "jobs.cancel", job_id="B")
    back = {s["item_id"]: s for s in await rpc(d, "inventory.list")}["plaque-a5"]
    assert back["available"] == stock["available"] + 1  # a queued job's unit goes back
    await rpc(d, "machines.resume", machine_id="m1")
    await wait_status(d, "A", "qa_pending")
    assert (await rpc(d, "jobs.show", job_id="B"))["status"] == "cancelled"
    assert [p[0] for p in fakes["m1"].programs] == ["A"]


async def test_shutdown_mid_job_records_interrupted(tmp_path: Path) -> None:
    config = EdgeConfig(
        shop_id="test",
        store_path=tmp_path / "edge.db",
        control_socket=tmp_path / "ctl.sock",
        machines=(MachineConfig(id="m1", driver="sim"),),
        temporal=TemporalConfig(enabled=False),
        mqtt=MqttConfig(enabled=False),
    )
    fake = FakeMachine("m1")
    fake.gate = asyncio.Event()  # the run never ends on its own

    async def factory(cfg: EdgeConfig, stack: AsyncExitStack) -> dict[str, Any]:
        return {"m1": fake}

    d = EdgeDaemon(config)
    task = asyncio.create_task(d.run(machine_factory=factory))
    await asyncio.wait_for(d.ready.wait(), 30)
    await rpc(d, "jobs.submit", message=order("J-7"))
    await wait_status(d, "J-7", "engraving")
    d.stop_event.set()
    await asyncio.wait_for(task, 30)
    assert fake.stopped == 1
    from crown_edge.store import Store

    async with Store.from_path(config.store_path) as store:
        job = await store.get_job("J-7")
        assert str(job.status) == "interrupted" and job.reason == "shutdown"


async def test_cli_reports_daemon_not_running(tmp_path: Path) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "crown_edge",
        "--socket",
        str(tmp_path / "none.sock"),
        "jobs",
        "show",
        "J",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await proc.communicate()
    assert proc.returncode == 1
    assert err.decode().strip() == (
        f"crown-edge: the daemon is not running (no control socket at {tmp_path / 'none.sock'})"
    )


async def test_systemd_ready_and_watchdog(tmp_path: Path) -> None:
    import socket as pysocket

    from crown_edge.daemon.notify import Notifier

    path = tmp_path / "notify.sock"
    sock = pysocket.socket(pysocket.AF_UNIX, pysocket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.setblocking(False)
    config = EdgeConfig(
        shop_id="test",
        store_path=tmp_path / "edge.db",
        control_socket=tmp_path / "ctl.sock",
        machines=(),
        temporal=TemporalConfig(enabled=False),
        mqtt=MqttConfig(enabled=False),
    )

    async def factory(cfg: EdgeConfig, stack: AsyncExitStack) -> dict[str, Any]:
        return {}

    d = EdgeDaemon(config, notifier=Notifier(str(path)))
    task = asyncio.create_task(d.run(machine_factory=factory))
    loop = asyncio.get_running_loop()
    got: list[str] = []
    try:
        while not any(m.startswith("WATCHDOG=1") for m in got):
            data = await asyncio.wait_for(loop.sock_recv(sock, 1024), 30)
            got.append(data.decode())
    finally:
        d.stop_event.set()
        await asyncio.wait_for(task, 30)
        sock.close()
    assert got[0].startswith("READY=1")


async def test_restart_on_a_fresh_item_scraps_one_and_reserves_another(daemon: Any) -> None:
    d, fakes = daemon
    for fake in fakes.values():
        fake.script = ["alarm"]
    before = {s["item_id"]: s for s in await rpc(d, "inventory.list")}["plaque-a5"]
    await rpc(d, "jobs.submit", message=order("J-8"))
    await wait_status(d, "J-8", "interrupted")
    for fake in fakes.values():
        fake.script = []
    await rpc(d, "jobs.resume", job_id="J-8", mode="restart")
    job = await wait_status(d, "J-8", "qa_pending")
    assert job["start_line"] == 0
    after = {s["item_id"]: s for s in await rpc(d, "inventory.list")}["plaque-a5"]
    assert after["available"] == before["available"] - 2  # the scrapped unit and a fresh one
    assert (after["reserved"], after["consumed"]) == (
        before["reserved"] + 1,
        before["consumed"] + 1,
    )


async def test_metrics_endpoint_serves_the_figures(tmp_path: Path) -> None:
    import urllib.request

    from crown_edge.config import MetricsConfig

    config = EdgeConfig(
        shop_id="test",
        store_path=tmp_path / "edge.db",
        control_socket=tmp_path / "ctl.sock",
        machines=(MachineConfig(id="m1", driver="sim"),),
        temporal=TemporalConfig(enabled=False),
        mqtt=MqttConfig(enabled=False),
        metrics=MetricsConfig(enabled=True, port=0),
    )

    async def factory(cfg: EdgeConfig, stack: AsyncExitStack) -> dict[str, Any]:
        return {"m1": FakeMachine("m1")}

    d = EdgeDaemon(config)
    task = asyncio.create_task(d.run(machine_factory=factory))
    try:
        await asyncio.wait_for(d.ready.wait(), 30)
        await rpc(d, "jobs.submit", message=order("M-1"))
        await wait_status(d, "M-1", "qa_pending")
        await rpc(d, "status")  # refreshes the figures
        assert d.metrics_url is not None

        def scrape() -> str:
            with urllib.request.urlopen(d.metrics_url or "", timeout=10) as resp:
                return str(resp.read().decode())

        text = await asyncio.to_thread(scrape)
    finally:
        d.stop_event.set()
        await asyncio.wait_for(task, 30)
    assert "crown_jobs_in_queue 0.0" in text
    assert 'crown_machine_utilization{machine_id="m1"}' in text


async def test_idle_workers_do_not_wake_each_other(
    daemon: tuple[EdgeDaemon, dict[str, FakeMachine]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Idle machine workers look at the queue on their poll, not in a loop: before the fix
    every empty claim woke the other workers, two idle lasers made ~10,000 claims a second."""
    d, _ = daemon
    claims = 0
    real = d.scheduler.claim_next

    async def counted(machine_id: str, now: float) -> Any:
        nonlocal claims
        claims += 1
        return await real(machine_id, now)

    monkeypatch.setattr(d.scheduler, "claim_next", counted)
    d.wake_machines()  # one wake: each idle worker looks once, then sleeps until its poll
    await asyncio.sleep(0.3)
    # two workers, a 0.5 s poll: one look each for the wake, at most one more for the poll
    assert claims <= 2 * 2, claims


async def test_cancel_of_an_engraving_job_goes_through_its_machine_worker(
    daemon: tuple[EdgeDaemon, dict[str, FakeMachine]], caplog: pytest.LogCaptureFixture
) -> None:
    """The worker stops the machine and ends the run: the job is never cancelled under it."""
    d, fakes = daemon
    for fake in fakes.values():
        fake.gate = asyncio.Event()  # the run goes on until the machine is stopped
    await rpc(d, "jobs.submit", message=order("C-1"))
    running = await wait_status(d, "C-1", "engraving")
    before = {s["item_id"]: s for s in await rpc(d, "inventory.list")}["plaque-a5"]
    job = await rpc(d, "jobs.cancel", job_id="C-1", reason="customer phoned")
    assert (job["status"], job["reason"]) == ("cancelled", "customer phoned")
    assert fakes[running["machine_id"]].stopped == 1
    shown = await rpc(d, "jobs.show", job_id="C-1")
    assert [r["outcome"] for r in shown["runs"]] == ["cancelled"]
    assert [e["status"] for e in shown["events"]][-2:] == ["engraving", "cancelled"]
    after = {s["item_id"]: s for s in await rpc(d, "inventory.list")}["plaque-a5"]
    # the unit may carry engraving: written off, never back on the shelf
    assert (after["reserved"], after["consumed"]) == (before["reserved"] - 1, 1)
    assert after["available"] == before["available"]
    assert not [r for r in caplog.records if "could not record outcome" in r.getMessage()]


async def test_restart_without_a_fresh_unit_changes_nothing(
    daemon: tuple[EdgeDaemon, dict[str, FakeMachine]],
) -> None:
    d, fakes = daemon
    for fake in fakes.values():
        fake.script = ["alarm"]
    await rpc(d, "jobs.submit", message=order("C-2"))
    await wait_status(d, "C-2", "interrupted")
    await rpc(d, "inventory.set", item_id="plaque-a5", available=0)
    before = {s["item_id"]: s for s in await rpc(d, "inventory.list")}["plaque-a5"]
    with pytest.raises(ControlError, match="plaque-a5"):
        await rpc(d, "jobs.resume", job_id="C-2", mode="restart")
    assert (await rpc(d, "jobs.show", job_id="C-2"))["status"] == "interrupted"
    assert {s["item_id"]: s for s in await rpc(d, "inventory.list")}["plaque-a5"] == before
