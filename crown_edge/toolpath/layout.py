"""Text layout: lines of text into a rectangle of the engraving area, auto-sized, aligned.

Coordinates are millimetres on the item's surface with the origin at the bottom-left corner of
the engraving area and y up. The cap height chosen is the largest that fits, up to the item's
nominal cap height; below the item's minimum legible cap height the text does not fit and
:class:`~crown_edge.errors.TextDoesNotFit` says which line and by how much.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from crown_edge.errors import TextDoesNotFit, ValidationError
from crown_edge.models import EngravingArea
from crown_edge.toolpath.fonts import DEFAULT_FONT, Font, Glyph, Polyline, check_text, load_font

Align = Literal["center", "left", "right"]
Placement = Literal["auto", "above", "beside"]

DEFAULT_LINE_SPACING = 1.5
"""Baseline-to-baseline distance in cap heights."""

_EPS = 1e-9


@dataclass(frozen=True, slots=True)
class Region:
    """An axis-aligned rectangle in area coordinates (mm)."""

    x: float
    y: float
    width: float
    height: float

    @property
    def cx(self) -> float:
        """Centre x."""
        return self.x + self.width / 2

    @property
    def cy(self) -> float:
        """Centre y."""
        return self.y + self.height / 2


@dataclass(frozen=True, slots=True)
class PlacedLine:
    """Where one text line went: its baseline and ink extent in x (mm)."""

    index: int
    baseline_y: float
    x0: float
    x1: float


@dataclass(frozen=True, slots=True)
class TextLayout:
    """The laid-out text: cap height, line placements and strokes in area coordinates."""

    font: str
    cap_height_mm: float
    line_pitch_mm: float
    region: Region
    lines: tuple[PlacedLine, ...]
    strokes: tuple[Polyline, ...]


@dataclass(frozen=True, slots=True)
class _Measured:
    glyphs: tuple[tuple[float, Glyph], ...]  # pen x (unit), glyph
    x0: float
    x1: float
    y0: float
    y1: float

    @property
    def width(self) -> float:
        return max(0.0, self.x1 - self.x0)


def normalise_lines(lines: Sequence[str]) -> list[str]:
    """Strip each line and drop blank lines at the start and the end (inner blanks are spacers).

    A bare string is taken as one line (its newlines, if any, are then rejected as glyphs).
    """
    if isinstance(lines, str):
        lines = [lines]
    out = [line.strip(" ") for line in lines]
    while out and not out[0]:
        out.pop(0)
    while out and not out[-1]:
        out.pop()
    return out


def usable_region(area: EngravingArea) -> Region:
    """The area inside its margins."""
    m = area.margin_mm
    return Region(m, m, max(0.0, area.width_mm - 2 * m), max(0.0, area.height_mm - 2 * m))


def split_area(
    area: EngravingArea, *, text: bool, artwork: bool, placement: Placement = "auto"
) -> tuple[Region | None, Region | None]:
    """Divide the usable area between text and artwork: ``(text_region, artwork_region)``.

    Artwork goes above the text, or beside it (left) on long, low areas; ``auto`` chooses by
    aspect ratio. With only one of the two it gets the whole usable area.
    """
    whole = usable_region(area)
    if not artwork:
        return (whole if text else None), None
    if not text:
        return None, whole
    gap = max(area.margin_mm, 1.0)
    if placement == "auto":
        placement = "beside" if whole.width >= 2.5 * whole.height else "above"
    if placement == "above":
        art_h = max(0.0, whole.height - gap) * 0.4
        text_h = max(0.0, whole.height - gap - art_h)
        return (
            Region(whole.x, whole.y, whole.width, text_h),
            Region(whole.x, whole.y + text_h + gap, whole.width, art_h),
        )
    art_w = min(whole.height, max(0.0, whole.width - gap) * 0.35)
    return (
        Region(whole.x + art_w + gap, whole.y, max(0.0, whole.width - art_w - gap), whole.height),
        Region(whole.x, whole.y, art_w, whole.height),
    )


def _measure(font: Font, line: str, index: int) -> _Measured:
    pen = 0.0
    placed: list[tuple[float, Glyph]] = []
    x0 = y0 = math.inf
    x1 = y1 = -math.inf
    for column, char in enumerate(line):
        glyph = font.glyph(char, line_index=index, column=column)
        if glyph.strokes:
            placed.append((pen, glyph))
            x0 = min(x0, pen + glyph.ink_x0)
            x1 = max(x1, pen + glyph.ink_x1)
            y0 = min(y0, glyph.ink_y0)
            y1 = max(y1, glyph.ink_y1)
        pen += glyph.advance
    if not placed:
        return _Measured((), 0.0, 0.0, 0.0, 0.0)
    return _Measured(tuple(placed), x0, x1, y0, y1)


def _block_extent(measured: Sequence[_Measured], spacing: float) -> tuple[float, float]:
    """Top and bottom of the text block in cap heights, baseline of line 0 at 0."""
    n = len(measured)
    top = 1.0
    bottom = -(n - 1) * spacing
    for i, m in enumerate(measured):
        if m.glyphs:
            top = max(top, m.y1 - i * spacing)
            bottom = min(bottom, m.y0 - i * spacing)
    return top, bottom


def _fit(
    area: EngravingArea,
    region: Region,
    lines: Sequence[str],
    measured: Sequence[_Measured],
    spacing: float,
    font: Font,
) -> float:
    """The cap height to use, or TextDoesNotFit with the numbers."""
    n = len(lines)
    if n > area.max_lines:
        raise TextDoesNotFit(
            f"{n} lines of text, the area takes at most {area.max_lines}",
            reason="lines",
            lines=n,
            max_lines=area.max_lines,
            line=None,
        )
    widest = max(range(n), key=lambda i: measured[i].width)
    width_u = measured[widest].width
    top, bottom = _block_extent(measured, spacing)
    height_u = top - bottom
    by_width = region.width / width_u if width_u > 0 else math.inf
    by_height = region.height / height_u if height_u > 0 else math.inf
    cap = min(area.nominal_cap_height_mm, by_width, by_height)
    minimum = area.min_cap_height_mm
    if cap >= minimum * (1 - _EPS):
        return cap
    fields = {
        "font": font.name,
        "min_cap_height_mm": minimum,
        "max_cap_height_mm": round(min(by_width, by_height), 3),
        "available_width_mm": round(region.width, 3),
        "available_height_mm": round(region.height, 3),
        "lines": n,
    }
    if by_width < minimum * (1 - _EPS):
        needed = width_u * minimum
        shown = ascii(lines[widest])
        if len(shown) > 40:
            shown = shown[:37] + "..."
        raise TextDoesNotFit(
            f"line {widest + 1} {shown} does not fit: needs {needed:.1f} mm at the minimum "
            f"cap height {minimum:g} mm, the area has {region.width:.1f} mm",
            reason="width",
            line=widest,
            text=lines[widest],
            needed_width_mm=round(needed, 3),
            **fields,
        )
    needed = height_u * minimum
    raise TextDoesNotFit(
        f"{n} lines do not fit: need {needed:.1f} mm of height at the minimum cap height "
        f"{minimum:g} mm, the area has {region.height:.1f} mm",
        reason="height",
        line=None,
        needed_height_mm=round(needed, 3),
        **fields,
    )


def layout_text(
    area: EngravingArea,
    lines: Sequence[str],
    *,
    font: str | None = None,
    region: Region | None = None,
    align: Align = "center",
    line_spacing: float = DEFAULT_LINE_SPACING,
) -> TextLayout:
    """Lay ``lines`` out in ``region`` (default: the usable area), auto-sized and aligned.

    Raises GlyphMissing for a character the font lacks and TextDoesNotFit when even the
    item's minimum cap height does not fit (too many lines, too wide, or too tall).
    """
    if not 1.0 <= line_spacing <= 4.0:
        raise ValidationError(
            f"line spacing {line_spacing} out of range", key="line_spacing", allowed="1.0..4.0"
        )
    the_font = load_font(font or DEFAULT_FONT)
    text = normalise_lines(lines)
    check_text(the_font, text)
    box = region or usable_region(area)
    if not text:
        return TextLayout(the_font.name, 0.0, 0.0, box, (), ())
    measured = [_measure(the_font, line, i) for i, line in enumerate(text)]
    cap = _fit(area, box, text, measured, line_spacing, the_font)
    top, bottom = _block_extent(measured, line_spacing)
    block_top = box.cy + (top - bottom) * cap / 2
    baseline0 = block_top - top * cap
    pitch = line_spacing * cap
    placed: list[PlacedLine] = []
    strokes: list[Polyline] = []
    for i, m in enumerate(measured):
        base = baseline0 - i * pitch
        if align == "left":
            x_off = box.x - m.x0 * cap
        elif align == "right":
            x_off = box.x + box.width - m.x1 * cap
        else:
            x_off = box.cx - (m.x0 + m.x1) / 2 * cap
        placed.append(PlacedLine(i, base, x_off + m.x0 * cap, x_off + m.x1 * cap))
        for pen, glyph in m.glyphs:
            gx = x_off + pen * cap
            for stroke in glyph.strokes:
                strokes.append(tuple((gx + x * cap, base + y * cap) for x, y in stroke))
    return TextLayout(the_font.name, cap, pitch, box, tuple(placed), tuple(strokes))


def check_fit(
    area: EngravingArea,
    lines: Sequence[str],
    *,
    font: str | None = None,
    region: Region | None = None,
    line_spacing: float = DEFAULT_LINE_SPACING,
) -> float:
    """Validate that the text fits; return the cap height (mm) it would get, 0 for no text."""
    return layout_text(
        area, lines, font=font, region=region, line_spacing=line_spacing
    ).cap_height_mm
