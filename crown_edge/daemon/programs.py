"""From a stored job to the G-code lines a machine runs (via the toolpath module)."""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from crown_edge.catalog import Catalog
from crown_edge.config import MachineConfig
from crown_edge.errors import CrownEdgeError
from crown_edge.models import Item, MaterialProfile, Surface
from crown_edge.store import Job

if TYPE_CHECKING:
    from crown_edge.toolpath import RotaryConfig

log = logging.getLogger(__name__)

#: How many text-only renders are kept (see :func:`_render_text`).
RENDER_CACHE_SIZE = 64


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
    if artwork is None:
        text = tuple(msg.text)
        lines, estimate = _render_text(item, text, material, job.job_id, msg.font, rotary)
    else:
        result = render_job(
            item,
            list(msg.text),
            material,
            job_id=job.job_id,
            font=msg.font,
            artwork=artwork,
            rotary=rotary,
        )
        lines, estimate = tuple(result.gcode), float(result.estimate_s)
    if machine is not None and machine.laser == "dry":
        lines = dry_run(lines)
    return Program(job.job_id, lines, estimate)


def text_estimate(
    item: Item, lines: Sequence[str], font: str | None, material: MaterialProfile, job_id: str
) -> float | None:
    """Motion-time estimate of a text job from its full render; None when it does not render.

    The scheduler orders machines by it (ETA); a job the render refuses, or a build without a
    working toolpath package, keeps the default. The render is the one the machine runs moments
    later (:func:`_render_text`), so the job is laid out once, not twice.
    """
    try:
        return _render_text(item, tuple(lines), material, job_id, font, None)[1]
    except (CrownEdgeError, ImportError) as exc:
        log.info("job %s: no estimate (%s)", job_id, exc)
        return None


@functools.lru_cache(maxsize=RENDER_CACHE_SIZE)
def _render_text(
    item: Item,
    lines: tuple[str, ...],
    material: MaterialProfile,
    job_id: str,
    font: str | None,
    rotary: RotaryConfig | None,
) -> tuple[tuple[str, ...], float]:
    """The G-code lines and estimate of a text-only job, kept for the next caller.

    ``send_to_machine`` renders a job to estimate it, then a machine renders it again to run
    it: the same item, text, font and material make the same program, so the second render
    comes from here. Keyed by everything the render reads (frozen values; a changed item or
    material is another key); a render that fails is not kept. Pure and safe across threads
    (two threads asking at once may both render).
    """
    from crown_edge.toolpath import render_job

    result = render_job(item, list(lines), material, job_id=job_id, font=font, rotary=rotary)
    return tuple(result.gcode), float(result.estimate_s)
