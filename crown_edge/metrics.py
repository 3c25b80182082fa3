"""Operational and business metrics of a workshop, and the seed's alert rules.

Figures are computed from the durable store (so they survive restarts and agree with
``crown-edge status``) into a Prometheus registry; the daemon serves it when ``[metrics]
enabled``. Names follow Prometheus conventions: base units (seconds), ``_total`` for counters,
``_ratio`` for 0–1 shares.

**Counters are honest across restarts.** ``crown_qa_verdicts_total{result}``,
``crown_jobs_completed_total``, ``crown_revenue_cents_total``, ``crown_jobs_received_total{rush}``
and the ``crown_job_completion_seconds`` histogram are not incremented in memory: every refresh
counts them afresh from the store's durable rows (QA verdicts, ``complete`` job events, jobs),
which are never deleted. A restart therefore neither resets them nor replays history as a burst,
so ``increase()`` and ``rate()`` read the same before and after; no ``_created`` sample is
exposed because the series start with the store, not the process. Until the first refresh after
start-up the store-derived families are absent (a false zero would look like a counter reset).
Ratios (QA pass ratio, rush share) are computed in PromQL from the counters, so no gauge reads
0.0 before the first verdict or goes stale without verdicts.

Live state: ``crown_jobs_in_queue``, ``crown_jobs_processing``,
``crown_machine_utilization_ratio{machine_id}`` (busy share of the last hour),
``crown_machine_heartbeat_age_seconds{machine_id}`` (+Inf before the first heartbeat),
``crown_link_up{link}`` (1/0 per optional link, from the daemon's ``links()``), the outbox
gauges ``crown_outbox_*``, ``crown_build_info{version}`` and the process and platform collectors
(``process_*``, ``python_info``).

Deprecated, exposed for one more release and then removed: ``crown_jobs_completed_today``,
``crown_revenue_today_cents`` (rolling 24 h gauges: use ``increase()`` of the counters),
``crown_qa_pass_rate`` (absent while no verdict in 24 h; use the verdict counters),
``crown_rush_order_percentage`` (use ``crown_jobs_received_total``) and
``crown_machine_utilization`` (now ``crown_machine_utilization_ratio``).

The same figures feed the three alerts of the seed, evaluated locally so a technician sees them
in ``crown-edge status`` even without a Prometheus server:

- ``queue_backup``: queue depth > 50 (page on-call)
- ``high_failure_rate``: QA pass rate < 80 % over the last 24 h, with at least 5 verdicts
  (notify supervisor)
- ``machine_offline``: a machine's heartbeat older than ``heartbeat_timeout_s`` (5 min default)
  (page maintenance)

``config/alerts/crown-edge.rules.yml`` carries the same rules for Prometheus (the pass ratio and
its minimum-count guard computed in PromQL from the verdict counters), and two more on the
outbox gauges (``crown_outbox_*``): events not acknowledged by the cloud for 15 minutes, and rows
given up at the outbox's bounds. ``config/alerts/crown-edge.rules.test.yml`` unit-tests them
with ``promtool test rules``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Gauge,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from crown_edge import __version__
from crown_edge.store import Store

QUEUE_BACKUP_DEPTH = 50
MIN_QA_PASS_RATE = 0.8
MIN_VERDICTS = 5
DAY_S = 86_400.0
#: upper bounds (seconds) of the received → complete histogram
COMPLETION_BUCKETS: tuple[float, ...] = (60, 300, 900, 1800, 3600, 7200, 14400, 28800, 86400)


@dataclass(frozen=True, slots=True)
class Totals:
    """All-time figures counted from the store: the values of the ``_total`` counters."""

    verdicts_passed: int = 0
    verdicts_failed: int = 0
    jobs_completed: int = 0
    revenue_cents: int = 0
    jobs_received: int = 0
    rush_received: int = 0
    #: cumulative completions at or under each of COMPLETION_BUCKETS
    completion_buckets: tuple[int, ...] = (0,) * len(COMPLETION_BUCKETS)
    completion_sum_s: float = 0.0


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
    totals: Totals = field(default_factory=Totals)

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


def read_totals(conn: sqlite3.Connection) -> Totals:
    """Count the all-time figures from the store's durable rows."""
    passed, failed = conn.execute(
        "SELECT COALESCE(SUM(passed != 0), 0), COALESCE(SUM(passed = 0), 0) FROM qa_verdicts"
    ).fetchone()
    received, rush = conn.execute(
        "SELECT COUNT(*), COALESCE(SUM(rush != 0), 0) FROM jobs"
    ).fetchone()
    le = ", ".join(f"COALESCE(SUM(d <= {b!r}), 0)" for b in COMPLETION_BUCKETS)
    row = conn.execute(
        f"SELECT COUNT(*), COALESCE(SUM(d), 0.0), COALESCE(SUM(price), 0), {le} FROM ("
        "  SELECT MAX(0.0, e.at - j.received_at) AS d,"
        "         COALESCE(json_extract(j.message, '$.price_cents'), 0) AS price"
        "  FROM job_events e JOIN jobs j USING (job_id) WHERE e.status = 'complete')"
    ).fetchone()
    return Totals(
        verdicts_passed=int(passed),
        verdicts_failed=int(failed),
        jobs_completed=int(row[0]),
        revenue_cents=int(row[2]),
        jobs_received=int(received),
        rush_received=int(rush),
        completion_buckets=tuple(int(n) for n in row[3:]),
        completion_sum_s=float(row[1]),
    )


