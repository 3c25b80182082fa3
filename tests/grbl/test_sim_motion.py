"""The simulator's block speed profile agrees with the motion model's timing."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crown_edge.sim.motion import Trapezoid, trapezoid_time

SPEED = st.floats(min_value=0.0, max_value=200.0)


@settings(deadline=None)
@given(
    st.floats(min_value=0.01, max_value=500.0),
    SPEED,
    SPEED,
    st.floats(min_value=1.0, max_value=200.0),
    st.floats(min_value=10.0, max_value=5000.0),
)
def test_profile_matches_trapezoid_time_and_covers_the_block(
    length: float, v0: float, v1: float, vmax: float, accel: float
) -> None:
    v0, v1 = min(v0, vmax), min(v1, vmax)
    # the planner never asks for a change of speed the block is too short for
    v1 = min(v1, (v0 * v0 + 2 * accel * length) ** 0.5)
    v0 = min(v0, (v1 * v1 + 2 * accel * length) ** 0.5)
    profile = Trapezoid.of(length, v0, v1, vmax, accel)
    assert profile.duration == pytest.approx(trapezoid_time(length, v0, v1, vmax, accel))
    assert profile.distance_at(profile.duration) == pytest.approx(length, rel=1e-6, abs=1e-9)
    steps = [profile.duration * i / 50 for i in range(51)]
    distances = [profile.distance_at(t) for t in steps]
    assert distances == sorted(distances)
    assert all(0.0 <= profile.speed_at(t) <= profile.peak + 1e-9 for t in steps)


def test_a_long_move_cruises_at_its_feed() -> None:
    profile = Trapezoid.of(100.0, 0.0, 0.0, 100.0, 2000.0)  # ramps of 0.05 s / 2.5 mm
    assert profile.speed_at(0.025) == pytest.approx(50.0)
    assert profile.speed_at(0.5) == pytest.approx(100.0)
    assert profile.distance_at(0.05) == pytest.approx(2.5)
    assert profile.speed_at(profile.duration + 1) == 0.0
