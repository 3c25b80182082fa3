"""Toolpath benchmark: render 1,000 trophy plates, time them, compare air travel.

Plates are generated from a fixed seed: realistic award text (titles, names, clubs, seasons) on
the catalogue's items, 1 to 4 lines each. A text that does not fit is shortened to the item's
line count or skipped (and counted), as the shop would bounce it back to the customer.

Targets: ``render_p99_ms`` <= 20, ``travel_reduction`` (1 - optimised / font order) >= 0.35.
``render_p99_ms`` is wall time; ``render_cpu_p99_ms`` (process CPU time) shows how much of it is
the code rather than a busy shared machine.
"""

from __future__ import annotations

import gc
import random
import statistics
import time
from typing import Any

from crown_edge.catalog import load_catalog
from crown_edge.errors import TextDoesNotFit
from crown_edge.toolpath import render_job

_TITLES = (
    "Club Champion",
    "Player of the Year",
    "Most Improved Player",
    "Top Scorer",
    "Golden Boot",
    "Best Newcomer",
    "Coach's Award",
    "Runner-Up",
    "Winner",
    "Sportsmanship Award",
    "Ladies' Singles Champion",
    "Men's Doubles Winners",
    "Under 12s Player of the Season",
    "Captain's Prize",
    "Long Service Award",
    "Employee of the Month",
    "Highest Break",
    "Fastest Lap",
    "Spirit of the Club",
    "Volunteer of the Year",
)
_FIRST = (
    "James",
    "Olivia",
    "Mohammed",
    "Amelia",
    "Jack",
    "Isla",
    "Noah",
    "Sophie",
    "Harry",
    "Grace",
    "Oscar",
    "Chloe",
    "Liam",
    "Zara",
    "Thomas",
    "Priya",
    "Connor",
    "Aoife",
    "William",
    "Evie",
)
_LAST = (
    "Smith",
    "Jones",
    "Williams",
    "Taylor",
    "Brown",
    "Davies",
    "O'Brien",
    "Patel",
    "Wilson",
    "Evans",
    "Thompson",
    "MacDonald",
    "Robinson",
    "Wright",
    "Hughes",
    "Khan",
    "Edwards",
    "Fitzgerald-Hall",
    "Green",
    "Walker",
)
_CLUBS = (
    "Riverside Tennis Club",
    "St. Mary's Golf Society",
    "Northfield Rovers FC",
    "Harbour Sailing Club",
    "Oakwood Bowls Club",
    "City Athletics",
    "Westgate Darts League",
    "Elm Park Cricket Club",
    "Valley Cycling Club",
    "Crown Snooker Hall",
)


def _text(rng: random.Random, max_lines: int) -> list[str]:
    name = f"{rng.choice(_FIRST)} {rng.choice(_LAST)}"
    year = rng.randint(2019, 2026)
    season = rng.choice((str(year), f"{year - 1}/{str(year)[2:]}", f"Season {year}"))
    pool = [rng.choice(_TITLES), name, season, rng.choice(_CLUBS)]
    count = rng.randint(1, min(4, max_lines))
    if count == 1:
        return [rng.choice((name, pool[0]))]
    lines = pool[:count] if count < 4 else [pool[3], pool[0], pool[1], pool[2]]
    return lines


def run(quick: bool = False) -> dict[str, Any]:
    """Render ``1000`` plates (``50`` when quick) and return the figures."""
    plates = 50 if quick else 1000
    rng = random.Random(20261126)
    catalog = load_catalog()
    items = sorted(catalog.items.values(), key=lambda item: item.item_id)
    jobs = []
    for i in range(plates):
        item = rng.choice(items)
        jobs.append((f"B-{i:05d}", item, _text(rng, item.area.max_lines)))
    warm = jobs[0]
    render_job(warm[1], warm[2], catalog.material(warm[1].material), job_id=warm[0])
    times_ms: list[float] = []
    cpu_ms: list[float] = []
    font_order = optimised = 0.0
    skipped = 0
    segments = 0
    gc.collect()
    gc.freeze()  # set-up objects (fonts, jobs) are long-lived: keep full collections off them
    for job_id, item, lines in jobs:
        material = catalog.material(item.material)
        started = time.perf_counter()
        cpu_started = time.process_time()
        try:
            result = render_job(item, lines, material, job_id=job_id)
        except TextDoesNotFit:
            skipped += 1
            continue
        times_ms.append((time.perf_counter() - started) * 1000)
        cpu_ms.append((time.process_time() - cpu_started) * 1000)
        font_order += result.stats.travel_font_order_mm
        optimised += result.stats.travel_optimised_mm
        segments += result.stats.segments
    gc.unfreeze()
    times_ms.sort()
    cpu_ms.sort()
    p99_index = min(len(times_ms) - 1, max(0, round(0.99 * len(times_ms)) - 1))
    return {
        "plates": plates,
        "rendered": len(times_ms),
        "skipped_no_fit": skipped,
        "segments": segments,
        "render_p50_ms": round(statistics.median(times_ms), 3),
        "render_p99_ms": round(times_ms[p99_index], 3),
        "render_max_ms": round(times_ms[-1], 3),
        "render_cpu_p99_ms": round(cpu_ms[p99_index], 3),
        "travel_font_order_mm": round(font_order, 1),
        "travel_optimised_mm": round(optimised, 1),
        "travel_reduction": round(1 - optimised / font_order, 4) if font_order else 0.0,
    }