def read_snapshot(conn: sqlite3.Connection, now: float) -> Snapshot:
    """Compute a Snapshot from the store."""
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
    n_verdicts = int(verdicts[0] or 0)
    return Snapshot(
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
        totals=read_totals(conn),
    )


class _StoreCollector(Collector):
    """Exposes the last Snapshot's store-derived counters, build info and deprecated aliases."""

    def __init__(self, metrics: EdgeMetrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterable[Metric]:
        build = GaugeMetricFamily(
            "crown_build_info", "crown-edge build; the value is always 1", labels=["version"]
        )
        build.add_metric([self._metrics.version], 1.0)
        yield build
        snap = self._metrics.last
        if snap is None:  # not read yet: absent, not a false zero
            return
        t = snap.totals
        verdicts = CounterMetricFamily(
            "crown_qa_verdicts", "QA verdicts recorded, by result", labels=["result"]
        )
        verdicts.add_metric(["pass"], t.verdicts_passed)
        verdicts.add_metric(["fail"], t.verdicts_failed)
        yield verdicts
        yield CounterMetricFamily("crown_jobs_completed", "Jobs completed", value=t.jobs_completed)
        yield CounterMetricFamily(
            "crown_revenue_cents", "Price of completed jobs, in cents", value=t.revenue_cents
        )
        received = CounterMetricFamily(
            "crown_jobs_received", "Jobs received, by rush", labels=["rush"]
        )
        received.add_metric(["true"], t.rush_received)
        received.add_metric(["false"], t.jobs_received - t.rush_received)
        yield received
        bounds = zip(COMPLETION_BUCKETS, t.completion_buckets, strict=True)
        buckets = [(str(float(b)), n) for b, n in bounds]
        buckets.append(("+Inf", t.jobs_completed))
        yield HistogramMetricFamily(
            "crown_job_completion_seconds",
            "Received to complete",
            buckets=buckets,
            sum_value=t.completion_sum_s,
        )
        yield from self._deprecated(snap)

    @staticmethod
    def _deprecated(snap: Snapshot) -> Iterable[Metric]:
        note = "DEPRECATED, removed in the next release: "
        yield GaugeMetricFamily(
            "crown_jobs_completed_today",
            note + "use increase(crown_jobs_completed_total[24h])",
            value=snap.jobs_completed_today,
        )
        yield GaugeMetricFamily(
            "crown_revenue_today_cents",
            note + "use increase(crown_revenue_cents_total[24h])",
            value=snap.revenue_today_cents,
        )
        if snap.qa_pass_rate is not None:
            yield GaugeMetricFamily(
                "crown_qa_pass_rate",
                note + "use crown_qa_verdicts_total",
                value=snap.qa_pass_rate,
            )
        if snap.rush_order_percentage is not None:
            yield GaugeMetricFamily(
                "crown_rush_order_percentage",
                note + "use crown_jobs_received_total",
                value=snap.rush_order_percentage,
            )
        util = GaugeMetricFamily(
            "crown_machine_utilization",
            note + "use crown_machine_utilization_ratio",
            labels=["machine_id"],
        )
        for machine_id, value in sorted(snap.machine_utilization.items()):
            util.add_metric([machine_id], value)
        yield util


class EdgeMetrics:
    """Prometheus collectors refreshed from the store (and the daemon's links)."""

    def __init__(
        self,
        store: Store,
        registry: CollectorRegistry | None = None,
        *,
        links: Callable[[], Mapping[str, bool]] | None = None,
        version: str = __version__,
        process: bool = True,
    ) -> None:
        self.store = store
        self.registry = registry or CollectorRegistry()
        self.version = version
        self._links = links
        r = self.registry
        self.jobs_in_queue = Gauge("crown_jobs_in_queue", "Jobs queued", registry=r)
        self.jobs_processing = Gauge("crown_jobs_processing", "Jobs engraving", registry=r)
        self.utilization = Gauge(
            "crown_machine_utilization_ratio",
            "Busy share of the last hour (0-1)",
            ["machine_id"],
            registry=r,
        )
        self.heartbeat = Gauge(
            "crown_machine_heartbeat_age_seconds", "Heartbeat age", ["machine_id"], registry=r
        )
        self.link_up = Gauge(
            "crown_link_up", "1 while the optional link is connected", ["link"], registry=r
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
        r.register(_StoreCollector(self))
        if process:
            ProcessCollector(registry=r)
            PlatformCollector(registry=r)
        self.last: Snapshot | None = None

    async def refresh(self, now: float) -> Snapshot:
        """Read the store and the links and update every collector."""
        snap = await self.store.run_sql(lambda c: read_snapshot(c, now), write=False)
        self.jobs_in_queue.set(snap.jobs_in_queue)
        self.jobs_processing.set(snap.jobs_processing)
        for machine_id, value in snap.machine_utilization.items():
            self.utilization.labels(machine_id).set(value)
        for machine_id, age in snap.heartbeat_age_s.items():
            self.heartbeat.labels(machine_id).set(age if age is not None else float("inf"))
        if self._links is not None:
            for link, up in self._links().items():
                self.link_up.labels(link).set(1.0 if up else 0.0)
        outbox = await self.store.outbox_stats(now)
        self.outbox_backlog.set(outbox.backlog_rows)
        self.outbox_oldest.set(outbox.oldest_age_s)
        self.outbox_dropped.set(outbox.dropped_rows)
        self.last = snap
        return snap
