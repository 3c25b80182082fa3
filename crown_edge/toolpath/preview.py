"""Preview SVG for approval: the item's engraving surface, the usable area, the strokes.

Drawn in surface millimetres (a cylinder is shown unrolled: its circumference across, the area
width marked on it). Only numbers the code computed go into the document — no customer text.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from crown_edge.models import Item, Surface
from crown_edge.toolpath.fonts import Point, Polyline
from crown_edge.toolpath.layout import Region, usable_region


def _n(value: float) -> str:
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


def _points(points: Sequence[Point], height: float, ox: float) -> str:
    return " ".join(f"{_n(x + ox)},{_n(height - y)}" for x, y in points)


def preview_svg(
    item: Item,
    strokes: Sequence[Polyline],
    *,
    travel: bool = False,
    start: Point = (0.0, 0.0),
    regions: Sequence[Region] = (),
) -> str:
    """An SVG document (mm units) a person can check: outline, area, strokes, optional travel."""
    area = item.area
    pad = 5.0
    ox = 0.0
    outline_w = area.width_mm
    if item.surface is Surface.CYLINDER and item.diameter_mm:
        outline_w = max(area.width_mm, math.pi * item.diameter_mm)
        ox = (outline_w - area.width_mm) / 2
    width = outline_w + 2 * pad
    height = area.height_mm + 2 * pad
    h = area.height_mm + pad  # flip: svg y = h - y

    def rect(x: float, y: float, w: float, hh: float, style: str) -> str:
        return (
            f'<rect x="{_n(x + ox + pad)}" y="{_n(h - y - hh)}" width="{_n(w)}" '
            f'height="{_n(hh)}" {style}/>'
        )

    out = [
        '<svg xmlns="http://www.w3.org/2000/svg" '
        f'width="{_n(width)}mm" height="{_n(height)}mm" viewBox="0 0 {_n(width)} {_n(height)}">',
        '<rect x="0" y="0" width="100%" height="100%" fill="#fafafa"/>',
        f'<rect x="{_n(pad)}" y="{_n(pad)}" width="{_n(outline_w)}" '
        f'height="{_n(area.height_mm)}" fill="#e8e8e8" stroke="#555" stroke-width="0.4"/>',
        rect(0, 0, area.width_mm, area.height_mm, 'fill="none" stroke="#888" stroke-width="0.2"'),
    ]
    usable = usable_region(area)
    out.append(
        rect(
            usable.x,
            usable.y,
            usable.width,
            usable.height,
            'fill="none" stroke="#3a7bd5" stroke-width="0.2" stroke-dasharray="1 1"',
        )
    )
    for region in regions:
        out.append(
            rect(
                region.x,
                region.y,
                region.width,
                region.height,
                'fill="none" stroke="#9ab" stroke-width="0.15" stroke-dasharray="0.5 0.5"',
            )
        )
    shift = ox + pad
    out.append(
        '<g fill="none" stroke="#111" stroke-width="0.25" stroke-linecap="round" '
        'stroke-linejoin="round">'
    )
    for stroke in strokes:
        if len(stroke) >= 2:
            out.append(f'<polyline points="{_points(stroke, h, shift)}"/>')
    out.append("</g>")
    if travel:
        out.append('<g fill="none" stroke="#d33" stroke-width="0.12" stroke-dasharray="0.6 0.6">')
        px, py = start
        for stroke in strokes:
            if not stroke:
                continue
            sx, sy = stroke[0]
            if math.hypot(sx - px, sy - py) > 1e-6:
                out.append(f'<polyline points="{_points(((px, py), (sx, sy)), h, shift)}"/>')
            px, py = stroke[-1]
        out.append("</g>")
    out.append("</svg>")
    return "\n".join(out) + "\n"
