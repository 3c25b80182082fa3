"""The toolpath pipeline in one call: text (and artwork) → strokes → order → G-code → estimate."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from crown_edge.models import Item, MaterialProfile
from crown_edge.toolpath.artwork import Artwork, fit_artwork
from crown_edge.toolpath.estimate import Estimate, MachineParams, estimate_moves
from crown_edge.toolpath.fonts import Polyline
from crown_edge.toolpath.gcode import Program, emit_gcode
from crown_edge.toolpath.layout import (
    DEFAULT_LINE_SPACING,
    Align,
    Placement,
    Region,
    TextLayout,
    layout_text,
    normalise_lines,
    split_area,
)
from crown_edge.toolpath.order import order_strokes
from crown_edge.toolpath.preview import preview_svg
from crown_edge.toolpath.surface import RotaryConfig, mapping_for


@dataclass(frozen=True, slots=True)
class RenderStats:
    """Figures about a rendered job (what ``gcode render --json`` prints)."""

    segments: int
    cut_length_mm: float
    travel_length_mm: float
    travel_font_order_mm: float
    """Air travel of one pass in layout (font) order, before optimisation."""
    travel_optimised_mm: float
    """Air travel of one pass in the optimised order."""
    estimate_s: float
    cap_height_mm: float
    strokes: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready figures, rounded for people."""
        return {
            "segments": self.segments,
            "cut_length_mm": round(self.cut_length_mm, 2),
            "travel_length_mm": round(self.travel_length_mm, 2),
            "travel_font_order_mm": round(self.travel_font_order_mm, 2),
            "travel_optimised_mm": round(self.travel_optimised_mm, 2),
            "estimate_s": round(self.estimate_s, 2),
            "cap_height_mm": round(self.cap_height_mm, 3),
            "strokes": self.strokes,
        }


@dataclass(frozen=True, slots=True)
class RenderResult:
    """Everything about one rendered job: the program, the geometry, the figures."""

    job_id: str
    item: Item
    gcode: tuple[str, ...]
    strokes: tuple[Polyline, ...]
    """Strokes in cutting order and direction, surface mm (area origin bottom-left)."""
    layout: TextLayout
    artwork_region: Region | None
    estimate: Estimate
    stats: RenderStats
    program: Program

    @property
    def cap_height_mm(self) -> float:
        """Cap height the text got (0 without text)."""
        return self.layout.cap_height_mm

    @property
    def estimate_s(self) -> float:
        """Estimated motion time in seconds."""
        return self.estimate.total_s

    def gcode_text(self) -> str:
        """The program as one newline-terminated string."""
        return "\n".join(self.gcode) + "\n"

    def preview_svg(self, *, travel: bool = False) -> str:
        """Preview SVG for approval; ``travel`` also draws the air moves."""
        regions = [self.layout.region] if self.layout.strokes else []
        if self.artwork_region is not None:
            regions.append(self.artwork_region)
        return preview_svg(self.item, self.strokes, travel=travel, regions=regions)


def _regions(
    item: Item, lines: Sequence[str], artwork: bool, placement: Placement
) -> tuple[Region | None, Region | None]:
    has_text = bool(normalise_lines(lines))
    return split_area(item.area, text=has_text, artwork=artwork, placement=placement)


def check_fit(
    item: Item,
    lines: Sequence[str],
    font: str | None = None,
    *,
    artwork: bool = False,
    placement: Placement = "auto",
    line_spacing: float = DEFAULT_LINE_SPACING,
) -> float:
    """Validate text for an item without rendering; return the cap height it would get (mm).

    Raises GlyphMissing or TextDoesNotFit exactly as :func:`render_job` would. ``artwork``
    reserves the artwork's share of the area.
    """
    text_region, _ = _regions(item, lines, artwork, placement)
    if text_region is None:
        return 0.0
    return layout_text(
        item.area, lines, font=font, region=text_region, line_spacing=line_spacing
    ).cap_height_mm


def render_job(
    item: Item,
    lines: Sequence[str],
    material: MaterialProfile | None = None,
    *,
    job_id: str,
    font: str | None = None,
    artwork: Artwork | None = None,
    rotary: RotaryConfig | None = None,
    machine: MachineParams | None = None,
    align: Align = "center",
    line_spacing: float = DEFAULT_LINE_SPACING,
    placement: Placement = "auto",
    optimise: bool = True,
    max_evaluations: int | None = None,
    time_budget_s: float | None = None,
) -> RenderResult:
    """Render a job to G-code. Pure: no I/O (artwork comes already fetched and parsed).

    ``material`` defaults to a profile named after the item's material with safe defaults.
    ``time_budget_s`` caps the stroke-order search by wall clock on top of the deterministic
    ``max_evaluations`` budget (leave it None for reproducible output).
    """
    profile = material or MaterialProfile(name=item.material)
    mapping = mapping_for(item, rotary)
    text_region, art_region = _regions(item, lines, artwork is not None, placement)
    if text_region is not None:
        layout = layout_text(
            item.area,
            lines,
            font=font,
            region=text_region,
            align=align,
            line_spacing=line_spacing,
        )
    else:
        layout = layout_text(item.area, (), font=font)
    strokes: list[Polyline] = list(layout.strokes)
    if artwork is not None and art_region is not None:
        strokes.extend(fit_artwork(artwork, art_region))
    deadline = None if time_budget_s is None else time.perf_counter() + time_budget_s
    ordering = order_strokes(
        strokes,
        optimise=optimise,
        max_evaluations=max_evaluations,
        deadline=deadline,
        clock=time.perf_counter if deadline is not None else None,
    )
    program = emit_gcode(ordering.strokes, mapping, profile, job_id=job_id)
    estimate = estimate_moves(program.moves, machine)
    stats = RenderStats(
        segments=program.segments,
        cut_length_mm=program.cut_length_mm,
        travel_length_mm=program.travel_length_mm,
        travel_font_order_mm=ordering.input_travel_mm,
        travel_optimised_mm=ordering.travel_mm,
        estimate_s=estimate.total_s,
        cap_height_mm=layout.cap_height_mm,
        strokes=len(ordering.strokes),
    )
    return RenderResult(
        job_id=job_id,
        item=item,
        gcode=program.lines,
        strokes=ordering.strokes,
        layout=layout,
        artwork_region=art_region,
        estimate=estimate,
        stats=stats,
        program=program,
    )
