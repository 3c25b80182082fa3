"""What `jobs show` says of an order the cloud still holds (design, approval)."""

from __future__ import annotations

from crown_edge.daemon.words import order_summary


def test_waiting_for_approval_with_its_design_steps() -> None:
    view = {
        "status": "pending_approval",
        "design_revision": 1,
        "notes": "internal",
        "timeline": [
            {"status": "received", "at": "2026-12-01T10:00:00Z"},
            {"status": "validated", "at": "2026-12-01T10:00:01Z"},
            {"status": "designing", "at": "2026-12-01T10:00:02Z"},
            {"status": "pending_approval", "at": "2026-12-01T10:00:05Z"},
            {"status": "revision_requested", "at": "2026-12-01T11:00:00Z"},
            {"status": "designing", "at": "2026-12-01T11:00:01Z"},
            {"status": "pending_approval", "at": "2026-12-01T11:00:03Z"},
        ],
    }
    summary = order_summary(view)
    assert summary["status"] == "pending_approval"
    assert summary["words"] == "waiting for the customer's approval of the design (revision 1)"
    assert [s["status"] for s in summary["design_steps"]] == [
        "designing",
        "pending_approval",
        "revision_requested",
        "designing",
        "pending_approval",
    ]
    assert "notes" not in summary


def test_unknown_statuses_and_missing_fields_read_plainly() -> None:
    assert order_summary({"status": "something_new"}) == {
        "status": "something_new",
        "words": "something new",
        "design_steps": [],
    }
    assert order_summary({})["design_steps"] == []
    assert order_summary({"status": "designing", "timeline": ["junk", None]})["words"] == (
        "the design is being drawn"
    )
