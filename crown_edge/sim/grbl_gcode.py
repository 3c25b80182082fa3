"""What one G-code line says, as grbl 1.1's parser reads it: words, the checks on them, the
program and job comments. Pure: text in, values (or grbl's ``error:N``) out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from crown_edge.drivers.grbl import codes
from crown_edge.sim.grbl_report import FLOOD, MIST

LETTERS = frozenset("GMFSPNTIJKRL")
"""Word letters grbl accepts besides the axes."""
G_SUPPORTED = frozenset({0, 1, 2, 3, 4, 10, 17, 18, 19, 20, 21, 28, 30, 53, 54, 90, 91, 92, 93, 94})
M_SUPPORTED = frozenset({0, 1, 2, 3, 4, 5, 8, 9, 30})
"""M codes of the default build; M7 only with ``ENABLE_M7``."""

_JOB_COMMENT = re.compile(r"^\(\s*job(?:[\s_-]*id)?\s*[:=]?\s*([^\s)]+)", re.IGNORECASE)
_PROGRAM_HEADER = re.compile(r"^\(\s*crown-edge\s+toolpath\b", re.IGNORECASE)
_COMMENTS = re.compile(r"\([^)]*\)|;.*$")


def job_id_of(line: str) -> str | None:
    """The job id of a ``(job ID)`` / ``(job: ID)`` / ``(job_id=ID)`` comment line, else None."""
    match = _JOB_COMMENT.match(line.strip())
    return match[1] if match else None


def is_program_header(line: str) -> bool:
    """True for the header comment a crown-edge toolpath starts with."""
    return _PROGRAM_HEADER.match(line) is not None


@dataclass(slots=True)
class ProgramRecord:
    """One program the simulator received: its job id and every line, as received and executed."""

    job_id: str | None
    received: list[str] = field(default_factory=list)
    executed: list[str] = field(default_factory=list)
    interrupted: bool = False


def program_opened_by(record: ProgramRecord | None, text: str) -> ProgramRecord | None:
    """The new record ``text`` starts, or None when it belongs to ``record`` (the current one).

    A program starts at its header comment (``(crown-edge toolpath …)``) or, without one, at its
    ``(job ID)`` comment; a job comment that follows a header names the record the header
    opened (``record.job_id`` is set), so the header counts in its own program, not the one
    before.
    """
    if not text.lstrip().startswith("("):
        return None  # both comments open a line: a move (nearly every line) is neither
    if is_program_header(text):
        return ProgramRecord(None)
    job = job_id_of(text)
    if job is None:
        return None
    if (
        record is not None
        and record.job_id is None
        and not any(not line.startswith("(") for line in record.received)
    ):
        record.job_id = job  # only header comments so far: this is their program
        return None
    return ProgramRecord(job)


def without_comments(text: str) -> str:
    """``text`` without its ``( … )`` and ``;`` comments."""
    if "(" not in text and ";" not in text:
        return text  # nothing to cut (most lines): no regex pass
    return _COMMENTS.sub("", text)


@dataclass(frozen=True, slots=True)
class Words:
    """A parsed G-code line: its words, and the spindle and coolant in force after it."""

    words: list[tuple[str, float]]
    line_number: int | None
    spindle: tuple[int, float]
    """(M3/M4/M5 as 3/4/5, S)."""
    coolant: int
    """:data:`~crown_edge.sim.grbl_report.FLOOD` | :data:`~crown_edge.sim.grbl_report.MIST`."""


def parse_words(
    clean: str,
    *,
    letters: frozenset[str],
    mist: bool,
    spindle: tuple[int, float],
    coolant: int,
) -> Words | str:
    """Read ``clean`` (upper case, no spaces or comments) into :class:`Words`, or ``error:N``.

    ``spindle`` and ``coolant`` are the parser's state before the line; ``mist`` a build with
    ``ENABLE_M7``. The checks run in grbl's order: letters, numbers, then G and M codes.
    """
    parsed: list[tuple[str, float]] = []
    for match in re.finditer(r"(.)([^A-Z]*)", clean):
        letter, number = match[1], match[2]
        if not letter.isalpha():
            return f"error:{codes.EXPECTED_COMMAND_LETTER}"
        if letter not in letters:
            return f"error:{codes.UNSUPPORTED_COMMAND}"
        try:
            parsed.append((letter, float(number)))
        except ValueError:
            return f"error:{codes.BAD_NUMBER_FORMAT}"
    line_number: int | None = None
    mode, power = spindle
    for letter, value in parsed:
        if letter == "G" and value not in G_SUPPORTED:
            return f"error:{codes.UNSUPPORTED_COMMAND}"
        if letter == "M":
            if value not in M_SUPPORTED and not (value == 7 and mist):
                return f"error:{codes.UNSUPPORTED_COMMAND}"
            if value in (3, 4, 5):
                mode = int(value)
            coolant = {7: coolant | MIST, 8: coolant | FLOOD, 9: 0}.get(int(value), coolant)
        if letter == "S":
            power = value
        if letter == "N":
            line_number = int(value)
    return Words(parsed, line_number, (mode, power), coolant)
