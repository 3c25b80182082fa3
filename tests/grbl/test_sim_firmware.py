"""The simulator against what grbl 1.1h (1.1h.20190830 on a pty) sends, byte for byte."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest
import serial_asyncio_fast

from crown_edge.drivers.grbl import protocol as p
from crown_edge.sim.grbl import GrblSimulator
from tests.grbl.helpers import eventually

BANNER = b"\r\nGrbl 1.1h ['$' for help]\r\n"
LOCKED = b"[MSG:'$H'|'$X' to unlock]\r\n"
SLOW = {120: 2.0, 121: 2.0}  # mm/s²: a feed hold takes long enough to watch it brake


class Raw:
    """The raw bytes the simulator sends, read from a plain serial connection."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.buffer = b""

    async def until(self, marker: bytes, timeout: float = 5.0) -> bytes:
        """Everything up to and including ``marker``; the rest stays buffered."""
        async with asyncio.timeout(timeout):
            while marker not in self.buffer:
                self.buffer += await self.reader.read(4096)
        end = self.buffer.index(marker) + len(marker)
        out, self.buffer = self.buffer[:end], self.buffer[end:]
        return out


@contextlib.asynccontextmanager
async def machine(**options: object) -> AsyncIterator[tuple[GrblSimulator, Raw]]:
    """A simulator and a raw connection that has taken the power-up banner."""
    async with GrblSimulator(**options) as sim:  # type: ignore[arg-type]
        reader, writer = await serial_asyncio_fast.open_serial_connection(
            url=sim.device_path, baudrate=115200
        )
        raw = Raw(reader, writer)
        try:
            yield sim, raw
        finally:
            writer.transport.abort()
            await writer.wait_closed()


async def _fill_planner(sim: GrblSimulator, raw: Raw) -> None:
    """A job comment, 15 slow moves (the planner is full) and one line the main loop blocks on."""
    raw.writer.write(b"(job J-R)\n" + b"".join(f"G1 X{i} F10\n".encode() for i in range(1, 16)))
    for _ in range(16):
        await raw.until(b"ok\r\n")
    raw.writer.write(b"G1 X99 F10\n")
    await eventually(lambda: sim._blocked_line and sim.core.planner_full)


async def test_reset_in_run_alarm_then_silence_then_trailing_ok_and_banner() -> None:
    async with machine(time_scale=0.01, reset_silence_s=50.0) as (sim, raw):
        await _fill_planner(sim, raw)
        raw.writer.write(b"\x18")
        assert await raw.until(b"ALARM:3\r\n") == b"ALARM:3\r\n"
        raw.writer.write(b"?$I\n")  # arrives during the silence: no answer, flushed
        tail = await raw.until(LOCKED)
        assert tail == b"ok\r\n" + BANNER + LOCKED
        raw.writer.write(b"?")
        assert (await raw.until(b">\r\n")).startswith(b"<Alarm|")  # nothing else came
        assert sim.state == "Alarm" and sim.stats.resets == 1
        record = sim.runs_of("J-R")[0]
        assert record.interrupted and "G1 X99 F10" not in record.received
        assert "G1 X99 F10" not in record.executed


async def test_reset_while_braking_is_alarm_3() -> None:
    async with machine(time_scale=0.2, settings=SLOW, reset_silence_s=0.1) as (sim, raw):
        raw.writer.write(b"G1 X100 F600\n")
        await raw.until(b"ok\r\n")
        await eventually(lambda: sim._running is not None and sim.state == "Run")
        await asyncio.sleep(0.8)  # speeding up at 2 mm/s²: braking takes as long again
        raw.writer.write(b"!?")
        assert (await raw.until(b">\r\n")).startswith(b"<Hold:1|")
        raw.writer.write(b"\x18")
        out = await raw.until(LOCKED)
        assert out == b"ALARM:3\r\n" + BANNER + LOCKED  # nothing was blocked: no trailing ok


async def test_reset_in_a_complete_hold_no_alarm_trailing_ok_then_banner() -> None:
    async with machine(time_scale=0.01) as (sim, raw):
        await _fill_planner(sim, raw)
        raw.writer.write(b"!")
        await eventually(lambda: sim.state == "Hold" and not sim.core.decelerating)
        raw.writer.write(b"?")
        assert (await raw.until(b">\r\n")).startswith(b"<Hold:0|")
        raw.writer.write(b"\x18")
        assert await raw.until(BANNER) == b"ok\r\n" + BANNER
        raw.writer.write(b"?")
        assert (await raw.until(b">\r\n")).startswith(b"<Idle|")
        assert "G1 X99 F10" not in sim.runs_of("J-R")[0].received


