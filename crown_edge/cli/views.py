"""What technician commands show, built from the daemon's answers: the design drawn in braille,
machine states in words, short times, live job rows. Pure (values in, text or renderables out)."""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Mapping, Sequence
from typing import Any

from rich import box
from rich.console import Group, RenderableType
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from crown_edge.toolpath.braille import braille_lines, framed

FINAL = frozenset({"complete", "cancelled", "failed", "escalated"})
"""Job statuses after which nothing more happens (a watch ends there)."""


def terminal_width(default: int = 80) -> int:
    """Columns of the terminal (``$COLUMNS``, the tty, else ``default``)."""
    return max(20, shutil.get_terminal_size((default, 24)).columns)


def table(*headers: str, title: str | None = None) -> Table:
    """A compact table whose cells wrap instead of being cut ("qa_pendi…")."""
    t = Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False, title_justify="left")
    for header in headers:
        t.add_column(header, overflow="fold")
    return t


def design_lines(program: Mapping[str, Any], width: int, max_rows: int = 20) -> list[str]:
    """The job's cut paths drawn in a frame ``width`` columns wide (the item's area when flat)."""
    paths = [[(float(x), float(y)) for x, y in path] for path in program.get("paths") or []]
    area = program.get("area_mm")
    bounds = (0.0, 0.0, float(area[0]), float(area[1])) if area else None
    if not paths and bounds is None:
        return []
    inner = max(4, width - 2)
    title = f"{area[0]:g} x {area[1]:g} mm" if area else "design"
    return framed(braille_lines(paths, inner, max_rows=max_rows, bounds=bounds), title)


def design_text(program: Mapping[str, Any], width: int) -> list[str]:
    """Text lines, item, artwork, the drawing and the preview file, as lines to print."""
    out = [f"Item:    {program['item_id']}"]
    text = program.get("text") or []
    if text:
        out.append("Text:    " + str(text[0]))
        out.extend("         " + str(line) for line in text[1:])
    else:
        out.append("Text:    (none)")
    out.append(f"Artwork: {program.get('artwork_url') or '(none)'}")
    if program.get("error"):
        out.append(f"Design:  cannot be drawn: {program['error']}")
    else:
        drawing = design_lines(program, width)
        if program.get("paths"):
            out.extend(drawing)
        else:
            out.append("Design:  nothing to engrave")
    if program.get("preview"):
        out.append(f"Preview: {program['preview']}")
    return out


_EXECUTION = {
    "READY": "ready",
    "ACTIVE": "busy",
    "FEED_HOLD": "feed hold",
    "INTERRUPTED": "interrupted",
    "STOPPED": "stopped",
}


def machine_state(row: Mapping[str, Any]) -> str:
    """One word (or two) for a machine: engraving, ready, paused, alarm (X), offline."""
    if row.get("alarm"):
        return f"alarm ({row['alarm']})"
    if row.get("availability") not in (None, "AVAILABLE"):
        return "offline"
    execution = str(row.get("execution") or "READY")
    if row.get("job_id") and execution in ("READY", "ACTIVE"):
        state = "engraving"  # the stored state may lag the run that has started
    else:
        state = _EXECUTION.get(execution, execution.lower())
    return f"{state}, paused" if row.get("paused") else state


def short_time(value: float | None, now: float) -> str:
    """A time as HH:MM today, else MM-DD HH:MM; '-' for none."""
    if value is None:
        return "-"
    at = dt.datetime.fromtimestamp(value)
    today = dt.datetime.fromtimestamp(now).date()
    return at.strftime("%H:%M") if at.date() == today else at.strftime("%m-%d %H:%M")


def duration(seconds: float | None) -> str:
    """Seconds as ``1h05m``, ``4m10s`` or ``12s``."""
    if seconds is None:
        return "-"
    s = max(0, round(seconds))
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    if s >= 60:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s}s"


def clock_ms(value: float | None) -> str:
    """A time as local HH:MM:SS.mmm; '-' for none."""
    if value is None:
        return "-"
    return dt.datetime.fromtimestamp(value).strftime("%H:%M:%S.%f")[:-3]


