"""Stroke ordering: cut the laser's air travel without changing what is engraved.

A stroke may be cut in either direction, so an ordering is a permutation plus a flip per stroke.
Nearest neighbour (with flips, on a spatial grid) builds a tour from the start point; then a
local search improves it: 2-opt (reverse a run of strokes, flipping each, so only the two boundary
jumps change) and or-opt (move one stroke elsewhere, either way round).
Candidates come from a grid around the ends of each jump, so a pass costs about O(n).

The search stops when a pass finds nothing, after ``max_evaluations`` candidate moves (the
deterministic limit) or, if given, when ``clock()`` passes ``deadline`` — whichever comes first.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from crown_edge.toolpath.fonts import Point, Polyline

_hypot = math.hypot

CELL_DIVISOR = 2.0
"""Grid cell = stroke-end spread / sqrt(strokes) / this; candidates come from 3 x 3 cells."""
SKIP_FRACTION = 0.3
"""Jumps shorter than this fraction of a cell are not worth a search (measured on plates)."""
MAX_SPAN = 500
"""Longest run of positions one move may rewrite, so a move costs O(1) on huge artwork."""
DEFAULT_EVALUATIONS_PER_STROKE = 25
"""Local-search budget per stroke; a trophy plate converges within it (a safety cap)."""


@dataclass(frozen=True, slots=True)
class Ordering:
    """Strokes in cutting order, each already turned the way it is cut.

    A closed stroke (a loop, first point = last point) may also start at another of its
    vertices: the same segments are cut.
    """

    strokes: tuple[Polyline, ...]
    order: tuple[int, ...]
    """Index into the input strokes, per position."""
    flipped: tuple[bool, ...]
    """Whether the stroke at that position is cut end to start."""
    travel_mm: float
    input_travel_mm: float
    """Air travel of the input order, for comparison."""


def travel_length(strokes: Sequence[Polyline], start: Point = (0.0, 0.0)) -> float:
    """Air travel (mm) from ``start`` through ``strokes`` in the given order and direction."""
    x, y = start
    total = 0.0
    for stroke in strokes:
        if not stroke:
            continue
        sx, sy = stroke[0]
        total += _hypot(sx - x, sy - y)
        x, y = stroke[-1]
    return total


class _Grid:
    """Stroke end points bucketed in square cells, for near-point queries."""

    def __init__(self, xs: list[float], ys: list[float], cell: float) -> None:
        self.cell = cell
        self.inv = 1.0 / cell
        self.buckets: dict[tuple[int, int], list[int]] = {}
        for e, (x, y) in enumerate(zip(xs, ys, strict=True)):
            self.buckets.setdefault(self.key(x, y), []).append(e)
        keys = self.buckets.keys()
        self.x0 = min(k[0] for k in keys)
        self.x1 = max(k[0] for k in keys)
        self.y0 = min(k[1] for k in keys)
        self.y1 = max(k[1] for k in keys)

    def key(self, x: float, y: float) -> tuple[int, int]:
        """The cell holding (x, y)."""
        return math.floor(x * self.inv), math.floor(y * self.inv)

    def ring(self, cx: int, cy: int, r: int) -> list[tuple[int, int]]:
        """Cells at Chebyshev distance r from (cx, cy)."""
        if r == 0:
            return [(cx, cy)]
        cells = [(x, cy - r) for x in range(cx - r, cx + r + 1)]
        cells += [(x, cy + r) for x in range(cx - r, cx + r + 1)]
        cells += [(cx - r, y) for y in range(cy - r + 1, cy + r)]
        cells += [(cx + r, y) for y in range(cy - r + 1, cy + r)]
        return cells

    def max_ring(self, cx: int, cy: int) -> int:
        """The ring beyond which no cell holds a point."""
        return max(abs(cx - self.x0), abs(cx - self.x1), abs(cy - self.y0), abs(cy - self.y1))

    def near(self, x: float, y: float, radius: int) -> list[int]:
        """End point ids in the (2 radius + 1)² cells around (x, y)."""
        cx, cy = self.key(x, y)
        found: list[int] = []
        buckets = self.buckets
        for gx in range(cx - radius, cx + radius + 1):
            for gy in range(cy - radius, cy + radius + 1):
                bucket = buckets.get((gx, gy))
                if bucket:
                    found.extend(bucket)
        return found


def _nearest_neighbour(
    xs: list[float], ys: list[float], grid: _Grid, start: Point, n: int
) -> tuple[list[int], list[bool]]:
    """Greedy tour: from the current point go to the nearest free stroke end, flipping if needed."""
    live = {k: list(v) for k, v in grid.buckets.items()}
    remaining = set(range(n))
    seq: list[int] = []
    flips: list[bool] = []
    px, py = start
    cell = grid.cell
    while remaining:
        cx, cy = grid.key(px, py)
        best = math.inf
        best_e = -1
        limit = grid.max_ring(cx, cy)
        r = 0
        while r <= limit:
            if r > 6 and len(remaining) < 4 * r * r:  # a plain scan beats more empty rings
                for t in remaining:
                    for e in (2 * t, 2 * t + 1):
                        d = _hypot(xs[e] - px, ys[e] - py)
                        if d < best or (d == best and e < best_e):
                            best, best_e = d, e
                break
            for key in grid.ring(cx, cy, r):
                bucket = live.get(key)
                if not bucket:
                    continue
                for e in bucket:
                    d = _hypot(xs[e] - px, ys[e] - py)
                    if d < best or (d == best and e < best_e):
                        best, best_e = d, e
            if best_e >= 0 and best <= r * cell:
                break
            r += 1
        t = best_e >> 1
        remaining.discard(t)
        for e in (2 * t, 2 * t + 1):
            live[grid.key(xs[e], ys[e])].remove(e)
        flipped = bool(best_e & 1)
        seq.append(t)
        flips.append(flipped)
        other = best_e ^ 1
        px, py = xs[other], ys[other]
    return seq, flips


class _Tour:
    """A tour with entry (a) and exit (b) coordinates per position, kept in step with moves."""

    def __init__(
        self,
        xs: list[float],
        ys: list[float],
        seq: list[int],
        flips: list[bool],
        start: Point,
    ) -> None:
        self.xs, self.ys = xs, ys
        self.seq = seq
        self.flip = [False] * len(seq)
        for t, f in zip(seq, flips, strict=True):
            self.flip[t] = f
        self.start = start
        self.pos = [0] * len(seq)
        n = len(seq)
        self.ax = [0.0] * n
        self.ay = [0.0] * n
        self.bx = [0.0] * n
        self.by = [0.0] * n
        self.ea = [0] * n  # end point id of the entry / exit per position
        self.eb = [0] * n
        self.refresh(0, n)

    def refresh(self, lo: int, hi: int) -> None:
        """Recompute positions and entry/exit coordinates for positions lo..hi-1."""
        xs, ys, seq, flip = self.xs, self.ys, self.seq, self.flip
        for k in range(lo, hi):
            t = seq[k]
            self.pos[t] = k
            ea = 2 * t + 1 if flip[t] else 2 * t
            eb = ea ^ 1
            self.ea[k], self.eb[k] = ea, eb
            self.ax[k], self.ay[k] = xs[ea], ys[ea]
            self.bx[k], self.by[k] = xs[eb], ys[eb]

    def exit_of(self, k: int) -> Point:
        """Exit point of position k (the start point for k = -1)."""
        if k < 0:
            return self.start
        return self.bx[k], self.by[k]

    def jump(self, k: int) -> float:
        """Length of the jump into position k."""
        px, py = self.exit_of(k - 1)
        return _hypot(self.ax[k] - px, self.ay[k] - py)

    def apply_2opt(self, i: int, j: int) -> None:
        """Reverse positions i..j, flipping each stroke."""
        seq = self.seq
        seq[i : j + 1] = seq[i : j + 1][::-1]
        for k in range(i, j + 1):
            t = seq[k]
            self.flip[t] = not self.flip[t]
        self.refresh(i, j + 1)

    def apply_move(self, j: int, k: int, i: int, reverse: bool) -> None:
        """Move positions j..j+k-1 into the jump before position i."""
        seq = self.seq
        run = seq[j : j + k]
        if reverse:
            run = run[::-1]
            for t in run:
                self.flip[t] = not self.flip[t]
        if i > j:
            seq[j : i - k] = seq[j + k : i]
            seq[i - k : i] = run
            self.refresh(j, i)
        else:
            seq[i + k : j + k] = seq[i:j]
            seq[i : i + k] = run
            self.refresh(i, j + k)


def _improve(
    tour: _Tour,
    grid: _Grid,
    max_evaluations: int,
    deadline: float | None,
    clock: Callable[[], float] | None,
) -> None:
    """Local search driven by a work queue of strokes whose incoming jump may still improve.

    Every stroke is examined once; after a move only the strokes around the changed jumps go
    back on the queue ("don't look bits"), so the budget is spent where the tour changed.
    """
    n = len(tour.seq)
    xs, ys = tour.xs, tour.ys
    seq, pos = tour.seq, tour.pos
    cache: dict[int, list[tuple[float, int]]] = {}

    def neighbours(e: int) -> list[tuple[float, int]]:
        """Other strokes' end points in the 3 x 3 cells around end point e, nearest first."""
        found = cache.get(e)
        if found is None:
            x, y, own = xs[e], ys[e], e >> 1
            found = sorted(
                (_hypot(xs[o] - x, ys[o] - y), o) for o in grid.near(x, y, 1) if o >> 1 != own
            )
            cache[e] = found
        return found

    queue = deque(seq)
    queued = [True] * n

    def requeue(positions: Iterable[int]) -> None:
        for k in positions:
            if 0 <= k < n:
                t = seq[k]
                if not queued[t]:
                    queued[t] = True
                    queue.append(t)

    evaluations = 0
    threshold = grid.cell * SKIP_FRACTION
    steps = 0
    while queue and evaluations < max_evaluations:
        steps += 1
        if deadline is not None and clock is not None and steps % 32 == 0 and clock() > deadline:
            return
        stroke = queue.popleft()
        queued[stroke] = False
        i = pos[stroke]
        jump = tour.jump(i)
        if jump <= threshold:
            continue
        best_gain = 1e-9
        best: tuple[int, int, int, bool] | None = None  # kind, a, b, reverse
        px, py = tour.exit_of(i - 1)
        if i == 0:
            near = [e for e in grid.near(px, py, 2) if _hypot(xs[e] - px, ys[e] - py) < jump]
        else:
            near = []
            for d, e in neighbours(tour.eb[i - 1]):
                if d >= jump:
                    break
                near.append(e)
        for d, e in neighbours(tour.ea[i]):
            if d >= jump:
                break
            near.append(e)
        # The gains below are written out (not method calls): this is the hot loop.
        ax, ay, bx, by = tour.ax, tour.ay, tour.bx, tour.by
        aix, aiy = ax[i], ay[i]
        start_x, start_y = tour.start
        for e in dict.fromkeys(near):
            p = pos[e >> 1]
            if abs(p - i) > MAX_SPAN:
                continue
            evaluations += 1
            bpx, bpy = bx[p], by[p]
            has_next = p + 1 < n
            if has_next:
                nx, ny = ax[p + 1], ay[p + 1]
                out_p = _hypot(nx - bpx, ny - bpy)  # the jump out of stroke p
            # 2-opt with this jump as the left edge (reverse i..p) ...
            if p >= i:
                g = jump - _hypot(bpx - px, bpy - py)
                if has_next:
                    g += out_p - _hypot(nx - aix, ny - aiy)
                if g > best_gain:
                    best_gain, best = g, (0, i, p, False)
            # ... or as the right edge (reverse p+1..i-1).
            elif p < i - 1:
                g = out_p + jump - _hypot(px - bpx, py - bpy) - _hypot(aix - nx, aiy - ny)
                if g > best_gain:
                    best_gain, best = g, (0, p + 1, i - 1, False)
            # or-opt: bring stroke p (either way round) into this jump. Runs of two or three
            # strokes were measured: per evaluation spent, single strokes gain the most.
            if p != i and p != i - 1:
                evaluations += 1
                apx, apy = ax[p], ay[p]
                if p > 0:
                    qx, qy = bx[p - 1], by[p - 1]
                else:
                    qx, qy = start_x, start_y
                removed = _hypot(apx - qx, apy - qy)
                if has_next:
                    removed += out_p - _hypot(nx - qx, ny - qy)
                fwd = _hypot(apx - px, apy - py) + _hypot(aix - bpx, aiy - bpy)
                rev = _hypot(bpx - px, bpy - py) + _hypot(aix - apx, aiy - apy)
                g = removed + jump - (rev if rev < fwd else fwd)
                if g > best_gain:
                    best_gain, best = g, (1, p, i, rev < fwd)
        if best is None:
            continue
        kind, a, b, rev = best
        if kind == 0:
            tour.apply_2opt(a, b)
            requeue((a - 1, a, a + 1, b, b + 1, b + 2))
        else:
            moved = seq[a]
            requeue((a - 1, a + 1))  # old neighbours, before the move
            tour.apply_move(a, 1, b, rev)
            k = pos[moved]
            requeue((k - 1, k, k + 1, k + 2))
            requeue((a - 1, a, a + 1))


