"""The real edge daemon, SIGKILLed by itself right after one commit point of one job's life.

``python -m tests.integration.crash_points_child CONFIG [POINT JOB_ID]`` runs what
``crown-edge run --config CONFIG`` runs (:class:`crown_edge.daemon.app.EdgeDaemon`). With a
point, a callback on the store's ``on_commit`` (called in the event loop after every commit that
changed rows, before any other work of the daemon can run) reads the job's newest rows with a
read-only SQLite connection and kills the process with SIGKILL as soon as the point's condition
holds: the crash lands after that commit and before anything the daemon would do next (publish
the event, answer the caller, stream the next line, take the next step).

Only the public surface is used: the config loader, ``EdgeDaemon``, ``Store.on_commit`` and the
schema's tables (read-only, as an integrity check would).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sqlite3
import sys
from collections.abc import Callable
from pathlib import Path

from crown_edge.config import load_config
from crown_edge.daemon.app import EdgeDaemon


def _newest_event(db: sqlite3.Connection, job_id: str) -> str | None:
    row = db.execute(
        "SELECT event FROM job_events WHERE job_id = ? ORDER BY seq DESC LIMIT 1", (job_id,)
    ).fetchone()
    return None if row is None else str(row[0])


def _job(db: sqlite3.Connection, job_id: str) -> tuple[str, int, int] | None:
    row = db.execute(
        "SELECT status, COALESCE(last_acked_line, 0), COALESCE(total_lines, 0) "
        "FROM jobs WHERE job_id = ?",
        (job_id,),
    ).fetchone()
    return None if row is None else (str(row[0]), int(row[1]), int(row[2]))


def _event_is(name: str) -> Callable[[sqlite3.Connection, str], bool]:
    return lambda db, job_id: _newest_event(db, job_id) == name


def _has_event(name: str) -> Callable[[sqlite3.Connection, str], bool]:
    """The commit that wrote event ``name``, also when the same transaction wrote more events
    after it (a walk-in job is validated, reserved and queued in one transaction; a failed QA is
    recorded with its re-engrave or escalation in one)."""

    def hit(db: sqlite3.Connection, job_id: str) -> bool:
        row = db.execute(
            "SELECT 1 FROM job_events WHERE job_id = ? AND event = ? LIMIT 1", (job_id, name)
        ).fetchone()
        return row is not None

    return hit


def _first_ack(db: sqlite3.Connection, job_id: str) -> bool:
    """The first progress commit that records an acknowledged line (progress is stored at a
    bounded rate: this is the first durable sign of an acknowledged line)."""
    job = _job(db, job_id)
    return job is not None and job[0] == "engraving" and job[1] >= 1


def _mid_run(db: sqlite3.Connection, job_id: str) -> bool:
    """A progress commit past half the program, with lines still to go."""
    job = _job(db, job_id)
    return job is not None and job[0] == "engraving" and job[2] <= 2 * job[1] < 2 * job[2]


def _run_ended(db: sqlite3.Connection, job_id: str) -> bool:
    """The job's run row closed as completed (whether or not the finish event is written yet)."""
    row = db.execute(
        "SELECT 1 FROM runs WHERE job_id = ? AND outcome = 'completed' AND ended_at IS NOT NULL",
        (job_id,),
    ).fetchone()
    return row is not None


#: point name -> condition on the database after a commit
POINTS: dict[str, Callable[[sqlite3.Connection, str], bool]] = {
    "received": _event_is("receive"),
    "reserved": _has_event("validate"),
    "queued": _event_is("enqueue"),
    "claimed": _event_is("start"),
    "first_line_acked": _first_ack,
    "mid_run": _mid_run,
    "run_ended": _run_ended,
    "finished": _event_is("finish"),
    "qa_failed": _has_event("qa_fail"),
    "complete": _event_is("qa_pass"),
    "cancel_queued": _event_is("cancel"),
    "cancel_engraving": _event_is("cancel"),
}


def kill_after(store_path: Path, point: str, job_id: str) -> Callable[[], None]:
    """The ``on_commit`` callback that SIGKILLs this process once ``point`` is reached."""
    condition = POINTS[point]
    uri = f"file:{store_path}?mode=ro"

    def check() -> None:
        db = sqlite3.connect(uri, uri=True)
        try:
            hit = condition(db, job_id)
        finally:
            db.close()
        if hit:
            os.kill(os.getpid(), signal.SIGKILL)

    return check


def main(argv: list[str]) -> None:
    """Run the daemon on ``argv[0]``; with ``argv[1:3]`` (point, job id) arm the kill."""
    config = load_config(Path(argv[0]))
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    daemon = EdgeDaemon(config)
    if len(argv) >= 3:
        # first in the list: the kill runs before the daemon's own callbacks (the MQTT link's
        # wake-up among them), so the committed event has certainly not left yet
        daemon.store.on_commit.append(kill_after(config.store_path, argv[1], argv[2]))
    asyncio.run(daemon.run())


if __name__ == "__main__":
    main(sys.argv[1:])
