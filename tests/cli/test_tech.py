"""Technician commands through typer's CliRunner against a daemon running in a thread.

The CLI calls the daemon with ``asyncio.run`` per command, so the daemon gets an event loop of
its own in a background thread (fake machines: instant runs, or held at a gate).
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from crown_edge import __version__
from crown_edge.cli import app, main
from crown_edge.config import EdgeConfig, MachineConfig, MqttConfig, TemporalConfig
from crown_edge.control import call
from crown_edge.daemon.app import EdgeDaemon
from tests.fakes import FakeMachine

runner = CliRunner()


@dataclass
class Running:
    daemon: EdgeDaemon
    hold: threading.Event
    loop: asyncio.AbstractEventLoop
    args: list[str]

    def rpc(self, cmd: str, **args: Any) -> Any:
        future = asyncio.run_coroutine_threadsafe(
            call(self.daemon.config.control_socket, cmd, args), self.loop
        )
        return future.result(30)

    def cli(self, *argv: str, input: str | None = None) -> Any:
        return runner.invoke(app, [*self.args, *argv], input=input)


@pytest.fixture
def edge(tmp_path: Path) -> Iterator[Running]:
    config = EdgeConfig(
        shop_id="shop-t",
        store_path=tmp_path / "state" / "edge.db",
        control_socket=tmp_path / "ctl.sock",
        machines=(MachineConfig(id="laser-1", driver="sim"),),
        temporal=TemporalConfig(enabled=False),
        mqtt=MqttConfig(enabled=False),
    )
    hold = threading.Event()
    daemon = EdgeDaemon(config)
    loop = asyncio.new_event_loop()
    machines = {"laser-1": FakeMachine("laser-1", hold=hold)}

    async def factory(cfg: EdgeConfig, stack: AsyncExitStack) -> dict[str, Any]:
        return dict(machines)

    thread = threading.Thread(
        target=loop.run_until_complete,
        args=(daemon.run(machine_factory=factory, install_signals=False),),
        daemon=True,
    )
    thread.start()
    asyncio.run_coroutine_threadsafe(daemon.ready.wait(), loop).result(30)
    try:
        yield Running(daemon, hold, loop, ["--socket", str(config.control_socket)])
    finally:
        hold.clear()
        loop.call_soon_threadsafe(daemon.stop_event.set)
        thread.join(30)
        loop.close()


def submit(edge: Running, job_id: str, *lines: str) -> dict[str, Any]:
    message = {
        "job_id": job_id,
        "customer_id": "C-1",
        "item_id": "plaque-a5",
        "due_date": "2026-12-01",
        "text": list(lines),
    }
    result: dict[str, Any] = edge.rpc("jobs.submit", message=message)
    return result


def wait_status(edge: Running, job_id: str, status: str) -> dict[str, Any]:
    for _ in range(500):
        job: dict[str, Any] = edge.rpc("jobs.show", job_id=job_id)
        if job["status"] == status:
            return job
        threading.Event().wait(0.02)
    raise AssertionError(f"{job_id} never reached {status}: {job['status']}")


def fits(text: str, width: int = 80) -> None:
    too_long = [line for line in text.splitlines() if len(line) > width]
    assert not too_long, too_long
    assert "…" not in text


def test_version_and_completion() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.stdout.strip() == f"crown-edge {__version__}"
    assert "--install-completion" in runner.invoke(app, ["--help"]).stdout


def test_jobs_show_draws_the_design(edge: Running) -> None:
    edge.hold.set()  # keep the job on the machine
    submit(edge, "J-show", "Club Champion", "2026")
    wait_status(edge, "J-show", "engraving")
    result = edge.cli("jobs", "show", "J-show")
    assert result.exit_code == 0, result.output
    out = result.stdout
    fits(out)
    assert "Item:    plaque-a5" in out and "Text:    Club Champion" in out
    assert "         2026" in out and "Artwork: (none)" in out
    frame = [line for line in out.splitlines() if line[:1] in "┌│└"]
    assert frame[0].startswith("┌ 120 x 60 mm ") and len(frame[0]) == 80
    assert any(chr(0x2801) <= ch <= chr(0x28FF) for line in frame for ch in line)
    data = json.loads(edge.cli("jobs", "show", "J-show", "--json").stdout)
    assert data["design"]["paths"] and data["design"]["area_mm"] == [120.0, 60.0]
    assert data["design"]["preview"] is None


def test_preview_file_is_named_when_one_exists(edge: Running) -> None:
    submit(edge, "J-prev", "Hi")
    designs = edge.daemon.config.store_path.parent / "designs"
    designs.mkdir()
    for name in ("J-prev.svg", "J-prev-r2.svg", "J-prev-r10.svg", "J-prevX.svg"):
        (designs / name).write_text("<svg/>")
    out = edge.cli("jobs", "show", "J-prev").stdout
    assert f"Preview: {designs / 'J-prev-r10.svg'}" in out


def test_status_and_lists_fit_80_columns(edge: Running) -> None:
    edge.hold.set()
    submit(edge, "J-qa-pending-with-a-long-id", "Club Champion")
    wait_status(edge, "J-qa-pending-with-a-long-id", "engraving")
    edge.hold.clear()
    wait_status(edge, "J-qa-pending-with-a-long-id", "qa_pending")
    for argv in (("status",), ("jobs", "list"), ("machines", "list"), ("queue",)):
        result = edge.cli(*argv)
        assert result.exit_code == 0, result.output
        fits(result.stdout)
    assert "qa_pending" in edge.cli("jobs", "list").stdout


def test_machine_state_is_truthful_while_engraving(edge: Running) -> None:
    edge.hold.set()
    submit(edge, "J-busy", "A")
    wait_status(edge, "J-busy", "engraving")
    out = edge.cli("machines", "list").stdout
    line = next(line for line in out.splitlines() if "laser-1" in line)
    assert "engraving" in line and "J-busy" in line


def test_queue_says_why_nothing_is_eligible(edge: Running) -> None:
    assert edge.cli("machines", "pause", "laser-1").exit_code == 0
    submit(edge, "J-wait", "A")
    result = edge.cli("queue")
    fits(result.stdout)
    assert "none: the only eligible" in result.stdout and "is paused" in result.stdout
    rows = json.loads(edge.cli("queue", "--json").stdout)
    assert rows[0]["why"] == "the only eligible machine, laser-1, is paused"


def test_approve_words_on_a_walk_in_job(edge: Running) -> None:
    submit(edge, "J-walk", "A")
    result = edge.cli("jobs", "approve", "J-walk", "--yes")
    assert result.exit_code == 1
    assert (
        result.stderr.strip()
        == "crown-edge: job J-walk is a walk-in job: it has no design to approve"
    )
    unknown = edge.cli("jobs", "reject", "J-none", "--yes")
    assert (
        unknown.exit_code == 1 and "unknown job" in unknown.stderr and "None" not in unknown.stderr
    )


def test_approve_shows_the_design_and_asks(edge: Running) -> None:
    submit(edge, "J-ask", "Club Champion")
    declined = edge.cli("jobs", "approve", "J-ask", input="n\n")
    assert declined.exit_code == 1
    assert "Text:    Club Champion" in declined.stdout and "┌" in declined.stdout
    assert "Approve the design of J-ask?" in declined.stderr
    assert "J-ask: design not approved, nothing sent" in declined.stderr
    no_answer = edge.cli("jobs", "approve", "J-ask")  # no terminal, no input: nothing sent
    assert no_answer.exit_code == 1 and "nothing sent" in no_answer.stderr
    accepted = edge.cli("jobs", "approve", "J-ask", input="y\n")
    assert accepted.exit_code == 1  # asked, then the daemon's words for a walk-in job
    assert "walk-in job" in accepted.stderr


def test_qa_shows_the_design_then_records(edge: Running) -> None:
    submit(edge, "J-qa", "Club Champion")
    wait_status(edge, "J-qa", "qa_pending")
    result = edge.cli("qa", "pass", "J-qa")
    assert result.exit_code == 0, result.output
    assert "Text:    Club Champion" in result.stdout and result.stdout.rstrip().endswith(
        "J-qa: complete"
    )
    again = edge.cli("qa", "fail", "J-qa", "--json")
    assert again.exit_code == 1 and again.stdout == ""


def test_jobs_watch_ends_when_the_job_is_done(edge: Running) -> None:
    edge.hold.set()
    submit(edge, "J-watch", "A")
    wait_status(edge, "J-watch", "engraving")
    result = edge.cli("jobs", "watch", "J-watch", "--interval", "0.01", "--refreshes", "2")
    assert result.exit_code == 0, result.output
    assert "J-watch: engraving" in result.stdout and "━" in result.stdout
    assert "ETA" in result.stdout
    edge.hold.clear()
    wait_status(edge, "J-watch", "qa_pending")
    edge.cli("qa", "pass", "J-watch", "--json")
    done = edge.cli("jobs", "watch", "J-watch", "--interval", "0.01")
    assert done.exit_code == 0 and "J-watch: complete" in done.stdout


def test_status_watch_leaves_on_ctrl_c(edge: Running, monkeypatch: pytest.MonkeyPatch) -> None:
    from crown_edge.cli import tech

    edge.hold.set()
    submit(edge, "J-live", "A")
    wait_status(edge, "J-live", "engraving")
    ticks: list[float] = []

    def sleep(seconds: float) -> None:
        ticks.append(seconds)
        if len(ticks) > 1:
            raise KeyboardInterrupt

    monkeypatch.setattr(tech.time, "sleep", sleep)
    result = edge.cli("status", "--watch", "--interval", "0.5")
    assert result.exit_code == 0, result.output
    assert "J-live" in result.stdout and "ETA" in result.stdout and "Traceback" not in result.output
    fits(result.stdout)


def test_errors_are_one_line(tmp_path: Path) -> None:
    result = runner.invoke(app, ["--socket", str(tmp_path / "none.sock"), "status"])
    assert result.exit_code == 1
    assert result.stderr.strip().count("\n") == 0 and "daemon is not running" in result.stderr


def test_main_entry_point_prints_the_version(monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    monkeypatch.setattr("sys.argv", ["crown-edge", "--version"])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code in (0, None)
    assert capsys.readouterr().out.strip() == f"crown-edge {__version__}"
