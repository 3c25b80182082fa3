"""Benchmark ``stream``: character counting vs send-response through the GRBL simulator.

Two programs go through :class:`~crown_edge.sim.grbl.GrblSimulator` at an emulated 115200 baud
(11,520 bytes/s each way) and real time (``time_scale`` 1.0), each streamed with character
counting and with send-response, through the production :class:`GrblDriver` over a pty:

* **text**: a trophy plate rendered by the toolpath module (or a built-in stroke program when it
  is missing). Motion-bound: ``text_efficiency`` = ideal motion time (planner always fed, from
  :func:`~crown_edge.sim.motion.motion_time`) / wall time with character counting; target ≥ 0.95.
* **dense**: ≥ 3,000 segments of 0.05 mm at F6000 on a spiral. Motion outruns the link, so the
  link is the bottleneck: ``dense_link_utilisation`` = payload bytes/s / 11,520 (target ≥ 0.9)
  and ``dense_speedup_vs_send_response`` (target ≥ 1.5).

Character-counting runs save the durable resume mark the daemon saves (a synchronous SQLite
write per window, see :mod:`crown_edge.drivers.grbl.runstate`), so the figures include it.

Wall times run from the first byte of a program to the driver seeing the machine at rest again
(status polled at 5 Hz), so they include that detection; before each run the head is moved to
the point the measurement assumes (setup, not measured).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import sqlite3
import tempfile
from pathlib import Path
from typing import Any

from crown_edge.drivers.base import RunOutcome, RunResult
from crown_edge.drivers.grbl.driver import GrblDriver
from crown_edge.sim.grbl import DEFAULT_RESPONSE_LATENCY_S, GrblSimulator
from crown_edge.sim.grbl_report import DEFAULT_SETTINGS
from crown_edge.sim.motion import MotionSettings, motion_time

BAUD = 115200
LINK_BYTES_PER_S = BAUD / 10


def text_program(quick: bool = False) -> list[str]:
    """A realistic plate: the toolpath renderer's output, or a built-in stroke program."""
    job = "bench-text"
    try:
        from crown_edge.catalog import load_catalog
        from crown_edge.toolpath import render_job
    except ImportError:  # toolpath not in this build: a comparable stroke program
        return _fallback_text(job, 120 if quick else 600)
    catalog = load_catalog()
    if quick:
        item, lines = catalog.item("plaque-small"), ["Winner"]
    else:
        item = catalog.item("plaque-a5")
        lines = ["Riverside Tennis Club", "Club Champion", "Olivia Patel", "2026"]
    result = render_job(item, lines, catalog.material(item.material), job_id=job)
    return list(result.gcode)


