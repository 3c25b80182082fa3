"""Intake message validation."""

from __future__ import annotations

import pytest

from crown_edge.errors import MessageInvalid
from crown_edge.models import IntakeMessage

GOOD = {
    "job_id": "J-1",
    "customer_id": "C-1",
    "item_id": "plaque-a5",
    "due_date": "2026-12-01T12:00:00Z",
}


def test_minimal_message_parses_with_defaults() -> None:
    msg = IntakeMessage.parse(dict(GOOD))
    assert msg.job_id == "J-1"
    assert msg.text == ()
    assert msg.rush is False
    assert msg.priority == 5
    assert msg.requires_design is False


def test_artwork_implies_design_and_unknown_fields_are_kept() -> None:
    msg = IntakeMessage.parse({**GOOD, "artwork_url": "file:///x.svg", "rush": True, "note": 7})
    assert msg.requires_design is True
    assert msg.priority == 1
    assert msg.extra == {"note": 7}
    assert msg.to_dict()["note"] == 7


@pytest.mark.parametrize(
    ("patch", "reason"),
    [
        ({"job_id": None}, "job_id: must be a string"),
        ({"due_date": "tomorrow"}, "due_date: must be an ISO 8601"),
        ({"text": "hello"}, "text: must be an array"),
        ({"text": ["ok", 3]}, "text[1]: must be a string"),
        ({"rush": "yes"}, "rush: must be a boolean"),
        ({"item_id": ""}, "item_id: must not be empty"),
        ({"job_id": "a/b"}, "job_id: only letters"),
        ({"price_cents": -1}, "price_cents"),
    ],
)
def test_wrong_types_are_rejected_with_field_reason(patch: dict[str, object], reason: str) -> None:
    with pytest.raises(MessageInvalid) as info:
        IntakeMessage.parse({**GOOD, **patch})
    assert any(reason in r for r in info.value.reasons)


def test_missing_required_fields_all_reported() -> None:
    with pytest.raises(MessageInvalid) as info:
        IntakeMessage.parse({})
    assert {r.split(":")[0] for r in info.value.reasons} >= {
        "job_id",
        "customer_id",
        "item_id",
        "due_date",
    }


def test_non_object_rejected() -> None:
    with pytest.raises(MessageInvalid):
        IntakeMessage.parse([1, 2])
