"""Operational and business metrics of a workshop, and the seed's alert rules.

Figures are computed from the durable store (so they survive restarts and agree with
``crown-edge status``) into a Prometheus registry; the daemon serves it when ``[metrics]
enabled``. The same figures feed the three alerts of the seed, evaluated locally so a technician
sees them in ``crown-edge status`` even without a Prometheus server:

- ``queue_backup``: queue depth > 50 (page on-call)
- ``high_failure_rate``: QA pass rate < 80 % over the last 24 h, with at least 5 verdicts
  (notify supervisor)
- ``machine_offline``: a machine's heartbeat older than ``heartbeat_timeout_s`` (5 min default)
  (page maintenance)

``config/alerts/crown-edge.rules.yml`` carries the same rules for Prometheus, and two more on the
outbox gauges (``crown_outbox_*``): events not acknowledged by the cloud for 15 minutes, and rows
given up at the outbox's bounds.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Gauge, Histogram

from crown_edge.store import Store

QUEUE_BACKUP_DEPTH = 50
MIN_QA_PASS_RATE = 0.8
MIN_VERDICTS = 5
DAY_S = 86_400.0


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One reading of the workshop's figures."""

    jobs_in_queue: int
    jobs_processing: int
    jobs_completed_today: int
    average_completion_s: float | None
    qa_pass_rate: float | None
    qa_verdicts_24h: int
    revenue_today_cents: int
    rush_order_percentage: float | None
    machine_utilization: dict[str, float]
    heartbeat_age_s: dict[str, float | None]
    completions: tuple[float, ...]  # completion durations since the previous reading

    def alerts(self, heartbeat_timeout_s: float = 300.0) -> list[dict[str, Any]]:
        """The seed's alert rules evaluated on this reading."""
        out: list[dict[str, Any]] = []
        if self.jobs_in_queue > QUEUE_BACKUP_DEPTH:
            out.append(
                {
                    "name": "queue_backup",
                    "action": "page_on_call",
                    "detail": f"queue depth {self.jobs_in_queue} > {QUEUE_BACKUP_DEPTH}",
                }
            )
        if (
            self.qa_pass_rate is not None
            and self.qa_verdicts_24h >= MIN_VERDICTS
            and self.qa_pass_rate < MIN_QA_PASS_RATE
        ):
            out.append(
                {
                    "name": "high_failure_rate",
                    "action": "notify_supervisor",
                    "detail": f"QA pass rate {self.qa_pass_rate:.0%} < 80%",
                }
            )
        for machine_id, age in sorted(self.heartbeat_age_s.items()):
            if age is None or age > heartbeat_timeout_s:
                out.append(
                    {
                        "name": "machine_offline",
                        "action": "page_maintenance",
                        "machine_id": machine_id,
                        "detail": "no heartbeat"
                        if age is None
                        else f"heartbeat {age:.0f} s old > {heartbeat_timeout_s:.0f} s",
                    }
                )
        return out


def read_snapshot(
    conn: sqlite3.Connection, now: float, since_event_id: int
) -> tuple[Snapshot, int]:
    """Compute a Snapshot from the store; returns it and the last event id seen."""
    counts = dict(conn.execute("SELECT status, COUNT(*) FROM jobs GROUP BY status"))
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
    hour = now - 3600.0
    busy: dict[str, float] = {}
    for machine_id, started, ended in conn.execute(
        "SELECT machine_id, started_at, ended_at FROM runs WHERE ended_at IS NULL OR ended_at >= ?",
        (hour,),
    ):
        span = min(ended or now, now) - max(started, hour)
        busy[machine_id] = busy.get(machine_id, 0.0) + max(0.0, span)
    machines = conn.execute("SELECT machine_id, heartbeat_at FROM machines").fetchall()
    completions = []
    last_id = since_event_id
    for event_id, at, received in conn.execute(
        "SELECT e.id, e.at, j.received_at FROM job_events e JOIN jobs j USING (job_id) "
        "WHERE e.id > ? AND e.status = 'complete' ORDER BY e.id",
        (since_event_id,),
    ):
        completions.append(max(0.0, at - received))
        last_id = event_id
    top = conn.execute("SELECT COALESCE(MAX(id), 0) FROM job_events").fetchone()[0]
    n_verdicts = int(verdicts[0] or 0)
    snapshot = Snapshot(
        jobs_in_queue=int(counts.get("queued", 0)),
        jobs_processing=int(counts.get("engraving", 0)),
        jobs_completed_today=int(done_today[0] or 0),
        average_completion_s=float(done_today[1]) if done_today[1] is not None else None,
        qa_pass_rate=(int(verdicts[1] or 0) / n_verdicts) if n_verdicts else None,
        qa_verdicts_24h=n_verdicts,
        revenue_today_cents=revenue,
        rush_order_percentage=(100.0 * rush / total) if total else None,
        machine_utilization={m: min(1.0, busy.get(m, 0.0) / 3600.0) for m, _ in machines},
        heartbeat_age_s={m: (now - hb) if hb is not None else None for m, hb in machines},
        completions=tuple(completions),
    )
    return snapshot, max(last_id, int(top))


