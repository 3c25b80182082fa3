"""Does a job's text fit an item? The answer for ``validate_job`` and ``list_alternatives``.

The real answer comes from the toolpath layout (``check_fit``: Hershey font metrics, line count,
width, minimum legible cap height). It is imported lazily so this module works, with a coarser
line-count check, in a build where the toolpath package is absent or broken; the fallback is
logged once. Layout is CPU work, so callers run :func:`fit_text` in a thread.
"""

from __future__ import annotations

import functools
import importlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

from crown_edge.catalog import Catalog
from crown_edge.errors import GlyphMissing, TextDoesNotFit, ValidationError
from crown_edge.models import Item

log = logging.getLogger(__name__)

#: ``check_fit(item, lines, font=None) -> cap height mm`` as :mod:`crown_edge.toolpath` exports it.
FitChecker = Callable[..., float]


@functools.cache
def toolpath_check_fit() -> FitChecker | None:
    """The toolpath's ``check_fit``, or None when the toolpath package is not available."""
    try:
        module = importlib.import_module("crown_edge.toolpath")
    except ImportError:
        module = None
    found: Any = getattr(module, "check_fit", None)
    if callable(found):
        return cast(FitChecker, found)
    log.warning("toolpath check_fit not available: text fit falls back to a line count")
    return None


@dataclass(frozen=True, slots=True)
class Fit:
    """The outcome of a fit check: whether it fits, the cap height, and why not."""

    fits: bool
    cap_height_mm: float | None = None
    reason: str = ""


def _lines(lines: Sequence[str]) -> list[str]:
    out = [line.strip() for line in lines]
    while out and not out[0]:
        out.pop(0)
    while out and not out[-1]:
        out.pop()
    return out


def fit_text(item: Item, lines: Sequence[str], font: str | None) -> Fit:
    """Check that ``lines`` fit the engraving area of ``item`` in ``font`` (None: the default).

    A character the font cannot draw, or an unknown font, also means the text cannot be
    engraved as asked: it is reported as not fitting, with the reason.
    """
    checker = toolpath_check_fit()
    if checker is None:
        count = len(_lines(lines))
        if count > item.area.max_lines:
            return Fit(False, reason=f"{count} lines, the item takes at most {item.area.max_lines}")
        return Fit(True)
    try:
        cap = float(checker(item, list(lines), font=font))
    except (TextDoesNotFit, GlyphMissing) as exc:
        return Fit(False, reason=str(exc))
    except ValidationError as exc:  # unknown font and other input the layout refuses
        return Fit(False, reason=str(exc))
    return Fit(True, cap_height_mm=cap)


def _area_mm2(item: Item) -> float:
    return item.area.width_mm * item.area.height_mm


def alternative_items(
    catalog: Catalog,
    original_id: str,
    in_stock: dict[str, int],
    lines: Sequence[str],
    font: str | None,
    limit: int,
) -> list[tuple[Item, int]]:
    """In-stock items that could take the job instead of ``original_id``, best first.

    Same surface kind as the original (a cup is no substitute for a plaque), the text must fit
    (toolpath layout; without it, the line count and an engraving area at least as large).
    Same material first, then the closest size.
    """
    original = catalog.items.get(original_id)
    exact = toolpath_check_fit() is not None
    found: list[tuple[Item, int]] = []
    for item_id, available in in_stock.items():
        item = catalog.items.get(item_id)
        if item is None or item_id == original_id or available <= 0:
            continue
        if original is not None:
            if item.surface is not original.surface:
                continue
            if not exact and _area_mm2(item) < _area_mm2(original):
                continue
        if not fit_text(item, lines, font).fits:
            continue
        found.append((item, available))

    def rank(pair: tuple[Item, int]) -> tuple[bool, float, str]:
        item = pair[0]
        if original is None:
            return (False, 0.0, item.item_id)
        return (
            item.material != original.material,
            abs(_area_mm2(item) - _area_mm2(original)),
            item.item_id,
        )

    found.sort(key=rank)
    return found[: max(0, limit)]
