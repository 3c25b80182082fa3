"""The estimate agrees with the GRBL simulator's motion model within ±10 %."""

from __future__ import annotations

import pytest

from crown_edge.catalog import Catalog
from crown_edge.toolpath import MachineParams, render_job
from crown_edge.toolpath.surface import RotaryConfig

motion = pytest.importorskip("crown_edge.sim.motion")

JOBS = [
    ("plaque-a5", ["Riverside Tennis Club", "Club Champion", "Olivia Patel", "2026"]),
    ("trophy-plate", ["Most Improved Player", "U12 2025/26"]),
    ("plaque-small", ["Winner"]),
    ("acrylic-award", ["Employee of the Month", "Sam O'Brien"]),
    ("glass-tumbler", ["Happy 40th", "Birthday, Jack!"]),
    ("cup-silver", ["Harbour Sailing Club", "Regatta 2026", "1st place"]),
]


@pytest.mark.parametrize(("item_id", "lines"), JOBS)
@pytest.mark.parametrize("accel", [500.0, 2000.0])
def test_estimate_within_ten_percent_of_the_simulator(
    catalog: Catalog, item_id: str, lines: list[str], accel: float
) -> None:
    item = catalog.item(item_id)
    machine = MachineParams(
        acceleration_mm_s2=accel, max_rate_mm_min=6000, junction_deviation_mm=0.01
    )
    result = render_job(
        item,
        lines,
        catalog.material(item.material),
        job_id="J-1",
        machine=machine,
        rotary=RotaryConfig(axis="Y", per_rotation=360),  # Y-as-rotary: the simulator's axes
    )
    settings = motion.MotionSettings(
        max_rate=(6000.0, 6000.0, 1000.0),
        acceleration=(accel, accel, 100.0),
        junction_deviation=0.01,
        planner_blocks=15,
    )
    simulated = motion.motion_time(result.gcode, settings)
    assert simulated > 0
    assert result.estimate_s == pytest.approx(simulated, rel=0.10)
