"""Scenarios: the seed's acceptance tests, then faults. Each is ``async def (rig) -> None`` and
raises AssertionError with what it saw when the system does not do what the seed requires."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable, Callable
from itertools import pairwise

from hil.rig import Rig

Scenario = Callable[[Rig], Awaitable[None]]


async def happy_path_text_only(rig: Rig) -> None:
    """Seed: create a text-only standard job -> complete."""
    job = await rig.order(rush=False)
    result = await rig.result(job)
    assert result["status"] == "complete", result
    assert rig.stack.daemon is not None
    recorded = [
        record
        for machine in rig.stack.daemon.machines.values()
        if getattr(machine, "simulator", None) is not None
        for record in machine.simulator.runs_of(job)
    ]
    assert len(recorded) == 1 and not recorded[0].interrupted, recorded  # engraved exactly once


async def design_approval_flow(rig: Rig) -> None:
    """Seed: artwork -> pending_approval -> approve -> complete; the preview is served."""
    job = await rig.order(
        item_id="acrylic-award", text=["Star Volunteer"], artwork_url="library:star"
    )
    view = await rig.wait_for(job, "pending_approval")
    assert view["design_url"], view
    status, _ = await rig.stack.get_order(job)
    assert status == 200
    shown = await rig.ctl("jobs.show", job_id=job)  # the technician sees what the job waits for
    assert shown["status"] == "validated", shown
    assert shown["order"]["status"] == "pending_approval", shown
    assert "approval" in shown["order"]["words"], shown
    steps = [s["status"] for s in shown["order"]["design_steps"]]
    assert steps[:2] == ["designing", "pending_approval"], shown
    await rig.ctl("jobs.approve", job_id=job, comment="lovely")
    result = await rig.result(job)
    assert result["status"] == "complete", result


async def rush_order_prioritization(rig: Rig) -> None:
    """Seed: a rush job goes to queue_position 1 ahead of standard jobs queued earlier."""
    machines = [m["machine_id"] for m in await rig.ctl("machines.list")]
    for mid in machines:
        await rig.ctl("machines.pause", machine_id=mid)
    try:
        standard = [await rig.order() for _ in range(3)]
        for job in standard:
            await rig.wait_edge(job, "queued")  # in the workshop's queue, not only the workflow's
        rush = await rig.order(rush=True, item_id="trophy-plate", text=["Most Improved"])
        await rig.wait_edge(rush, "queued")
        queue = await rig.ctl("queue")
        assert queue[0]["job_id"] == rush and queue[0]["position"] == 1, queue
        shown = await rig.ctl("jobs.show", job_id=rush)
        assert shown["queue_position"] == 1, shown
        await rig.ctl("machines.resume", machine_id=machines[0])
        for job in [rush, *standard]:
            assert (await rig.result(job))["status"] == "complete"
    finally:
        for mid in machines:
            await rig.ctl("machines.resume", machine_id=mid)
    runs = {j: (await rig.ctl("jobs.show", job_id=j))["runs"][0]["started_at"] for j in standard}
    rush_start = (await rig.ctl("jobs.show", job_id=rush))["runs"][0]["started_at"]
    assert all(rush_start < t for t in runs.values()), (rush_start, runs)


async def qa_rejection_handling(rig: Rig) -> None:
    """Seed: QA fails once -> re-engraved -> retry_count 1, final status complete."""
    job = rig.new_id()
    rig.qa_plan[job] = [False, True]
    await rig.order(job_id=job)
    result = await rig.result(job)
    assert result["status"] == "complete" and result["retry_count"] == 1, result
    shown = await rig.ctl("jobs.show", job_id=job)
    assert len(shown["runs"]) == 2, shown["runs"]


async def qa_fails_three_times_escalates(rig: Rig) -> None:
    """Seed QA_FAILED handler: after three failed runs the job is escalated, not re-engraved."""
    job = rig.new_id()
    rig.qa_plan[job] = [False, False, False]
    await rig.order(job_id=job)
    result = await rig.result(job)
    assert result["status"] == "escalated" and result["retry_count"] == 3, result


async def inventory_depletion(rig: Rig) -> None:
    """Seed: item out of stock -> blocked, reason no_inventory; nothing engraved."""
    await rig.ctl("inventory.set", item_id="plaque-small", available=0)
    job = await rig.order(item_id="plaque-small", text=["Volunteer"])
    result = await rig.result(job)
    assert result["status"] == "blocked" and result["reason"] == "no_inventory", result
    shown = await rig.ctl("jobs.show", job_id=job)
    assert shown["runs"] == [], shown


async def text_does_not_fit(rig: Rig) -> None:
    """Text too long for the plate -> blocked, reason text_does_not_fit, stock untouched."""
    before = {s["item_id"]: s for s in await rig.ctl("inventory.list")}["trophy-plate"]
    job = await rig.order(item_id="trophy-plate", text=["W" * 120])
    result = await rig.result(job)
    assert result["status"] == "blocked" and result["reason"] == "text_does_not_fit", result
    after = {s["item_id"]: s for s in await rig.ctl("inventory.list")}["trophy-plate"]
    assert after["available"] == before["available"]


async def concurrent_job_handling(rig: Rig) -> None:
    """Seed: 10 jobs in parallel -> all complete, no conflicts (one job per machine at a time)."""
    jobs = await asyncio.gather(*(rig.order() for _ in range(10)))
    results = await asyncio.gather(*(rig.result(j) for j in jobs))
    assert all(r["status"] == "complete" for r in results), results
    assert rig.stack.config is not None
    conn = sqlite3.connect(rig.stack.config.store_path)
    try:
        rows = conn.execute(
            "SELECT job_id, machine_id, started_at, ended_at FROM runs "
            f"WHERE job_id IN ({','.join('?' * len(jobs))}) ORDER BY machine_id, started_at",
            jobs,
        ).fetchall()
    finally:
        conn.close()
    assert sorted(r[0] for r in rows) == sorted(jobs), rows  # each engraved exactly once
    for a, b in pairwise(rows):
        if a[1] == b[1]:
            assert b[2] >= a[3], (a, b)  # never two jobs at once on one machine


async def alarm_mid_job_waits_for_technician(rig: Rig) -> None:
    """Fault: ALARM mid-job -> interrupted, not re-engraved; technician resumes -> complete."""
    for mid in ("laser-2", "laser-3"):
        await rig.ctl("machines.pause", machine_id=mid)
    try:
        rig.machine("laser-1").simulator.alarm_after_line(30, code=1)
        job = await rig.order()
        await rig.wait_edge(job, "interrupted")
        await asyncio.sleep(1.0)
        shown = await rig.ctl("jobs.show", job_id=job)
        assert shown["status"] == "interrupted" and len(shown["runs"]) == 1, shown
        line = shown["last_acked_line"]
        assert line and line > 0, shown
        mark = shown["resume"]["default_from_line"]
        assert mark is not None and mark >= line, shown  # nothing after the mark was sent
        await rig.machine("laser-1").unlock()
        await rig.ctl("jobs.resume", job_id=job, mode="from_line")  # --continue: after the mark
        result = await rig.result(job)
        assert result["status"] == "complete", result
    finally:
        for mid in ("laser-2", "laser-3"):
            await rig.ctl("machines.resume", machine_id=mid)


async def door_open_stops_the_laser(rig: Rig) -> None:
    """Safety: door opened mid-job on the rotary -> laser stopped, job interrupted."""
    modbus = rig.stack.modbus
    sim = rig.machine("rotary-laser").simulator
    scale, sim.time_scale = sim.time_scale, 1.0  # real-time motion: the door opens mid-job
    try:
        job = await rig.order(item_id="glass-tumbler", text=["Best Man", "14.06.2026"])
        await rig.wait_edge(job, "engraving", timeout=60)
        # "engraving" is recorded at the claim, before the pre-job interlock check: open the door
        # only once the program runs (a door open before the start only holds the job back)
        for _ in range(3000):
            shown = await rig.ctl("jobs.show", job_id=job)
            if shown["status"] == "engraving" and (shown["acked_lines"] or 0) > 0:
                break
            await asyncio.sleep(0.02)
        else:
            raise AssertionError(f"{job} never started its program: {shown}")
        modbus.open_door()
        view = await rig.wait_edge(job, "interrupted", timeout=60)
        assert not sim.laser_on
        assert "door" in (view["reason"] or ""), view
    finally:
        modbus.close_door()
        sim.time_scale = scale
    await rig.machine("rotary-laser").unlock()
    await rig.ctl("jobs.resume", job_id=job, mode="scrap")
    result = await rig.result(job)
    assert result["status"] in ("failed", "escalated"), (result, view)


ACCEPTANCE: dict[str, Scenario] = {
    "happy_path_text_only": happy_path_text_only,
    "design_approval_flow": design_approval_flow,
    "rush_order_prioritization": rush_order_prioritization,
    "qa_rejection_handling": qa_rejection_handling,
    "inventory_depletion": inventory_depletion,
    "concurrent_job_handling": concurrent_job_handling,
}
FAULTS: dict[str, Scenario] = {
    "qa_fails_three_times_escalates": qa_fails_three_times_escalates,
    "text_does_not_fit": text_does_not_fit,
    "alarm_mid_job_waits_for_technician": alarm_mid_job_waits_for_technician,
    "door_open_stops_the_laser": door_open_stops_the_laser,
}
ALL: dict[str, Scenario] = {**ACCEPTANCE, **FAULTS}
