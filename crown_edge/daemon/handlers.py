"""Control-socket command handlers: what technician commands do inside the daemon."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import glob
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from crown_edge import logs
from crown_edge.catalog import Catalog
from crown_edge.config import EdgeConfig
from crown_edge.daemon.jobs import JobOps
from crown_edge.daemon.programs import render_program
from crown_edge.daemon.restock import signal_restock
from crown_edge.daemon.words import no_machine_reason, order_summary
from crown_edge.errors import CrownEdgeError, ValidationError
from crown_edge.metrics import EdgeMetrics
from crown_edge.models import IntakeMessage, JobStatus, Surface
from crown_edge.scheduler import Scheduler
from crown_edge.store import Store
from crown_edge.toolpath.braille import cut_paths

Handler = Callable[[dict[str, Any]], Any]


class Daemon(Protocol):
    """What the command handlers use of the daemon (:class:`~crown_edge.daemon.app.EdgeDaemon`)."""

    config: EdgeConfig
    catalog: Catalog
    store: Store
    scheduler: Scheduler
    jobs: JobOps
    metrics: EdgeMetrics
    clock: Callable[[], float]
    version: str
    started_at: float
    temporal_client: Any

    @property
    def mode(self) -> str:
        """``temporal`` or ``standalone``."""
        ...

    def links(self) -> dict[str, bool]:
        """Connectivity of the optional links."""
        ...

    def wake_machines(self) -> None:
        """Tell idle machine workers to look at the queue now."""
        ...

    async def order_view(self, job_id: str, timeout: float = 2.0) -> dict[str, Any] | None:
        """The order workflow's own view of a job, or None."""
        ...

    async def decide_design(self, job_id: str, approved: bool, comment: str) -> dict[str, Any]:
        """Answer a design for the customer via the workflow."""
        ...

    async def machine_action(self, machine_id: str, action: str) -> dict[str, Any]:
        """Technician actions on a machine: home, unlock, frame."""
        ...


def _job_id(args: dict[str, Any]) -> str:
    job_id = args.get("job_id")
    if not isinstance(job_id, str) or not job_id:
        raise ValidationError("a job id is required")
    logs.bind(job_id=job_id)  # this command's log lines name the job (one task per connection)
    return job_id


def design_preview(state_dir: Path, job_id: str) -> str | None:
    """The newest design preview of a job next to the store (``designs/{job}[-rN].svg``, where
    ``crown-edge up`` keeps the cloud's designs), or None."""
    designs = state_dir / "designs"
    found: list[tuple[int, Path]] = []
    with contextlib.suppress(OSError):
        for path in designs.glob(f"{glob.escape(job_id)}*.svg"):
            rest = path.stem[len(job_id) :]
            if rest == "":
                found.append((0, path))
            elif rest.startswith("-r") and rest[2:].isdigit():
                found.append((int(rest[2:]), path))
    return str(max(found)[1]) if found else None


