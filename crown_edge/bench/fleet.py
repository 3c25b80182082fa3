"""``crown-edge bench fleet``: many workshops behind one cloud (issue 14).

S workshops (``shop-1`` … ``shop-S``, each daemon its own ``crown-edge run`` process with its
own store, broker identity and task queue ``crown-edge-<shop>``) with M zero-time simulated
lasers each (motion time 0, 1 Mbaud, automatic QA), behind one cloud: Order API, SQS
dispatcher, MQTT bridge and the workflow worker on ``crown-orders``, all in this process. N
text orders, spread round-robin over the shops, are POSTed by :data:`CONCURRENCY` customers at
once and each is followed to ``complete``.

Figures (the JSON's keys are a contract):

* ``jobs_per_s``: N ÷ the seconds from the first order to the last job's ``complete``;
* ``per_shop_spread``: max ÷ min of the shops' own jobs/s (a shop's jobs ÷ the seconds from the
  first order to that shop's last ``complete``): 1.0 is an even fleet;
* ``complete_p99_s`` (and ``complete_p50_s``): order (the POST sent) → ``complete`` (the
  workflow's ``mark_complete``, read from each job's history);
* ``cloud_cpu_s_per_job``: CPU seconds of this process per job — it is the cloud side (Order
  API, dispatcher, bridge, notifier, workflow worker) and also the customers' HTTP clients and
  the watcher that follows the jobs; ``edge_cpu_s_per_job``: the workshop daemons' together;
  ``cpu_s`` gives every process of the stack (Temporal's dev server, moto, mosquitto too);
* ``orders_accepted_per_s`` (the orders ÷ the seconds until the last POST was answered, the
  customers' pace: the Order API's door, not the flow) and ``accept_p50_ms``/``accept_p99_ms``;
* ``stages``: p50/p99 ms of each gap of the jobs' timelines (the stages of ``bench pipeline``
  and ``jobs timeline``): where the time from order to ``complete`` goes;
* ``per_shop``: per workshop the orders sent, the jobs its own store holds ``complete`` and its
  jobs/s; ``misplaced``: orders some other workshop's store holds (0: each in its own shop);
* ``cloud_workers``: cloud processes of the run the top-level figures come from (1). The bench
  runs the same fleet and orders twice, on a fresh stack each: with the cloud as one process,
  then as two (``up --cloud-processes 2``: each process an Order API, dispatcher, bridge and
  workflow worker, sharing the API's port); ``by_cloud_workers`` holds both runs' headline
  figures by process count, ``cloud_scaling`` the jobs/s of two ÷ one. ``cloud_cpu_s_per_job``
  counts every cloud process (:func:`~crown_edge.bench.pipeline.process_cpu` names the
  replica ``cloud-replicas``).

Sizes: ``--shops`` (10), ``--lasers`` (2 per shop), ``--orders`` (10 per shop) and
``--concurrency`` (8) through ``python -m crown_edge.bench.fleet``; ``crown-edge bench fleet
--quick`` runs 3 shops × 1 laser, 6 orders.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crown_edge.bench import percentile
from crown_edge.bench.pipeline import CLOUD_REPLICAS, all_finished, process_cpu, stage_table
from crown_edge.config import MachineConfig

#: customers ordering at once (each order is its own customer)
CONCURRENCY = 8
#: the default fleet: shops × zero-time lasers each, and orders per shop
SHOPS = 10
LASERS = 2
ORDERS_PER_SHOP = 10
#: the ``--quick`` fleet
QUICK = (3, 1, 6)
#: the cloud's process counts the bench compares (a fresh fleet stack for each)
CLOUD_WORKERS = (1, 2)
#: the headline figures ``by_cloud_workers`` repeats for each run
HEADLINE = (
    "jobs_per_s",
    "run_s",
    "complete",
    "per_shop_spread",
    "complete_p50_s",
    "complete_p99_s",
    "cloud_cpu_s_per_job",
    "edge_cpu_s_per_job",
    "accept_p50_ms",
    "accept_p99_ms",
)
#: how long the run may take before the bench gives up (s)
TIMEOUT_S = 1800.0


@dataclass(frozen=True, slots=True)
class FleetSize:
    """What one run of the bench starts and sends."""

    shops: int = SHOPS
    lasers: int = LASERS
    orders: int = SHOPS * ORDERS_PER_SHOP
    concurrency: int = CONCURRENCY

    def __post_init__(self) -> None:
        if self.shops < 2:
            raise ValueError(f"shops: a fleet needs at least 2, got {self.shops}")
        if self.lasers < 1 or self.orders < 1 or self.concurrency < 1:
            raise ValueError(f"lasers, orders and concurrency: at least 1, got {self}")


def _log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def shop_for(i: int, shop_ids: Sequence[str]) -> str:
    """Order ``i``'s workshop: round-robin over the fleet."""
    return shop_ids[i % len(shop_ids)]


