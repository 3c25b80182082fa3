"""Stroke ordering: geometry kept, travel cut, deterministic."""

from __future__ import annotations

from collections import Counter
from itertools import pairwise

from hypothesis import given, settings
from hypothesis import strategies as st

from crown_edge.models import EngravingArea
from crown_edge.toolpath.fonts import Polyline
from crown_edge.toolpath.layout import layout_text
from crown_edge.toolpath.order import order_strokes, travel_length


def _segments(
    strokes: tuple[Polyline, ...] | list[Polyline],
) -> Counter[frozenset[tuple[float, float]]]:
    return Counter(frozenset((a, b)) for s in strokes for a, b in pairwise(s))


point = st.tuples(
    st.floats(min_value=0, max_value=100, allow_nan=False),
    st.floats(min_value=0, max_value=50, allow_nan=False),
)
stroke = st.one_of(
    st.lists(point, min_size=1, max_size=6).map(tuple),
    st.lists(point, min_size=3, max_size=6).map(lambda pts: (*pts, pts[0])),  # closed loops
)


@settings(max_examples=80, deadline=None)
@given(strokes=st.lists(stroke, min_size=0, max_size=60))
def test_ordering_keeps_geometry(strokes: list[Polyline]) -> None:
    result = order_strokes(strokes)
    assert _segments(result.strokes) == _segments(strokes)
    assert sorted(result.order) == list(range(len(strokes)))
    for pos, index in enumerate(result.order):
        original = strokes[index]
        got = result.strokes[pos]
        if len(original) > 3 and original[0] == original[-1]:  # a loop may start elsewhere
            assert _segments([got]) == _segments([original])
        else:
            assert got == (original[::-1] if result.flipped[pos] else original)
    assert result.travel_mm == travel_length(result.strokes)


def test_text_travel_is_much_shorter_and_deterministic() -> None:
    layout = layout_text(
        EngravingArea(120, 60), ["Club Champion 2024", "Presented to", "Jonathan Smith", "2026"]
    )
    first = order_strokes(layout.strokes)
    assert first.input_travel_mm == travel_length(layout.strokes)
    assert first.travel_mm < 0.7 * first.input_travel_mm
    nn_only = order_strokes(layout.strokes, max_evaluations=0)
    assert first.travel_mm <= nn_only.travel_mm
    assert order_strokes(layout.strokes) == first
    assert _segments(first.strokes) == _segments(layout.strokes)


def test_empty_strokes_are_dropped_and_indices_refer_to_the_input() -> None:
    strokes: list[Polyline] = [(), ((5.0, 5.0), (6.0, 5.0)), (), ((1.0, 1.0), (2.0, 1.0))]
    result = order_strokes(strokes)
    assert sorted(result.order) == [1, 3]
    assert result.order == (3, 1)
    plain = order_strokes(strokes, optimise=False)
    assert plain.order == (1, 3)


def test_no_optimise_keeps_input_order() -> None:
    strokes = [((0.0, 0.0), (1.0, 0.0)), ((5.0, 5.0), (6.0, 5.0))]
    result = order_strokes(strokes, optimise=False)
    assert list(result.strokes) == strokes
    assert result.travel_mm == result.input_travel_mm


def test_flips_a_stroke_whose_end_is_nearer() -> None:
    strokes = [((10.0, 0.0), (0.0, 0.0))]
    result = order_strokes(strokes)
    assert result.flipped == (True,)
    assert result.travel_mm == 0.0


def test_loops_start_at_the_nearest_vertex() -> None:
    square = ((5.0, 5.0), (5.0, 6.0), (6.0, 6.0), (6.0, 5.0), (5.0, 5.0))
    result = order_strokes([square], start=(10.0, 10.0))
    assert result.strokes[0][0] == (6.0, 6.0) == result.strokes[0][-1]
    assert _segments(result.strokes) == _segments([square])


def test_deadline_stops_the_search() -> None:
    layout = layout_text(EngravingArea(120, 60), ["Most Improved Player 2026"])
    ticks = iter(range(1000))
    result = order_strokes(layout.strokes, deadline=0.5, clock=lambda: float(next(ticks)))
    assert _segments(result.strokes) == _segments(layout.strokes)
