"""The braille raster: known shapes, scaling, G-code cut paths, empty programs."""

from __future__ import annotations

import pytest

from crown_edge.catalog import load_catalog
from crown_edge.toolpath import render_job
from crown_edge.toolpath.braille import BLANK, bounds_of, braille_lines, cut_paths, framed

SQUARE = [[(0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0), (0.0, 0.0)]]


def dots(lines: list[str]) -> set[tuple[int, int]]:
    """The lit dots as (x, y) on the screen grid (y down), decoded from the characters."""
    bits = ((0x01, 0x08), (0x02, 0x10), (0x04, 0x20), (0x40, 0x80))
    out = set()
    for r, line in enumerate(lines):
        for c, ch in enumerate(line):
            value = 0 if ch == " " else ord(ch) - BLANK
            for dy in range(4):
                for dx in range(2):
                    if value & bits[dy][dx]:
                        out.add((c * 2 + dx, r * 4 + dy))
    return out


def test_a_square_is_its_outline() -> None:
    # 2 cells = 4 dots across: the unit square spans dots 0..3 both ways, one row of cells
    assert braille_lines(SQUARE, 2) == ["⣏⣹"]
    lit = dots(["⣏⣹"])
    assert lit == {(x, y) for x in range(4) for y in range(4) if x in (0, 3) or y in (0, 3)}


def test_a_diagonal_goes_up_to_the_right() -> None:
    lines = braille_lines([[(0.0, 0.0), (7.0, 7.0)]], 4)
    assert len(lines) == 2 and all(len(line) == 4 for line in lines)
    lit = dots(lines)
    # y grows upwards on the machine: the bottom-left dot and the top-right dot are lit
    assert (0, 7) in lit and (7, 0) in lit
    assert lit == {(i, 7 - i) for i in range(8)}


def test_scaling_follows_the_width_and_keeps_proportions() -> None:
    wide = [[(0.0, 0.0), (100.0, 0.0), (100.0, 50.0), (0.0, 50.0), (0.0, 0.0)]]
    for width in (10, 40, 78):
        lines = braille_lines(wide, width)
        assert len(lines[0]) == width
        # 2:1 in mm is 2:1 in dots: width*2 dots across, about width dots down (4 per row)
        assert abs(len(lines) * 4 - width) <= 4
    capped = braille_lines(wide, 78, max_rows=5)
    assert len(capped) == 5 and len(capped[0]) <= 78


def test_bounds_place_the_drawing_in_the_area() -> None:
    lines = braille_lines([[(0.0, 0.0), (1.0, 0.0)]], 10, bounds=(0.0, 0.0, 10.0, 10.0))
    assert len(lines) == 5 and lines[-1].startswith("⣀") and lines[0].strip() == ""


def test_empty_program_draws_nothing() -> None:
    assert braille_lines([], 80) == []
    assert bounds_of([]) is None
    assert cut_paths(["(crown-edge toolpath v1)", "G21 G90", "M9", "M5"]) == []
    # an area with nothing in it is a blank box of the right shape
    assert braille_lines([], 4, bounds=(0.0, 0.0, 7.0, 7.0)) == ["    ", "    "]


def test_a_single_point_and_a_degenerate_box() -> None:
    assert braille_lines([[(5.0, 5.0)]], 3) == ["⡀"]  # the bottom-left dot
    with pytest.raises(ValueError):
        braille_lines(SQUARE, 0)


def test_cut_paths_skip_rapids_and_laser_off_moves() -> None:
    gcode = [
        "G21 G90",
        "G0 X1.000 Y1.000",
        "M4 S500",
        "G1 X2.000 F1000",
        "G1 Y2.000",
        "G0 X5.000",  # rapid: a new path starts
        "G1 X6.000",
        "M5",
        "G1 X9.000",  # laser off: not drawn
        "M4 S0",
        "G1 X10.000",  # zero power: not drawn
    ]
    assert cut_paths(gcode) == [
        [(1.0, 1.0), (2.0, 1.0), (2.0, 2.0)],
        [(5.0, 2.0), (6.0, 2.0)],
    ]
    assert cut_paths(["M4 S300", "G1 X1.000 A90.000"]) == [[(0.0, 0.0), (1.0, 90.0)]]


def test_a_rendered_plate_fits_80_columns() -> None:
    catalog = load_catalog()
    item = catalog.item("plaque-a5")
    result = render_job(item, ["Club Champion", "2026"], job_id="J-1")
    paths = cut_paths(result.gcode)
    assert paths
    area = (0.0, 0.0, item.area.width_mm, item.area.height_mm)
    lines = framed(braille_lines(paths, 78, max_rows=20, bounds=area), "design")
    assert all(len(line) == 80 for line in lines)
    assert lines[0].startswith("┌ design ") and lines[-1].startswith("└")
    assert any(ch not in " │" for line in lines[1:-1] for ch in line)