async def test_feed_hold_brakes_then_resume_restores_the_laser() -> None:
    async with machine(time_scale=0.2, settings=SLOW) as (sim, raw):
        raw.writer.write(b"M4 S1000\nG1 X100 F600\n")
        await raw.until(b"ok\r\nok\r\n")
        await eventually(lambda: sim._running is not None and sim.state == "Run")
        await asyncio.sleep(0.8)
        raw.writer.write(b"!?")
        report = p.parse_line((await raw.until(b">\r\n")).decode().strip())
        assert isinstance(report, p.Status) and report.state == "Hold" and report.substate == 1
        assert report.feed is not None and 0 < report.feed < 600 and report.spindle == 0
        raw.writer.write(b"~")  # ignored while braking, as grbl does
        await eventually(lambda: not sim.core.decelerating, timeout=10)
        raw.writer.write(b"?")
        assert (await raw.until(b">\r\n")).startswith(b"<Hold:0|")
        raw.writer.write(b"~")
        assert await raw.until(b"]\r\n") == b"[MSG:Restoring spindle]\r\n"
        await eventually(lambda: sim.state == "Run")


async def test_status_reports_the_actual_feed_and_laser_power() -> None:
    async with machine(time_scale=0.2, settings=SLOW) as (sim, raw):
        raw.writer.write(b"M4 S1000\nG1 X100 F600\n")
        await raw.until(b"ok\r\nok\r\n")
        await eventually(lambda: sim._running is not None)
        await asyncio.sleep(0.2)  # still speeding up (5 s model time to reach F600)
        raw.writer.write(b"?")
        text = (await raw.until(b">\r\n")).decode().strip()
        fs = text.split("|FS:")[1].split("|")[0].rstrip(">")
        feed, power = (int(v) for v in fs.split(","))  # whole numbers, as report.c prints
        assert 0 < feed < 600 and power == pytest.approx(1000 * feed / 600, abs=2)
        report = p.parse_line(text)
        assert isinstance(report, p.Status) and report.mpos is not None
        assert 0 < report.mpos[0] < 100  # the live position inside the block


async def test_rapids_report_no_laser_power() -> None:
    async with machine(time_scale=0.2, settings=SLOW) as (sim, raw):
        raw.writer.write(b"M3 S700\nG0 X100\n")
        await raw.until(b"ok\r\nok\r\n")
        await eventually(lambda: sim._running is not None)
        await asyncio.sleep(0.1)
        raw.writer.write(b"?")
        text = (await raw.until(b">\r\n")).decode()
        assert text.split("|FS:")[1].split(",")[1].startswith("0")
        raw.writer.write(b"\x18")
        await raw.until(BANNER)
        raw.writer.write(b"$X\nM3 S700\nG1 X50 F600\n")
        await raw.until(b"ok\r\nok\r\nok\r\n")
        await eventually(lambda: sim._running is not None)
        raw.writer.write(b"?")
        text = (await raw.until(b">\r\n")).decode()
        assert ",700" in text.split("|FS:")[1]  # M3: S while cutting


async def test_stall_motion_freezes_position_but_answers_status_and_reads_lines() -> None:
    async with machine(time_scale=0.05) as (sim, raw):
        raw.writer.write(b"G1 X100 F600\n")
        await raw.until(b"ok\r\n")
        await eventually(lambda: sim._running is not None)
        sim.stall_motion()
        raw.writer.write(b"?")
        first = p.parse_line((await raw.until(b">\r\n")).decode().strip())
        await asyncio.sleep(0.1)
        raw.writer.write(b"?")
        second = p.parse_line((await raw.until(b">\r\n")).decode().strip())
        assert isinstance(first, p.Status) and isinstance(second, p.Status)
        assert first.state == second.state == "Run" and first.mpos == second.mpos
        raw.writer.write(b"".join(f"G1 X{i} F600\n".encode() for i in range(20)))
        for _ in range(14):  # 15 blocks fit; the 16th line waits for a free block
            await raw.until(b"ok\r\n")
        await eventually(lambda: sim._blocked_line and sim.core.planner_full)
        raw.writer.write(b"\x18")  # re-initialises the stepper: the stall is gone
        assert await raw.until(LOCKED) == b"ALARM:3\r\nok\r\n" + BANNER + LOCKED
        raw.writer.write(b"$X\nG1 X1 F6000\n")
        await raw.until(b"ok\r\nok\r\n")
        await eventually(lambda: sim.state == "Idle")
        assert sim.core.position[0] == pytest.approx(1.0)


async def test_unstall_resumes_a_stalled_step_timer() -> None:
    async with machine(time_scale=0.0) as (sim, raw):
        sim.stall_motion()
        raw.writer.write(b"G1 X5 F600\n")
        await raw.until(b"ok\r\n")
        await asyncio.sleep(0.05)
        assert sim.state == "Run" and sim.core.position[0] == 0.0
        sim.unstall()
        await eventually(lambda: sim.state == "Idle")
        assert sim.core.position[0] == pytest.approx(5.0)
