"""The Prometheus rules and the Grafana dashboard: valid, unit-tested, and on exported metrics.

Exported means a registry of the code exposes it: the workshop daemon's (crown_edge/metrics.py)
or the Order API's (crown_edge/cloud/door.py, e.g. the customers' ratings).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from crown_edge.cloud.bridge import Bridge
from crown_edge.cloud.door import Metrics as OrderApiMetrics
from crown_edge.metrics import EdgeMetrics
from crown_edge.store import Store

ROOT = Path(__file__).parents[2]
RULES = ROOT / "config" / "alerts" / "crown-edge.rules.yml"
RULES_TEST = ROOT / "config" / "alerts" / "crown-edge.rules.test.yml"
DASHBOARD = ROOT / "config" / "dashboards" / "operational.json"
SEED_ALERTS = {"queue_backup", "high_failure_rate", "machine_offline"}

promtool = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    promtool is None,
    reason="promtool not installed (Debian package prometheus; .ci/run installs it)",
)


def _promtool(*args: str) -> str:
    assert promtool is not None
    done = subprocess.run(
        [promtool, *args], capture_output=True, text=True, timeout=60, cwd=RULES.parent
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@needs_promtool
def test_promtool_check_rules() -> None:
    assert "SUCCESS: 5 rules found" in _promtool("check", "rules", RULES.name)


@needs_promtool
def test_promtool_test_rules() -> None:
    assert "SUCCESS" in _promtool("test", "rules", RULES_TEST.name)


def test_rules_tests_cover_each_seed_alert_firing_and_a_fresh_start() -> None:
    text = RULES_TEST.read_text()
    fresh = text.split("  - name: ")[1]
    assert fresh.startswith("fresh start")
    for alert in SEED_ALERTS:
        assert f"alertname: {alert}, exp_alerts: []" in fresh  # silent on a fresh start
        assert re.search(rf"alertname: {alert}\n\s+exp_alerts:\n\s+- exp_labels", text), alert


# --- every query names a metric the code exports ---------------------------------------------

_KEYWORDS = {"and", "or", "unless", "bool", "offset", "inf", "nan"}


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (functions, labels and keywords dropped)."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)
    expr = re.sub(r"\{[^}]*\}", "", expr)
    expr = re.sub(r"\[[^\]]*\]", "", expr)
    expr = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)
    names = re.findall(r"(?<![\w$.])([a-zA-Z_:][\w:]*)\b(?!\s*\()", expr)
    return {n for n in names if n.lower() not in _KEYWORDS}


def test_metric_names_parser() -> None:
    expr = (
        'sum by (instance) (increase(crown_qa_verdicts_total{result="pass"}[24h])) / '
        "sum(rate(x_bucket[$__rate_interval])) and on() up > 0.8"
    )
    assert metric_names(expr) == {"crown_qa_verdicts_total", "x_bucket", "up"}


def rule_exprs(text: str) -> list[str]:
    """The ``expr:`` values of a rules file (plain or ``|`` block scalars; no YAML library)."""
    exprs: list[str] = []
    lines = text.splitlines()
    for i, line in enumerate(lines):
        key, _, value = line.strip().partition("expr:")
        if key or not _:
            continue
        if value.strip() != "|":
            exprs.append(value.strip())
            continue
        indent = len(line) - len(line.lstrip())
        block = []
        for follow in lines[i + 1 :]:
            if follow.strip() and len(follow) - len(follow.lstrip()) <= indent:
                break
            block.append(follow.strip())
        exprs.append(" ".join(block).strip())
    return exprs


def _queries() -> list[str]:
    exprs = rule_exprs(RULES.read_text())
    assert len(exprs) == 5
    dash = json.loads(DASHBOARD.read_text())
    exprs += [t["expr"] for p in dash["panels"] for t in p["targets"]]
    return exprs


_SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "summary": ("_count", "_sum", "_created"),
    "info": ("_info",),
}


def _series(registry: CollectorRegistry) -> set[str]:
    """Every series name ``registry`` exposes, with the suffixes of its families' types."""
    names: set[str] = set()
    for family in registry.collect():
        names.add(family.name)
        names.update(family.name + s for s in _SUFFIXES.get(family.type, ()))
        names.update(s.name for s in family.samples)
    return names


