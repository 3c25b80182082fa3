"""The public API: render_job and check_fit on catalogue items, with and without artwork."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from crown_edge.catalog import Catalog
from crown_edge.errors import GlyphMissing, TextDoesNotFit
from crown_edge.toolpath import Artwork, available_fonts, check_fit, grammar_violations, render_job
from crown_edge.toolpath.surface import RotaryConfig, mapping_for

LOGO = Artwork(
    (((0.0, 0.0), (10.0, 10.0), (20.0, 0.0), (0.0, 0.0)), ((5.0, 2.0), (15.0, 2.0))), 20.0, 10.0
)


@pytest.mark.parametrize(
    "item_id", ["plaque-a5", "plaque-small", "trophy-plate", "acrylic-award", "glass-tumbler"]
)
def test_every_catalogue_item_renders(catalog: Catalog, item_id: str) -> None:
    item = catalog.item(item_id)
    lines = ["Winner", "2026"]
    result = render_job(item, lines, catalog.material(item.material), job_id="J-7")
    assert grammar_violations(result.gcode) == []
    assert result.cap_height_mm == check_fit(item, lines)
    assert 0 < result.cap_height_mm <= item.area.nominal_cap_height_mm
    assert result.stats.segments > 0 and result.estimate_s > 0
    assert result.stats.travel_optimised_mm <= result.stats.travel_font_order_mm
    assert result.gcode_text().endswith("(end)\n")
    figures = result.stats.to_dict()
    assert set(figures) >= {
        "segments",
        "cut_length_mm",
        "travel_length_mm",
        "estimate_s",
        "cap_height_mm",
    }


def test_strokes_stay_in_the_area(catalog: Catalog) -> None:
    item = catalog.item("plaque-a5")
    result = render_job(item, ["Jumping Jack", "quay (gpy)"], job_id="J-1", artwork=LOGO)
    area = item.area
    for stroke in result.strokes:
        for x, y in stroke:
            assert area.margin_mm - 1e-6 <= x <= area.width_mm - area.margin_mm + 1e-6
            assert area.margin_mm - 1e-6 <= y <= area.height_mm - area.margin_mm + 1e-6


def test_artwork_takes_its_share_and_text_still_fits(catalog: Catalog) -> None:
    item = catalog.item("plaque-a5")
    lines = ["Riverside Tennis Club", "Club Champion"]
    alone = render_job(item, lines, job_id="J-1")
    both = render_job(item, lines, job_id="J-1", artwork=LOGO)
    assert both.artwork_region is not None
    assert both.cap_height_mm <= alone.cap_height_mm
    assert both.cap_height_mm == check_fit(item, lines, artwork=True)
    assert len(both.strokes) == len(alone.strokes) + 2
    art_only = render_job(item, [], job_id="J-1", artwork=LOGO)
    assert art_only.cap_height_mm == 0 and len(art_only.strokes) == 2


def test_errors_propagate(catalog: Catalog) -> None:
    item = catalog.item("trophy-plate")
    with pytest.raises(TextDoesNotFit):
        render_job(item, ["x"] * 4, job_id="J-1")
    with pytest.raises(TextDoesNotFit):
        check_fit(item, ["The Annual Riverside Tennis Club Championship"])
    with pytest.raises(GlyphMissing):
        check_fit(item, ["\u00a9 2026"])


def test_cylinder_program_maps_back_onto_the_surface(catalog: Catalog) -> None:
    cup = catalog.item("cup-silver")
    rotary = RotaryConfig(axis="A", per_rotation=360)
    result = render_job(cup, ["Regatta", "2026"], job_id="J-1", rotary=rotary)
    mapping = mapping_for(cup, rotary)
    last = [m for m in result.program.moves if m is not None][-1]
    u, v = mapping.to_surface(last.target[0], last.target[2])
    end_u, end_v = result.strokes[-1][-1]
    assert (u, v) == pytest.approx((end_u, end_v), abs=2e-3)


def test_preview_is_valid_svg_without_customer_text(catalog: Catalog) -> None:
    item = catalog.item("glass-tumbler")
    result = render_job(item, ["<script>alert(1)</script>"[:1] + "b>Hi"], job_id="J-1")
    svg = result.preview_svg(travel=True)
    root = ET.fromstring(svg)
    assert root.tag.endswith("svg")
    polylines = [e for e in root.iter() if e.tag.endswith("polyline")]
    assert len(polylines) >= len(result.strokes)
    assert "Hi" not in svg and "<b" not in svg.replace("<polyline", "")


def test_rendering_is_deterministic(catalog: Catalog) -> None:
    item = catalog.item("acrylic-award")
    a = render_job(item, ["Employee of the Month", "Sam"], job_id="J-1")
    b = render_job(item, ["Employee of the Month", "Sam"], job_id="J-1")
    assert a.gcode == b.gcode


def test_time_budget_still_gives_a_valid_program(catalog: Catalog) -> None:
    item = catalog.item("plaque-a5")
    result = render_job(item, ["Player of the Year"], job_id="J-1", time_budget_s=0.0)
    assert grammar_violations(result.gcode) == []


@pytest.mark.parametrize("font", available_fonts())
def test_every_offered_font_renders(catalog: Catalog, font: str) -> None:
    item = catalog.item("plaque-a5")
    result = render_job(item, ["Club Champion", "Olivia Patel 2026"], job_id="J-1", font=font)
    assert grammar_violations(result.gcode) == []
    assert result.layout.font == font and result.cap_height_mm > 0


def test_large_artwork_orders_and_renders(catalog: Catalog) -> None:
    dots = tuple(
        ((float(i % 60), float(i // 60)), (i % 60 + 0.5, i // 60 + 0.5)) for i in range(3000)
    )
    art = Artwork(dots, 60.0, 50.0)
    result = render_job(catalog.item("plaque-a5"), [], job_id="J-1", artwork=art)
    assert len(result.strokes) == 3000
    assert result.stats.travel_optimised_mm < result.stats.travel_font_order_mm
    assert grammar_violations(result.gcode) == []