def fleet_order(i: int, shop_id: str, run_id: str) -> dict[str, Any]:
    """Order ``i`` of the run, for workshop ``shop_id`` (a text plate; every fifth a rush)."""
    return {
        "job_id": f"FLEET-{run_id}-{i:05d}",
        "customer_id": f"C-{i % 17}",
        "item_id": ("plaque-a5", "trophy-plate", "plaque-small")[i % 3],
        "due_date": "2026-12-24",
        "text": ["Club Champion", f"No. {i}"],
        "rush": i % 5 == 0,
        "shop_id": shop_id,
    }


def spread(rates: Sequence[float]) -> float | None:
    """Max ÷ min of the shops' jobs/s (1.0: even; None when a shop made nothing)."""
    low = min(rates, default=0.0)
    return round(max(rates) / low, 3) if low > 0 else None


def figures(
    size: FleetSize,
    shops: dict[str, str],
    posted: dict[str, float],
    complete_at: dict[str, float],
    started: float,
    cpu_before: dict[str, float],
    cpu_after: dict[str, float],
    in_store: dict[str, set[str]],
    cloud_workers: int = 1,
) -> dict[str, Any]:
    """The bench's JSON from what the run recorded (pure).

    ``shops``: job → its workshop as ordered; ``posted``/``complete_at``: job → epoch seconds
    of the POST and of the workflow's ``complete``; ``started``: epoch seconds of the first
    order; ``cpu_*``: :func:`~crown_edge.bench.pipeline.process_cpu` around the run;
    ``in_store``: workshop → the run's jobs its own store holds ``complete``; the CPU of
    cloud processes beyond this one is ``cpu_*["cloud-replicas"]``.
    """
    n = len(shops)
    done = [job for job in shops if job in complete_at]
    end = max(complete_at.values(), default=started)
    elapsed = max(end - started, 1e-9)
    latencies = [complete_at[job] - posted[job] for job in done]
    per_shop: dict[str, dict[str, Any]] = {}
    for shop_id in sorted(set(shops.values()) | set(in_store)):
        mine = [job for job, s in shops.items() if s == shop_id]
        finished = [complete_at[job] for job in mine if job in complete_at]
        last = max(finished, default=started)
        per_shop[shop_id] = {
            "ordered": len(mine),
            "complete_in_store": len(in_store.get(shop_id, set()) & set(mine)),
            "jobs_per_s": round(len(finished) / max(last - started, 1e-9), 3) if finished else 0.0,
        }
    misplaced = sum(
        1 for shop_id, held in in_store.items() for job in held if shops.get(job) != shop_id
    )
    cpu = {
        name: round(cpu_after[name] - cpu_before.get(name, 0.0), 2) for name in sorted(cpu_after)
    }
    per_job = max(len(done), 1)
    return {
        "shops": size.shops,
        "lasers_per_shop": size.lasers,
        "orders": n,
        "concurrency": size.concurrency,
        "cloud_workers": cloud_workers,
        "complete": len(done),
        "jobs_per_s": round(len(done) / elapsed, 3),
        "run_s": round(elapsed, 2),
        "per_shop_spread": spread([s["jobs_per_s"] for s in per_shop.values()]),
        "complete_p50_s": round(statistics.median(latencies), 3) if latencies else None,
        "complete_p99_s": round(percentile(latencies, 0.99), 3) if latencies else None,
        "cloud_cpu_s_per_job": round(
            (cpu.get("bench", 0.0) + cpu.get(CLOUD_REPLICAS, 0.0)) / per_job, 4
        ),
        "edge_cpu_s_per_job": round(cpu.get("edge", 0.0) / per_job, 4),
        "cpu_s": cpu,
        "per_shop": per_shop,
        "misplaced": misplaced,
    }


