"""Resume decisions from the durable mark: pure rules, every branch."""

from __future__ import annotations

import pytest

from crown_edge.daemon.resume import (
    ResumeAdvice,
    at_program_end,
    check_to_qa,
    choose_from_line,
)
from crown_edge.errors import ValidationError


def advice(sent: int | None, total: int | None = 100, at_end: bool | None = None) -> ResumeAdvice:
    return ResumeAdvice(sent, 10, total, at_end)


def test_default_continue_point_is_the_mark() -> None:
    assert choose_from_line(advice(40), None, force=False) == 40
    assert choose_from_line(advice(40), 40, force=False) == 40
    assert choose_from_line(advice(40), 55, force=False) == 55  # skipping ahead is allowed


def test_an_earlier_line_needs_force() -> None:
    with pytest.raises(ValidationError, match=r"lines 31\.\.40 may already be engraved"):
        choose_from_line(advice(40), 30, force=False)
    assert choose_from_line(advice(40), 30, force=True) == 30


@pytest.mark.parametrize("line", [-1, 101])
def test_lines_outside_the_program_are_refused(line: int) -> None:
    with pytest.raises(ValidationError):
        choose_from_line(advice(40), line, force=True)


def test_without_a_mark_the_line_must_be_given() -> None:
    with pytest.raises(ValidationError, match="no resume mark"):
        choose_from_line(advice(None), None, force=False)
    assert choose_from_line(advice(None), 12, force=False) == 12


def test_to_qa_needs_every_line_sent_and_not_a_machine_elsewhere() -> None:
    check_to_qa(advice(100, at_end=True), force=False)
    check_to_qa(advice(100, at_end=None), force=False)  # unknown: the technician's judgement
    with pytest.raises(ValidationError, match="only 40 lines of 100"):
        check_to_qa(advice(40), force=False)
    with pytest.raises(ValidationError, match="no line"):
        check_to_qa(advice(None), force=False)
    with pytest.raises(ValidationError, match="not at the program's end"):
        check_to_qa(advice(100, at_end=False), force=False)
    check_to_qa(advice(40), force=True)
    check_to_qa(advice(100, at_end=False), force=True)


@pytest.mark.parametrize(
    ("facts", "words"),
    [
        (advice(None), "no resume mark"),
        (advice(40), "--continue"),
        (advice(100, at_end=True), "idle at the program's end"),
        (advice(100, at_end=False), "is not at the program's end"),
        (advice(100, at_end=None), "not known to be at"),
    ],
)
def test_hints_say_what_to_do(facts: ResumeAdvice, words: str) -> None:
    assert words in facts.hint
    assert facts.to_dict()["hint"] == facts.hint


def test_at_program_end() -> None:
    end = {"X": 10.0, "Y": 5.0}
    assert at_program_end(end, {"X": 10.004, "Y": 4.999, "Z": 3.0}, idle=True) is True
    assert at_program_end(end, {"X": 10.5, "Y": 5.0}, idle=True) is False
    assert at_program_end(end, {"X": 10.0, "Y": 5.0}, idle=False) is False
    assert at_program_end(end, {"X": 10.0}, idle=True) is False
    assert at_program_end(end, None, idle=True) is None
    assert at_program_end({}, {"X": 1.0}, idle=True) is None
