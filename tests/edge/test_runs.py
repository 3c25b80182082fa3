"""Pure helpers over a machine-run input: the due date the queue orders by."""

from __future__ import annotations

import pytest

from crown_edge.daemon.runs import due_at_of


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-12-01T00:00:00Z", 1_796_083_200.0),
        ("2026-12-01T01:00:00+01:00", 1_796_083_200.0),
        ("2026-12-01", 1_796_083_200.0),  # no zone: UTC
        (" 2026-12-01T00:00:00Z ", 1_796_083_200.0),
        ("tomorrow", None),
        ("", None),
    ],
)
def test_due_dates_read_as_utc_seconds(text: str, expected: float | None) -> None:
    assert due_at_of(text) == expected
