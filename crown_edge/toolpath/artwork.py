"""Artwork: turn an SVG's shapes into polylines and fit them into a region. Pure: bytes in.

Fetching the bytes (sockets, files, limits on time and size) is the daemon's part,
:mod:`crown_edge.artwork`; :class:`ArtworkLimits` is here because it also bounds parsing
(``max_points``). A document that is not an SVG, does not parse or has nothing to draw is an
:class:`~crown_edge.errors.ArtworkError` with a ``reason`` field, never a crash.
"""

from __future__ import annotations

import io
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from crown_edge.errors import ArtworkError
from crown_edge.toolpath.fonts import Polyline
from crown_edge.toolpath.layout import Region

DEFAULT_MAX_BYTES = 2 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class ArtworkLimits:
    """What a fetch may cost: bytes, seconds, accepted content types, allowed sources."""

    max_bytes: int = DEFAULT_MAX_BYTES
    timeout_s: float = 10.0
    content_types: tuple[str, ...] = ("image/svg+xml",)
    allow_file: bool = False
    """``file://`` URLs: for the technician's own files (the CLI), never for customer URLs."""
    allow_insecure: bool = False
    """``http://`` and loopback/private hosts: tests and the workshop's own network only."""
    max_points: int = 200_000
    max_redirects: int = 3


@dataclass(frozen=True, slots=True)
class Artwork:
    """Artwork as polylines in its own units, y up, bounding box from (0, 0) to (width, height)."""

    polylines: tuple[Polyline, ...]
    width: float
    height: float


def artwork_error(url: str, reason: str, detail: str) -> ArtworkError:
    """An :class:`ArtworkError` naming the (shortened) URL, with its ``reason`` field."""
    shown = url if len(url) <= 120 else url[:117] + "..."
    return ArtworkError(f"artwork {shown}: {detail}", url=url, reason=reason)


def _flatten(segment: Any, step: float) -> list[tuple[float, float]]:
    start = segment.start
    end = segment.end
    chord = math.hypot(end.x - start.x, end.y - start.y)
    try:
        approx = float(segment.length(error=1e-3, min_depth=2))
    except Exception:
        approx = chord
    count = max(2, min(256, math.ceil(max(approx, chord) / step)))
    pts = []
    for i in range(1, count + 1):
        p = segment.point(i / count)
        pts.append((float(p.x), float(p.y)))
    return pts


def parse_svg(data: bytes, *, max_points: int = 200_000, url: str = "") -> Artwork:
    """Turn SVG bytes into :class:`Artwork` (shapes only; text and images are ignored)."""
    import svgelements as se

    head = data[:4096].lower()
    if b"<svg" not in data[:65536].lower() or b"<!entity" in head:
        raise artwork_error(url, "content", "not an SVG document")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            svg = se.SVG.parse(io.BytesIO(data), reify=True, on_error="raise")
            shapes = [e for e in svg.elements() if isinstance(e, se.Shape)]
            paths: list[Any] = []
            for shape in shapes:
                path = se.Path(shape)
                path.reify()
                paths.extend(se.Path(sub) for sub in path.as_subpaths())
            boxes = [p.bbox() for p in paths]
    except ArtworkError:
        raise
    except Exception as exc:
        raise artwork_error(url, "parse", f"SVG does not parse: {type(exc).__name__}") from exc
    boxes = [b for b in boxes if b is not None]
    if not boxes:
        raise artwork_error(url, "empty", "the SVG has no drawable shapes")
    x0 = min(b[0] for b in boxes)
    y0 = min(b[1] for b in boxes)
    x1 = max(b[2] for b in boxes)
    y1 = max(b[3] for b in boxes)
    if not all(math.isfinite(v) for v in (x0, y0, x1, y1)):
        raise artwork_error(url, "parse", "the SVG has non-finite coordinates")
    step = max(x1 - x0, y1 - y0, 1e-9) / 500
    polylines: list[Polyline] = []
    total = 0
    try:
        for path in paths:
            pts: list[tuple[float, float]] = []
            for seg in path:
                if isinstance(seg, se.Move):
                    pts = [(float(seg.end.x), float(seg.end.y))]
                    continue
                if isinstance(seg, se.Line | se.Close):
                    if seg.end is not None:
                        pts.append((float(seg.end.x), float(seg.end.y)))
                else:
                    pts.extend(_flatten(seg, step))
                total += 1
                if len(pts) + total > max_points:
                    raise artwork_error(url, "size", f"more than {max_points} points")
            if len(pts) >= 2:
                total += len(pts)
                polylines.append(tuple((x - x0, y1 - y) for x, y in pts))
    except ArtworkError:
        raise
    except Exception as exc:
        raise artwork_error(url, "parse", f"SVG geometry failed: {type(exc).__name__}") from exc
    if not polylines:
        raise artwork_error(url, "empty", "the SVG has no drawable shapes")
    return Artwork(tuple(polylines), x1 - x0, y1 - y0)


def fit_artwork(art: Artwork, region: Region) -> tuple[Polyline, ...]:
    """Scale artwork uniformly into ``region`` (area coordinates, mm), centred."""
    if art.width <= 0 and art.height <= 0:
        scale = 0.0
    elif art.width <= 0:
        scale = region.height / art.height
    elif art.height <= 0:
        scale = region.width / art.width
    else:
        scale = min(region.width / art.width, region.height / art.height)
    ox = region.cx - art.width * scale / 2
    oy = region.cy - art.height * scale / 2
    return tuple(tuple((ox + x * scale, oy + y * scale) for x, y in p) for p in art.polylines)


def artwork_extent(polylines: Sequence[Polyline]) -> tuple[float, float, float, float]:
    """Bounding box ``(x0, y0, x1, y1)`` of polylines."""
    xs = [x for p in polylines for x, _ in p]
    ys = [y for p in polylines for _, y in p]
    return min(xs), min(ys), max(xs), max(ys)
