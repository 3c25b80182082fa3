"""Engraving content → G-code: layout, surfaces, artwork, stroke order, emission, preview, estimate.

Everything here is pure (values in, values out); artwork is fetched by
:mod:`crown_edge.artwork`. The public API other components (scheduler, Temporal
activities, the CLI) call::

    from crown_edge.toolpath import render_job, check_fit

    cap_mm = check_fit(item, ["Club Champion", "2026"], font=None)  # validation only;
                                                # artwork=True reserves the artwork's share
    result = render_job(
        item,                      # crown_edge.models.Item (flat plate or cylinder)
        ["Club Champion", "2026"],  # lines of customer text
        material,                  # crown_edge.models.MaterialProfile (power, feed, passes, air)
        job_id="J-123",            # [A-Za-z0-9._-]{1,64}; the only outside text in the G-code
        font=None,                 # one of available_fonts(), default "futural"
        artwork=None,              # Artwork from parse_svg() or crown_edge.artwork.load_artwork()
        rotary=None,               # RotaryConfig for cylinders (axis "Y" or "A", per_rotation)
        machine=None,              # MachineParams for the estimate (accel, rapid, junction dev.)
    )
    result.gcode          # tuple of G-code lines, every one matches gcode.GRAMMAR, <= 80 chars
    result.strokes        # ordered strokes, surface mm, origin at the area's bottom-left
    result.cap_height_mm  # chosen text size
    result.estimate_s     # motion time estimate (GRBL-like planner)
    result.stats          # RenderStats: segments, cut/travel length, estimate, cap height
    result.preview_svg()  # SVG for the approval step
    result.gcode_text()   # the program as one string

    dry_run(result.gcode)  # the same motion with the laser held at zero (M5/S0): the HIL rig's
                           # default on real machines, and machines configured laser = "dry"

Output is deterministic for the same input (the stroke-order search has an evaluation budget;
``time_budget_s=`` adds a wall-clock cap at the price of reproducibility). A plate renders in a
few milliseconds (``crown-edge bench toolpath``), so callers may run it inline or in a thread.

Errors (all :class:`~crown_edge.errors.ValidationError`): ``GlyphMissing`` (a character the
font lacks, named), ``TextDoesNotFit`` (fields: reason ``lines``/``width``/``height``, line,
needed and available mm, min cap height), ``ArtworkError`` (parse; field ``reason``),
and plain ``ValidationError`` for an unknown font, a bad job id or material values. Bad
``MachineParams`` raise ``ConfigError``.

Machine coordinates: the program's origin is the engraving area's bottom-left corner (flat),
or, on a rotary, X along the cylinder axis from the area's bottom edge and Y/A the rotation.
The controller must run in laser mode ($32=1): ``M4`` dynamic power, laser off during ``G0``.
"""

from __future__ import annotations

from crown_edge.toolpath.artwork import (
    Artwork,
    ArtworkLimits,
    parse_svg,
)
from crown_edge.toolpath.dry import dry_run, fires_laser
from crown_edge.toolpath.estimate import Estimate, MachineParams, estimate_gcode
from crown_edge.toolpath.fonts import DEFAULT_FONT, available_fonts
from crown_edge.toolpath.gcode import GRAMMAR, grammar_violations, is_grammar_line
from crown_edge.toolpath.render import RenderResult, RenderStats, check_fit, render_job
from crown_edge.toolpath.surface import RotaryConfig

__all__ = [
    "DEFAULT_FONT",
    "GRAMMAR",
    "Artwork",
    "ArtworkLimits",
    "Estimate",
    "MachineParams",
    "RenderResult",
    "RenderStats",
    "RotaryConfig",
    "available_fonts",
    "check_fit",
    "dry_run",
    "estimate_gcode",
    "fires_laser",
    "grammar_violations",
    "is_grammar_line",
    "parse_svg",
    "render_job",
]
