"""Surfaces: flat and cylinder mappings and their inverses."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crown_edge.errors import ValidationError
from crown_edge.toolpath.surface import (
    RotaryConfig,
    machine_to_surface,
    mapping_for,
    surface_to_machine,
)
from tests.toolpath.conftest import cylinder_item, flat_item

coords = st.floats(min_value=-500, max_value=500, allow_nan=False)


@settings(max_examples=60)
@given(u=coords, v=coords)
def test_flat_is_identity(u: float, v: float) -> None:
    item = flat_item()
    assert surface_to_machine(item, u, v) == (u, v)
    assert machine_to_surface(item, u, v) == (u, v)


@settings(max_examples=100)
@given(
    u=coords,
    v=coords,
    diameter=st.floats(min_value=40, max_value=300),
    axis=st.sampled_from(["Y", "A"]),
    per_rotation=st.floats(min_value=1, max_value=10_000),
    reverse=st.booleans(),
)
def test_cylinder_round_trip(
    u: float, v: float, diameter: float, axis: str, per_rotation: float, reverse: bool
) -> None:
    rotary = RotaryConfig(
        axis="Y" if axis == "Y" else "A", per_rotation=per_rotation, reverse=reverse
    )
    item = cylinder_item(diameter=diameter)
    m0, m1 = surface_to_machine(item, u, v, rotary)
    back = machine_to_surface(item, m0, m1, rotary)
    assert back == pytest.approx((u, v), abs=1e-6)


def test_one_circumference_is_one_rotation() -> None:
    item = cylinder_item(diameter=80)
    circumference = math.pi * 80
    a_map = mapping_for(item, RotaryConfig(axis="A", per_rotation=360))
    assert a_map.axes == ("X", "A")
    assert a_map.to_machine(circumference, 5.0) == pytest.approx((5.0, 360.0))
    y_map = mapping_for(item, RotaryConfig.from_steps(steps_per_rotation=3200, steps_per_mm=80))
    assert y_map.axes == ("X", "Y")
    assert y_map.to_machine(circumference / 2, 0.0) == pytest.approx((0.0, 20.0))
    rev = mapping_for(item, RotaryConfig(axis="A", reverse=True))
    assert rev.to_machine(circumference / 4, 0.0)[1] == pytest.approx(-90.0)


def test_feed_factor_keeps_surface_speed() -> None:
    item = cylinder_item(diameter=80)
    mapping = mapping_for(item, RotaryConfig(axis="A", per_rotation=360))
    scale = 360 / (math.pi * 80)
    assert mapping.feed_factor(1.0, 0.0) == pytest.approx(scale)
    assert mapping.feed_factor(0.0, 1.0) == pytest.approx(1.0)
    assert mapping_for(flat_item()).feed_factor(3.0, 4.0) == 1.0


def test_bad_rotary_and_too_wide_area() -> None:
    with pytest.raises(ValidationError):
        RotaryConfig(axis="Z")  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        RotaryConfig(per_rotation=0)
    with pytest.raises(ValidationError):
        mapping_for(cylinder_item(diameter=20, width=100))
