"""G-code emission: fixed grammar, line length, hostile customer text, passes."""

from __future__ import annotations

import math
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crown_edge.errors import GlyphMissing, TextDoesNotFit, ValidationError
from crown_edge.models import MaterialProfile
from crown_edge.toolpath import grammar_violations, is_grammar_line, render_job
from crown_edge.toolpath.gcode import MAX_LINE, emit_gcode
from crown_edge.toolpath.surface import RotaryConfig, mapping_for
from tests.toolpath.conftest import cylinder_item, flat_item

MATERIAL = MaterialProfile(name="test", power=450, feed_mm_min=2500, passes=1)
GCODE_ALPHABET = set("0123456789.- XYAFGMS()")


def _assert_clean(lines: tuple[str, ...], customer: list[str]) -> None:
    assert grammar_violations(lines) == []
    assert all(len(line) <= MAX_LINE for line in lines)
    # Comments are held to the fixed set below; the probe looks at every other line (a
    # customer who types "crow" would otherwise match the "(crown-edge ...)" header).
    text = "\n".join(line for line in lines if not line.startswith("("))
    for line in customer:
        probe = line.strip()
        if len(probe) >= 4 and not set(probe) <= GCODE_ALPHABET:
            assert probe not in text
    comments = [line for line in lines if line.startswith("(")]
    assert set(comments) <= {"(crown-edge toolpath v1)", "(job J-1)", "(end)"} | {
        f"(pass {i} of {n})" for n in range(1, 21) for i in range(1, n + 1)
    }


@pytest.mark.parametrize(
    "good",
    [
        "G21 G90",
        "G0 X1.000 Y2.000",
        "G0 A-3.250",
        "G1 X10.000 F3000",
        "G1 Y-0.500 A12.000 F1200",
        "M4 S400",
        "M5",
        "M8",
        "M9",
        "(job J-1.b_2)",
        "(pass 2 of 3)",
    ],
)
def test_grammar_accepts_what_the_emitter_writes(good: str) -> None:
    assert is_grammar_line(good)


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "$H",
        "M3 S1000",
        "%",
        "G0",
        "G1 F3000 X1.000",
        "G1 F3000",
        "G0 X\u0661.000",
        "M4 S\u0664\u0660\u0660",
        "G0 X1",
        "G1 X1.000 Y2.000 ; hi",
        "(Happy birthday)",
        "(job J 1)",
        "(job J-1)\nM3",
        "G28",
        "M4 S400 G1 X1.000",
        "g1 x1.000",
        "G0 X1.000 X2.000",
        "(job " + "a" * 90 + ")",
    ],
)
def test_grammar_rejects_everything_else(bad: str) -> None:
    assert not is_grammar_line(bad)


def test_program_shape() -> None:
    result = render_job(flat_item(), ["Winner", "2026"], MATERIAL, job_id="J-1")
    lines = result.gcode
    assert lines[:4] == ("(crown-edge toolpath v1)", "(job J-1)", "G21 G90", "M8")
    assert lines[-3:] == ("M5", "M9", "(end)")
    assert lines.index("M4 S450") < next(i for i, x in enumerate(lines) if x.startswith("G1"))
    first_g1 = next(x for x in lines if x.startswith("G1"))
    assert first_g1.endswith("F2500")
    _assert_clean(lines, ["Winner"])


def test_job_id_is_validated() -> None:
    with pytest.raises(ValidationError):
        render_job(flat_item(), ["x"], MATERIAL, job_id="J-1)\nM3 S1000 (")
    with pytest.raises(ValidationError):
        render_job(flat_item(), ["x"], MATERIAL, job_id="")


def test_material_ranges_are_checked() -> None:
    for bad in (
        MaterialProfile(name="m", power=5000),
        MaterialProfile(name="m", feed_mm_min=float("nan")),
        MaterialProfile(name="m", passes=0),
    ):
        with pytest.raises(ValidationError):
            render_job(flat_item(), ["x"], bad, job_id="J-1")


