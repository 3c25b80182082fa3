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
from crown_edge.store import Figures, Store

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


def snapshot_of(figures: Figures) -> Snapshot:
    """The Snapshot of one reading of the store."""
    c = figures.counts
    return Snapshot(
        jobs_in_queue=figures.jobs_in_queue,
        jobs_processing=figures.jobs_processing,
        jobs_completed_today=figures.jobs_completed_today,
        average_completion_s=figures.average_completion_s,
        qa_pass_rate=figures.qa_pass_rate,
        qa_verdicts_24h=figures.qa_verdicts_24h,
        revenue_today_cents=figures.revenue_today_cents,
        rush_order_percentage=figures.rush_order_percentage,
        machine_utilization=figures.machine_utilization,
        heartbeat_age_s=figures.heartbeat_age_s,
        totals=Totals(
            verdicts_passed=c.verdicts_passed,
            verdicts_failed=c.verdicts_failed,
            jobs_completed=c.jobs_completed,
            revenue_cents=c.revenue_cents,
            jobs_received=c.jobs_received,
            rush_received=c.rush_received,
            completion_buckets=c.completion_buckets,
            completion_sum_s=c.completion_sum_s,
        ),
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
        snap = snapshot_of(await self.store.figures(now, COMPLETION_BUCKETS))
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
