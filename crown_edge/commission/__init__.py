"""Commissioning a workshop's machines: is each laser fit for crown-edge, and can it prove it?

``crown-edge doctor --machines`` runs the short form (nothing moves); the HIL rig's
``python -m hil.runner --target FILE --commissioning`` the full one (homing, a frame, a dry job
timed against the estimate, interlock trips) and writes the acceptance record. See
:mod:`.judge` (pure judgements), :mod:`.run` (the asyncio shell over the real drivers) and
:mod:`.report` (the JSON and summary files).
"""

from __future__ import annotations

from crown_edge.commission.judge import POWER_SCALE, Check, firing_lines, judge_settings
from crown_edge.commission.report import Report, rows, write_report
from crown_edge.commission.run import Options, Tripper, check_machine, check_machines

__all__ = [
    "POWER_SCALE",
    "Check",
    "Options",
    "Report",
    "Tripper",
    "check_machine",
    "check_machines",
    "firing_lines",
    "judge_settings",
    "rows",
    "write_report",
]