async def _bench(size: FleetSize, workdir: Path, cloud_workers: int = 1) -> dict[str, Any]:
    from crown_edge.cloud.jobs import history_marks
    from crown_edge.stack import FullStack, StackSettings
    from crown_edge.workflow import names, timeline

    lasers = tuple(
        MachineConfig(
            id=f"fast-{i}",
            driver="sim",
            baud=1000000,
            materials=("anodised-aluminium", "brass", "acrylic", "wood"),
        )
        for i in range(1, size.lasers + 1)
    )
    settings = StackSettings(
        workdir=workdir,
        shops=size.shops,
        lasers=0,
        rotary=False,
        time_scale=0.0,
        qa_mode="auto",
        extra_machines=lasers,
        drain_events=True,
        cloud_processes=cloud_workers,
    )
    run_id = f"{time.time_ns() % 10**9:09d}"
    _log(
        f"fleet: starting {size.shops} workshops × {size.lasers} zero-time lasers, "
        f"the cloud as {cloud_workers} process(es)"
    )
    async with FullStack(settings) as stack:
        shop_ids = stack.shop_ids
        orders = [fleet_order(i, shop_for(i, shop_ids), run_id) for i in range(size.orders)]
        shops = {str(o["job_id"]): str(o["shop_id"]) for o in orders}
        posted: dict[str, float] = {}
        accept_ms: list[float] = []
        sem = asyncio.Semaphore(size.concurrency)

        async def post(order: dict[str, Any]) -> None:
            async with sem:
                posted[order["job_id"]] = time.time()
                t0 = time.perf_counter()
                status, body = await stack.post_order(order)
                accept_ms.append((time.perf_counter() - t0) * 1000)
            if status != 202:
                raise RuntimeError(f"order refused: {status} {body}")

        _log(
            f"fleet: {size.orders} orders over {size.shops} workshops, "
            f"{size.concurrency} customers at once"
        )
        cpu_before = process_cpu()
        started = time.time()
        async with asyncio.timeout(TIMEOUT_S):
            await asyncio.gather(*(post(o) for o in orders))
            post_s = time.time() - started
            ids = list(shops)
            views = dict(zip(ids, await all_finished(stack, ids), strict=True))
        cpu_after = process_cpu()
        finished_statuses = {job: str(view.get("status")) for job, view in views.items()}
        not_complete = {j: s for j, s in finished_statuses.items() if s != "complete"}
        if not_complete:
            _log(f"fleet: {len(not_complete)} job(s) ended otherwise: {not_complete}")
        _log("fleet: reading each job's history and each workshop's store")
        complete_at: dict[str, float] = {}
        timelines: list[list[dict[str, Any]]] = []
        for job, shop_id in shops.items():
            handle = stack.client.get_workflow_handle(names.workflow_id(job))
            cloud = history_marks((await handle.fetch_history()).events)
            if finished_statuses.get(job) == "complete" and timeline.COMPLETE in cloud:
                complete_at[job] = cloud[timeline.COMPLETE]
            shown = await stack.workshop(shop_id).call("jobs.show", job_id=job)
            edge = timeline.edge_marks(shown.get("events") or [], shown.get("runs") or [])
            # the job is complete when the workflow recorded it (as bench pipeline counts it)
            edge.pop(timeline.COMPLETE, None)
            timelines.append(timeline.timeline({timeline.ACCEPTED: posted[job], **cloud, **edge}))
        in_store: dict[str, set[str]] = {}
        for shop_id in shop_ids:
            rows = await stack.workshop(shop_id).call("jobs.list", limit=100_000)
            in_store[shop_id] = {
                r["job_id"] for r in rows if r["job_id"] in shops and r["status"] == "complete"
            }
    result = figures(
        size, shops, posted, complete_at, started, cpu_before, cpu_after, in_store, cloud_workers
    )
    result["stages"] = stage_table(timelines)
    result["orders_accepted_per_s"] = round(len(orders) / max(post_s, 1e-9), 2)
    result["accept_p50_ms"] = round(statistics.median(accept_ms), 1)
    result["accept_p99_ms"] = round(percentile(accept_ms, 0.99), 1)
    return result


