"""Technician commands: they talk to the running daemon over its control socket."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Annotated, Any

import typer
from rich.console import RenderableType
from rich.live import Live

from crown_edge.cli import views
from crown_edge.cli.common import console, emit, fail, pct, rpc, ts
from crown_edge.workflow import timeline

JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
IntervalOpt = Annotated[float, typer.Option(help="Seconds between refreshes.")]
RefreshesOpt = Annotated[
    int | None, typer.Option(hidden=True, help="Stop after this many refreshes (tests).")
]

jobs_app = typer.Typer(help="Jobs on this workshop.", no_args_is_help=True)
machines_app = typer.Typer(help="Lasers on this workshop.", no_args_is_help=True)
inventory_app = typer.Typer(help="Stock of engravable items.", no_args_is_help=True)
qa_app = typer.Typer(help="Quality-check verdicts.", no_args_is_help=True)


def status(
    ctx: typer.Context,
    json_out: JsonOpt = False,
    watch: Annotated[
        bool, typer.Option("--watch", "-w", help="Live view with progress bars; Ctrl-C leaves.")
    ] = False,
    interval: IntervalOpt = 1.0,
    refreshes: RefreshesOpt = None,
) -> None:
    """Daemon, links, machines and job counts at a glance (--watch: live)."""
    if watch:
        _watch(
            lambda now: (
                views.live_status(
                    rpc(ctx, "status"),
                    rpc(ctx, "jobs.list", {"status": "engraving"}),
                    now,
                    views.terminal_width(),
                ),
                False,
            ),
            interval,
            refreshes,
        )
        return
    data = rpc(ctx, "status")
    if json_out:
        emit(data, True)
        return
    print(
        f"shop {data['shop_id']}  version {data['version']}  mode {data['mode']}  "
        f"up {views.duration(data['uptime_s'])}"
    )
    print(
        f"queue {data['queue_depth']}  outbox {data['outbox_pending']}  "
        + (views.links_text(data["links"]) or "no links")
    )
    for alert in data.get("alerts", []):
        print(f"ALERT {alert['name']} ({alert['action']}): {alert['detail']}")
    emit(None, False, views.machines_table(data["machines"]))
    counts = views.table("status", "jobs", title="Jobs")
    for name, count in sorted(data["jobs"].items()):
        counts.add_row(name, str(count))
    emit(None, False, counts)


def _watch(
    screen: Callable[[float], tuple[RenderableType, bool]], interval: float, refreshes: int | None
) -> None:
    """Redraw ``screen(now)`` -> (view, final) every ``interval`` seconds until Ctrl-C (exit 0)
    or a final view."""
    if interval <= 0:
        fail("--interval must be > 0", 2)
    count = 0
    try:
        view, final = screen(time.time())
        with Live(view, console=console, auto_refresh=False) as live:
            while not final and (refreshes is None or count < refreshes):
                count += 1
                time.sleep(interval)
                view, final = screen(time.time())
                live.update(view, refresh=True)
    except KeyboardInterrupt:
        pass


def queue(
    ctx: typer.Context,
    json_out: JsonOpt = False,
    limit: Annotated[int, typer.Option(help="Show at most this many.")] = 50,
) -> None:
    """The queue in order (1 = next) with planned machine and ETA, or why none."""
    rows = rpc(ctx, "queue", {"limit": limit})
    now = time.time()
    table = views.table("#", "job", "item", "due", "machine", "eta", title="Queue")
    for r in rows:
        table.add_row(
            f"{r['position']}{' rush' if r['rush'] else ''}",
            r["job_id"],
            r["item_id"],
            ts(r["due_at"])[:10],
            r["machine_id"] or f"none: {r.get('why') or 'no eligible machine'}",
            views.short_time(r["eta"], now),
        )
    emit(rows, json_out, table)


@jobs_app.command("list")
def jobs_list(
    ctx: typer.Context,
    json_out: JsonOpt = False,
    status: Annotated[str | None, typer.Option(help="Only jobs in this status.")] = None,
) -> None:
    """Recent jobs, newest first."""
    rows = rpc(ctx, "jobs.list", {"status": status} if status else {})
    table = views.table("job", "status", "why", "item", "machine", "done", "retry", title="Jobs")
    for r in rows:
        table.add_row(
            r["job_id"],
            r["status"],
            r["reason"] or "",
            r["item_id"],
            r["machine_id"] or "",
            pct(r["progress"]),
            str(r["retry_count"]),
        )
    emit(rows, json_out, table)


@jobs_app.command("show")
def jobs_show(ctx: typer.Context, job_id: str, json_out: JsonOpt = False) -> None:
    """One job: text, item, artwork, the design drawn here, history and machine runs."""
    data = rpc(ctx, "jobs.show", {"job_id": job_id})
    program = rpc(ctx, "jobs.program", {"job_id": job_id})
    if json_out:
        emit({**data, "design": program}, True)
        return
    print(
        f"{data['job_id']}: {data['status']}"
        + (f" ({data['reason']})" if data["reason"] else "")
        + f"  attempt {data['attempt']}  retries {data['retry_count']}"
        + (f"  queue #{data['queue_position']}" if data["queue_position"] else "")
    )
    if order := data.get("order"):
        print(f"Order:   {order['status']}: {order['words']}")
    _print_design(program)
    history = views.table("#", "at", "event", "status", title="History")
    for e in data["events"]:
        history.add_row(str(e["seq"]), ts(e["at"]), e.get("event", ""), e["status"])
    for step in (order or {}).get("design_steps", ()):
        history.add_row("cloud", str(step["at"] or "")[:16].replace("T", " "), "", step["status"])
    emit(None, False, history)
    if data["runs"]:
        runs = views.table("try", "machine", "outcome", "acked", "sent", title="Runs")
        for r in data["runs"]:
            last = r["last_acked_line"]
            sent = r.get("sent_line")
            runs.add_row(
                str(r["attempt"]),
                r["machine_id"],
                r["outcome"] or "running",
                f"{last if last is not None else '-'}/{r['total_lines'] or '?'}",
                str(sent) if sent is not None else "-",
            )
        emit(None, False, runs)
    if resume := data.get("resume"):
        print(f"Resume: {resume['hint'].replace('JOB', data['job_id'])}")


@jobs_app.command("timeline")
def jobs_timeline(ctx: typer.Context, job_id: str, json_out: JsonOpt = False) -> None:
    """When the job passed each stage, and the time since the stage before ("-": not recorded
    here; cloud stages show when the job's events carry them)."""
    data = rpc(ctx, "jobs.show", {"job_id": job_id})
    rows = timeline.timeline(timeline.edge_marks(data["events"], data["runs"]))
    emit(rows, json_out, None if json_out else views.timeline_table(rows))


def _print_design(program: dict[str, Any]) -> None:
    for line in views.design_text(program, min(views.terminal_width(), 200)):
        print(line)


@jobs_app.command("watch")
def jobs_watch(
    ctx: typer.Context,
    job_id: str,
    interval: IntervalOpt = 1.0,
    refreshes: RefreshesOpt = None,
) -> None:
    """Follow one job live (progress bar and ETA while it engraves); Ctrl-C leaves."""

    def screen(now: float) -> tuple[RenderableType, bool]:
        job = rpc(ctx, "jobs.show", {"job_id": job_id})
        return views.live_job(job, now, views.terminal_width()), job["status"] in views.FINAL

    _watch(screen, interval, refreshes)


@jobs_app.command("cancel")
def jobs_cancel(ctx: typer.Context, job_id: str, json_out: JsonOpt = False) -> None:
    """Cancel a job (an engraving job's machine is stopped first)."""
    data = rpc(ctx, "jobs.cancel", {"job_id": job_id})
    done(data, json_out, f"{job_id}: {data['status']}")


@jobs_app.command("top")
def jobs_top(ctx: typer.Context, job_id: str, json_out: JsonOpt = False) -> None:
    """Move a queued job to the front of the queue."""
    data = rpc(ctx, "jobs.top", {"job_id": job_id})
    done(data, json_out, f"{job_id}: moved to the top")


@jobs_app.command("resume")
def jobs_resume(
    ctx: typer.Context,
    job_id: str,
    restart: Annotated[
        bool, typer.Option("--restart", help="Engrave again from the start on a fresh item.")
    ] = False,
    continue_: Annotated[
        bool,
        typer.Option(
            "--continue",
            help="Continue the same item after the last line sent (the safe resume point).",
        ),
    ] = False,
    from_line: Annotated[
        int | None,
        typer.Option(
            "--from-line",
            help="Continue the same item after line N (not before the last line sent).",
        ),
    ] = None,
    to_qa: Annotated[
        bool,
        typer.Option("--to-qa", help="Every line was sent and the item looks finished: QA it."),
    ] = False,
    scrap: Annotated[bool, typer.Option("--scrap", help="Give the job up; item scrapped.")] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Allow a line before the mark, or QA before the end.")
    ] = False,
    json_out: JsonOpt = False,
) -> None:
    """Decide what happens to an interrupted job: exactly one choice (`jobs show` advises)."""
    chosen = [
        name
        for name, on in (
            ("restart", restart),
            ("from_line", continue_ or from_line is not None),
            ("to_qa", to_qa),
            ("scrap", scrap),
        )
        if on
    ]
    if len(chosen) != 1 or (continue_ and from_line is not None):
        fail("choose exactly one of --restart, --continue, --from-line N, --to-qa, --scrap", 2)
    args: dict[str, Any] = {"job_id": job_id, "mode": chosen[0], "force": force}
    if from_line is not None:
        args["line"] = from_line
    data = rpc(ctx, "jobs.resume", args)
    done(data, json_out, f"{job_id}: {data['status']}")


