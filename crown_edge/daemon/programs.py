"""From a stored job to the G-code lines a machine runs (via the toolpath module)."""

from __future__ import annotations

from dataclasses import dataclass

from crown_edge.catalog import Catalog
from crown_edge.config import MachineConfig
from crown_edge.models import Surface
from crown_edge.store import Job


@dataclass(frozen=True, slots=True)
class Program:
    """G-code for one job on one machine, with its estimated motion time."""

    job_id: str
    lines: tuple[str, ...]
    estimate_s: float


def render_program(job: Job, catalog: Catalog, machine: MachineConfig | None = None) -> Program:
    """Render the job's text (and artwork) for its item; raises the toolpath's typed errors.

    Blocking (artwork may be fetched): call it in a worker thread from the event loop. On a
    machine configured ``laser = "dry"`` the program is the dry-run form (every motion, laser
    power held at zero).
    """
    from crown_edge.artwork import load_job_artwork
    from crown_edge.toolpath import RotaryConfig, dry_run, render_job

    msg = job.intake
    item = catalog.item(job.item_id)
    material = catalog.material(msg.material or item.material)
    artwork = load_job_artwork(msg.artwork_url) if msg.artwork_url else None
    rotary = None
    if machine is not None and machine.has_rotary and item.surface is Surface.CYLINDER:
        rotary = RotaryConfig(
            axis="A" if machine.rotary_axis == "A" else "Y",
            per_rotation=machine.rotary_per_rotation,
        )
    result = render_job(
        item,
        list(msg.text),
        material,
        job_id=job.job_id,
        font=msg.font,
        artwork=artwork,
        rotary=rotary,
    )
    lines = tuple(result.gcode)
    if machine is not None and machine.laser == "dry":
        lines = dry_run(lines)
    return Program(job.job_id, lines, float(result.estimate_s))