def _rotate_loops(strokes: list[Polyline], start: Point) -> None:
    """Start each closed stroke at the vertex nearest its neighbours (same segments, less air)."""
    px, py = start
    last = len(strokes) - 1
    for k, stroke in enumerate(strokes):
        if len(stroke) > 3 and stroke[0] == stroke[-1]:
            nx, ny = strokes[k + 1][0] if k < last else (px, py)
            follow = 1.0 if k < last else 0.0
            best_cost = math.inf
            best_v = 0
            for v, (x, y) in enumerate(stroke[:-1]):
                cost = _hypot(x - px, y - py) + follow * _hypot(x - nx, y - ny)
                if cost < best_cost:
                    best_cost, best_v = cost, v
            if best_v:
                ring = stroke[:-1]
                stroke = ring[best_v:] + ring[:best_v] + (ring[best_v],)
                strokes[k] = stroke
        px, py = stroke[-1]


def order_strokes(
    strokes: Sequence[Polyline],
    *,
    start: Point = (0.0, 0.0),
    optimise: bool = True,
    max_evaluations: int | None = None,
    deadline: float | None = None,
    clock: Callable[[], float] | None = None,
) -> Ordering:
    """Order and turn strokes to cut air travel; the set of cut segments is unchanged.

    ``max_evaluations`` bounds the local search (default 25 per stroke) so the same input
    always gives the same program; ``deadline``/``clock`` add an optional wall-clock cap.
    """
    keep = [i for i, s in enumerate(strokes) if s]  # empty strokes cut nothing: dropped
    items = [strokes[i] for i in keep]
    n = len(items)
    input_travel = travel_length(items, start)
    if n == 0:
        return Ordering((), (), (), 0.0, 0.0)
    if not optimise:
        return Ordering(tuple(items), tuple(keep), (False,) * n, input_travel, input_travel)
    xs: list[float] = []
    ys: list[float] = []
    for s in items:
        xs += (s[0][0], s[-1][0])
        ys += (s[0][1], s[-1][1])
    span = max(max(xs) - min(xs), max(ys) - min(ys), 1e-3)
    cell = max(span / math.sqrt(n) / CELL_DIVISOR, 0.25)
    grid = _Grid(xs, ys, cell)
    seq, flips = _nearest_neighbour(xs, ys, grid, start, n)
    tour = _Tour(xs, ys, seq, flips, start)
    budget = DEFAULT_EVALUATIONS_PER_STROKE * n if max_evaluations is None else max_evaluations
    _improve(tour, grid, budget, deadline, clock)
    out: list[Polyline] = []
    for t in tour.seq:
        s = items[t]
        out.append(s[::-1] if tour.flip[t] else s)
    _rotate_loops(out, start)
    travel = travel_length(out, start)
    return Ordering(
        tuple(out),
        tuple(keep[t] for t in tour.seq),
        tuple(tour.flip[t] for t in tour.seq),
        travel,
        input_travel,
    )