@jobs_app.command("submit")
def jobs_submit(
    ctx: typer.Context,
    job_id: str,
    item: Annotated[str, typer.Option(help="Item id from the inventory.")],
    line: Annotated[list[str] | None, typer.Option("--line", help="A line of text.")] = None,
    customer: Annotated[str, typer.Option(help="Customer id.")] = "walk-in",
    due: Annotated[str, typer.Option(help="Due date, ISO 8601.")] = "2099-01-01",
    rush: Annotated[bool, typer.Option("--rush")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Queue a walk-in job locally (no cloud order)."""
    message = {
        "job_id": job_id,
        "customer_id": customer,
        "item_id": item,
        "due_date": due,
        "text": line or [],
        "rush": rush,
    }
    data = rpc(ctx, "jobs.submit", {"message": message})
    done(data, json_out, f"{job_id}: {data['status']}")


def _decision(approved: bool) -> Any:
    def command(
        ctx: typer.Context,
        job_id: str,
        comment: Annotated[str, typer.Option(help="Why (sent to the customer).")] = "",
        yes: Annotated[
            bool, typer.Option("--yes", "-y", help="Answer without showing and asking.")
        ] = False,
        json_out: JsonOpt = False,
    ) -> None:
        verb = "approve" if approved else "reject"
        if not yes:
            _print_design(rpc(ctx, "jobs.program", {"job_id": job_id}))
            try:
                sure = typer.confirm(f"{verb.capitalize()} the design of {job_id}?", err=True)
            except typer.Abort:
                sure = False
            if not sure:
                past = "approved" if approved else "rejected"
                fail(f"{job_id}: design not {past}, nothing sent (--yes answers unasked)")
        cmd = "jobs.approve" if approved else "jobs.reject"
        data = rpc(ctx, cmd, {"job_id": job_id, "comment": comment})
        done(data, json_out, data.get("message") or f"{job_id}: {data['status']}")

    command.__doc__ = (
        "Show the job's design and approve it on the customer's behalf."
        if approved
        else "Show the job's design and reject it (a revision is requested)."
    )
    return command


jobs_app.command("approve")(_decision(True))
jobs_app.command("reject")(_decision(False))


def done(data: Any, json_out: bool, line: str) -> None:
    """The daemon's answer as JSON for scripts, or one line for people."""
    if json_out:
        emit(data, True)
    else:
        print(line)


@machines_app.command("list")
def machines_list(ctx: typer.Context, json_out: JsonOpt = False) -> None:
    """Machines with their live state."""
    rows = rpc(ctx, "machines.list")
    emit(rows, json_out, views.machines_table(rows))


@machines_app.command("pause")
def machines_pause(ctx: typer.Context, machine_id: str, json_out: JsonOpt = False) -> None:
    """Take no new jobs on this machine (the running one finishes)."""
    data = rpc(ctx, "machines.pause", {"machine_id": machine_id})
    done(data, json_out, f"{machine_id}: paused")


@machines_app.command("resume")
def machines_resume(ctx: typer.Context, machine_id: str, json_out: JsonOpt = False) -> None:
    """Take jobs again."""
    data = rpc(ctx, "machines.resume", {"machine_id": machine_id})
    done(data, json_out, f"{machine_id}: taking jobs")


def _action(action: str) -> Any:
    def command(ctx: typer.Context, machine_id: str, json_out: JsonOpt = False) -> None:
        data = rpc(ctx, "machines.action", {"machine_id": machine_id, "action": action})
        done(data, json_out, f"{machine_id}: {action} done")

    command.__doc__ = {
        "home": "Run the homing cycle ($H) — a technician's explicit action.",
        "unlock": "Clear an alarm lock ($X) after checking the machine.",
        "frame": "Trace the engraving area with the laser off.",
    }[action]
    return command


for _name in ("home", "unlock", "frame"):
    machines_app.command(_name)(_action(_name))


@inventory_app.command("list")
def inventory_list(ctx: typer.Context, json_out: JsonOpt = False) -> None:
    """Stock per item."""
    rows = rpc(ctx, "inventory.list")
    table = views.table("item", "free", "held", "used", title="Inventory")
    for r in rows:
        table.add_row(r["item_id"], str(r["available"]), str(r["reserved"]), str(r["consumed"]))
    emit(rows, json_out, table)


@inventory_app.command("set")
def inventory_set(
    ctx: typer.Context, item_id: str, available: int, json_out: JsonOpt = False
) -> None:
    """Set the available count of an item."""
    if available < 0:
        fail("available must be >= 0", 2)
    data = rpc(ctx, "inventory.set", {"item_id": item_id, "available": available})
    done(data, json_out, f"{item_id}: {data['available']} available")


def _verdict(passed: bool) -> Any:
    def command(
        ctx: typer.Context,
        job_id: str,
        notes: Annotated[str, typer.Option(help="What you saw.")] = "",
        by: Annotated[str, typer.Option(help="Who checked.")] = "technician",
        json_out: JsonOpt = False,
    ) -> None:
        if not json_out:
            _print_design(rpc(ctx, "jobs.program", {"job_id": job_id}))
        data = rpc(
            ctx, "qa.verdict", {"job_id": job_id, "passed": passed, "notes": notes, "by": by}
        )
        done(data, json_out, f"{job_id}: {data['status']}")

    command.__doc__ = "Record a passed QA check." if passed else "Record a failed QA check."
    return command


qa_app.command("pass")(_verdict(True))
qa_app.command("fail")(_verdict(False))
