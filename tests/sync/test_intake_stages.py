"""The timeline stages an intake message carries to the dispatcher (pure)."""

from __future__ import annotations

from crown_edge.cloud.dispatcher import intake_stages
from crown_edge.sync.sqs import ReceivedMessage


def _msg(attributes: dict[str, str] | None) -> ReceivedMessage:
    return ReceivedMessage("q", "m1", "r1", "{}", attributes=attributes)


def test_hand_over_send_and_receipt_are_read() -> None:
    stages = intake_stages(
        _msg({"accepted_at": "1700000000.250000", "SentTimestamp": "1700000000300"}), 1700000001.0
    )
    assert stages == {
        "accepted_at": 1700000000.25,
        "sqs_sent_at": 1700000000.3,
        "sqs_received_at": 1700000001.0,
    }


def test_missing_or_unreadable_stages_are_left_out() -> None:
    assert intake_stages(_msg(None), 5.0) == {"sqs_received_at": 5.0}
    assert intake_stages(_msg({"accepted_at": "soon", "SentTimestamp": "x"}), 5.0) == {
        "sqs_received_at": 5.0
    }
