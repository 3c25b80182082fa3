"""Estimate: a GRBL-like planner gives sane motion times."""

from __future__ import annotations

import math

import pytest

from crown_edge.errors import ConfigError
from crown_edge.models import MaterialProfile
from crown_edge.toolpath import render_job
from crown_edge.toolpath.estimate import MachineParams, estimate_gcode, estimate_moves, parse_moves
from tests.toolpath.conftest import cylinder_item, flat_item

NO_HORIZON = MachineParams(planner_blocks=None)


def test_single_line_is_cruise_plus_ramps() -> None:
    est = estimate_gcode(["G21 G90", "G1 X100.000 F3000"])
    # 50 mm/s, 500 mm/s^2: ramps of 0.1 s and 2.5 mm each, 95 mm cruise.
    assert est.total_s == pytest.approx(0.1 + 0.1 + 95 / 50)
    assert est.rapid_s == 0.0 and est.blocks == 1


def test_short_move_is_a_triangle() -> None:
    est = estimate_gcode(["G1 X1.000 F6000"])
    assert est.total_s == pytest.approx(2 * math.sqrt(1 / 500))


def test_rapid_uses_the_max_rate_and_diagonal_axis_limits() -> None:
    est = estimate_gcode(["G0 X600.000"])
    assert est.rapid_s == pytest.approx(600 / 100 + 100 / 500)
    diag = estimate_gcode(["G0 X300.000 Y300.000"])
    # grbl limits each axis: along 45 degrees the vector may go sqrt(2) times faster.
    length = 300 * math.sqrt(2)
    v, a = 100 * math.sqrt(2), 500 * math.sqrt(2)
    assert diag.total_s == pytest.approx(length / v + v / a)


def test_collinear_segments_do_not_slow_down() -> None:
    lines = [f"G1 X{i:.3f} F3000" for i in range(1, 101)]
    assert estimate_gcode(lines, NO_HORIZON).total_s == pytest.approx(2.1)
    assert estimate_gcode(lines).total_s == pytest.approx(2.1)  # 14 mm look-ahead is enough


def test_corners_cost_time() -> None:
    straight = estimate_gcode(["G1 X10.000 F3000", "G1 X20.000"])
    corner = estimate_gcode(["G1 X10.000 F3000", "G1 Y10.000"])
    reverse = estimate_gcode(["G1 X10.000 F3000", "G1 X0.000"])
    assert straight.total_s < corner.total_s < reverse.total_s


def test_small_planner_buffer_limits_speed_on_tiny_segments() -> None:
    lines = [f"G1 X{i * 0.05:.3f} F6000" for i in range(1, 2001)]
    unlimited = estimate_gcode(lines, NO_HORIZON).total_s
    grbl = estimate_gcode(lines).total_s
    assert unlimited == pytest.approx(100 / 100 + 100 / 500)
    # 14 blocks of 0.05 mm: the exit speed can be at most sqrt(2 a 0.7 mm) ~ 26.5 mm/s.
    assert grbl == pytest.approx(100 / math.sqrt(2 * 500 * 0.7), rel=0.02)


def test_m_codes_synchronise() -> None:
    joined = estimate_gcode(["G1 X10.000 F3000", "G1 X20.000"])
    split = estimate_gcode(["G1 X10.000 F3000", "M5", "G1 X20.000"])
    assert split.total_s == pytest.approx(2 * estimate_gcode(["G1 X10.000 F3000"]).total_s)
    assert split.total_s > joined.total_s


def test_parse_and_emitter_moves_agree() -> None:
    material = MaterialProfile(name="t", feed_mm_min=2000, passes=2)
    for item in (flat_item(), cylinder_item()):
        result = render_job(item, ["Club Champion", "2026"], material, job_id="J-1")
        parsed = [m for m in parse_moves(result.gcode) if m is not None]
        emitted = [m for m in result.program.moves if m is not None]
        assert [(m.rapid, m.target) for m in parsed] == [(m.rapid, m.target) for m in emitted]
        assert [m.feed_mm_min for m in parsed if not m.rapid] == [
            m.feed_mm_min for m in emitted if not m.rapid
        ]
        assert estimate_gcode(result.gcode).total_s == pytest.approx(result.estimate_s)


@pytest.mark.parametrize(
    "bad",
    [
        {"acceleration_mm_s2": 0},
        {"max_rate_mm_min": -1},
        {"rotary_acceleration": float("nan")},
        {"junction_deviation_mm": -0.1},
        {"planner_blocks": 1},
    ],
)
def test_machine_params_are_validated(bad: dict[str, float]) -> None:
    with pytest.raises(ConfigError):
        MachineParams(**bad)  # type: ignore[arg-type]


def test_estimate_is_sane_for_a_plate() -> None:
    material = MaterialProfile(name="t", feed_mm_min=3000)
    result = render_job(
        flat_item(120, 60), ["Player of the Year", "Sam Jones"], material, job_id="J-1"
    )
    s = result.stats
    lower = s.cut_length_mm / 50 + s.travel_length_mm / 100
    assert lower < result.estimate_s < 4 * lower
    faster = MachineParams(acceleration_mm_s2=5000)
    assert estimate_moves(result.program.moves, faster).total_s < result.estimate_s
