"""Log formats: priorities under systemd, no doubled time stamps, fields from extra= and context."""

from __future__ import annotations

import asyncio
import contextvars
import io
import json
import logging
import sys

import pytest

from crown_edge import logs
from crown_edge.logs import (
    ContextFilter,
    JournalFormatter,
    JsonFormatter,
    TextFormatter,
    bind,
    choose_format,
    priority,
    setup_logging,
)


def record(level: int = logging.INFO, msg: str = "job %s: done", *args: object, **extra: object):
    rec = logging.makeLogRecord(
        {
            "name": "crown_edge.test",
            "levelno": level,
            "levelname": logging.getLevelName(level),
            "msg": msg,
            "args": args or ("J-1",),
            "created": 1_767_225_600.25,  # 2026-01-01T00:00:00.250Z
        }
    )
    rec.__dict__.update(extra)
    return rec


def test_format_choice_follows_systemd_and_the_setting() -> None:
    assert choose_format(None, {}) == "text"
    assert choose_format(None, {"JOURNAL_STREAM": "8:1234"}) == "journal"
    assert choose_format("auto", {"INVOCATION_ID": "abc"}) == "journal"
    assert choose_format(None, {"CROWN_EDGE_LOG_FORMAT": "json", "INVOCATION_ID": "x"}) == "json"
    assert choose_format("text", {"CROWN_EDGE_LOG_FORMAT": "json"}) == "text"
    with pytest.raises(ValueError, match="choose one of"):
        choose_format("xml", {})


def test_priorities_are_syslog_levels() -> None:
    assert [priority(lv) for lv in (10, 20, 30, 40, 50)] == [7, 6, 4, 3, 2]
    assert priority(35) == 4 and priority(5) == 7


def test_journal_lines_carry_the_priority_and_no_time() -> None:
    line = JournalFormatter().format(record(logging.ERROR, job_id="J-1", machine_id="laser-1"))
    assert line == "<3>crown_edge.test: job J-1: done job_id=J-1 machine_id=laser-1"
    assert "2026" not in line


def test_journal_traceback_keeps_the_priority_on_every_line() -> None:
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        rec = record(logging.ERROR, exc_info=sys.exc_info())
    lines = JournalFormatter().format(rec).splitlines()
    assert len(lines) > 2 and all(line.startswith("<3>") for line in lines)
    assert lines[-1] == "<3>RuntimeError: boom"


def test_text_lines_have_the_time_and_the_fields() -> None:
    rec = record(logging.WARNING, job_id="J-1", shop_id="shop a", attempt=2, data={"x": 1})
    line = TextFormatter().format(rec)
    assert line.startswith("20") and " WARNING crown_edge.test: job J-1: done " in line
    assert line.endswith('job_id=J-1 shop_id="shop a" attempt=2')  # dicts stay out of text


def test_json_lines_are_one_object_with_every_field() -> None:
    out = json.loads(JsonFormatter().format(record(job_id="J-1", data={"x": 1})))
    assert out == {
        "ts": "2026-01-01T00:00:00.250Z",
        "level": "info",
        "priority": 6,
        "logger": "crown_edge.test",
        "msg": "job J-1: done",
        "job_id": "J-1",
        "data": {"x": 1},
    }


def test_context_fills_what_extra_did_not_give() -> None:
    def inside() -> logging.LogRecord:
        bind(machine_id="laser-1", job_id="J-7", shop_id="shop-a")
        rec = record(job_id="J-explicit")
        ContextFilter().filter(rec)
        return rec

    rec = contextvars.copy_context().run(inside)
    assert (rec.job_id, rec.machine_id, rec.shop_id) == ("J-explicit", "laser-1", "shop-a")
    assert logs.current() == {}  # the binding stayed in its context


async def test_tasks_inherit_the_context_and_keep_their_own() -> None:
    async def worker(machine: str) -> dict[str, str]:
        bind(machine_id=machine)
        await asyncio.sleep(0)
        bind(job_id=f"J-{machine}")
        seen = await asyncio.to_thread(logs.current)
        logs.unbind("job_id")
        return {**seen, "after": str(logs.current().get("job_id"))}

    bind(shop_id="shop-a")
    a, b = await asyncio.gather(worker("m1"), worker("m2"))
    assert a == {"shop_id": "shop-a", "machine_id": "m1", "job_id": "J-m1", "after": "None"}
    assert b["machine_id"] == "m2" and b["job_id"] == "J-m2"


def test_setup_writes_through_the_chosen_formatter() -> None:
    stream = io.StringIO()
    root = logging.getLogger()
    before = list(root.handlers), root.level
    try:
        chosen = setup_logging(False, env={"JOURNAL_STREAM": "1:2"}, stream=stream)
        assert setup_logging(False, env={"JOURNAL_STREAM": "1:2"}, stream=stream) == chosen
        logging.getLogger("crown_edge.x").warning("careful", extra={"job_id": "J-2"})
    finally:
        for handler in root.handlers[:]:
            if handler not in before[0]:
                root.removeHandler(handler)
        root.setLevel(before[1])
    assert chosen == "journal"
    assert stream.getvalue() == "<4>crown_edge.x: careful job_id=J-2\n"


def test_an_expected_activity_failure_is_one_line() -> None:
    from temporalio.exceptions import ApplicationError

    from crown_edge.logs import ExpectedFailureFilter

    def failed(exc: BaseException) -> logging.LogRecord:
        try:
            raise exc
        except BaseException:
            rec = record(logging.WARNING, "Completing activity as failed", exc_info=sys.exc_info())
        rec.__dict__["__temporal_error_identifier"] = "ActivityFailure"
        rec.args = None
        ExpectedFailureFilter().filter(rec)
        return rec

    stock = failed(ApplicationError("no stock of mug-1", type="NoInventory", non_retryable=True))
    line = JournalFormatter().format(stock)
    assert (
        line == "<4>crown_edge.test: Completing activity as failed: NoInventory: no stock of mug-1"
    )
    # a bug keeps its traceback
    bug = failed(RuntimeError("boom"))
    assert "Traceback" in TextFormatter().format(bug)
