"""The toolpath benchmark runs and reports its figures (no wall-clock assertions)."""

from __future__ import annotations

from crown_edge.bench.toolpath import run


def test_quick_run_reports_the_figures() -> None:
    figures = run(quick=True)
    assert figures["plates"] == 50
    for key in (
        "render_p50_ms",
        "render_p99_ms",
        "travel_font_order_mm",
        "travel_optimised_mm",
        "travel_reduction",
    ):
        assert key in figures
    assert figures["rendered"] > 40
    assert 0.0 < figures["travel_reduction"] < 1.0
