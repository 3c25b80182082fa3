"""Metrics and the seed's alert rules, computed from the store."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from crown_edge import __version__
from crown_edge.lifecycle import JobEvent
from crown_edge.metrics import EdgeMetrics, Snapshot
from crown_edge.scheduler import Scheduler
from crown_edge.store import Store

from .conftest import queued


def snap(**kw: object) -> Snapshot:
    base: dict[str, object] = {
        "jobs_in_queue": 0,
        "jobs_processing": 0,
        "jobs_completed_today": 0,
        "average_completion_s": None,
        "qa_pass_rate": None,
        "qa_verdicts_24h": 0,
        "revenue_today_cents": 0,
        "rush_order_percentage": None,
        "machine_utilization": {},
        "heartbeat_age_s": {},
    }
    base.update(kw)
    return Snapshot(**base)  # type: ignore[arg-type]


def test_alert_rules() -> None:
    assert snap().alerts() == []
    assert [a["name"] for a in snap(jobs_in_queue=51).alerts()] == ["queue_backup"]
    assert snap(jobs_in_queue=50).alerts() == []
    low = snap(qa_pass_rate=0.7, qa_verdicts_24h=10)
    assert [a["name"] for a in low.alerts()] == ["high_failure_rate"]
    assert snap(qa_pass_rate=0.5, qa_verdicts_24h=2).alerts() == []  # too few to judge
    offline = snap(heartbeat_age_s={"m1": 301.0, "m2": 10.0, "m3": None}).alerts(300.0)
    assert [(a["name"], a["machine_id"]) for a in offline] == [
        ("machine_offline", "m1"),
        ("machine_offline", "m3"),
    ]


async def test_figures_from_the_store(store: Store, scheduler: Scheduler) -> None:
    await queued(store, scheduler, "J-1", now=100.0, price_cents=2500)
    await queued(store, scheduler, "J-2", now=100.0, rush=True)
    job = await scheduler.claim_next("flat-1", now=110.0)
    assert job is not None
    # the verdict row is dated 250, the job moves on at 260: stored while it still engraves
    await store.record_verdict(job.job_id, 1, True, "", "", now=250.0)
    await store.transition(job.job_id, JobEvent.FINISH, now=200.0)
    await store.transition(job.job_id, JobEvent.QA_PASS, now=260.0)
    metrics = EdgeMetrics(store)
    s = await metrics.refresh(now=300.0)
    assert s.jobs_in_queue == 1 and s.jobs_completed_today == 1
    assert s.average_completion_s == 160.0
    assert s.qa_pass_rate == 1.0 and s.rush_order_percentage == 50.0
    price = 2500 if job.job_id == "J-1" else 0
    assert s.revenue_today_cents == price
    assert 0.0 < s.machine_utilization["flat-1"] <= 1.0
    values = samples(metrics.registry)
    assert values[("crown_jobs_completed_total", ())] == 1
    assert values[("crown_revenue_cents_total", ())] == price
    assert values[("crown_jobs_received_total", (("rush", "true"),))] == 1
    assert values[("crown_jobs_received_total", (("rush", "false"),))] == 1
    assert values[("crown_job_completion_seconds_count", ())] == 1
    assert values[("crown_job_completion_seconds_sum", ())] == 160.0
    assert values[("crown_job_completion_seconds_bucket", (("le", "60.0"),))] == 0
    assert values[("crown_job_completion_seconds_bucket", (("le", "300.0"),))] == 1
    again = await metrics.refresh(now=301.0)
    assert again.totals == s.totals  # counted from the store, not observed twice
    text = generate_latest(metrics.registry).decode()
    assert "crown_jobs_in_queue 1.0" in text
    assert 'crown_machine_utilization_ratio{machine_id="flat-1"}' in text
    assert 'crown_machine_utilization{machine_id="flat-1"}' in text  # deprecated alias


def samples(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every exposed sample, parsed back from the text format as Prometheus would scrape it."""
    text = generate_latest(registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def test_fresh_start_exposes_no_rate_and_no_alert(store: Store) -> None:
    metrics = EdgeMetrics(store)
    before = samples(metrics.registry)
    assert not any(name.startswith("crown_qa") for name, _ in before)  # absent, not a false 0
    assert before[("crown_build_info", (("version", __version__),))] == 1
    snap = await metrics.refresh(now=1000.0)
    assert snap.alerts() == []
    values = samples(metrics.registry)
    assert values[("crown_qa_verdicts_total", (("result", "pass"),))] == 0
    assert values[("crown_qa_verdicts_total", (("result", "fail"),))] == 0
    assert values[("crown_jobs_completed_total", ())] == 0
    assert not any(name == "crown_qa_pass_rate" for name, _ in values)  # no 0.0 before verdicts
    assert any(name.startswith("process_") for name, _ in values)  # the process collector


async def test_verdicts_count_by_result_and_survive_a_restart(
    store: Store, scheduler: Scheduler
) -> None:
    for n in range(3):
        await queued(store, scheduler, f"J-{n}", now=100.0)

    for n, passed in enumerate((True, False, False)):
        await store.record_verdict(f"J-{n}", 1, passed, "", "", now=200.0)
    first = EdgeMetrics(store)
    await first.refresh(now=300.0)
    restarted = EdgeMetrics(store)  # a new process: same counters, no reset
    await restarted.refresh(now=400.0)
    for metrics in (first, restarted):
        values = samples(metrics.registry)
        assert values[("crown_qa_verdicts_total", (("result", "pass"),))] == 1
        assert values[("crown_qa_verdicts_total", (("result", "fail"),))] == 2
        assert values[("crown_qa_pass_rate", ())] == 1 / 3  # deprecated alias, 0-1


async def test_link_state_and_build_info(store: Store) -> None:
    links = {"mqtt": True, "temporal": False}
    metrics = EdgeMetrics(store, links=lambda: links, version="9.8.7", process=False)
    await metrics.refresh(now=10.0)
    values = samples(metrics.registry)
    assert values[("crown_link_up", (("link", "mqtt"),))] == 1
    assert values[("crown_link_up", (("link", "temporal"),))] == 0
    assert values[("crown_build_info", (("version", "9.8.7"),))] == 1
    assert not any(name.startswith("process_") for name, _ in values)
    links["temporal"] = True
    await metrics.refresh(now=20.0)
    assert samples(metrics.registry)[("crown_link_up", (("link", "temporal"),))] == 1
