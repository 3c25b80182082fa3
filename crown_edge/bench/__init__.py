"""Benchmarks run by ``crown-edge bench NAME``.

Each module exposes ``run(quick: bool) -> dict``.
"""

from collections.abc import Sequence


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``values`` by rank: the value at ``int(q * n)``, clamped."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]
