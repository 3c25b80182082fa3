"""The driver streaming real programs to the simulator over a pty, with faults."""

from __future__ import annotations

import asyncio

import pytest

from crown_edge.drivers.base import RunOutcome, RunProgress
from crown_edge.drivers.grbl import protocol as p
from crown_edge.drivers.grbl.driver import GrblDriver
from crown_edge.errors import ControllerAlarm, InterlockOpen, ProtocolError
from crown_edge.models import Availability, Execution, MachineState
from crown_edge.sim.grbl import GrblSimulator
from tests.grbl.helpers import FAST, eventually, plate_program


def assert_sent_once_in_order(sim: GrblSimulator, job_id: str, lines: list[str]) -> list[str]:
    runs = sim.runs_of(job_id)
    assert len(runs) == 1, "the program reached the controller more than once"
    received = runs[0].received
    assert received == [line.strip() for line in lines[: len(received)]]
    return received


async def test_full_job_completes_and_every_line_runs_once(
    sim: GrblSimulator, driver: GrblDriver
) -> None:
    lines = plate_program("J-1")
    seen: list[RunProgress] = []
    states: list[MachineState] = []

    def watch(progress: RunProgress) -> None:
        seen.append(progress)
        states.append(driver.state)

    result = await driver.run_program("J-1", lines, on_progress=watch)
    mid = states[len(states) // 2]
    assert mid.job_id == "J-1" and mid.execution is Execution.ACTIVE
    assert mid.availability is Availability.AVAILABLE and 0 < (mid.progress or 0) < 1
    assert result.outcome is RunOutcome.COMPLETED and result.qa_auto_ok
    assert result.acked_lines == result.total_lines == result.last_acked_line == len(lines)
    assert seen[0].fraction == 0.0 and seen[-1].fraction == 1.0
    run = sim.runs_of("J-1")
    assert len(run) == 1 and run[0].executed == lines and not run[0].interrupted
    assert sim.stats.rx_overflows == 0
    assert sim.stats.rx_peak > 64  # character counting kept the RX buffer busy
    assert driver.state.execution is Execution.READY


async def test_send_response_mode_completes(sim: GrblSimulator, driver: GrblDriver) -> None:
    lines = plate_program("J-2", moves=30)
    result = await driver.run_program("J-2", lines, send_response=True)
    assert result.qa_auto_ok
    assert sim.stats.rx_peak <= max(len(line) for line in lines) + 1


async def test_error_mid_job_fails_at_that_line(sim: GrblSimulator, driver: GrblDriver) -> None:
    lines = plate_program("J-3")
    lines[59] = "G1 X10 Q5"  # Q is not a grbl word: error:20
    result = await driver.run_program("J-3", lines)
    assert result.outcome is RunOutcome.FAILED and not result.qa_auto_ok
    assert result.error_line == 60 and result.error_code == 20
    assert result.last_acked_line == 59
    assert "Unsupported command" in (result.error_text or "")
    assert len(sim.runs_of("J-3")) == 1
    received = sim.runs_of("J-3")[0].received  # accepted lines: the refused one is not there
    assert received == [line for line in lines[: len(received) + 1] if "Q5" not in line]
    assert sim.runs_of("J-3")[0].interrupted  # the buffered rest was flushed, not executed
    await driver.wait_ready(timeout=5)
    assert (await driver.run_program("J-3b", plate_program("J-3b", 20))).qa_auto_ok


async def test_alarm_mid_job_interrupts_and_locks(sim: GrblSimulator, driver: GrblDriver) -> None:
    lines = plate_program("J-4")
    sim.alarm_after_line(80, code=1)
    result = await driver.run_program("J-4", lines)
    assert result.outcome is RunOutcome.INTERRUPTED and result.reason == "alarm"
    assert result.alarm_code == 1 and "Hard limit" in (result.alarm_text or "")
    assert 80 <= result.last_acked_line < len(lines)
    state = driver.state
    assert state.availability is Availability.UNAVAILABLE
    assert state.alarm is not None and state.alarm.startswith("ALARM:1")
    with pytest.raises(ControllerAlarm):
        await driver.run_program("J-5", plate_program("J-5", 5))
    await driver.unlock()
    assert (await driver.wait_ready(timeout=5)).availability is Availability.AVAILABLE
    assert_sent_once_in_order(sim, "J-4", lines)
    assert (await driver.run_program("J-4b", plate_program("J-4b", 20))).qa_auto_ok


async def test_unplug_mid_job_interrupts_without_resending(
    sim: GrblSimulator, driver: GrblDriver
) -> None:
    lines = plate_program("J-6")

    def pull(progress: RunProgress) -> None:
        if progress.fraction >= 0.3:
            sim.unplug()

    result = await driver.run_program("J-6", lines, on_progress=pull)
    assert result.outcome is RunOutcome.INTERRUPTED and result.reason == "link_lost"
    assert 0 < result.last_acked_line < len(lines)
    assert driver.state.availability is Availability.UNAVAILABLE
    assert driver.state.execution is Execution.INTERRUPTED
    received = assert_sent_once_in_order(sim, "J-6", lines)
    assert len(received) >= result.last_acked_line
    sim.replug()
    state = await driver.wait_ready(timeout=5)
    assert state.availability is Availability.AVAILABLE
    await asyncio.sleep(0.3)
    assert len(sim.runs_of("J-6")) == 1 and sim.runs_of("J-6")[0].received == received


async def test_stalled_controller_interrupts(sim: GrblSimulator, driver: GrblDriver) -> None:
    lines = plate_program("J-7")

    def freeze(progress: RunProgress) -> None:
        if progress.fraction >= 0.2:
            sim.stall()

    result = await driver.run_program("J-7", lines, on_progress=freeze)
    assert result.outcome is RunOutcome.INTERRUPTED and result.reason == "silent"
    assert driver.state.availability is Availability.UNAVAILABLE
    assert_sent_once_in_order(sim, "J-7", lines)
    sim.unstall()
    await eventually(lambda: driver.status is not None)
    if driver.state.alarm:  # the reconnect's reset hit a moving machine: ALARM:3
        assert driver.state.alarm.startswith("ALARM:3")
        await driver.unlock()
    await driver.wait_ready(timeout=5)
    assert len(sim.runs_of("J-7")) == 1


async def test_door_open_holds_then_resumes(sim: GrblSimulator, driver: GrblDriver) -> None:
    lines = plate_program("J-8")
    tasks: list[asyncio.Task[None]] = []
    held: list[MachineState] = []

    async def close_and_resume() -> None:
        await eventually(lambda: driver.state.execution is Execution.FEED_HOLD)
        held.append(driver.state)
        sim.set_door(False)
        await eventually(lambda: driver.status is not None and driver.status.substate == 0)
        await driver.resume()

    def open_door(progress: RunProgress) -> None:
        if progress.fraction >= 0.25 and not tasks:
            sim.set_door(True)
            assert not sim.laser_on
            tasks.append(asyncio.create_task(close_and_resume()))

    result = await driver.run_program("J-8", lines, on_progress=open_door)
    await tasks[0]
    assert held[0].paused and held[0].alarm == "door open"
    assert result.qa_auto_ok
    assert sim.runs_of("J-8")[0].executed == lines


async def test_door_open_refuses_to_start(sim: GrblSimulator, driver: GrblDriver) -> None:
    sim.set_door(True)
    await asyncio.sleep(0.5)
    with pytest.raises(InterlockOpen):
        await driver.run_program("J-9", plate_program("J-9", 3))
    assert sim.runs_of("J-9") == []


async def test_emergency_stop_turns_laser_off(sim: GrblSimulator, driver: GrblDriver) -> None:
    lines = plate_program("J-10")
    tasks: list[asyncio.Task[None]] = []

    async def stop() -> None:
        await driver.emergency_stop()
        assert not sim.laser_on

    def trip(progress: RunProgress) -> None:
        if progress.fraction >= 0.3 and not tasks:
            tasks.append(asyncio.create_task(stop()))

    result = await driver.run_program("J-10", lines, on_progress=trip)
    await tasks[0]
    assert result.outcome is RunOutcome.INTERRUPTED and result.reason == "emergency_stop"
    assert sim.state in ("Idle", "Alarm") and not sim.laser_on
    assert sim.runs_of("J-10")[0].interrupted


async def test_lost_ok_ends_interrupted(sim: GrblSimulator, driver: GrblDriver) -> None:
    lines = plate_program("J-11", moves=20)
    sim.drop_oks(1)
    result = await driver.run_program("J-11", lines)
    assert result.outcome is RunOutcome.INTERRUPTED and result.reason == "lost_ack"
    assert result.last_acked_line < len(lines)
    await driver.wait_ready(timeout=5)
    after = await driver.run_program("J-11b", plate_program("J-11b", 20))
    assert after.qa_auto_ok  # the answer count is back in step


async def test_line_noise_is_survived(sim: GrblSimulator, driver: GrblDriver) -> None:
    lines = plate_program("J-12", moves=50)

    def noise(progress: RunProgress) -> None:
        if 0.2 < progress.fraction < 0.25:
            sim.inject_garbage(b"\x00\xff#@garbage\r\n")

    result = await driver.run_program("J-12", lines, on_progress=noise)
    assert result.qa_auto_ok


async def test_resume_from_line(sim: GrblSimulator, driver: GrblDriver) -> None:
    lines = plate_program("J-13", moves=40)
    seen: list[RunProgress] = []
    result = await driver.run_program("J-13", lines, start_line=30, on_progress=seen.append)
    assert result.qa_auto_ok and result.acked_lines == len(lines) - 30
    assert seen[0].fraction == pytest.approx(30 / len(lines)) and seen[0].acked_lines == 0
    assert seen[-1].fraction == 1.0 and seen[-1].last_acked_line == len(lines)
    run = sim.runs_of("J-13")[0]
    assert run.received[-(len(lines) - 30) :] == lines[30:]
    assert "G0X9.000Y4.500" in run.received  # where line 30 ended, laser off


async def test_overlong_line_refused_before_sending(sim: GrblSimulator, driver: GrblDriver) -> None:
    lines = [*plate_program("J-14", 3), "G1 X1 Y1 " + "Z0.000 " * 15]
    with pytest.raises(ProtocolError):
        await driver.run_program("J-14", lines)
    assert sim.runs_of("J-14") == []


async def test_settings_home_frame(sim: GrblSimulator, driver: GrblDriver) -> None:
    settings = await driver.settings()
    assert settings[32] == "1" and settings[110] == "6000.000"  # grbl 1.1h: three decimals
    await driver.command("$22=1")
    await driver.home(timeout=5)
    result = await driver.frame(0, 0, 20, 10)
    assert result.qa_auto_ok and not sim.laser_on
    assert sim.runs_of("frame")[0].executed[-1] == "G1X0.000Y0.000F3000"


async def test_non_critical_alarm_then_unlock_keeps_answers_in_step(
    sim: GrblSimulator, driver: GrblDriver
) -> None:
    sim.alarm_after_line(60, code=9)  # grbl keeps answering queued lines with error:9
    result = await driver.run_program("J-15", plate_program("J-15"))
    assert result.outcome is RunOutcome.INTERRUPTED and result.alarm_code == 9
    await asyncio.sleep(0.2)  # the refused lines' answers trickle in and are dropped
    await driver.unlock()
    await driver.wait_ready(timeout=5)
    assert (await driver.run_program("J-15b", plate_program("J-15b", 20))).qa_auto_ok


async def test_feed_hold_and_resume_mid_job(sim: GrblSimulator, driver: GrblDriver) -> None:
    tasks: list[asyncio.Task[None]] = []

    async def hold_then_resume() -> None:
        await driver.feed_hold()
        await eventually(lambda: driver.state.execution is Execution.FEED_HOLD)
        assert driver.state.paused and not sim.laser_on
        await driver.resume()

    def pause(progress: RunProgress) -> None:
        if progress.fraction >= 0.3 and not tasks:
            tasks.append(asyncio.create_task(hold_then_resume()))

    result = await driver.run_program("J-16", plate_program("J-16"), on_progress=pause)
    await tasks[0]
    assert result.qa_auto_ok and len(sim.runs_of("J-16")) == 1


# --- stops against grbl 1.1h's reset sequence (ALARM:3, silence, trailing ok, banner) ----------


def tap_writes(driver: GrblDriver) -> list[bytes]:
    """Record every write the driver makes on its port from now on, in order."""
    conn = driver._conn
    assert conn is not None
    written: list[bytes] = []
    link = conn.link
    original = link.write

    def write(data: bytes) -> None:
        written.append(bytes(data))
        original(data)

    link.write = write  # type: ignore[method-assign]
    return written


def after_reset(written: list[bytes]) -> list[bytes]:
    """What the driver wrote after its first soft reset, status polls left out."""
    index = written.index(b"\x18")
    return [w for w in written[index + 1 :] if w != b"?"]


async def test_emergency_stop_feeds_nothing_after_the_reset(
    sim: GrblSimulator, driver: GrblDriver
) -> None:
    lines = plate_program("J-20")
    written = tap_writes(driver)
    tasks: list[asyncio.Task[None]] = []

    def trip(progress: RunProgress) -> None:
        if progress.fraction >= 0.3 and not tasks:
            tasks.append(asyncio.create_task(driver.emergency_stop()))

    result = await driver.run_program("J-20", lines, on_progress=trip)
    await tasks[0]
    assert result.outcome is RunOutcome.INTERRUPTED and result.reason == "emergency_stop"
    assert after_reset(written) == []
    record = sim.runs_of("J-20")[0]
    assert record.interrupted and record.received == [ln.strip() for ln in record.received]
    count = len(record.received)
    await asyncio.sleep(0.3)  # nothing trails in after the banner either
    assert len(record.received) == count and len(sim.runs_of("J-20")) == 1


async def test_emergency_stop_while_still_decelerating_is_reported_as_such() -> None:
    # slow acceleration and real time: braking from 50 mm/s takes ~1 s, the hold timeout 0.3 s
    settings = {120: 50.0, 121: 50.0}
    async with (
        GrblSimulator(time_scale=1.0, settings=settings) as sim,
        GrblDriver.from_config(
            "laser-1", sim.device_path, 115200, **{**FAST, "hold_timeout": 0.3}
        ) as driver,
    ):
        await driver.wait_ready(timeout=5)
        lines = ["(job J-21)", "G21", "G90", "M4 S300", "F3000"] + [
            f"G1 X{60 * (i % 2) + 10:.3f} Y{i:.3f}" for i in range(1, 12)
        ]
        written = tap_writes(driver)
        task = asyncio.create_task(driver.run_program("J-21", lines))

        def cruising() -> bool:
            status = driver.status
            return status is not None and status.state == "Run" and (status.feed or 0) > 2400

        await eventually(cruising, timeout=10)
        await driver.emergency_stop()
        result = await task
        assert result.outcome is RunOutcome.INTERRUPTED and result.reason == "emergency_stop"
        assert result.alarm_code is None and result.error_code is None
        assert "still decelerating" in (result.detail or "")
        assert "ALARM:3" in (result.detail or "")
        assert after_reset(written) == []
        assert sim.state == "Alarm" and not sim.laser_on


async def test_reset_in_motion_by_someone_else_reads_as_alarm_3(
    sim: GrblSimulator, driver: GrblDriver
) -> None:
    lines = plate_program("J-22")
    written = tap_writes(driver)

    def reset(progress: RunProgress) -> None:
        if progress.fraction >= 0.3 and b"\x18" not in written:
            assert driver._conn is not None
            driver._conn.realtime(p.RealTime.SOFT_RESET)  # as a technician's terminal would

    result = await driver.run_program("J-22", lines, on_progress=reset)
    assert result.outcome is RunOutcome.INTERRUPTED
    assert result.reason == "alarm" and result.alarm_code == 3
    assert after_reset(written) == []
    await driver.unlock()
    await driver.wait_ready(timeout=5)
    assert (await driver.run_program("J-22b", plate_program("J-22b", 20))).qa_auto_ok


async def test_stalled_run_is_noticed_and_stopped(sim: GrblSimulator) -> None:
    options = {**FAST, "stall_timeout": 0.6}
    async with GrblDriver.from_config("laser-1", sim.device_path, 115200, **options) as driver:
        await driver.wait_ready(timeout=5)
        lines = plate_program("J-23")
        written = tap_writes(driver)

        def freeze(progress: RunProgress) -> None:
            if progress.fraction >= 0.2:
                sim.stall_motion()

        result = await driver.run_program("J-23", lines, on_progress=freeze)
        assert result.outcome is RunOutcome.INTERRUPTED and result.reason == "stalled"
        assert "frozen" in (result.detail or "")
        assert 0 < result.last_acked_line < len(lines)
        assert after_reset(written) == []
        if driver.state.alarm:
            await driver.unlock()
        await driver.wait_ready(timeout=5)
        assert len(sim.runs_of("J-23")) == 1
        assert (await driver.run_program("J-23b", plate_program("J-23b", 20))).qa_auto_ok


async def test_resume_right_after_a_hold_waits_for_the_braking_to_end() -> None:
    """grbl 1.1h ignores ``~`` while a hold still brakes; a resume sent then must not be lost."""
    settings = {120: 50.0, 121: 50.0}
    async with (
        GrblSimulator(time_scale=1.0, settings=settings) as sim,
        GrblDriver.from_config("laser-1", sim.device_path, 115200, **FAST) as driver,
    ):
        await driver.wait_ready(timeout=5)
        lines = ["(job J-24)", "G21", "G90", "M4 S300", "F3000", "G1 X120 Y0", "G1 X120 Y1", "M5"]
        task = asyncio.create_task(driver.run_program("J-24", lines))

        def cruising() -> bool:
            status = driver.status
            return status is not None and status.state == "Run" and (status.feed or 0) > 2400

        await eventually(cruising, timeout=10)
        await driver.feed_hold()
        await driver.resume()
        result = await asyncio.wait_for(task, timeout=20)
        assert result.qa_auto_ok and sim.runs_of("J-24")[0].executed[-1] == "M5"


async def test_every_line_leaves_only_under_a_durable_resume_mark(
    sim: GrblSimulator, driver: GrblDriver
) -> None:
    lines = plate_program("J-25")
    marks: list[int] = []

    async def save(line: int) -> None:
        await asyncio.sleep(0.002)  # a synchronous SQLite write takes about this long
        marks.append(line)

    conn = driver._conn
    assert conn is not None
    sent: list[tuple[bytes, int]] = []
    original = conn.link.write

    def write(data: bytes) -> None:
        sent.append((bytes(data), marks[-1] if marks else 0))
        original(data)

    conn.link.write = write  # type: ignore[method-assign]
    result = await driver.run_program("J-25", lines, on_reserve=save, reserve_window=32)
    assert result.qa_auto_ok and result.sent_line == len(lines)
    assert marks == sorted(marks) and marks[-1] == len(lines)
    cursor = 0
    for data, mark in sent:
        if data == b"?":
            continue
        while (lines[cursor].strip() + "\n").encode() != data:
            cursor += 1
        cursor += 1
        assert cursor <= mark, f"line {cursor} left with the durable mark at {mark}"
    assert sim.runs_of("J-25")[0].executed == lines


async def test_a_resume_mark_that_cannot_be_saved_stops_the_job(
    sim: GrblSimulator, driver: GrblDriver
) -> None:
    lines = plate_program("J-26")
    saved: list[int] = []

    async def save(line: int) -> None:
        if saved:
            raise OSError("disk full")
        saved.append(line)

    result = await driver.run_program("J-26", lines, on_reserve=save, reserve_window=32)
    assert result.outcome is RunOutcome.INTERRUPTED and result.reason == "resume_mark_not_saved"
    assert result.sent_line is not None and result.sent_line <= saved[0] == 32
    assert len(sim.runs_of("J-26")[0].received) <= 32
