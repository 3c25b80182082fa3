"""Scenarios: the seed's acceptance tests, then faults. Each is ``async def (rig) -> None`` and
raises AssertionError with what it saw when the system does not do what the seed requires.

The same scenarios run on the built-in simulators and on a target (:mod:`hil.target`): they
reach machines through the daemon's control socket and faults through :meth:`Rig.inject`. A
scenario that injects faults declares them with :func:`~hil.rig.needs`; the runner skips it on
a target that cannot inject one. What a simulator recorded (:meth:`Rig.engraved`) is checked
where there is a record (none on hardware).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable, Callable
from itertools import pairwise

from hil.rig import Rig, needs

Scenario = Callable[[Rig], Awaitable[None]]


def needed(scenario: Scenario) -> tuple[str, ...]:
    """The faults ``scenario`` injects (declared with :func:`~hil.rig.needs`)."""
    return tuple(getattr(scenario, "needs", ()))


def _program_lines(lines: list[str]) -> list[str]:
    """The G-code of a program record (no comments, no ``$`` system commands)."""
    return [line for line in lines if line and not line.startswith(("(", "$"))]


async def _nothing_sent_after_reset(rig: Rig, job: str, expect_reset: bool) -> None:
    """Where the simulator records resets (a simulated bench): the controller was reset during
    ``job`` when ``expect_reset``, and no program line of ``job`` arrived after the last reset."""
    records = await rig.engraved(job) or []
    known = [r for r in records if r["resets_at"] is not None]
    if expect_reset and known:
        assert any(r["resets_at"] for r in known), (job, "no reset recorded", known[:1])
    for record in known:
        if record["resets_at"]:
            after = record["received"][record["resets_at"][-1] :]
            assert _program_lines(after) == [], (job, "sent after the reset", after[:5])


async def happy_path_text_only(rig: Rig) -> None:
    """Seed: create a text-only standard job -> complete."""
    job = await rig.order(rush=False)
    result = await rig.result(job)
    assert result["status"] == "complete", result
    shown = await rig.ctl("jobs.show", job_id=job)
    assert len(shown["runs"]) == 1, shown["runs"]  # engraved exactly once (the daemon's record)
    recorded = await rig.engraved(job)
    if recorded is not None:  # and the machine's own: one program, run to its end
        assert len(recorded) == 1 and not recorded[0]["interrupted"], recorded
        assert recorded[0]["executed"] > 10, recorded[0]["executed"]
    await rig.assert_never_fired(job)


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
        await rig.ctl("machines.resume", machine_id=rig.machine_for("plaque-a5"))
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


@needs("alarm")
async def alarm_mid_job_waits_for_technician(rig: Rig) -> None:
    """Fault: ALARM mid-job -> interrupted, not re-engraved; technician resumes -> complete."""
    mid = rig.fault_machines("alarm")[0]
    async with rig.only(mid):
        await rig.inject("alarm", mid)
        job = await rig.order(item_id=rig.item_for(mid))
        await rig.wait_edge(job, "interrupted")
        await asyncio.sleep(1.0)
        shown = await rig.ctl("jobs.show", job_id=job)
        assert shown["status"] == "interrupted" and len(shown["runs"]) == 1, shown
        line = shown["last_acked_line"]
        assert line and line > 0, shown
        mark = shown["resume"]["default_from_line"]
        assert mark is not None and mark >= line, shown  # nothing after the mark was sent
        await rig.unlock(mid)
        await rig.ctl("jobs.resume", job_id=job, mode="from_line")  # --continue: after the mark
        result = await rig.result(job)
        assert result["status"] == "complete", result
    await rig.assert_never_fired(job)


async def _stopped_mid_job(rig: Rig, kind: str, words: tuple[str, ...]) -> None:
    """A fault mid-job: the laser stops, the job is interrupted with a reason naming one of
    ``words``, nothing of the program is sent after the controller's reset, nothing is
    re-engraved; the fault cleared, the machine comes back and the technician scraps the item."""
    mid = rig.fault_machines(kind)[0]
    item = rig.item_for(mid)
    # real-time motion on a simulator: the fault comes mid-job (hardware is real time anyway)
    scale = await rig.set_time_scale(mid, 1.0)
    view: dict[str, object] = {}
    try:
        async with rig.only(mid):
            job = await rig.order(item_id=item, text=["Best Man", "14.06.2026"])
            # a fault before the program runs only holds the job back: inject once it runs
            await rig.wait_running(job)
            await rig.inject(kind, mid)
            try:
                view = await rig.wait_edge(job, "interrupted", timeout=60)
                assert await rig.laser_on(mid) in (False, None), "the laser still fires"
                reason = str(view.get("reason") or "")
                assert any(w in reason for w in words), (kind, view)
                await _nothing_sent_after_reset(rig, job, expect_reset=kind != "unplug")
            finally:
                await rig.clear(kind, mid)
            await rig.recover(mid)  # unlocked if the reset left grbl in alarm
            await asyncio.sleep(1.0)  # the machine is back: the job must still wait
            shown = await rig.ctl("jobs.show", job_id=job)
            assert shown["status"] == "interrupted" and len(shown["runs"]) == 1, shown
            recorded = await rig.engraved(job)
            if recorded is not None:  # never sent again by itself
                assert len(recorded) == 1, [(r["machine_id"], r["executed"]) for r in recorded]
            await rig.ctl("jobs.resume", job_id=job, mode="scrap")
            result = await rig.result(job)
            assert result["status"] in ("failed", "escalated"), (result, view)
    finally:
        if scale is not None:
            await rig.set_time_scale(mid, scale)
    await rig.assert_never_fired(job)


@needs("door")
async def door_open_stops_the_laser(rig: Rig) -> None:
    """Safety: door opened mid-job -> feed hold and reset (laser off), job interrupted, nothing
    sent after the reset."""
    await _stopped_mid_job(rig, "door", ("door",))


@needs("estop")
async def estop_stops_the_laser(rig: Rig) -> None:
    """Safety: e-stop pressed mid-job -> the same stop as the door, reason the e-stop."""
    await _stopped_mid_job(rig, "estop", ("estop",))


@needs("unplug")
async def usb_unplugged_mid_job(rig: Rig) -> None:
    """Hardware: the controller's USB power cut mid-job -> interrupted (link lost), the port
    comes back when the power does, the job is not re-engraved by itself."""
    await _stopped_mid_job(rig, "unplug", ("link", "lost", "port", "closed", "unplug"))


@needs("controller_reset")
async def controller_reset_mid_job(rig: Rig) -> None:
    """Hardware: the controller resets by itself mid-job -> interrupted, nothing re-sent."""
    await _stopped_mid_job(rig, "controller_reset", ("reset", "ALARM:3", "alarm"))


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
#: faults a hardware bench injects through its wiring (target ``[faults]``); the simulators
#: take them too
HARDWARE_FAULTS: dict[str, Scenario] = {
    "estop_stops_the_laser": estop_stops_the_laser,
    "usb_unplugged_mid_job": usb_unplugged_mid_job,
    "controller_reset_mid_job": controller_reset_mid_job,
}
ALL: dict[str, Scenario] = {**ACCEPTANCE, **FAULTS, **HARDWARE_FAULTS}