def test_passes_alternate_direction_without_extra_travel() -> None:
    one = render_job(flat_item(), ["Champion"], MATERIAL, job_id="J-1")
    two_mat = MaterialProfile(name="m", power=450, feed_mm_min=2500, passes=2, air_assist=False)
    two = render_job(flat_item(), ["Champion"], two_mat, job_id="J-1")
    assert "(pass 2 of 2)" in two.gcode and "M9" in two.gcode[:5]
    assert two.stats.segments == 2 * one.stats.segments
    assert two.stats.cut_length_mm == pytest.approx(2 * one.stats.cut_length_mm)
    first_jump = math.hypot(*one.strokes[0][0])  # from the origin to the first stroke
    assert two.stats.travel_length_mm == pytest.approx(2 * one.stats.travel_length_mm - first_jump)
    pass2 = two.gcode.index("(pass 2 of 2)")
    assert not two.gcode[pass2 + 1].startswith("G0")  # pass 2 starts where pass 1 ended


def test_rotary_program_uses_the_rotary_axis_and_scales_feed() -> None:
    cup = cylinder_item(diameter=80)
    result = render_job(
        cup, ["Winner"], MATERIAL, job_id="J-1", rotary=RotaryConfig(axis="A", per_rotation=360)
    )
    _assert_clean(result.gcode, ["Winner"])
    text = "\n".join(result.gcode)
    assert " A" in text and " Y" not in text
    feeds = {int(m) for m in re.findall(r"F(\d+)", text)}
    assert len(feeds) > 1  # per-segment feed keeps the surface speed


def test_emit_skips_moves_below_resolution() -> None:
    strokes = [((0.0, 0.0), (0.0001, 0.0), (1.0, 0.0))]
    program = emit_gcode(strokes, mapping_for(flat_item()), MATERIAL, job_id="J-1")
    g1 = [x for x in program.lines if x.startswith("G1")]
    assert g1 == ["G1 X1.000 F2500"]
    assert program.segments == 1


def test_coordinates_out_of_range_are_refused() -> None:
    huge = [((0.0, 0.0), (2_000_000.0, 0.0))]
    with pytest.raises(ValidationError):
        emit_gcode(huge, mapping_for(flat_item()), MATERIAL, job_id="J-1")
    nan = [((0.0, 0.0), (float("nan"), 0.0))]
    with pytest.raises(ValidationError):
        emit_gcode(nan, mapping_for(flat_item()), MATERIAL, job_id="J-1")


HOSTILE = [
    "\n",
    "Line one\nM3 S1000",
    "$H",
    "M3 S1000",
    "%",
    ";",
    "(",
    "( M3 S1000 )",
    "G0 X0 Y0",
    "\x00\x01\x02\x18",
    "\x18",
    "~!",
    "A" * 10_000,
    "Trophy \U0001f3c6",
    "\u202eevil",
    "\r",
]


@pytest.mark.parametrize("line", HOSTILE)
def test_hostile_literals(line: str) -> None:
    try:
        result = render_job(flat_item(120, 60), [line, "Winner"], MATERIAL, job_id="J-1")
    except (GlyphMissing, TextDoesNotFit):
        return
    _assert_clean(result.gcode, [line])
    assert "$" not in "\n".join(result.gcode)
    assert "%" not in "\n".join(result.gcode)


PRINTABLE = st.characters(min_codepoint=32, max_codepoint=126)
HOSTILE_LINE = st.one_of(
    st.text(max_size=40),  # arbitrary unicode: nearly always GlyphMissing
    st.text(alphabet=PRINTABLE, max_size=30),  # renders: '$', '%', ';', '(' become strokes
    st.sampled_from(HOSTILE),
)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lines=st.lists(HOSTILE_LINE, min_size=0, max_size=5))
def test_hostile_unicode_property(lines: list[str]) -> None:
    try:
        result = render_job(flat_item(120, 60), lines, MATERIAL, job_id="J-1")
    except (GlyphMissing, TextDoesNotFit):
        return
    _assert_clean(result.gcode, lines)


@settings(max_examples=50, deadline=None)
@given(
    lines=st.lists(
        st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=30),
        max_size=4,
    )
)
def test_printable_ascii_property(lines: list[str]) -> None:
    try:
        result = render_job(flat_item(150, 60), lines, MATERIAL, job_id="J-1")
    except TextDoesNotFit:
        return
    _assert_clean(result.gcode, lines)
