"""What grbl 1.1h says about itself and how ``report.c`` formats it: pure strings, no state.

The firmware identity (``[VER:1.1h.20190830:]``, the banner), a laser's default ``$$``, and the
formats the host parses: ``$$`` lines (floats with three decimals, flags as integers, rpm with
none), status reports (``FS:`` as whole numbers, ``Bf:``, ``Ln:``, the ``WCO:`` / ``Ov:`` + ``A:``
refresh rotation) and the ``A:`` accessory letters.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

VERSION = "1.1h"
BUILD_DATE = "20190830"
BANNER = f"Grbl {VERSION} ['$' for help]"
LOCKED = "[MSG:'$H'|'$X' to unlock]"
RESTORING_SPINDLE = "[MSG:Restoring spindle]"

DEFAULT_SETTINGS: dict[int, float] = {
    0: 10,
    1: 25,
    2: 0,
    3: 0,
    4: 0,
    5: 0,
    6: 0,
    10: 1,
    11: 0.010,
    12: 0.002,
    13: 0,
    20: 0,
    21: 0,
    22: 0,
    23: 0,
    24: 25.0,
    25: 500.0,
    26: 250,
    27: 1.0,
    30: 1000,
    31: 0,
    32: 1,
    100: 80.0,
    101: 80.0,
    102: 80.0,
    110: 6000.0,
    111: 6000.0,
    112: 1000.0,
    120: 2000.0,
    121: 2000.0,
    122: 100.0,
    130: 400.0,
    131: 300.0,
    132: 50.0,
}
"""A laser's ``$$``: laser mode on ($32=1), homing off ($22=0) so the machine starts Idle."""

_INTEGER_SETTINGS = frozenset({0, 1, 2, 3, 4, 5, 6, 10, 13, 20, 21, 22, 23, 26, 32})
"""``report_util_uint8_setting`` in ``report.c``: printed as integers."""
_RPM_SETTINGS = frozenset({30, 31})
"""Spindle rpm: ``printFloat(value, N_DECIMAL_RPMVALUE)``, no decimals."""
FLOOD, MIST = 1, 2
"""Coolant bits (M8, M7) as ``coolant_get_state()`` reports them."""


def whole(value: float) -> str:
    """``printFloat(value, 0)``: rounded half up to a whole number, as grbl prints rates and rpm."""
    return str(math.floor(value + 0.5))


def format_setting(number: int, value: float) -> str:
    """One ``$$`` line as ``report_grbl_settings()`` prints it (``$11=0.010``, ``$10=1``)."""
    if number in _INTEGER_SETTINGS:
        return f"${number}={int(value)}"
    if number in _RPM_SETTINGS:
        return f"${number}={whole(value)}"
    return f"${number}={value:.3f}"


def status_line(
    state: str,
    *,
    decelerating: bool,
    door_open: bool,
    position: Sequence[float],
    mask: int,
    planner_free: int,
    rx_free: int,
    line_number: int | None,
    feed: float,
    power: float,
    report_count: int,
    accessories: str,
) -> str:
    """A ``<...>`` status report as ``report_realtime_status()`` formats it.

    ``mask`` is ``$10`` (bit 0: MPos instead of WPos, bit 1: ``Bf:``); ``report_count`` drives
    grbl's refresh rotation: ``WCO:`` on one report in ten, ``Ov:`` (and ``A:`` when anything is
    on) on another.
    """
    if state == "Hold":
        state = "Hold:1" if decelerating else "Hold:0"
    elif state == "Door":
        state = "Door:1" if door_open else "Door:0"
    pos = ",".join(f"{p:.3f}" for p in position)
    parts = [state, f"MPos:{pos}" if mask & 1 else f"WPos:{pos}"]
    if mask & 2:
        parts.append(f"Bf:{planner_free},{rx_free}")
    if line_number is not None:
        parts.append(f"Ln:{line_number}")
    parts.append(f"FS:{whole(feed)},{whole(power)}")
    if door_open:
        parts.append("Pn:D")
    if report_count % 10 == 1:
        parts.append("WCO:0.000,0.000,0.000")
    elif report_count % 10 == 2:
        parts.append("Ov:100,100,100")
        if accessories:
            parts.append(f"A:{accessories}")
    return "<" + "|".join(parts) + ">"


def accessory_letters(spindle_mode: int, coolant: int) -> str:
    """The ``A:`` letters: S (M3) or C (M4), F (flood M8), M (mist M7); empty when all off.

    ``spindle_mode`` is 3, 4, or anything else for off (a laser held with
    ``DISABLE_LASER_DURING_HOLD`` counts as off).
    """
    out = {3: "S", 4: "C"}.get(spindle_mode, "")
    if coolant & FLOOD:
        out += "F"
    if coolant & MIST:
        out += "M"
    return out
