"""The simulator at the byte level, through a plain serial connection, and as a process."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import AsyncIterator

import pytest
import serial_asyncio_fast

from crown_edge.drivers.base import RunOutcome
from crown_edge.drivers.grbl import protocol as p
from crown_edge.drivers.grbl.driver import GrblDriver
from crown_edge.errors import DriverError
from crown_edge.sim.grbl import GrblSimulator
from crown_edge.sim.grbl_gcode import (
    LETTERS,
    Words,
    parse_words,
    program_opened_by,
    without_comments,
)
from crown_edge.sim.grbl_report import FLOOD, MIST
from tests.grbl.helpers import FAST, eventually, plate_program


class Port:
    """A bare serial connection to the simulator with a parser on top."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.proto = p.GrblProtocol()

    async def ask(self, data: bytes, until: type, timeout: float = 3.0) -> list[p.Event]:
        self.writer.write(data)
        events: list[p.Event] = []
        async with asyncio.timeout(timeout):
            while not any(isinstance(e, until) for e in events):
                events += self.proto.events(await self.reader.read(4096))
        return events


@pytest.fixture
async def port(sim: GrblSimulator) -> AsyncIterator[Port]:
    reader, writer = await serial_asyncio_fast.open_serial_connection(
        url=sim.device_path, baudrate=115200
    )
    bare = Port(reader, writer)
    await bare.ask(b"\x18", p.Welcome)  # like a host opening the port: reset, take the banner
    await asyncio.sleep(0.1)
    bare.proto = p.GrblProtocol()  # forget a power-up banner that may trail it
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(0.05):
            await reader.read(4096)
    try:
        yield bare
    finally:
        writer.transport.abort()
        await writer.wait_closed()


async def test_reset_banner_build_info_and_status(port: Port) -> None:
    events = await port.ask(b"\x18", p.Welcome)
    assert events[-1] == p.Welcome("1.1h")
    events = await port.ask(b"$I\n", p.Ok)
    assert p.Options("V", 15, 128) in events  # HOMING_INIT_LOCK build: no "L"
    assert any(isinstance(e, p.Version) for e in events)
    events = await port.ask(b"?", p.Status)
    status = next(e for e in events if isinstance(e, p.Status))
    assert status.state == "Idle" and status.mpos == (0.0, 0.0, 0.0)


@pytest.mark.parametrize(
    ("line", "code"),
    [
        (b"G1 X1 Y1 " + b"Z0.000 " * 15 + b"\n", 11),  # line overflow
        (b"G1 X10\n", 22),  # no feed rate yet
        (b"G7 X1\n", 20),  # unsupported G code
        (b"G1 X1 Q1 F100\n", 20),  # unsupported word
        (b"G1 X1..2 F100\n", 2),  # bad number
        (b"$99x\n", 3),  # bad $ statement
    ],
)
async def test_bad_lines_get_grbl_error_codes(port: Port, line: bytes, code: int) -> None:
    events = await port.ask(line, p.Error)
    errors = [e for e in events if isinstance(e, p.Error)]
    assert errors[0].code == code


async def test_settings_dump_and_unlock(port: Port) -> None:
    events = await port.ask(b"$$\n", p.Ok)
    settings = {e.number: e.value for e in events if isinstance(e, p.Setting)}
    assert settings[32] == "1" and settings[11] == "0.010"
    events = await port.ask(b"$X\n", p.Ok)
    assert p.Ok() in events


async def test_rx_buffer_overflows_without_character_counting(
    sim: GrblSimulator, port: Port
) -> None:
    slow = b"".join(f"G1 X{i} F10\n".encode() for i in range(1, 16))  # fills the planner
    port.writer.write(slow + b"G1 X20 Y1 F10\n" * 20)
    await eventually(lambda: sim.stats.rx_overflows > 0)
    assert sim.stats.rx_peak == 127
    events = await port.ask(b"\x18", p.Welcome)
    assert any(isinstance(e, p.Alarm) and e.code == 3 for e in events), (events, sim.state)


async def test_homing_enabled_starts_locked() -> None:
    async with (
        GrblSimulator(time_scale=0.0, settings={22: 1}) as sim,
        GrblDriver("laser-2", sim.device_path, **FAST) as drv,
    ):
        await eventually(lambda: drv.status is not None)
        assert drv.status is not None and drv.status.state == "Alarm"
        await drv.home(timeout=3)
        await drv.wait_ready(timeout=3)


