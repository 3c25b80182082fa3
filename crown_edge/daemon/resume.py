"""What a technician may do with an interrupted job, decided from the durable resume mark.

The mark (``sent_line``) is written before program lines leave for the controller, so every
line after it is certainly not engraved; lines up to it may have been (a controller keeps
executing its buffers after the host dies). Hence:

- the default continue point is the mark itself (the run skips lines 1..mark);
- an earlier line would engrave lines that may already be on the item: refused unless forced;
- with every line sent, the item may be finished: if the machine also stands idle where the
  program ends, say so — the technician can send it to QA instead of scrapping it.

Pure: values in, values out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from crown_edge.errors import ValidationError

POSITION_TOLERANCE_MM = 0.01


@dataclass(frozen=True, slots=True)
class ResumeAdvice:
    """The resume facts of one interrupted job, for ``jobs show`` and ``jobs resume``."""

    sent_line: int | None
    acked_line: int | None
    total_lines: int | None
    at_program_end: bool | None
    """The machine is idle where the program ends (None: not known)."""

    @property
    def default_from_line(self) -> int | None:
        """The line to continue after by default (None: no mark recorded, say it explicitly)."""
        return self.sent_line

    @property
    def all_sent(self) -> bool:
        """Every program line may have left for the controller."""
        return (
            self.sent_line is not None
            and self.total_lines is not None
            and self.sent_line >= self.total_lines
        )

    @property
    def hint(self) -> str:
        """One line of advice in words."""
        if self.sent_line is None:
            return "no resume mark recorded: inspect the item, then choose a line explicitly"
        if self.all_sent and self.at_program_end:
            return (
                f"every line ({self.total_lines}) may have been sent and the machine stands idle "
                "at the program's end: if the item looks finished, send it to QA "
                "(jobs resume JOB --to-qa)"
            )
        if self.all_sent:
            where = "not at" if self.at_program_end is False else "not known to be at"
            return (
                f"every line ({self.total_lines}) may have been sent, but the machine is {where} "
                "the program's end: inspect the item; --to-qa if it is finished, else "
                "jobs resume JOB --continue"
            )
        return (
            f"lines after {self.sent_line} were never sent: continue the item with "
            "jobs resume JOB --continue"
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view."""
        return {
            "sent_line": self.sent_line,
            "acked_line": self.acked_line,
            "total_lines": self.total_lines,
            "default_from_line": self.default_from_line,
            "all_sent": self.all_sent,
            "at_program_end": self.at_program_end,
            "hint": self.hint,
        }


def at_program_end(
    end: dict[str, float], position: dict[str, float] | None, idle: bool
) -> bool | None:
    """True when an idle machine stands where the program ends (on the axes it moved)."""
    if position is None or not end:
        return None
    if not idle:
        return False
    return all(
        axis in position and abs(position[axis] - value) <= POSITION_TOLERANCE_MM
        for axis, value in end.items()
    )


def choose_from_line(advice: ResumeAdvice, line: int | None, *, force: bool) -> int:
    """The ``start_line`` of a ``--from-line`` resume; ValidationError when it is unsafe."""
    if line is None:
        if advice.default_from_line is None:
            raise ValidationError("no resume mark recorded for this job: give --from-line N")
        return advice.default_from_line
    if line < 0:
        raise ValidationError("--from-line needs a line number >= 0")
    if advice.total_lines is not None and line > advice.total_lines:
        raise ValidationError(
            f"--from-line {line} is past the program's {advice.total_lines} lines"
        )
    mark = advice.sent_line
    if mark is not None and line < mark and not force:
        raise ValidationError(
            f"--from-line {line} is before the last line sent ({mark}): lines {line + 1}..{mark} "
            "may already be engraved; continue from the mark (the default) or add --force"
        )
    return line


def check_to_qa(advice: ResumeAdvice, *, force: bool) -> None:
    """Refuse ``--to-qa`` (unless forced) when lines were certainly never sent, or when the
    machine stands somewhere other than where the program ends."""
    if force:
        return
    if not advice.all_sent:
        sent = "no line" if advice.sent_line is None else f"only {advice.sent_line} lines"
        raise ValidationError(
            f"{sent} of {advice.total_lines or '?'} reached the controller: the item is not "
            "finished; use --continue, --restart or --scrap (or --force)"
        )
    if advice.at_program_end is False:
        raise ValidationError(
            "the machine is not at the program's end: lines may be missing; inspect the item "
            "and add --force if it is finished"
        )
