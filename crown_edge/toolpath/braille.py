"""A toolpath drawn in the terminal with Unicode braille dots (pure: values in, text out).

Each character cell of the U+2800 block holds 2 × 4 dots, so a terminal cell (about twice as tall
as it is wide) gives dots that are close to square and a drawing keeps its proportions::

    dot numbering in a cell      bit values
        1 4                      0x01 0x08
        2 5                      0x02 0x10
        3 6                      0x04 0x20
        7 8                      0x40 0x80

:func:`cut_paths` turns G-code from :mod:`crown_edge.toolpath.gcode` into the polylines the laser
cuts (rapids and moves with the laser off are left out); :func:`braille_lines` rasterises polylines
into lines of text. Y grows upwards in the drawing, as on the machine.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Callable, Iterable, Sequence

Point = tuple[float, float]
Bounds = tuple[float, float, float, float]
"""``(x_min, y_min, x_max, y_max)`` in drawing units (mm)."""

BLANK = 0x2800
_BITS = ((0x01, 0x08), (0x02, 0x10), (0x04, 0x20), (0x40, 0x80))  # [row][column] within a cell
_WORD = re.compile(r"([GMXYAFS])(-?[0-9]+(?:\.[0-9]*)?)")


def cut_paths(gcode: Iterable[str]) -> list[list[Point]]:
    """The cut polylines of a program: ``G1`` moves while the laser is on (``M3``/``M4`` with
    ``S`` > 0, until ``M5``). The second axis is ``Y`` or, on a rotary, ``A``."""
    paths: list[list[Point]] = []
    x = y = 0.0
    laser = False
    current: list[Point] | None = None
    for raw in gcode:
        line = raw.split(";", 1)[0]
        if line.lstrip().startswith("("):
            continue
        words = dict(_WORD.findall(line.upper()))
        if words.get("M") in ("3", "4", "03", "04"):
            laser = float(words.get("S", "1")) > 0
        elif words.get("M") in ("5", "05"):
            laser = False
            current = None
        g = words.get("G")
        nx = float(words["X"]) if "X" in words else x
        second = words.get("Y", words.get("A"))
        ny = float(second) if second is not None else y
        if g in ("1", "01", "2", "02", "3", "03") and laser:
            if (nx, ny) != (x, y):
                if current is None:
                    current = [(x, y)]
                    paths.append(current)
                current.append((nx, ny))
        elif g in ("0", "00"):
            current = None
        x, y = nx, ny
    return paths


def bounds_of(paths: Sequence[Sequence[Point]]) -> Bounds | None:
    """The smallest box holding every point, or None when there are none."""
    xs = [p[0] for path in paths for p in path]
    ys = [p[1] for path in paths for p in path]
    if not xs:
        return None
    return min(xs), min(ys), max(xs), max(ys)


def braille_lines(
    paths: Sequence[Sequence[Point]],
    width: int,
    *,
    max_rows: int | None = None,
    bounds: Bounds | None = None,
) -> list[str]:
    """Draw ``paths`` in at most ``width`` cells (and ``max_rows`` rows), proportions kept.

    ``bounds`` fixes the drawn area (e.g. the item's engraving area) instead of the paths'
    extent. Every line has the same length (empty cells are spaces); no paths and no bounds give
    no lines.
    """
    if width < 1:
        raise ValueError("width must be at least one cell")
    box = bounds if bounds is not None else bounds_of(paths)
    if box is None:
        return []
    x0, y0, x1, y1 = box
    span_x, span_y = max(x1 - x0, 0.0), max(y1 - y0, 0.0)
    dots_w = width * 2
    limits = [(dots_w - 1) / span_x] if span_x > 0 else []
    if max_rows is not None:
        if max_rows < 1:
            raise ValueError("max_rows must be at least one row")
        if span_y > 0:
            limits.append((max_rows * 4 - 1) / span_y)
    scale = min(limits) if limits else 1.0
    if not math.isfinite(scale) or scale <= 0:
        scale = 1.0
    cols = max(1, math.ceil((span_x * scale + 1) / 2))
    rows = max(1, math.ceil((span_y * scale + 1) / 4))
    cells = [[0] * cols for _ in range(rows)]
    top = rows * 4 - 1

    def dot(px: int, py: int) -> None:
        if 0 <= px < cols * 2 and 0 <= py <= top:
            row = top - py  # y up on the machine, down on the screen
            cells[row // 4][px // 2] |= _BITS[row % 4][px % 2]

    def to_dot(p: Point) -> tuple[int, int]:
        return round((p[0] - x0) * scale), round((p[1] - y0) * scale)

    for path in paths:
        if len(path) == 1:
            dot(*to_dot(path[0]))
        for a, b in itertools.pairwise(path):
            _line(to_dot(a), to_dot(b), dot)
    return ["".join(" " if c == 0 else chr(BLANK + c) for c in row) for row in cells]


def _line(a: tuple[int, int], b: tuple[int, int], dot: Callable[[int, int], None]) -> None:
    """Bresenham between two dots (both ends drawn)."""
    (xa, ya), (xb, yb) = a, b
    dx, dy = abs(xb - xa), -abs(yb - ya)
    sx = 1 if xa < xb else -1
    sy = 1 if ya < yb else -1
    err = dx + dy
    while True:
        dot(xa, ya)
        if xa == xb and ya == yb:
            return
        e2 = 2 * err
        if e2 >= dy:
            err += dy
            xa += sx
        if e2 <= dx:
            err += dx
            ya += sy


def framed(lines: Sequence[str], title: str = "") -> list[str]:
    """``lines`` inside a box-drawing frame (two columns wider), an optional title on top."""
    inner = max((len(line) for line in lines), default=0)
    label = f" {title} " if title and len(title) + 2 <= inner else ""
    head = "┌" + label + "─" * (inner - len(label)) + "┐"
    return [head, *(f"│{line:<{inner}}│" for line in lines), "└" + "─" * inner + "┘"]
