"""Customer words for every status and reason; only customer fields leave the building."""

from __future__ import annotations

import pytest

from crown_edge.cloud.auth import Credentials, KeyCheck, bearer
from crown_edge.cloud.words import REASON_WORDS, STATUS_WORDS, customer_view, reason_words
from crown_edge.errors import ConfigError
from crown_edge.models import BlockReason, JobStatus
from crown_edge.workflow import names


@pytest.mark.parametrize("status", list(JobStatus))
def test_every_status_word_has_customer_words(status: JobStatus) -> None:
    view = customer_view({"job_id": "J", "status": status.value})
    headline, sentence = STATUS_WORDS[status.value]
    assert (view["label"], view["detail"]) == (headline, sentence)
    assert "_" not in headline + sentence  # no raw codes


@pytest.mark.parametrize(
    "reason", sorted({*BlockReason, *names.BLOCKING_ERRORS.values(), *REASON_WORDS})
)
def test_every_reason_has_customer_words(reason: str) -> None:
    text = reason_words(reason)
    assert text and "_" not in text
    view = customer_view({"job_id": "J", "status": "blocked", "reason": reason})
    assert view["reason_text"] == text


def test_customer_view_keeps_only_customer_fields() -> None:
    raw = {
        "job_id": "J",
        "status": "qa_failed",
        "reason": "scratch near logo - Bob",
        "notes": "scratch near logo - Bob",
        "machine_id": "laser-2",
        "source": "edge:s1",
        "event_id": "J:4",
        "progress": 1.7,
        "alternatives": [{"item_id": "cup", "name": "Cup", "material": "brass", "cost": 3}],
    }
    view = customer_view(raw)
    assert "Bob" not in repr(view)
    assert not {"notes", "machine_id", "source", "event_id", "reason"} & set(view)
    assert view["progress"] == 1.0
    assert view["alternatives"] == [{"item_id": "cup", "name": "Cup", "material": "brass"}]
    assert customer_view({"job_id": "J", "status": "new_word"})["label"] == "Order in progress"


def test_keys_and_tokens() -> None:
    creds = Credentials(("k" * 20, "q" * 20), ("new" * 6, "old" * 6))
    assert creds.check_key(None) is KeyCheck.MISSING
    assert creds.check_key("Basic abc") is KeyCheck.MISSING
    assert creds.check_key("Bearer " + "x" * 20) is KeyCheck.WRONG
    assert creds.check_key("bearer " + "q" * 20) is KeyCheck.OK
    assert bearer("Bearer  tok ") == "tok"
    token = creds.token("J-1")
    assert creds.check_token("J-1", token)
    assert not creds.check_token("J-2", token)
    assert not creds.check_token("J-1", None)
    old = Credentials(("k" * 20,), ("old" * 6,)).token("J-1")
    assert creds.check_token("J-1", old)  # rotated out of signing, still verifying
    assert "kkkk" not in repr(creds) and "new" not in repr(creds)
    with pytest.raises(ConfigError):
        Credentials(("short",), ("s" * 20,))
    with pytest.raises(ConfigError):
        Credentials((), ("s" * 20,))


def test_merge_takes_only_fresher_live_details_of_the_same_status() -> None:
    from crown_edge.cloud.jobs import merge

    durable = {"job_id": "J", "status": "engraving", "progress": 0.2, "history": ["received"]}
    live = {"job_id": "J", "status": "engraving", "progress": 0.6, "notes": "x"}
    assert merge(durable, live) == {**durable, "progress": 0.6}
    assert merge(durable, {**live, "progress": 0.1})["progress"] == 0.2
    assert merge(durable, {**live, "status": "received"}) == durable  # the board is behind
    assert merge(None, live) == live
    assert merge(None, None) is None


def test_overlay_moves_status_and_keeps_the_rest() -> None:
    from crown_edge.cloud.live import overlay

    last = {"job_id": "J", "status": "queued", "queue_position": 2, "steps": ["s"], "text": ["Hi"]}
    moved = overlay(last, {"job_id": "J", "status": "engraving", "progress": 0.3, "notes": "n"})
    assert moved == {
        "job_id": "J",
        "status": "engraving",
        "progress": 0.3,
        "steps": ["s"],
        "text": ["Hi"],
    }
    assert overlay(moved, {"status": "engraving", "progress": 0.5})["progress"] == 0.5
