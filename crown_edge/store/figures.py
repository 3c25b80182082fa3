"""The workshop's figures read from the store's durable rows (for :mod:`crown_edge.metrics`).

All-time counts come from rows that are never deleted (QA verdicts, ``complete`` job events,
jobs), so they agree across restarts; the rolling figures cover the last day and hour.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass

DAY_S = 86_400.0
HOUR_S = 3_600.0


@dataclass(frozen=True, slots=True)
class Counts:
    """All-time counts."""

    verdicts_passed: int
    verdicts_failed: int
    jobs_completed: int
    revenue_cents: int
    jobs_received: int
    rush_received: int
    completion_buckets: tuple[int, ...]
    """Completions (received -> complete) at or under each bound asked for."""
    completion_sum_s: float


@dataclass(frozen=True, slots=True)
class Figures:
    """One reading of the store: live state, the last day, and the all-time counts."""

    jobs_in_queue: int
    jobs_processing: int
    jobs_completed_today: int
    average_completion_s: float | None
    qa_pass_rate: float | None
    qa_verdicts_24h: int
    revenue_today_cents: int
    rush_order_percentage: float | None
    machine_utilization: dict[str, float]
    """Busy share of the last hour per machine."""
    heartbeat_age_s: dict[str, float | None]
    counts: Counts


def job_counts(conn: sqlite3.Connection) -> dict[str, int]:
    """Jobs per status."""
    return {
        str(s): int(n) for s, n in conn.execute("SELECT status, COUNT(*) FROM jobs GROUP BY status")
    }


def read_counts(conn: sqlite3.Connection, buckets: Sequence[float]) -> Counts:
    """Count the all-time figures; ``buckets``: upper bounds (seconds) of the completion time."""
    passed, failed = conn.execute(
        "SELECT COALESCE(SUM(passed != 0), 0), COALESCE(SUM(passed = 0), 0) FROM qa_verdicts"
    ).fetchone()
    received, rush = conn.execute(
        "SELECT COUNT(*), COALESCE(SUM(rush != 0), 0) FROM jobs"
    ).fetchone()
    le = "".join(f", COALESCE(SUM(d <= {float(b)!r}), 0)" for b in buckets)
    row = conn.execute(
        f"SELECT COUNT(*), COALESCE(SUM(d), 0.0), COALESCE(SUM(price), 0){le} FROM ("
        "  SELECT MAX(0.0, e.at - j.received_at) AS d,"
        "         COALESCE(json_extract(j.message, '$.price_cents'), 0) AS price"
        "  FROM job_events e JOIN jobs j USING (job_id) WHERE e.status = 'complete')"
    ).fetchone()
    return Counts(
        verdicts_passed=int(passed),
        verdicts_failed=int(failed),
        jobs_completed=int(row[0]),
        revenue_cents=int(row[2]),
        jobs_received=int(received),
        rush_received=int(rush),
        completion_buckets=tuple(int(n) for n in row[3:]),
        completion_sum_s=float(row[1]),
    )


def read_figures(conn: sqlite3.Connection, now: float, buckets: Sequence[float]) -> Figures:
    """Read every figure at ``now``."""
    counts = job_counts(conn)
    day = now - DAY_S
    done_today = conn.execute(
        "SELECT COUNT(*), AVG(j.updated_at - j.received_at) FROM jobs j "
        "WHERE j.status = 'complete' AND j.updated_at >= ?",
        (day,),
    ).fetchone()
    verdicts = conn.execute(
        "SELECT COUNT(*), SUM(passed) FROM qa_verdicts WHERE at >= ?", (day,)
    ).fetchone()
    revenue = 0
    total, rush = conn.execute(
        "SELECT COUNT(*), COALESCE(SUM(rush), 0) FROM jobs WHERE received_at >= ?", (day,)
    ).fetchone()
    for (price,) in conn.execute(
        "SELECT json_extract(message, '$.price_cents') FROM jobs "
        "WHERE status = 'complete' AND updated_at >= ?",
        (day,),
    ):
        revenue += int(price or 0)
    hour = now - HOUR_S
    busy: dict[str, float] = {}
    for machine_id, started, ended in conn.execute(
        "SELECT machine_id, started_at, ended_at FROM runs WHERE ended_at IS NULL OR ended_at >= ?",
        (hour,),
    ):
        span = min(ended or now, now) - max(started, hour)
        busy[machine_id] = busy.get(machine_id, 0.0) + max(0.0, span)
    machines = conn.execute("SELECT machine_id, heartbeat_at FROM machines").fetchall()
    n_verdicts = int(verdicts[0] or 0)
    return Figures(
        jobs_in_queue=int(counts.get("queued", 0)),
        jobs_processing=int(counts.get("engraving", 0)),
        jobs_completed_today=int(done_today[0] or 0),
        average_completion_s=float(done_today[1]) if done_today[1] is not None else None,
        qa_pass_rate=(int(verdicts[1] or 0) / n_verdicts) if n_verdicts else None,
        qa_verdicts_24h=n_verdicts,
        revenue_today_cents=revenue,
        rush_order_percentage=(100.0 * rush / total) if total else None,
        machine_utilization={m: min(1.0, busy.get(m, 0.0) / HOUR_S) for m, _ in machines},
        heartbeat_age_s={m: (now - hb) if hb is not None else None for m, hb in machines},
        counts=read_counts(conn, buckets),
    )