async def test_larger_rx_buffer_is_detected_and_used() -> None:
    async with (
        GrblSimulator(time_scale=0.01, rx_buffer=256) as sim,
        GrblDriver("laser-3", sim.device_path, **FAST) as drv,
    ):
        await drv.wait_ready(timeout=5)
        assert drv.rx_buffer == 256
        result = await drv.run_program("J-20", plate_program("J-20", 100))
        assert result.qa_auto_ok
        assert sim.stats.rx_overflows == 0 and sim.stats.rx_peak > 127


async def _start_cli(*args: str) -> tuple[asyncio.subprocess.Process, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "crown_edge.sim.grbl_cli", "--time-scale", "0", *args,
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None
    async with asyncio.timeout(20):
        where = (await proc.stdout.readline()).decode().strip()
    return proc, where


async def _stop_cli(proc: asyncio.subprocess.Process) -> int:
    proc.send_signal(signal.SIGTERM)
    async with asyncio.timeout(10):
        await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode


@pytest.mark.integration
@pytest.mark.parametrize("tcp", [False, True])
async def test_simulator_process_serves_a_driver(tcp: bool) -> None:
    proc, url = await _start_cli(*(["--tcp", "0"] if tcp else []))
    try:
        assert url.startswith("socket://127.0.0.1:") if tcp else url.endswith("ttyGRBL0")
        async with GrblDriver("laser-4", url, **FAST) as drv:
            await drv.wait_ready(timeout=5)
            result = await drv.run_program("J-30", plate_program("J-30", 30))
            assert result.outcome is RunOutcome.COMPLETED
    finally:
        assert await _stop_cli(proc) == 0


async def test_driver_refuses_to_run_without_laser_mode() -> None:
    async with (
        GrblSimulator(time_scale=0.0, settings={32: 0}) as sim,
        GrblDriver("laser-5", sim.device_path, **FAST) as drv,
    ):
        await drv.wait_ready(timeout=5)
        assert not drv.laser_mode
        with pytest.raises(DriverError, match="laser mode"):
            await drv.run_program("J-40", plate_program("J-40", 3))
        assert sim.runs_of("J-40") == []


async def test_jog_and_jog_cancel(sim: GrblSimulator, port: Port) -> None:
    assert p.Ok() in await port.ask(b"$J=G91 X5 F6000\n", p.Ok)
    await eventually(lambda: sim.state == "Idle")
    assert sim.core.position[0] == pytest.approx(5.0)
    errors = await port.ask(b"$J=G91 X5\n", p.Error)  # a jog needs its own feed rate
    assert any(isinstance(e, p.Error) and e.code == 16 for e in errors)
    await port.ask(b"$J=G91 X500 F10\n", p.Ok)
    assert sim.state == "Jog"
    port.writer.write(p.RealTime.JOG_CANCEL.value)
    await eventually(lambda: sim.state == "Idle")


async def test_rotary_a_axis_is_grblhal_only() -> None:
    lines = ["(job J-50)", "G21 G90", "M4 S300", "G1 X1.000 A90.000 F3000", "M5"]
    async with (
        GrblSimulator(time_scale=0.0) as plain,
        GrblDriver("laser-6", plain.device_path, **FAST) as drv,
    ):
        await drv.wait_ready(timeout=5)
        result = await drv.run_program("J-50", lines)
        assert result.outcome is RunOutcome.FAILED and result.error_code == 20
    async with (
        GrblSimulator(time_scale=0.0, axes="XYZA") as hal,
        GrblDriver("laser-7", hal.device_path, **FAST) as drv,
    ):
        await drv.wait_ready(timeout=5)
        result = await drv.run_program("J-51", [*lines[:3], "G1 X1.000 A90.000 F3000", "M5"])
        assert result.qa_auto_ok
        assert hal.core.position[3] == pytest.approx(90.0)
        assert drv.status is not None and drv.status.mpos is not None
        assert len(drv.status.mpos) == 4


# --- the simulator's pure parts: what one line says ---------------------------------------------

_XYZ = LETTERS | frozenset("XYZ")


@pytest.mark.parametrize(
    ("clean", "mist", "expected"),
    [
        ("G1X1F600", False, None),
        ("1X1", False, "error:1"),  # grbl's order: a word must start with a letter …
        ("G1A5", False, "error:20"),  # … the letter must be known …
        ("G1X1.2.3", False, "error:2"),  # … the number must parse …
        ("G5X1", False, "error:20"),  # … then G and M codes are checked
        ("M7", False, "error:20"),  # M7 only in a build with ENABLE_M7
        ("M7", True, None),
    ],
)
def test_parse_words_checks_in_grbls_order(clean: str, mist: bool, expected: str | None) -> None:
    got = parse_words(clean, letters=_XYZ, mist=mist, spindle=(5, 0.0), coolant=0)
    assert (got if isinstance(got, str) else None) == expected


def test_parse_words_tracks_spindle_coolant_and_line_number() -> None:
    got = parse_words("N12M4S300M8", letters=_XYZ, mist=True, spindle=(5, 0.0), coolant=MIST)
    assert isinstance(got, Words)
    assert (got.line_number, got.spindle, got.coolant) == (12, (4, 300.0), MIST | FLOOD)
    off = parse_words("M9M5", letters=_XYZ, mist=False, spindle=got.spindle, coolant=got.coolant)
    assert isinstance(off, Words) and (off.spindle, off.coolant) == ((5, 300.0), 0)


def test_a_program_opens_at_its_header_and_takes_the_job_comment_after_it() -> None:
    header = program_opened_by(None, "(crown-edge toolpath v1)")
    assert header is not None and header.job_id is None
    assert program_opened_by(header, "(job J-7)") is None  # names the header's program
    assert header.job_id == "J-7"
    header.received.append("G1 X1 F600")
    second = program_opened_by(header, "(job J-8)")  # a job comment after motion: a new program
    assert second is not None and second.job_id == "J-8"
    assert program_opened_by(second, "G1 X2") is None
    assert program_opened_by(second, "  (job J-9)") is not None  # leading blanks: still a job
    assert program_opened_by(second, "G1 X2 (job J-9)") is None  # a comment after a move: not


def test_without_comments_cuts_both_kinds_and_keeps_plain_lines() -> None:
    assert without_comments("G1 X1 Y2") == "G1 X1 Y2"
    assert without_comments("G1 X1 (cut) Y2 ; tail") == "G1 X1  Y2 "
    assert without_comments("; only a comment") == ""
    assert without_comments("(a)(b)G0") == "G0"


@pytest.fixture
async def instant_port() -> AsyncIterator[tuple[GrblSimulator, Port]]:
    """A zero-time simulator (``time_scale`` 0: the wire and motion take no time) and a port."""
    async with GrblSimulator(time_scale=0.0) as sim:
        reader, writer = await serial_asyncio_fast.open_serial_connection(
            url=sim.device_path, baudrate=115200
        )
        bare = Port(reader, writer)
        await bare.ask(b"\x18", p.Welcome)
        await asyncio.sleep(0.05)
        bare.proto = p.GrblProtocol()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(0.05):
                await reader.read(4096)
        try:
            yield sim, bare
        finally:
            writer.transport.abort()
            await writer.wait_closed()


async def test_zero_time_lines_in_one_write_are_answered_in_order(
    instant_port: tuple[GrblSimulator, Port],
) -> None:
    sim, port = instant_port
    # CR ends a line like LF; a real-time ``?`` inside a line is taken out of it
    events = await port.ask(b"G21\rG90\nG1 X1 F1?000\n$G\n", p.Feedback)
    answers = [e for e in events if isinstance(e, p.Ok | p.Error | p.Feedback)]
    assert answers[:3] == [p.Ok(), p.Ok(), p.Ok()]
    assert isinstance(answers[3], p.Feedback) and "F1000" in answers[3].text
    assert any(isinstance(e, p.Status) for e in events)
    assert sim.stats.rx_overflows == 0


async def test_zero_time_ring_overflow_drops_and_counts(
    instant_port: tuple[GrblSimulator, Port],
) -> None:
    sim, port = instant_port
    port.writer.write(b"(" + b"x" * 199)  # no newline: nothing is read, the ring fills up
    await eventually(lambda: sim.stats.rx_overflows == 200 - 127)
    assert sim.stats.rx_peak == 127
    events = await port.ask(b"\x18", p.Welcome)  # a reset empties the ring
    assert events[-1] == p.Welcome("1.1h")
    events = await port.ask(b"G21\n", p.Ok)
    assert p.Ok() in events


async def test_zero_time_machine_is_at_rest_when_its_last_line_is_answered(
    instant_port: tuple[GrblSimulator, Port],
) -> None:
    sim, port = instant_port
    moves = [f"G1 X{i % 5 + 1} Y{i % 3 + 1} F3000" for i in range(20)]  # more than the planner
    for line in ["(job J-0)", "G21", "G90", *moves]:
        assert p.Ok() in await port.ask(line.encode() + b"\n", p.Ok)
    events = await port.ask(b"?", p.Status)
    status = next(e for e in events if isinstance(e, p.Status))
    assert status.state == "Idle"  # its motion took no time: nothing is left to run
    assert status.mpos == (5.0, 2.0, 0.0)  # where the last move (i = 19) ends
    assert [r.job_id for r in sim.programs] == ["J-0"]
    assert sim.programs[0].executed[-1] == moves[-1]
