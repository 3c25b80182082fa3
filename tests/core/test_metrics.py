"""Metrics and the seed's alert rules, computed from the store."""

from __future__ import annotations

from prometheus_client import generate_latest

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
        "completions": (),
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
    await store.transition(job.job_id, JobEvent.FINISH, now=200.0)
    await store.run_sql(
        lambda c: c.execute(
            "INSERT INTO qa_verdicts (job_id, attempt, passed, at) VALUES (?, 1, 1, 250)",
            (job.job_id,),
        )
    )
    await store.transition(job.job_id, JobEvent.QA_PASS, now=260.0)
    metrics = EdgeMetrics(store)
    s = await metrics.refresh(now=300.0)
    assert s.jobs_in_queue == 1 and s.jobs_completed_today == 1
    assert s.average_completion_s == 160.0 and s.completions == (160.0,)
    assert s.qa_pass_rate == 1.0 and s.rush_order_percentage == 50.0
    assert s.revenue_today_cents == (2500 if job.job_id == "J-1" else 0)
    assert 0.0 < s.machine_utilization["flat-1"] <= 1.0
    again = await metrics.refresh(now=301.0)
    assert again.completions == ()  # each completion observed once
    text = generate_latest(metrics.registry).decode()
    assert "crown_jobs_in_queue 1.0" in text
    assert 'crown_machine_utilization{machine_id="flat-1"}' in text
