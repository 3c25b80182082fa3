"""Text layout: auto-sizing, fit and no-fit boundaries, missing glyphs, alignment."""

from __future__ import annotations

import pytest

from crown_edge.errors import GlyphMissing, TextDoesNotFit, ValidationError
from crown_edge.models import EngravingArea
from crown_edge.toolpath.fonts import available_fonts, load_font
from crown_edge.toolpath.layout import (
    check_fit,
    layout_text,
    normalise_lines,
    split_area,
    usable_region,
)


def _width_units(text: str) -> float:
    """Ink width of a line at cap height 1, measured independently of the layout code."""
    font = load_font("futural")
    pen = 0.0
    xs: list[float] = []
    for char in text:
        glyph = font.glyphs[char]
        xs += [pen + x for stroke in glyph.strokes for x, _ in stroke]
        pen += glyph.advance
    return max(xs) - min(xs)


def test_short_text_gets_the_nominal_cap_height() -> None:
    area = EngravingArea(120, 60, nominal_cap_height_mm=8)
    layout = layout_text(area, ["HE"])
    assert layout.cap_height_mm == pytest.approx(8.0)
    ys = [y for s in layout.strokes for _, y in s]
    assert max(ys) - min(ys) == pytest.approx(8.0, rel=1e-6)  # capitals span exactly one cap


def test_long_line_is_shrunk_to_fit_the_width_exactly() -> None:
    area = EngravingArea(60, 30, margin_mm=2, nominal_cap_height_mm=8, min_cap_height_mm=1)
    text = "Most Improved Player"
    layout = layout_text(area, [text])
    expected = 56 / _width_units(text)
    assert layout.cap_height_mm == pytest.approx(expected)
    xs = [x for s in layout.strokes for x, _ in s]
    assert min(xs) == pytest.approx(2.0) and max(xs) == pytest.approx(58.0)


def test_fit_boundary_on_width() -> None:
    text = "Club Champion 2026"
    needed = _width_units(text) * 2.5  # at the minimum cap height
    fits = EngravingArea(needed + 4, 30, margin_mm=2, min_cap_height_mm=2.5)
    assert check_fit(fits, [text]) == pytest.approx(2.5)
    too_narrow = EngravingArea(needed + 4 - 0.01, 30, margin_mm=2, min_cap_height_mm=2.5)
    with pytest.raises(TextDoesNotFit) as info:
        check_fit(too_narrow, ["ok", text])
    fields = info.value.fields
    assert fields["reason"] == "width"
    assert fields["line"] == 1
    assert fields["needed_width_mm"] == pytest.approx(needed, abs=1e-3)
    assert fields["available_width_mm"] == pytest.approx(needed - 0.01, abs=1e-3)
    assert fields["min_cap_height_mm"] == 2.5
    assert "line 2" in str(info.value)


def test_fit_boundary_on_height() -> None:
    # Two lines of capitals without descenders: block height = cap * (1 + spacing).
    lines = ["AB", "CD"]
    needed = 2.5 * (1 + 1.5)
    fits = EngravingArea(100, needed + 4, margin_mm=2, min_cap_height_mm=2.5)
    assert check_fit(fits, lines) == pytest.approx(2.5)
    with pytest.raises(TextDoesNotFit) as info:
        check_fit(EngravingArea(100, needed + 3.9, margin_mm=2, min_cap_height_mm=2.5), lines)
    assert info.value.fields["reason"] == "height"
    assert info.value.fields["needed_height_mm"] == pytest.approx(needed, abs=1e-3)


def test_too_many_lines() -> None:
    area = EngravingArea(200, 200, max_lines=2)
    with pytest.raises(TextDoesNotFit) as info:
        check_fit(area, ["a", "b", "c"])
    assert info.value.fields["reason"] == "lines"
    assert info.value.fields["max_lines"] == 2


def test_descenders_are_inside_the_area() -> None:
    area = EngravingArea(100, 20, margin_mm=2, min_cap_height_mm=1)
    layout = layout_text(area, ["Jumping", "gypsy quay"])
    ys = [y for s in layout.strokes for _, y in s]
    assert min(ys) >= 2 - 1e-9 and max(ys) <= 18 + 1e-9


@pytest.mark.parametrize("align", ["left", "right", "center"])
def test_alignment(align: str) -> None:
    area = EngravingArea(100, 40, margin_mm=3)
    layout = layout_text(area, ["Winner", "Most Improved"], align=align)  # type: ignore[arg-type]
    for placed in layout.lines:
        if align == "left":
            assert placed.x0 == pytest.approx(3.0)
        elif align == "right":
            assert placed.x1 == pytest.approx(97.0)
        else:
            assert (placed.x0 + placed.x1) / 2 == pytest.approx(50.0)


def test_missing_glyph_is_named_not_dropped() -> None:
    area = EngravingArea(100, 40)
    with pytest.raises(GlyphMissing) as info:
        layout_text(area, ["Caf\u00e9 Club"])
    assert info.value.fields["codepoint"] == "U+00E9"
    assert "LATIN SMALL LETTER E WITH ACUTE" in str(info.value)
    assert info.value.fields["line"] == 0 and info.value.fields["column"] == 3


@pytest.mark.parametrize("char", ["\n", "\t", "\x7f", "\x00", "\U0001f3c6", "\u200b"])
def test_control_and_exotic_characters_are_rejected(char: str) -> None:
    with pytest.raises(GlyphMissing) as info:
        check_fit(EngravingArea(100, 40), [f"A{char}B"])
    assert info.value.fields["codepoint"] == f"U+{ord(char):04X}"


def test_blank_lines_at_the_ends_are_dropped_inner_kept() -> None:
    assert normalise_lines(["", "  a ", "", "b", "  "]) == ["a", "", "b"]
    assert normalise_lines("Winner") == ["Winner"]
    assert layout_text(EngravingArea(50, 20), ["", " "]).strokes == ()


def test_unknown_font_and_other_fonts() -> None:
    with pytest.raises(ValidationError):
        check_fit(EngravingArea(100, 40), ["x"], font="comic-sans")
    with pytest.raises(ValidationError) as info:
        check_fit(EngravingArea(100, 40), ["Anna"], font="greek")  # would draw Greek letters
    assert "futural" in info.value.fields["allowed"]
    assert "timesr" in available_fonts()
    assert check_fit(EngravingArea(100, 40), ["Winner"], font="timesr") > 0


def test_glyph_cache_returns_the_same_font() -> None:
    assert load_font("futural") is load_font("futural")


def test_split_area_above_and_beside() -> None:
    tall = EngravingArea(80, 80, margin_mm=2)
    text, art = split_area(tall, text=True, artwork=True)
    assert text is not None and art is not None
    assert art.y > text.y + text.height - 1e-9  # artwork above
    wide = EngravingArea(200, 40, margin_mm=2)
    text, art = split_area(wide, text=True, artwork=True)
    assert text is not None and art is not None
    assert art.x + art.width <= text.x + 1e-9  # artwork beside, on the left
    assert split_area(wide, text=False, artwork=True) == (None, usable_region(wide))