async def _exported(tmp_path: Path) -> set[str]:
    """Every series name a live daemon registry or the Order API's exposes (collected, not
    listed by hand)."""
    async with Store.from_path(tmp_path / "edge.db") as store:
        metrics = EdgeMetrics(
            store, CollectorRegistry(), links=lambda: {"mqtt": True, "temporal": False}
        )
        await metrics.refresh(now=100.0)
        names = _series(metrics.registry)
    cloud = CollectorRegistry()
    OrderApiMetrics(cloud, Bridge(None))
    return names | _series(cloud)


def unexported(exprs: list[str], exported: set[str]) -> dict[str, list[str]]:
    """Per query, the metric names it selects that nothing exports (none: every query is fine)."""
    missing = {expr: sorted(metric_names(expr) - exported) for expr in exprs}
    return {expr: names for expr, names in missing.items() if names}


async def test_every_query_uses_an_exported_metric(tmp_path: Path) -> None:
    exported = await _exported(tmp_path)
    assert {"crown_link_up", "crown_build_info", "process_cpu_seconds_total"} <= exported
    assert {"crown_customer_rating_stars_sum", "crown_customer_rating_stars_count"} <= exported
    queries = _queries()
    assert all(metric_names(expr) for expr in queries)
    assert unexported(queries, exported) == {}
    used = set().union(*(metric_names(expr) for expr in queries))
    assert {"crown_qa_verdicts_total", "crown_customer_rating_stars_sum"} <= used


async def test_a_query_on_a_metric_nobody_exports_is_caught(tmp_path: Path) -> None:
    exported = await _exported(tmp_path)
    made_up = [
        "avg(crown_customer_satisfaction)",  # the seed's name for the score: never a metric
        "sum(rate(crown_customer_rating_stars_total[5m]))",  # a histogram has no _total
        "sum(crown_orders_accepted_bucket)",  # a counter has no buckets
        "crown_jobs_in_queue / crown_edge_ratings_count",  # one real, one not
    ]
    assert unexported(made_up, exported) == {
        made_up[0]: ["crown_customer_satisfaction"],
        made_up[1]: ["crown_customer_rating_stars_total"],
        made_up[2]: ["crown_orders_accepted_bucket"],
        made_up[3]: ["crown_edge_ratings_count"],
    }


def test_the_customer_satisfaction_panel_divides_stars_by_ratings() -> None:
    dash: dict[str, Any] = json.loads(DASHBOARD.read_text())
    (panel,) = [p for p in dash["panels"] if p["title"].startswith("Customer satisfaction")]
    mean = panel["targets"][0]["expr"]
    assert metric_names(mean) == {
        "crown_customer_rating_stars_sum",
        "crown_customer_rating_stars_count",
    }
    assert mean.index("_sum") < mean.index("/") < mean.index("_count")
    assert panel["fieldConfig"]["defaults"]["min"] == 1
    assert panel["fieldConfig"]["defaults"]["max"] == 5


# --- the dashboard is complete ----------------------------------------------------------------


def test_dashboard_is_complete() -> None:
    dash: dict[str, Any] = json.loads(DASHBOARD.read_text())
    assert dash["uid"] and dash["title"]
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dash["panels"]:
        title = panel["title"]
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, title
        assert {"x", "y", "w", "h"} <= set(panel["gridPos"]), title
        assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24, title
        assert panel["fieldConfig"]["defaults"]["unit"], title
        assert panel["targets"], title
        for target in panel["targets"]:
            assert target["datasource"] == panel["datasource"], title
            assert target["refId"] and target["expr"], title
