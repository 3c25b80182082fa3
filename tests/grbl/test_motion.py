"""The pure motion model against hand-computed trapezoids."""

from __future__ import annotations

import math

import pytest

from crown_edge.sim.motion import MotionSettings, motion_time, trapezoid_time

SETTINGS = MotionSettings(max_rate=(6000.0, 6000.0, 1000.0), acceleration=(2000.0, 2000.0, 100.0))


def test_single_move_is_a_trapezoid() -> None:
    # 100 mm at 100 mm/s with 2000 mm/s²: 2 x 0.05 s ramps over 2.5 mm each, 95 mm cruise.
    assert motion_time(["G1 X100 F6000"], SETTINGS) == pytest.approx(0.05 + 0.05 + 0.95)


def test_short_move_is_a_triangle() -> None:
    assert trapezoid_time(1.0, 0.0, 0.0, 100.0, 2000.0) == pytest.approx(2 * math.sqrt(1 / 2000))


def test_straight_segments_do_not_stop_between_them() -> None:
    one = motion_time(["G1 X100 F6000"], SETTINGS)
    split = motion_time(["F6000", *(f"G1 X{10 * i}" for i in range(1, 11))], SETTINGS)
    assert split == pytest.approx(one, rel=1e-6)


def test_reversal_stops_at_the_junction() -> None:
    there_and_back = motion_time(["G1 X10 F6000", "G1 X0"], SETTINGS)
    assert there_and_back == pytest.approx(2 * motion_time(["G1 X10 F6000"], SETTINGS))


def test_corner_is_slower_than_straight_but_faster_than_a_stop() -> None:
    straight = motion_time(["G1 X20 F6000"], SETTINGS)
    corner = motion_time(["G1 X10 F6000", "G1 X10 Y10"], SETTINGS)
    stop = 2 * motion_time(["G1 X10 F6000"], SETTINGS)
    assert straight < corner < stop


def test_planner_depth_limits_speed_on_tiny_segments() -> None:
    lines = ["F6000", *(f"G1 X{0.05 * i:.3f}" for i in range(1, 601))]
    deep = motion_time(lines, MotionSettings(planner_blocks=1000))
    grbl = motion_time(lines, MotionSettings(planner_blocks=15))
    assert grbl > deep * 1.5


def test_rapids_use_max_rate_and_units_and_relative_mode() -> None:
    assert motion_time(["G0 X100"], SETTINGS) == pytest.approx(1.05)
    inch = motion_time(["G20", "G1 X1 F60"], SETTINGS)  # 25.4 mm at 25.4 mm/s
    assert inch == pytest.approx(motion_time(["G1 X25.4 F1524"], SETTINGS))
    rel = motion_time(["G91", "G1 X50 F6000", "G1 X50"], SETTINGS)
    assert rel == pytest.approx(motion_time(["G1 X100 F6000"], SETTINGS))


def test_dwell_and_non_motion_lines() -> None:
    assert motion_time(["G4 P0.5", "M5", "(comment)"], SETTINGS) == pytest.approx(0.5)