def gap_text(gap_ms: float | None) -> str:
    """A gap between stages: ``850 ms``, ``2.4 s`` or ``3m10s``; '-' for none."""
    if gap_ms is None:
        return "-"
    if gap_ms < 1000:
        return f"{gap_ms:.0f} ms"
    if gap_ms < 60_000:
        return f"{gap_ms / 1000:.1f} s"
    return duration(gap_ms / 1000)


def timeline_table(rows: Sequence[Mapping[str, Any]]) -> Table:
    """A job's stages (:func:`crown_edge.workflow.timeline.timeline` rows) as a table."""
    from crown_edge.workflow.timeline import MEANING

    t = table("stage", "at", "gap", "what", title="Timeline")
    for row in rows:
        stage = str(row["stage"])
        t.add_row(
            stage, clock_ms(row.get("at")), gap_text(row.get("gap_ms")), MEANING.get(stage, "")
        )
    return t


def remaining_s(estimate_s: float | None, progress: float | None) -> float | None:
    """Time left of a running job from its estimate and progress (0..1)."""
    if not estimate_s or progress is None:
        return None
    return max(0.0, float(estimate_s) * (1.0 - min(max(float(progress), 0.0), 1.0)))


def job_bar(job: Mapping[str, Any], now: float, width: int) -> Table:
    """One running job: id, a progress bar, percent and ETA, fitted to ``width``."""
    progress = float(job.get("progress") or 0.0)
    left = remaining_s(job.get("estimate_s"), job.get("progress"))
    eta = "-" if left is None else f"{duration(left)} (~{short_time(now + left, now)})"
    row = Table.grid(padding=(0, 1))
    row.add_column(no_wrap=True)
    row.add_column(width=max(10, width - 46))
    row.add_column(justify="right", no_wrap=True)
    row.add_column(no_wrap=True)
    label = f"{job['job_id']} {job.get('machine_id') or ''}".strip()
    row.add_row(
        Text(label[:22]),
        ProgressBar(total=1.0, completed=progress),
        f"{progress * 100:3.0f}%",
        f"ETA {eta}",
    )
    return row


def live_status(
    status: Mapping[str, Any], running: Sequence[Mapping[str, Any]], now: float, width: int
) -> RenderableType:
    """The ``status --watch`` screen: a summary line, machines, and a bar per running job."""
    head = Text(
        f"shop {status['shop_id']}  queue {status['queue_depth']}  "
        f"outbox {status['outbox_pending']}  " + links_text(status.get("links") or {})
    )
    parts: list[RenderableType] = [head, machines_table(status["machines"])]
    if running:
        parts.extend(job_bar(job, now, width) for job in running)
    else:
        parts.append(Text("No job is engraving."))
    parts.append(Text("Ctrl-C to leave", style="dim"))
    return Group(*parts)


def live_job(job: Mapping[str, Any], now: float, width: int) -> RenderableType:
    """The ``jobs watch`` screen for one job."""
    head = Text(
        f"{job['job_id']}: {job['status']}" + (f" ({job['reason']})" if job.get("reason") else "")
    )
    parts: list[RenderableType] = [head]
    if job["status"] == "engraving":
        parts.append(job_bar(job, now, width))
    elif job.get("queue_position"):
        parts.append(Text(f"queue position {job['queue_position']}"))
    parts.append(Text("Ctrl-C to leave", style="dim"))
    return Group(*parts)


def links_text(links: Mapping[str, bool]) -> str:
    """``links mqtt=up temporal=down`` (or nothing without links)."""
    if not links:
        return ""
    return "links " + " ".join(f"{k}={'up' if v else 'down'}" for k, v in sorted(links.items()))


def machines_table(rows: Sequence[Mapping[str, Any]]) -> Table:
    """Machines with their state in words, the job they run and its progress."""
    t = table("machine", "state", "job", "done", title="Machines")
    for r in rows:
        progress = r.get("progress")
        t.add_row(
            str(r["machine_id"]),
            machine_state(r),
            str(r.get("job_id") or ""),
            "" if progress is None else f"{float(progress) * 100:.0f}%",
        )
    return t
