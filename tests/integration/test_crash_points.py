"""Crash points, every one: the daemon SIGKILLed right after each commit of a job's life.

For each point the real daemon (``tests/integration/crash_points_child.py``: ``crown-edge run``
plus a kill armed on the store's ``on_commit``) drives a GRBL simulator living in the test process
over a pty (like a real controller it keeps executing its buffers when the host dies), with the
MQTT link on to a locked-down mosquitto, the real bridge and moto's job-events queue. The test
drives the job as a client and a technician would until the daemon kills itself right after the
point's commit, lets the controller run out, restarts the daemon, and then acts as the technician
would (retry a call the crash cut off, resume an interrupted job, pass QA) until the job settles.
Then:

- never engraved twice: across every program the controller received for the job, no cutting
  line ran more often than the program has it (times the engravings a technician chose); once
  complete, every cutting line ran, except those between the last line the controller ran before
  the crash and the resume mark (they "may be engraved", so a default resume never sends them);
- never lost: the job ends complete (cancelled for the cancel points), and an interrupted job is
  never re-engraved before a technician resumes it;
- stock conserved: on shelf + reserved + consumed = initial, per item, at the crash and after;
  the settled job holds no reserved unit;
- every event delivered once: each job event reaches ``crown-trophy-job-events.fifo`` exactly
  once, in ``seq`` order, and nothing else.

``pytest -s`` prints each point's figures (state, acknowledged line and mark at the kill, lines
the controller ran, lines a default resume left out).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import re
import signal
import sqlite3
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from crown_edge.cloud.bridge import Bridge
from crown_edge.config import mqtt_toml
from crown_edge.control import call
from crown_edge.embedded import MqttBroker
from crown_edge.sim.grbl import GrblSimulator
from crown_edge.sim.grbl_core import ProgramRecord
from crown_edge.sync.sqs import OrderQueue
from tests.brokers import needs_mosquitto
from tests.integration.crash_points_child import POINTS
from tests.sync.outage import bridge_settings, in_order_once, read_events_queue

pytestmark = [pytest.mark.integration, needs_mosquitto]

ROOT = Path(__file__).parents[2]
CHILD = "tests.integration.crash_points_child"
JOB = "CP-1"
ITEM = "plaque-a5"
SETTLED = ("complete", "cancelled", "failed", "escalated")
#: a move the laser fires on (G1/G2/G3, not G21)
CUT = re.compile(r"G0?[123](?![0-9.])")
#: how long a job may sit in a state nobody moves it out of before it counts as lost
STUCK_S = 6.0


def order() -> dict[str, Any]:
    return {
        "job_id": JOB,
        "customer_id": "C-1",
        "item_id": ITEM,
        "due_date": "2026-12-01",
        "text": ["Club Champion", "Season 2026"],
    }


class Daemon:
    """The crash-point child on a config naming the simulator's port and the test broker."""

    def __init__(self, tmp: Path, port: str, broker: MqttBroker, shop: str) -> None:
        self.tmp = tmp
        self.sock = tmp / "ctl.sock"
        self.db = tmp / "edge.db"
        self.config = tmp / "edge.toml"
        mqtt = dataclasses.replace(
            broker.workshop_config(shop), ack_timeout_s=1.0, ack_timeout_max_s=2.0
        )
        self.config.write_text(
            f'[edge]\nshop_id = "{shop}"\n[store]\npath = "edge.db"\n'
            '[control]\nsocket = "ctl.sock"\n[temporal]\nenabled = false\n'
            f"{mqtt_toml(mqtt)}\n"
            f'[[machines]]\nid = "m1"\ndriver = "grbl"\nport = "{port}"\n'
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, *kill_at: str) -> None:
        with open(self.tmp / "daemon.log", "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", CHILD, str(self.config), *kill_at],
                stdout=subprocess.DEVNULL,
                stderr=log,
                cwd=ROOT,
                env={**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(ROOT)},
            )

    def log(self) -> str:
        return (self.tmp / "daemon.log").read_text(errors="replace")[-4000:]

    async def died(self, within: float) -> int:
        """The child's exit code once it ended (fail after ``within`` seconds)."""
        assert self.proc is not None
        for _ in range(int(within / 0.02)):
            code = self.proc.poll()
            if code is not None:
                return code
            await asyncio.sleep(0.02)
        raise AssertionError(f"the daemon never reached its crash point\n{self.log()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None

    async def ready(self) -> None:
        for _ in range(300):
            try:
                await call(self.sock, "ping", timeout=1.0)
                return
            except Exception:
                await asyncio.sleep(0.1)
        raise AssertionError(self.log())

    async def rpc(self, cmd: str, **args: Any) -> Any:
        return await call(self.sock, cmd, args, timeout=30.0)

    async def until(self, test: Callable[[Any], bool], timeout: float = 60) -> Any:
        job = None
        for _ in range(int(timeout / 0.02)):
            job = await self.rpc("jobs.show", job_id=JOB)
            if test(job):
                return job
            await asyncio.sleep(0.02)
        raise AssertionError(f"{JOB}: condition not reached; last {job}")


# --- what the database says (read-only, as an integrity check) -----------------------------------


def read(db: Path, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def stock(db: Path) -> dict[str, tuple[int, int, int]]:
    """Per item: (on shelf, reserved, consumed)."""
    rows = read(db, "SELECT item_id, available, reserved, consumed FROM items")
    return {r[0]: (r[1], r[2], r[3]) for r in rows}


def check_stock(db: Path, initial: dict[str, int]) -> None:
    for item, (shelf, reserved, consumed) in stock(db).items():
        assert shelf + reserved + consumed == initial[item], (item, shelf, reserved, consumed)
        held = read(
            db, "SELECT COUNT(*) FROM reservations WHERE item_id = ? AND state = 'reserved'", item
        )[0][0]
        assert reserved == held, (item, reserved, held)


def history(db: Path) -> dict[str, list[str]]:
    """Each job's event ids in ``seq`` order."""
    out: dict[str, list[str]] = {}
    for job_id, event_id in read(db, "SELECT job_id, event_id FROM job_events ORDER BY seq"):
        out.setdefault(job_id, []).append(event_id)
    return out


def point_reached(db: Path, point: str) -> bool:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return POINTS[point](conn, JOB)
    finally:
        conn.close()


# --- the scenario of each point: how the job is driven until the daemon dies ----------------------


@dataclasses.dataclass
class Calls:
    """What the client/technician asked before the crash, and whether the answer came back."""

    submitted: bool = False
    verdict: bool | None = None  # the QA verdict asked for (None: none)
    verdict_answered: bool = False
    cancel: bool = False
    cancel_answered: bool = False
    resumed_from: list[int] = dataclasses.field(default_factory=list)
    """The start line of each ``--continue`` the technician gave (after the restart)."""


async def answered(call_: Awaitable[Any]) -> bool:
    """Whether a control call got its answer (the crash may cut it off)."""
    try:
        await call_
    except Exception:
        return False
    return True


async def submit(d: Daemon, calls: Calls) -> None:
    calls.submitted = await answered(d.rpc("jobs.submit", message=order()))


async def until_qa(d: Daemon, calls: Calls, passed: bool) -> None:
    await submit(d, calls)
    await d.until(lambda j: j["status"] == "qa_pending", timeout=90)
    calls.verdict = passed
    calls.verdict_answered = await answered(
        d.rpc("qa.verdict", job_id=JOB, passed=passed, notes="crash point")
    )


async def cancel_queued(d: Daemon, calls: Calls) -> None:
    await d.rpc("machines.pause", machine_id="m1")
    await submit(d, calls)
    await d.until(lambda j: j["status"] == "queued")
    calls.cancel = True
    calls.cancel_answered = await answered(d.rpc("jobs.cancel", job_id=JOB, reason="crash point"))


async def cancel_engraving(d: Daemon, calls: Calls) -> None:
    await submit(d, calls)
    await d.until(lambda j: j["status"] == "engraving" and (j["acked_lines"] or 0) >= 1)
    calls.cancel = True
    calls.cancel_answered = await answered(d.rpc("jobs.cancel", job_id=JOB, reason="crash point"))


async def just_submit(d: Daemon, calls: Calls) -> None:
    await submit(d, calls)


@dataclasses.dataclass(frozen=True)
class Point:
    name: str
    drive: Callable[[Daemon, Calls], Awaitable[None]]
    final: str = "complete"
    engravings: int = 1
    """How many times the technician chose to have the item engraved."""


CASES = [
    pytest.param(Point("received", just_submit), id="received"),
    pytest.param(Point("reserved", just_submit), id="reserved"),
    pytest.param(Point("queued", just_submit), id="queued"),
    pytest.param(Point("claimed", just_submit), id="claimed"),
    pytest.param(Point("first_line_acked", just_submit), id="first_line_acked"),
    pytest.param(Point("mid_run", just_submit), id="mid_run"),
    pytest.param(Point("run_ended", just_submit), id="run_ended"),
    pytest.param(Point("finished", just_submit), id="finished"),
    pytest.param(
        Point("qa_failed", lambda d, c: until_qa(d, c, False), engravings=2), id="qa_failed"
    ),
    pytest.param(Point("complete", lambda d, c: until_qa(d, c, True)), id="complete"),
    pytest.param(
        Point("cancel_queued", cancel_queued, final="cancelled", engravings=0), id="cancel_queued"
    ),
    pytest.param(
        Point("cancel_engraving", cancel_engraving, final="cancelled"), id="cancel_engraving"
    ),
]


# --- after the restart: the technician's moves --------------------------------------------------


async def settle_controller(sim: GrblSimulator) -> None:
    """Let the orphaned controller run out what it had buffered."""
    for _ in range(1500):
        if sim.state in ("Idle", "Alarm"):
            await asyncio.sleep(0.3)
            if sim.state in ("Idle", "Alarm"):
                return
        await asyncio.sleep(0.02)
    raise AssertionError(f"controller still {sim.state}")


async def technician(d: Daemon, sim: GrblSimulator, calls: Calls) -> dict[str, Any]:
    """Retry what the crash cut off, then move the job on as a technician would, until it
    settles; a job nobody can move on for ``STUCK_S`` seconds is lost."""
    if not calls.submitted:  # the client never got its answer: it sends the order again
        await d.rpc("jobs.submit", message=order())
    if calls.cancel and not calls.cancel_answered:
        job = await d.rpc("jobs.show", job_id=JOB)
        if job["status"] not in SETTLED:
            await d.rpc("jobs.cancel", job_id=JOB, reason="crash point")
    if calls.verdict is not None and not calls.verdict_answered:
        job = await d.rpc("jobs.show", job_id=JOB)
        if job["status"] == "qa_pending":
            await d.rpc("qa.verdict", job_id=JOB, passed=calls.verdict, notes="again")
    loop = asyncio.get_running_loop()
    seen: tuple[str, float] = ("", loop.time())
    while True:
        job = await d.rpc("jobs.show", job_id=JOB)
        status = job["status"]
        if status in SETTLED:
            return dict(job)
        if status != seen[0]:
            seen = (status, loop.time())
        if status == "interrupted":
            runs = len(sim.runs_of(JOB))
            await asyncio.sleep(1.0)  # never re-engraved on its own
            assert (await d.rpc("jobs.show", job_id=JOB))["status"] == "interrupted"
            assert len(sim.runs_of(JOB)) == runs
            advice = job["resume"]
            if advice["all_sent"] and advice["at_program_end"]:
                await d.rpc("jobs.resume", job_id=JOB, mode="to_qa")
            elif advice["default_from_line"] is None:
                # no mark: no line ever left for the controller, so nothing is on the item
                await d.rpc("jobs.resume", job_id=JOB, mode="from_line", line=0)
                calls.resumed_from.append(0)
            else:
                await d.rpc("jobs.resume", job_id=JOB, mode="from_line")  # --continue
                calls.resumed_from.append(advice["default_from_line"])
        elif status == "qa_pending":
            await d.rpc("qa.verdict", job_id=JOB, passed=True, notes="looks right")
        elif status in ("queued", "engraving"):
            pass  # the machine worker moves it on
        elif loop.time() - seen[1] > STUCK_S:
            raise AssertionError(
                f"{JOB} lost: {status} for {STUCK_S:.0f} s after the restart and no command "
                f"moves it on (events: {[e['event'] for e in job['events']]})"
            )
        await asyncio.sleep(0.05)


# --- checks -------------------------------------------------------------------------------------


async def rendered(db: Path) -> list[str]:
    """The job's program (rendering is a pure function of the job)."""
    from crown_edge.catalog import load_catalog
    from crown_edge.config import MachineConfig
    from crown_edge.daemon.programs import render_program
    from crown_edge.store import Store

    async with Store.from_path(db) as store:
        job = await store.get_job(JOB)
    program = render_program(job, load_catalog(None), MachineConfig(id="m1"))
    return [line.strip() for line in program.lines]


def executed_lines(record: ProgramRecord | None, program: list[str]) -> int:
    """How many program lines (from line 1) a first run's controller executed.

    The simulator's record starts at the ``(job ID)`` comment, which is not line 1.
    """
    if record is None or not record.executed:
        return 0
    header = next(i for i, line in enumerate(program) if line == record.executed[0])
    return header + len(record.executed)


def cuts(lines: Any) -> Counter[str]:
    return Counter(text for text in (str(line).strip() for line in lines) if CUT.match(text))


async def drained(d: Daemon, within: float = 30.0) -> None:
    """Until the workshop holds no event the cloud has not acknowledged."""
    rows: list[Any] = []
    for _ in range(int(within / 0.1)):
        rows = [r for r in await d.rpc("outbox.pending", limit=50) if r["topic"] == "events"]
        if not rows:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"events never acknowledged by the cloud: {rows}")


@pytest.fixture
async def bridge(
    mqtt_broker: MqttBroker, sqs_queues: dict[str, str], sqs: Any
) -> AsyncIterator[tuple[str, Bridge]]:
    shop = f"crash-{uuid.uuid4().hex[:6]}"
    mqtt_broker.workshop(shop)
    b = Bridge(
        bridge_settings(mqtt_broker, f"crown-bridge-{uuid.uuid4().hex[:6]}"),
        OrderQueue(sqs, sqs_queues),
    )
    async with b:
        b.jobs.learn(JOB, shop)
        async with asyncio.timeout(20):
            await b.wait_connected()
        yield shop, b


@pytest.mark.parametrize("point", CASES)
async def test_sigkill_after_commit_point(
    point: Point,
    tmp_path: Path,
    mqtt_broker: MqttBroker,
    bridge: tuple[str, Bridge],
    sqs_queues: dict[str, str],
    sqs: Any,
) -> None:
    shop, _ = bridge
    async with GrblSimulator(time_scale=0.5) as sim:
        d = Daemon(tmp_path, sim.device_path, mqtt_broker, shop)
        d.start(point.name, JOB)
        try:
            await d.ready()
            initial = {item: sum(row) for item, row in stock(d.db).items()}
            calls = Calls()
            driving = asyncio.create_task(point.drive(d, calls))
            try:
                code = await d.died(within=90)
            finally:
                with contextlib.suppress(Exception):
                    await driving
            assert code == -signal.SIGKILL, f"exit {code}\n{d.log()}"
            assert point_reached(d.db, point.name)
            ((status_at_kill, acked_at_kill, mark_at_kill),) = read(
                d.db, "SELECT status, last_acked_line, sent_line FROM jobs WHERE job_id = ?", JOB
            )
            check_stock(d.db, initial)
            await settle_controller(sim)
            at_kill = sim.runs_of(JOB)

            d.start()
            await d.ready()
            job = await technician(d, sim, calls)
            assert job["status"] == point.final, job

            # never engraved twice
            program = await rendered(d.db)
            once = cuts(program)
            done = Counter[str]()
            for run in sim.runs_of(JOB):
                done.update(cuts(run.executed))
            chosen = max(point.engravings, 1)
            twice = {k: n for k, n in done.items() if n > once[k] * chosen}
            assert not twice, f"engraved more often than chosen: {twice}"
            if point.engravings == 0:
                assert not done
            # once complete, every line engraved, except those a crash left between the last line
            # the controller ran and the resume mark: "may be engraved", so never sent again
            skipped: Counter[str] = Counter()
            ran = executed_lines(at_kill[-1] if at_kill else None, program)
            if calls.resumed_from and calls.resumed_from[0] > 0:
                skipped = cuts(program[ran : calls.resumed_from[0]])
            missing: Counter[str] = Counter()
            if point.final == "complete":
                missing = Counter({k: n * point.engravings for k, n in once.items()}) - done
                assert not missing - skipped, f"never engraved: {missing - skipped}"
            gap = calls.resumed_from[0] - ran if calls.resumed_from else 0
            print(
                f"\n[{point.name}] at the kill: {status_at_kill}, acked {acked_at_kill}, mark "
                f"{mark_at_kill}, {len(at_kill)} program(s) "
                f"received, {ran} of {len(program)} lines ran; resumed from {calls.resumed_from}; "
                f"{gap} lines between the last one run and the mark, cutting lines among them "
                f"{sum(skipped.values())}, never engraved {sum(missing.values())}; "
                f"final {job['status']}"
            )

            # stock conserved, the job's unit settled
            check_stock(d.db, initial)
            held = read(d.db, "SELECT state FROM reservations WHERE job_id = ?", JOB)
            assert all(state != "reserved" for (state,) in held), held

            # every event delivered once, in order
            await drained(d)
            await asyncio.sleep(0.3)  # a late duplicate, if any, would land now
            relayed = read_events_queue(sqs, sqs_queues)
            assert in_order_once(relayed, history(d.db)), (relayed, history(d.db))
        finally:
            d.stop()
