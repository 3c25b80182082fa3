"""``crown-edge up``: the whole flow on one machine, with demo orders and live progress."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.live import Live
from rich.table import Table

from crown_edge.cli.common import fail
from crown_edge.errors import CrownEdgeError

TERMINAL = {"complete", "escalated", "cancelled", "failed", "blocked", "revision_requested"}
console = Console(stderr=True)


def demo_orders(run: str, count: int, shops: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """A realistic mix: plates, a rush job, a glass on the rotary, artwork needing approval.

    ``shops``: spread the orders over these workshops in turn (each order names its
    ``shop_id``); none: the orders name no workshop (the cloud's default makes them)."""
    base: list[dict[str, Any]] = [
        {"item_id": "plaque-a5", "text": ["Club Champion 2026", "Jane Smith"]},
        {"item_id": "trophy-plate", "text": ["Most Improved"], "rush": True},
        {"item_id": "glass-tumbler", "text": ["Best Man", "14.06.2026"]},
        {"item_id": "acrylic-award", "text": ["Star Volunteer"], "artwork_url": "library:star"},
        {"item_id": "plaque-small", "text": ["Volunteer of the Year"]},
        {"item_id": "trophy-plate", "text": ["Under 12s", "Runners Up"]},
        {"item_id": "cup-silver", "text": ["League Winners", "2026"]},
        {"item_id": "plaque-a5", "text": ["25 Years of Service", "A. Patel"], "rush": True},
    ]
    out = []
    for i in range(count):
        order = dict(base[i % len(base)])
        order.update(
            job_id=f"{run}-{i + 1:03d}",
            customer_id=f"CUST-{100 + i % 7}",
            customer_email=f"customer-{100 + i % 7}@example.com",
            due_date=time.strftime("%Y-%m-%dT17:00:00Z", time.gmtime(time.time() + 86400 * 3)),
            price_cents=2500 + 500 * (i % 4),
        )
        if shops:
            order["shop_id"] = shops[i % len(shops)]
        out.append(order)
    return out


def up(
    demo: Annotated[int, typer.Option(help="Demo orders to place (0: none, just serve).")] = 6,
    exit_when_done: Annotated[
        bool, typer.Option("--exit-when-done", help="Stop once every demo job has finished.")
    ] = False,
    lasers: Annotated[int, typer.Option(help="Simulated flat-bed lasers (per workshop).")] = 3,
    shops: Annotated[
        int,
        typer.Option(
            min=1,
            help="Workshops (N > 1: shop-1 … shop-N, each daemon its own process; "
            "demo orders spread over them).",
        ),
    ] = 1,
    cloud_processes: Annotated[
        int,
        typer.Option(
            min=1,
            help="Cloud processes (N > 1: replicas c1 … cN sharing the Order API's port, "
            "the queues and the workflow worker's task queue).",
        ),
    ] = 1,
    time_scale: Annotated[
        float, typer.Option(help="Simulated motion time scale (1 = real time, 0 = instant).")
    ] = 0.02,
    manual_qa: Annotated[
        bool, typer.Option("--manual-qa", help="Wait for `crown-edge qa pass|fail`.")
    ] = False,
    workdir: Annotated[Path | None, typer.Option(help="State directory (default: new).")] = None,
    port: Annotated[int, typer.Option(help="Order API port (0: any free port).")] = 0,
    json_out: Annotated[bool, typer.Option("--json", help="Print a JSON summary last.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Run the whole flow locally: Temporal, MQTT, SQS, cloud, workshop, simulated lasers."""
    from crown_edge.cli.daemons import setup_logging
    from crown_edge.stack import StackSettings

    setup_logging(verbose)
    if not verbose:
        logging.getLogger().setLevel(logging.WARNING)
    run = time.strftime("D%H%M%S")
    settings = StackSettings(
        workdir=workdir or Path("var") / "up" / run,
        lasers=lasers,
        time_scale=time_scale,
        qa_mode="manual" if manual_qa else "auto",
        http_port=port,
        shops=shops,
        cloud_processes=cloud_processes,
    )
    spread = settings.shop_ids if settings.fleet else ()
    try:
        summary = asyncio.run(_main(settings, demo_orders(run, demo, spread), exit_when_done))
    except KeyboardInterrupt:
        console.print("stopped")
        return
    except CrownEdgeError as exc:  # e.g. mosquitto not installed: one line, exit 1
        fail(str(exc))
    if summary is None:
        console.print("stopped")
        return
    if json_out:
        print(json.dumps(summary, sort_keys=True))
    if summary.get("ok") is False:
        raise typer.Exit(1)


async def _main(
    settings: Any, orders: list[dict[str, Any]], exit_when_done: bool
) -> dict[str, Any] | None:
    """Run ``_up``; SIGTERM or SIGINT stops everything cleanly (None is returned then)."""
    import signal

    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    main = asyncio.create_task(_up(settings, orders, exit_when_done))
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, main.cancel)
    try:
        return await main
    except asyncio.CancelledError:
        if task.cancelling():
            raise
        return None
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)


async def _up(settings: Any, orders: list[dict[str, Any]], exit_when_done: bool) -> dict[str, Any]:
    from crown_edge.stack import FullStack

    started = time.monotonic()
    console.print("[bold]crown-edge up[/]: starting Temporal, MQTT, SQS, cloud and workshop …")
    async with FullStack(settings) as stack:
        assert stack.config is not None
        sock = stack.config.control_socket
        console.print(_banner(stack), soft_wrap=True)
        os.environ["CROWN_EDGE_SOCKET"] = str(sock)
        shop_of: dict[str, str] = {}
        for order in orders:
            status, body = await stack.post_order(order)
            if status != 202:
                fail(f"the Order API refused {order['job_id']}: {status} {body}")
            shop_of[order["job_id"]] = order.get("shop_id") or stack.shop_ids[0]
            where = f"  (workshop {order['shop_id']})" if "shop_id" in order else ""
            console.print(f"  Customer page  {body['status_url']}{where}", soft_wrap=True)
        fleet = shop_of if settings.fleet else None
        results = await _watch(stack, [o["job_id"] for o in orders], fleet)
        elapsed = round(time.monotonic() - started, 1)
        complete = sum(1 for r in results.values() if r == "complete")
        if orders:
            console.print(f"{complete}/{len(orders)} demo jobs complete in {elapsed} s")
        summary = {
            "ok": complete == len(orders),
            "jobs": results,
            "elapsed_s": elapsed,
            "api": stack.api_url,
            "mail_sink": str(stack.mail_sink.directory),
            "links": {o["job_id"]: stack.customer_link(o["job_id"]) for o in orders},
            "shops": list(stack.shop_ids),
            "job_shops": shop_of,
        }
        if exit_when_done or not orders:
            if not orders and not exit_when_done:
                await _serve_forever()
            return summary
        console.print("still serving; Ctrl-C to stop")
        await _serve_forever()
        return summary


def _banner(stack: Any) -> str:
    """The lines tools read (``Order API  <url>``, ``MQTT broker  <host>:<port>``, …); a fleet
    names each workshop: its lasers, task queue, state directory and technician socket."""
    assert stack.config is not None
    sock = stack.config.control_socket
    common = (
        f"  Order API      {stack.api_url}  (POST /orders, GET /openapi.json)\n"
        f"  API key        {stack.api_key}  (Authorization: Bearer …; CROWN_API_KEY)\n"
        f"  Temporal       {stack.services.temporal.target}\n"
        f"  MQTT broker    {stack.services.broker.host}:{stack.services.broker.port}\n"
        f"  MQTT CA        {stack.services.broker.ca_file}  (TLS; per-workshop ACLs)\n"
        f"  MQTT logins    {stack.services.broker.state_dir}  (certificates, keys, "
        f"*.password; mode 0600)\n"
        f"  SQS (moto)     {stack.services.moto.endpoint_url}\n"
        f"  Mail sink      {stack.mail_sink.directory}  (one .eml file per message)\n"
    )
    if stack.cloud_replicas:
        logs = ", ".join(str(p.log_path) for p in stack.cloud_replicas.values())
        common += (
            f"  Cloud          {len(stack.cloud_replicas) + 1} processes: c1 (this one), "
            f"{', '.join(stack.cloud_replicas)} (logs {logs})\n"
        )
    if not stack.settings.fleet:
        return (
            f"{common}"
            f"  Workshop       {len(stack.config.machines)} simulated lasers, "
            f"QA {stack.config.qa_mode}\n"
            f"  Technician CLI CROWN_EDGE_SOCKET={sock} crown-edge status"
        )
    lines = [
        f"  Workshops      {len(stack.shop_ids)}: {', '.join(stack.shop_ids)}  (each its own "
        f"`crown-edge run` process; an order names its shop_id)"
    ]
    for shop in stack.workshops.values():
        lines.append(
            f"  Workshop {shop.shop_id}  {len(shop.config.machines)} simulated lasers, "
            f"QA {shop.config.qa_mode}, task queue {shop.task_queue}, state {shop.directory}"
        )
        lines.append(
            f"  Technician CLI {shop.shop_id}  "
            f"CROWN_EDGE_SOCKET={shop.control_socket} crown-edge status"
        )
    return common + "\n".join(lines)


async def _serve_forever() -> None:
    stop = asyncio.Event()
    await stop.wait()


async def _watch(
    stack: Any, job_ids: list[str], shops: dict[str, str] | None = None
) -> dict[str, str]:
    """Show each job's status live until all have finished; approve designs as the customer.

    ``shops`` (a fleet): job id → its workshop, shown in the table's ``shop`` column."""
    if not job_ids:
        return {}
    views: dict[str, dict[str, Any]] = {}
    approved: set[str] = set()
    with Live(_table(job_ids, views, shops), console=console, refresh_per_second=4) as live:
        while True:
            for job_id in job_ids:
                view = await stack.job_view(job_id)
                if view is not None:
                    views[job_id] = view
                    if view.get("status") == "pending_approval" and job_id not in approved:
                        # as the customer does it: the page's Approve button, with its token
                        body = {"approved": True, "comment": "looks great"}
                        code, _ = await stack.customer_action(job_id, "approval", body)
                        if code == 200:
                            approved.add(job_id)
            live.update(_table(job_ids, views, shops))
            if all(views.get(j, {}).get("status") in TERMINAL for j in job_ids):
                break
            await asyncio.sleep(0.5)
    if not console.is_terminal:  # a log or a pipe: Live ends a terminal's table with a newline only
        console.line()
    return {j: str(views[j]["status"]) for j in job_ids}


def _table(
    job_ids: list[str], views: dict[str, dict[str, Any]], shops: dict[str, str] | None = None
) -> Table:
    columns: tuple[str, ...] = ("job", "status", "machine", "progress", "queue", "retries")
    if shops is not None:
        columns = ("job", "shop", *columns[1:])
    table = Table(*columns, title="Jobs")
    for job_id in job_ids:
        v = views.get(job_id, {})
        progress = v.get("progress")
        shop = () if shops is None else (shops.get(job_id, ""),)
        table.add_row(
            job_id,
            *shop,
            str(v.get("status", "received")),
            str(v.get("machine_id") or ""),
            f"{progress * 100:.0f}%" if isinstance(progress, float) else "",
            str(v.get("queue_position") or ""),
            str(v.get("retry_count", 0)),
        )
    return table


if sys.platform == "win32":  # pragma: no cover
    raise RuntimeError("crown-edge up needs a POSIX system (pseudo-terminals)")