def build_handlers(d: Daemon) -> dict[str, Callable[[dict[str, Any]], Any]]:
    """The command table served on the control socket (and by MQTT commands)."""
    store, sched, ops = d.store, d.scheduler, d.jobs

    async def ping(args: dict[str, Any]) -> dict[str, Any]:
        return {"pong": True, "shop_id": d.config.shop_id}

    async def status(args: dict[str, Any]) -> dict[str, Any]:
        jobs = await store.job_counts()
        snapshot = await d.metrics.refresh(d.clock())
        pending = await store.outbox_waiting()
        return {
            "shop_id": d.config.shop_id,
            "version": d.version,
            "uptime_s": round(d.clock() - d.started_at, 1),
            "mode": d.mode,
            "jobs": jobs,
            "queue_depth": jobs.get("queued", 0),
            "outbox_pending": pending,
            "links": d.links(),
            "machines": await sched.machine_rows(),
            "alerts": snapshot.alerts(d.config.heartbeat_timeout_s),
            "metrics": {
                "jobs_completed_today": snapshot.jobs_completed_today,
                "average_completion_s": snapshot.average_completion_s,
                "qa_pass_rate": snapshot.qa_pass_rate,
                "revenue_today_cents": snapshot.revenue_today_cents,
                "rush_order_percentage": snapshot.rush_order_percentage,
                "machine_utilization": snapshot.machine_utilization,
            },
        }

    async def queue(args: dict[str, Any]) -> list[dict[str, Any]]:
        limit = int(args.get("limit", 100))
        snap = await sched.snapshot(d.clock(), limit=limit)
        rows = {r["machine_id"]: r for r in await sched.machine_rows()}
        ids = [m.id for m in d.config.machines]
        return [
            {
                "position": p.position,
                "job_id": j.job_id,
                "item_id": j.item_id,
                "rush": j.rush,
                "due_at": j.due_at,
                "estimate_s": j.estimate_s,
                "machine_id": p.machine_id,
                "eta": p.finish_at,
                "why": None if p.machine_id else no_machine_reason(j.eligible_mask, ids, rows),
            }
            for j, p in snap
        ]

    async def jobs_list(args: dict[str, Any]) -> list[dict[str, Any]]:
        status_filter = args.get("status")
        statuses = [status_filter] if isinstance(status_filter, str) else None
        return [j.to_dict() for j in await store.list_jobs(statuses, int(args.get("limit", 200)))]

    async def jobs_show(args: dict[str, Any]) -> dict[str, Any]:
        job_id = _job_id(args)
        job = await store.get_job(job_id)
        out = job.to_dict()
        out["queue_position"] = await sched.position(job_id)
        out["events"] = await store.events(job_id)
        out["runs"] = [dataclasses.asdict(r) for r in await store.runs(job_id)]
        if job.status is JobStatus.INTERRUPTED:
            out["resume"] = (await ops.resume_advice(job)).to_dict()
        if job.status is JobStatus.VALIDATED and job.message.get("origin") != "local":
            order = await d.order_view(job_id)
            if order is not None:
                out["order"] = order_summary(order)
        return out

    async def jobs_program(args: dict[str, Any]) -> dict[str, Any]:
        """The job's design as the machine will cut it: cut paths (mm, rapids left out), the
        item's area, the text and artwork, and the design preview file when one exists."""
        job = await store.get_job(_job_id(args))
        msg = job.intake
        out: dict[str, Any] = {
            "job_id": job.job_id,
            "item_id": job.item_id,
            "text": list(msg.text),
            "artwork_url": msg.artwork_url,
            "preview": design_preview(d.config.store_path.parent, job.job_id),
            "area_mm": None,
            "paths": [],
            "program_lines": 0,
            "estimate_s": None,
            "error": None,
        }
        item = d.catalog.items.get(job.item_id)
        if item is not None and item.surface is Surface.FLAT:
            out["area_mm"] = [item.area.width_mm, item.area.height_mm]
        try:
            program = await asyncio.to_thread(render_program, job, d.catalog)
        except CrownEdgeError as exc:
            out["error"] = str(exc)
            return out
        out["paths"] = [
            [[round(x, 2), round(y, 2)] for x, y in path] for path in cut_paths(program.lines)
        ]
        out["program_lines"] = len(program.lines)
        out["estimate_s"] = round(program.estimate_s, 1)
        return out

    async def jobs_submit(args: dict[str, Any]) -> dict[str, Any]:
        """Local intake (no cloud): validate, reserve and queue a job on this workshop."""
        msg = IntakeMessage.parse(args.get("message"))
        job = await ops.intake_local(msg)
        return job.to_dict()

    async def jobs_cancel(args: dict[str, Any]) -> dict[str, Any]:
        job_id = _job_id(args)
        reason = str(args.get("reason", "technician"))
        job = await ops.cancel(job_id, reason, wait=bool(args.get("wait", True)))
        return job.to_dict()

    async def jobs_top(args: dict[str, Any]) -> dict[str, Any]:
        job = await sched.move_to_top(_job_id(args), d.clock())
        return job.to_dict()

    async def jobs_resume(args: dict[str, Any]) -> dict[str, Any]:
        job = await ops.resume(
            _job_id(args),
            args.get("mode"),
            line=args.get("line"),
            force=bool(args.get("force")),
            by=str(args.get("by", "technician")),
        )
        return job.to_dict()

    async def jobs_approve(args: dict[str, Any]) -> dict[str, Any]:
        return await d.decide_design(_job_id(args), True, str(args.get("comment", "")))

    async def jobs_reject(args: dict[str, Any]) -> dict[str, Any]:
        return await d.decide_design(_job_id(args), False, str(args.get("comment", "")))

    async def machines_list(args: dict[str, Any]) -> list[dict[str, Any]]:
        return await sched.machine_rows()

    async def machines_pause(args: dict[str, Any]) -> dict[str, Any]:
        mid = str(args.get("machine_id", ""))
        await sched.set_paused(mid, True)
        return {"machine_id": mid, "paused": True}

    async def machines_resume(args: dict[str, Any]) -> dict[str, Any]:
        mid = str(args.get("machine_id", ""))
        await sched.set_paused(mid, False)
        d.wake_machines()
        return {"machine_id": mid, "paused": False}

    async def machines_action(args: dict[str, Any]) -> dict[str, Any]:
        mid = str(args.get("machine_id", ""))
        return await d.machine_action(mid, str(args.get("action", "")))

    async def inventory_list(args: dict[str, Any]) -> list[dict[str, Any]]:
        return [s.to_dict() for s in await store.list_stock()]

    async def inventory_set(args: dict[str, Any]) -> dict[str, Any]:
        available = args.get("available")
        if not isinstance(available, int) or available < 0:
            raise ValidationError("available must be an integer >= 0")
        row = await store.set_stock(str(args.get("item_id", "")), available, d.clock())
        # jobs whose workflow waits for this item validate again now (else on their timer)
        reached = await signal_restock(d.temporal_client, store, row.item_id, row.available)
        return {**row.to_dict(), "restock_signalled": reached}

    async def qa_verdict(args: dict[str, Any]) -> dict[str, Any]:
        job_id = _job_id(args)
        passed = bool(args.get("passed"))
        notes = str(args.get("notes", ""))
        by = str(args.get("by", "technician"))
        return (await ops.record_qa(job_id, passed, notes, by)).to_dict()

    async def outbox(args: dict[str, Any]) -> list[dict[str, Any]]:
        return [
            {"id": e.id, "topic": e.topic, "payload": e.payload}
            for e in await store.outbox_pending(int(args.get("limit", 50)))
        ]

    table: dict[str, Callable[[dict[str, Any]], Any]] = {
        "ping": ping,
        "status": status,
        "queue": queue,
        "jobs.list": jobs_list,
        "jobs.show": jobs_show,
        "jobs.program": jobs_program,
        "jobs.submit": jobs_submit,
        "jobs.cancel": jobs_cancel,
        "jobs.top": jobs_top,
        "jobs.resume": jobs_resume,
        "jobs.approve": jobs_approve,
        "jobs.reject": jobs_reject,
        "machines.list": machines_list,
        "machines.pause": machines_pause,
        "machines.resume": machines_resume,
        "machines.action": machines_action,
        "inventory.list": inventory_list,
        "inventory.set": inventory_set,
        "qa.verdict": qa_verdict,
        "outbox.pending": outbox,
    }
    return table