def _fallback_text(job: str, strokes: int) -> list[str]:
    out = [f"(job {job})", "G21 G90", "M4 S400"]
    for s in range(strokes):
        x0, y0 = 10 + (s % 30) * 3.0, 10 + (s // 30) * 6.0
        out.append(f"G0 X{x0:.3f} Y{y0:.3f}")
        for k in range(1, 7):
            angle = k * math.pi / 3
            out.append(f"G1 X{x0 + math.cos(angle):.3f} Y{y0 + 2 * math.sin(angle):.3f} F3000")
    out.append("M5")
    return out


def dense_program(segments: int = 3000, step: float = 0.05) -> list[str]:
    """``segments`` chords of ``step`` mm at F6000 along an Archimedean spiral from the origin."""
    out = ["(job bench-dense)", "G21 G90", "M4 S300", "F6000"]
    theta, radius = 0.0, 10.0
    cx, cy = 50.0 - radius, 50.0  # the spiral starts where the head is: no rapid first
    out.append(f"G0 X{cx + radius:.3f} Y{cy:.3f}")
    for _ in range(segments):
        theta += step / radius
        radius = 10.0 + 0.5 * theta / (2 * math.pi)
        x, y = cx + radius * math.cos(theta), cy + radius * math.sin(theta)
        out.append(f"G1 X{x:.3f} Y{y:.3f}")
    out.append("M5")
    return out


def program_start(program: list[str]) -> str:
    """A rapid to the first G0 target of ``program`` (the origin if there is none)."""
    for line in program:
        if line.startswith("G0 "):
            return line
    return "G0 X0.000 Y0.000"


class _MarkFile:
    """The resume mark in a SQLite file with ``synchronous=FULL``, as the daemon keeps it."""

    def __init__(self, path: Path) -> None:
        self.db = sqlite3.connect(path, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode = WAL")
        self.db.execute("PRAGMA synchronous = FULL")
        self.db.execute("CREATE TABLE mark (job TEXT PRIMARY KEY, line INTEGER)")
        self.saved = 0

    def _write(self, line: int) -> None:
        with self.db:
            self.db.execute("INSERT OR REPLACE INTO mark VALUES ('bench', ?)", (line,))

    async def save(self, line: int) -> None:
        await asyncio.to_thread(self._write, line)
        self.saved += 1

    def close(self) -> None:
        """Close the database (``contextlib.closing``)."""
        self.db.close()


async def _run(quick: bool) -> dict[str, Any]:
    text = text_program(quick)
    dense = dense_program(1000 if quick else 3000)
    ideal = motion_time(text, MotionSettings.from_grbl(DEFAULT_SETTINGS))
    with (
        tempfile.TemporaryDirectory(prefix="crown-bench-") as tmp,
        contextlib.closing(_MarkFile(Path(tmp) / "marks.db")) as marks,
    ):
        async with (
            GrblSimulator(baud=BAUD, time_scale=1.0) as sim,
            GrblDriver.from_config("bench", sim.device_path, BAUD) as driver,
        ):
            await driver.wait_ready(timeout=10)
            runs: dict[str, RunResult] = {}
            for name, program in (("text", text), ("dense", dense)):
                for mode in ("cc", "sr"):
                    # Setup, not measured: the text run starts at the origin like its ideal; the
                    # dense run at its first point, so that it measures the link, not a rapid.
                    start = "G0 X0.000 Y0.000" if name == "text" else program_start(program)
                    await driver.run_program("bench-position", [start])
                    result = await driver.run_program(
                        f"bench-{name}-{mode}",
                        program,
                        send_response=mode == "sr",
                        on_reserve=marks.save if mode == "cc" else None,
                    )
                    if result.outcome is not RunOutcome.COMPLETED:
                        raise RuntimeError(f"bench run {name}/{mode} ended {result.outcome}")
                    runs[f"{name}_{mode}"] = result
            overflows = sim.stats.rx_overflows
    physics_sr = sum(
        (len(line) + 1 + 4) / LINK_BYTES_PER_S + DEFAULT_RESPONSE_LATENCY_S for line in dense
    )
    text_wall = runs["text_cc"].elapsed_s
    dense_wall = runs["dense_cc"].elapsed_s
    dense_sr = runs["dense_sr"].elapsed_s
    return {
        "quick": quick,
        "baud": BAUD,
        "text_lines": len(text),
        "text_ideal_s": round(ideal, 3),
        "text_wall_s": round(text_wall, 3),
        "text_efficiency": round(ideal / text_wall, 4),
        "text_send_response_wall_s": round(runs["text_sr"].elapsed_s, 3),
        "dense_segments": len(dense) - 6,
        "dense_bytes": runs["dense_cc"].bytes_sent,
        "dense_wall_s": round(dense_wall, 3),
        "dense_send_response_wall_s": round(dense_sr, 3),
        "dense_speedup_vs_send_response": round(dense_sr / dense_wall, 3),
        # Send-response from wire physics alone (line + "ok\r\n" at 11,520 B/s plus the sim's
        # 1 ms adapter latency per line): the measured figure also pays ~1 ms timer slop
        # per direction in the simulator and the host's own latency, like real USB-serial does.
        "dense_send_response_physics_s": round(physics_sr, 3),
        "dense_speedup_vs_physics_send_response": round(physics_sr / dense_wall, 3),
        "dense_link_utilisation": round(
            runs["dense_cc"].bytes_sent / dense_wall / LINK_BYTES_PER_S, 4
        ),
        "rx_overflows": overflows,
        "resume_marks_saved": marks.saved,
    }


def run(quick: bool = False) -> dict[str, Any]:
    """Run the benchmark and return its figures (``crown-edge bench stream``)."""
    return asyncio.run(_run(quick))
