"""The dry-run form of a program: every motion kept, the laser held at zero power.

The HIL rig runs real machines dry unless told ``--laser-armed``; a machine configured with
``laser = "dry"`` streams this form. Line for line (the same count, the same line numbers, so
resume marks and progress mean the same): a line that switches the laser on (``M3``/``M4``)
becomes ``M5``, any other ``S`` word becomes ``S0``; everything else — ``G0``/``G1`` motion,
``M5``, ``M8``/``M9``, comments — is kept as it is. The result of a grammar program is a grammar
program (``M5`` is in :data:`~crown_edge.toolpath.gcode.GRAMMAR`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

_LASER_ON = re.compile(r"^\s*M0*[34](?![0-9])", re.IGNORECASE | re.ASCII)
_S_WORD = re.compile(r"(?<![A-Za-z])S\s*[-+]?[0-9]*\.?[0-9]+", re.IGNORECASE | re.ASCII)
_COMMENT = re.compile(r"\([^)]*\)|;.*$")


def dry_line(line: str) -> str:
    """One line in its dry form (see the module docstring)."""
    if _LASER_ON.match(_COMMENT.sub("", line)):
        return "M5"
    if line.lstrip().startswith("("):
        return line  # a comment line is not executed; its text stays as written
    return _S_WORD.sub("S0", line)


def dry_run(gcode: Sequence[str]) -> tuple[str, ...]:
    """``gcode`` with every motion kept and laser power held at zero (``M5``/``S0``)."""
    return tuple(dry_line(line) for line in gcode)


def fires_laser(gcode: Sequence[str]) -> bool:
    """True when some line switches the laser on with power, or sets a non-zero ``S``."""
    for line in gcode:
        code = _COMMENT.sub("", line)
        for word in _S_WORD.findall(code):
            if float(word[1:].strip() or 0) != 0:
                return True
        if _LASER_ON.match(code) and not _S_WORD.search(code):
            return True  # M3/M4 alone fires at the S in force: count it as firing
    return False
