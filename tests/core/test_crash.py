"""Crash safety: a process SIGKILLed mid-transition leaves a consistent database."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from crown_edge.lifecycle import JobEvent
from crown_edge.models import JobStatus
from crown_edge.store import Store

from .conftest import message

CHILD = Path(__file__).with_name("crash_child.py")


def _check_consistent(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        jobs = conn.execute("SELECT job_id, status, event_seq FROM jobs").fetchall()
        for job_id, status, event_seq in jobs:
            events = conn.execute(
                "SELECT seq, status, data FROM job_events WHERE job_id = ? ORDER BY seq", (job_id,)
            ).fetchall()
            # the job's state is exactly the state its last event reports
            assert [e[0] for e in events] == list(range(1, event_seq + 1))
            assert events[-1][1] == status
        event_ids = {r[0] for r in conn.execute("SELECT event_id FROM job_events")}
        outbox_ids = {
            json.loads(r[0])["event_id"]
            for r in conn.execute("SELECT payload FROM outbox WHERE topic = 'events'")
        }
        assert event_ids == outbox_ids  # every event has its outbox row and vice versa
        reserved = conn.execute(
            "SELECT COUNT(*) FROM reservations WHERE state = 'reserved'"
        ).fetchone()[0]
        assert (
            conn.execute("SELECT reserved FROM items WHERE item_id = 'plaque-a5'").fetchone()[0]
            == reserved
        )
        return len(jobs)
    finally:
        conn.close()


@pytest.mark.integration
def test_sigkill_mid_transition_leaves_consistent_db(tmp_path: Path) -> None:
    path = tmp_path / "crash.db"
    rng = random.Random(7)
    total = 0
    for round_no in range(4):
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])}
        child = subprocess.Popen(
            [sys.executable, "-m", "tests.core.crash_child", str(path), f"r{round_no}"],
            stdout=subprocess.PIPE,
            cwd=Path(__file__).parents[2],
            env=env,
        )
        try:
            assert child.stdout is not None
            assert child.stdout.readline().strip() == b"ready"
            time.sleep(0.2 + rng.random() * 0.6)
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait(timeout=30)
            if child.stdout:
                child.stdout.close()
        total = _check_consistent(path)
    assert total > 0


async def test_startup_turns_engraving_into_interrupted(tmp_path: Path) -> None:
    from crown_edge.catalog import load_catalog
    from crown_edge.config import MachineConfig
    from crown_edge.models import Availability, Execution, MachineState
    from crown_edge.scheduler import Scheduler

    path = tmp_path / "edge.db"
    machines = (MachineConfig(id="m1", driver="sim"),)
    async with Store.from_path(path) as store:
        await store.sync_catalog(load_catalog(), now=0.0)
        sched = Scheduler(store, machines, load_catalog())
        await sched.start()
        await sched.set_machine_state(
            MachineState("m1", Availability.AVAILABLE, Execution.READY), now=0.0
        )
        await store.submit(message("J-1"), now=1.0)
        await store.validate_and_reserve("J-1", now=1.0)
        await sched.enqueue("J-1", now=1.0)
        assert await sched.claim_next("m1", now=2.0) is not None
    async with Store.from_path(path) as store:
        assert await store.recover_on_startup(now=5.0) == ["J-1"]
        job = await store.get_job("J-1")
        assert job.status is JobStatus.INTERRUPTED and job.reason == "daemon_restart"
        runs = await store.runs("J-1")
        assert runs[-1].outcome == "interrupted"
        # never re-run automatically: only an explicit technician event requeues it
        assert await store.recover_on_startup(now=6.0) == []
        job = await store.transition("J-1", JobEvent.RESTART, now=7.0)
        assert job.status is JobStatus.QUEUED
