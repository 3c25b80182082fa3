"""grbl 1.1 error and alarm code tables.

Taken from grbl 1.1's ``doc/csv/error_codes_en_US.csv`` and ``alarm_codes_en_US.csv`` so a
technician sees the same words as in every grbl sender. Unknown codes (grblHAL extensions) map to a
generic name rather than failing.
"""

# ruff: noqa: E501
from __future__ import annotations

from typing import Final, NamedTuple


class CodeInfo(NamedTuple):
    """A short name and the long explanation of a grbl error or alarm code."""

    name: str
    text: str


ERROR_CODES: Final[dict[int, CodeInfo]] = {
    1: CodeInfo("Expected command letter", "G-code words consist of a letter and a value. Letter was not found."),
    2: CodeInfo("Bad number format", "Missing the expected G-code word value or numeric value format is not valid."),
    3: CodeInfo("Invalid statement", "Grbl '$' system command was not recognized or supported."),
    4: CodeInfo("Value < 0", "Negative value received for an expected positive value."),
    5: CodeInfo("Setting disabled", "Homing cycle failure. Homing is not enabled via settings."),
    6: CodeInfo("Value < 3 usec", "Minimum step pulse time must be greater than 3usec."),
    7: CodeInfo("EEPROM read fail. Using defaults", "An EEPROM read failed. Auto-restoring affected EEPROM to default values."),
    8: CodeInfo("Not idle", "Grbl '$' command cannot be used unless Grbl is IDLE. Ensures smooth operation during a job."),
    9: CodeInfo("G-code lock", "G-code commands are locked out during alarm or jog state."),
    10: CodeInfo("Homing not enabled", "Soft limits cannot be enabled without homing also enabled."),
    11: CodeInfo("Line overflow", "Max characters per line exceeded. Received command line was not executed."),
    12: CodeInfo("Step rate > 30kHz", "Grbl '$' setting value cause the step rate to exceed the maximum supported."),
    13: CodeInfo("Check Door", "Safety door detected as opened and door state initiated."),
    14: CodeInfo("Line length exceeded", "Build info or startup line exceeded EEPROM line length limit. Line not stored."),
    15: CodeInfo("Travel exceeded", "Jog target exceeds machine travel. Jog command has been ignored."),
    16: CodeInfo("Invalid jog command", "Jog command has no '=' or contains prohibited g-code."),
    17: CodeInfo("Setting disabled", "Laser mode requires PWM output."),
    20: CodeInfo("Unsupported command", "Unsupported or invalid g-code command found in block."),
    21: CodeInfo("Modal group violation", "More than one g-code command from same modal group found in block."),
    22: CodeInfo("Undefined feed rate", "Feed rate has not yet been set or is undefined."),
    23: CodeInfo("Invalid gcode ID:23", "G-code command in block requires an integer value."),
    24: CodeInfo("Invalid gcode ID:24", "More than one g-code command that requires axis words found in block."),
    25: CodeInfo("Invalid gcode ID:25", "Repeated g-code word found in block."),
    26: CodeInfo("Invalid gcode ID:26", "No axis words found in block for g-code command or current modal state which requires them."),
    27: CodeInfo("Invalid gcode ID:27", "Line number value is invalid."),
    28: CodeInfo("Invalid gcode ID:28", "G-code command is missing a required value word."),
    29: CodeInfo("Invalid gcode ID:29", "G59.x work coordinate systems are not supported."),
    30: CodeInfo("Invalid gcode ID:30", "G53 only allowed with G0 and G1 motion modes."),
    31: CodeInfo("Invalid gcode ID:31", "Axis words found in block when no command or current modal state uses them."),
    32: CodeInfo("Invalid gcode ID:32", "G2 and G3 arcs require at least one in-plane axis word."),
    33: CodeInfo("Invalid gcode ID:33", "Motion command target is invalid."),
    34: CodeInfo("Invalid gcode ID:34", "Arc radius value is invalid."),
    35: CodeInfo("Invalid gcode ID:35", "G2 and G3 arcs require at least one in-plane offset word."),
    36: CodeInfo("Invalid gcode ID:36", "Unused value words found in block."),
    37: CodeInfo("Invalid gcode ID:37", "G43.1 dynamic tool length offset is not assigned to configured tool length axis."),
    38: CodeInfo("Invalid gcode ID:38", "Tool number greater than max supported value."),
}  # fmt: skip

ALARM_CODES: Final[dict[int, CodeInfo]] = {
    1: CodeInfo("Hard limit", "Hard limit has been triggered. Machine position is likely lost due to sudden halt. Re-homing is highly recommended."),
    2: CodeInfo("Soft limit", "Soft limit alarm. G-code motion target exceeds machine travel. Machine position retained. Alarm may be safely unlocked."),
    3: CodeInfo("Abort during cycle", "Reset while in motion. Machine position is likely lost due to sudden halt. Re-homing is highly recommended."),
    4: CodeInfo("Probe fail", "Probe fail. Probe is not in the expected initial state before starting probe cycle when G38.2 and G38.3 is not triggered and G38.4 and G38.5 is triggered."),
    5: CodeInfo("Probe fail", "Probe fail. Probe did not contact the workpiece within the programmed travel for G38.2 and G38.4."),
    6: CodeInfo("Homing fail", "Homing fail. The active homing cycle was reset."),
    7: CodeInfo("Homing fail", "Homing fail. Safety door was opened during homing cycle."),
    8: CodeInfo("Homing fail", "Homing fail. Pull off travel failed to clear limit switch. Try increasing pull-off setting or check wiring."),
    9: CodeInfo("Homing fail", "Homing fail. Could not find limit switch within search distances. Try increasing max travel, decreasing pull-off distance, or check wiring."),
}  # fmt: skip

# Error codes grbl answers for a bad line (used by the simulator as well as for reporting).
EXPECTED_COMMAND_LETTER: Final = 1
BAD_NUMBER_FORMAT: Final = 2
INVALID_STATEMENT: Final = 3
SETTING_DISABLED: Final = 5
NOT_IDLE: Final = 8
GCODE_LOCK: Final = 9
LINE_OVERFLOW: Final = 11
CHECK_DOOR: Final = 13
INVALID_JOG: Final = 16
UNSUPPORTED_COMMAND: Final = 20
UNDEFINED_FEED_RATE: Final = 22
NO_AXIS_WORDS: Final = 26

# Alarm codes.
HARD_LIMIT: Final = 1
SOFT_LIMIT: Final = 2
ABORT_DURING_CYCLE: Final = 3
HOMING_FAIL_RESET: Final = 6


def error_info(code: int) -> CodeInfo:
    """Name and text of ``error:code``; unknown codes get a generic description."""
    return ERROR_CODES.get(
        code, CodeInfo(f"Unknown error {code}", f"Controller error code {code}.")
    )


def alarm_info(code: int) -> CodeInfo:
    """Name and text of ``ALARM:code``; unknown codes get a generic description."""
    return ALARM_CODES.get(
        code, CodeInfo(f"Unknown alarm {code}", f"Controller alarm code {code}.")
    )