class EdgeMetrics:
    """Prometheus collectors refreshed from the store."""

    def __init__(self, store: Store, registry: CollectorRegistry | None = None) -> None:
        self.store = store
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.jobs_in_queue = Gauge("crown_jobs_in_queue", "Jobs queued", registry=r)
        self.jobs_processing = Gauge("crown_jobs_processing", "Jobs engraving", registry=r)
        self.completed_today = Gauge(
            "crown_jobs_completed_today", "Jobs completed in the last 24 h", registry=r
        )
        self.completion = Histogram(
            "crown_job_completion_seconds",
            "Received to complete",
            buckets=(60, 300, 900, 1800, 3600, 7200, 14400, 28800, 86400),
            registry=r,
        )
        self.qa_pass_rate = Gauge("crown_qa_pass_rate", "QA pass ratio, last 24 h", registry=r)
        self.revenue = Gauge("crown_revenue_today_cents", "Completed revenue, 24 h", registry=r)
        self.rush = Gauge("crown_rush_order_percentage", "Rush share of orders, 24 h", registry=r)
        self.utilization = Gauge(
            "crown_machine_utilization", "Busy share, last hour", ["machine_id"], registry=r
        )
        self.heartbeat = Gauge(
            "crown_machine_heartbeat_age_seconds", "Heartbeat age", ["machine_id"], registry=r
        )
        # end-to-end delivery (crown_edge.sync.delivery): rows waiting for the cloud's ack
        self.outbox_backlog = Gauge(
            "crown_outbox_backlog_rows", "Outbox rows not yet acknowledged by the cloud", registry=r
        )
        self.outbox_oldest = Gauge(
            "crown_outbox_oldest_age_seconds", "Age of the oldest unacknowledged row", registry=r
        )
        self.outbox_dropped = Gauge(
            "crown_outbox_dropped_rows",
            "Rows given up at the outbox's age or size bound, not replayed since",
            registry=r,
        )
        self._last_event = 0
        self.last: Snapshot | None = None

    async def refresh(self, now: float) -> Snapshot:
        """Read the store and update every collector."""
        snap, self._last_event = await self.store.run_sql(
            lambda c: read_snapshot(c, now, self._last_event), write=False
        )
        self.jobs_in_queue.set(snap.jobs_in_queue)
        self.jobs_processing.set(snap.jobs_processing)
        self.completed_today.set(snap.jobs_completed_today)
        for seconds in snap.completions:
            self.completion.observe(seconds)
        if snap.qa_pass_rate is not None:
            self.qa_pass_rate.set(snap.qa_pass_rate)
        self.revenue.set(snap.revenue_today_cents)
        if snap.rush_order_percentage is not None:
            self.rush.set(snap.rush_order_percentage)
        for machine_id, value in snap.machine_utilization.items():
            self.utilization.labels(machine_id).set(value)
        for machine_id, age in snap.heartbeat_age_s.items():
            self.heartbeat.labels(machine_id).set(age if age is not None else float("inf"))
        outbox = await self.store.outbox_stats(now)
        self.outbox_backlog.set(outbox.backlog_rows)
        self.outbox_oldest.set(outbox.oldest_age_s)
        self.outbox_dropped.set(outbox.dropped_rows)
        self.last = snap
        return snap