def run(
    quick: bool = False,
    *,
    shops: int | None = None,
    lasers: int | None = None,
    orders: int | None = None,
    concurrency: int = CONCURRENCY,
    workdir: Path | None = None,
    cloud_workers: Sequence[int] = CLOUD_WORKERS,
) -> dict[str, Any]:
    """Run the benchmark; ``quick``: 3 shops × 1 laser, 6 orders (sizes given win).

    One run per entry of ``cloud_workers`` (cloud process counts), each on a fresh stack; the
    top-level figures are the first run's, ``by_cloud_workers`` has each run's headline.
    ``workdir``: keep the stacks' state there (``cloud-N/``: stores, Temporal's database,
    logs) to look at afterwards; by default a temporary directory, removed at the end."""
    import logging

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    base_shops, base_lasers, base_orders = (
        QUICK if quick else (SHOPS, LASERS, SHOPS * ORDERS_PER_SHOP)
    )
    n_shops = shops or base_shops
    size = FleetSize(
        shops=n_shops,
        lasers=lasers or base_lasers,
        orders=orders or (base_orders if shops is None else n_shops * ORDERS_PER_SHOP),
        concurrency=concurrency,
    )
    counts = tuple(cloud_workers)
    if not counts or min(counts) < 1:
        raise ValueError(f"cloud_workers: process counts of at least 1, got {counts}")

    async def each(base: Path) -> dict[int, dict[str, Any]]:
        return {n: await _bench(size, base / f"cloud-{n}", n) for n in counts}

    if workdir is not None:
        workdir.mkdir(parents=True, exist_ok=True)
        runs = asyncio.run(each(workdir))
    else:
        with tempfile.TemporaryDirectory(prefix="fleet-bench-") as tmp:
            runs = asyncio.run(each(Path(tmp)))
    result = dict(runs[counts[0]])
    result["by_cloud_workers"] = {
        str(n): {key: r.get(key) for key in HEADLINE} for n, r in runs.items()
    }
    if 1 in runs and 2 in runs and runs[1]["jobs_per_s"]:
        result["cloud_scaling"] = round(runs[2]["jobs_per_s"] / runs[1]["jobs_per_s"], 3)
    result["bench"] = "fleet"
    return result


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m crown_edge.bench.fleet [--shops S] [--lasers M] [--orders N] [--json]``."""
    parser = argparse.ArgumentParser(prog="python -m crown_edge.bench.fleet", description=__doc__)
    parser.add_argument("--shops", type=int, default=None, help=f"workshops (default {SHOPS})")
    parser.add_argument("--lasers", type=int, default=None, help=f"lasers each ({LASERS})")
    parser.add_argument("--orders", type=int, default=None, help="orders (10 per workshop)")
    parser.add_argument("--concurrency", type=int, default=CONCURRENCY, help="customers at once")
    parser.add_argument("--quick", action="store_true", help="3 shops × 1 laser, 6 orders")
    parser.add_argument("--json", action="store_true", help="print one JSON object last")
    parser.add_argument("--workdir", type=Path, default=None, help="keep the stack's state here")
    parser.add_argument(
        "--cloud-workers",
        type=int,
        action="append",
        help="cloud process counts to run (repeatable; default 1 and 2)",
    )
    args = parser.parse_args(argv)
    started = time.perf_counter()
    result = run(
        args.quick,
        shops=args.shops,
        lasers=args.lasers,
        orders=args.orders,
        concurrency=args.concurrency,
        workdir=args.workdir,
        cloud_workers=tuple(args.cloud_workers or CLOUD_WORKERS),
    )
    result.setdefault("elapsed_s", round(time.perf_counter() - started, 3))
    if args.json:
        print(json.dumps(result, sort_keys=True))
    else:
        for key, value in sorted(result.items()):
            print(f"{key:32s} {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
