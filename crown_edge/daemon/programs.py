"""From a stored job to the G-code lines a machine runs (via the toolpath module)."""

from __future__ import annotations

from dataclasses import dataclass

from crown_edge.catalog import Catalog
from crown_edge.config import MachineConfig
from crown_edge.errors import CrownEdgeError
from crown_edge.store import Job


@dataclass(frozen=True, slots=True)
class Program:
    """G-code for one job on one machine, with its estimated motion time."""

    job_id: str
    lines: tuple[str, ...]
    estimate_s: float


def render_program(job: Job, catalog: Catalog, machine: MachineConfig | None = None) -> Program:
    """Render the job's text for its item; raises the toolpath's typed errors."""
    from crown_edge.toolpath import render_job  # deferred: toolpath loads fonts on first use

    msg = job.intake
    item = catalog.item(job.item_id)
    material = catalog.material(msg.material or item.material)
    result = render_job(item, list(msg.text), material, job_id=job.job_id, font=msg.font)
    return Program(job.job_id, tuple(result.gcode), float(result.estimate_s))


def estimate_job(job: Job, catalog: Catalog) -> float:
    """Estimated engraving time of a job in seconds (falls back to a per-line heuristic)."""
    try:
        return render_program(job, catalog).estimate_s
    except (CrownEdgeError, ImportError):
        return 30.0 + 20.0 * max(1, len(job.message.get("text", [])))
