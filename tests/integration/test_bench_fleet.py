"""``crown-edge bench fleet``: the fleet benchmark's contract (its JSON keys), every order made
by its own workshop, and the figures' arithmetic. No wall-clock assertions."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from crown_edge.bench.fleet import FleetSize, figures, fleet_order, shop_for, spread
from tests.brokers import needs_mosquitto

#: the contract's keys (issue 14, /work/shared/DESIGN.md "Fleet")
KEYS = {
    "bench",
    "elapsed_s",
    "jobs_per_s",
    "shops",
    "per_shop_spread",
    "complete_p99_s",
    "cloud_cpu_s_per_job",
    "edge_cpu_s_per_job",
    "orders",
    "lasers_per_shop",
    "cloud_workers",
}


@pytest.mark.integration
@needs_mosquitto
@pytest.mark.timeout(600)
def test_quick_fleet_run_completes_every_order_in_its_own_shop() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "crown_edge", "bench", "fleet", "--quick", "--json"],
        capture_output=True,
        text=True,
        timeout=580,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])

    assert not KEYS - set(result), KEYS - set(result)
    assert result["bench"] == "fleet"
    assert (result["shops"], result["lasers_per_shop"], result["orders"]) == (3, 1, 6)
    assert result["cloud_workers"] == 1
    # the same fleet again with the cloud as two processes, its headline beside the first's
    runs = result["by_cloud_workers"]
    assert sorted(runs) == ["1", "2"]
    assert runs["1"]["jobs_per_s"] == result["jobs_per_s"]
    assert runs["2"]["complete"] == 6
    assert runs["2"]["cloud_cpu_s_per_job"] > 0 and runs["2"]["jobs_per_s"] > 0
    assert result["cloud_scaling"] == pytest.approx(
        runs["2"]["jobs_per_s"] / runs["1"]["jobs_per_s"], abs=0.002
    )
    assert "the cloud as 2 process(es)" in proc.stderr
    # every order complete, each in its own workshop's store and nowhere else
    assert result["complete"] == result["orders"] == 6
    per_shop = result["per_shop"]
    assert sorted(per_shop) == ["shop-1", "shop-2", "shop-3"]
    assert sum(s["ordered"] for s in per_shop.values()) == 6
    assert sum(s["complete_in_store"] for s in per_shop.values()) == 6
    for shop in per_shop.values():
        assert shop["complete_in_store"] == shop["ordered"] == 2
        assert shop["jobs_per_s"] > 0
    assert result["misplaced"] == 0
    # figures that mean something: a spread of positive rates, latencies in order, CPU measured
    assert result["per_shop_spread"] >= 1.0
    assert 0 < result["complete_p50_s"] <= result["complete_p99_s"]
    assert result["jobs_per_s"] > 0 and result["orders_accepted_per_s"] > 0
    assert 0 < result["accept_p50_ms"] <= result["accept_p99_ms"]
    assert result["cloud_cpu_s_per_job"] > 0 and result["edge_cpu_s_per_job"] > 0
    assert result["cpu_s"]["bench"] > 0 and result["cpu_s"]["edge"] > 0
    # where the time went: every job's timeline, its run on a laser included
    assert result["stages"]["claimed->first_line"]["jobs"] == 6
    assert result["stages"]["first_line->last_line"]["jobs"] == 6
    assert "fleet: 6 orders over 3 workshops" in proc.stderr


def test_orders_go_round_robin_with_their_shop() -> None:
    shops = ("shop-1", "shop-2", "shop-3")
    assigned = [shop_for(i, shops) for i in range(7)]
    assert assigned == [*shops, *shops, "shop-1"]
    order = fleet_order(4, "shop-2", "r1")
    assert order["shop_id"] == "shop-2" and order["job_id"] == "FLEET-r1-00004"


def test_figures_from_a_recorded_run() -> None:
    size = FleetSize(shops=2, lasers=1, orders=4, concurrency=2)
    shops = {"a1": "shop-1", "a2": "shop-1", "b1": "shop-2", "b2": "shop-2"}
    posted = {"a1": 100.0, "a2": 100.0, "b1": 100.5, "b2": 100.5}
    complete_at = {"a1": 101.0, "a2": 102.0, "b1": 102.5, "b2": 104.0}
    in_store = {"shop-1": {"a1", "a2"}, "shop-2": {"b1", "b2", "a1"}}
    cpu_before = {"bench": 1.0, "edge": 0.5}
    cpu_after = {"bench": 3.0, "edge": 1.5, "temporal": 2.0}

    out = figures(size, shops, posted, complete_at, 100.0, cpu_before, cpu_after, in_store)

    assert out["complete"] == out["orders"] == 4
    assert out["jobs_per_s"] == 1.0  # 4 jobs in 4 s
    assert out["per_shop"]["shop-1"] == {"ordered": 2, "complete_in_store": 2, "jobs_per_s": 1.0}
    assert out["per_shop"]["shop-2"] == {"ordered": 2, "complete_in_store": 2, "jobs_per_s": 0.5}
    assert out["per_shop_spread"] == 2.0
    assert out["misplaced"] == 1  # a1 held by shop-2 too
    assert out["complete_p50_s"] == 2.0 and out["complete_p99_s"] == 3.5
    assert out["cloud_cpu_s_per_job"] == 0.5 and out["edge_cpu_s_per_job"] == 0.25
    assert out["cpu_s"] == {"bench": 2.0, "edge": 1.0, "temporal": 2.0}
    assert out["cloud_workers"] == 1


def test_spread_of_an_idle_shop_is_none_and_a_fleet_needs_two_shops() -> None:
    assert spread([1.0, 0.0]) is None
    assert spread([2.0, 1.0, 1.5]) == 2.0
    with pytest.raises(ValueError, match="at least 2"):
        FleetSize(shops=1)


def test_figures_count_every_cloud_process() -> None:
    size = FleetSize(shops=2, lasers=1, orders=2, concurrency=1)
    shops = {"J1": "shop-1", "J2": "shop-2"}
    posted = {"J1": 100.0, "J2": 100.0}
    complete_at = {"J1": 102.0, "J2": 104.0}
    before = {"bench": 1.0, "edge": 1.0, "cloud-replicas": 0.5}
    after = {"bench": 2.0, "edge": 2.0, "cloud-replicas": 1.5}
    in_store = {"shop-1": {"J1"}, "shop-2": {"J2"}}
    out = figures(size, shops, posted, complete_at, 100.0, before, after, in_store, 2)
    assert out["cloud_workers"] == 2
    # this process's 1.0 and the replica's 1.0, over two jobs
    assert out["cloud_cpu_s_per_job"] == 1.0 and out["edge_cpu_s_per_job"] == 0.5
    assert out["cpu_s"]["cloud-replicas"] == 1.0
