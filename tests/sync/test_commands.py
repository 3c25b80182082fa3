"""The MQTT command schema: exactly the known shapes pass; everything else is a reasoned refusal."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crown_edge.config import EdgeConfig, MqttConfig, TemporalConfig
from crown_edge.daemon.app import EdgeDaemon
from crown_edge.daemon.handlers import build_handlers
from crown_edge.models import IntakeMessage
from crown_edge.sync.commands import (
    COMMANDS,
    CancelJob,
    Command,
    PauseMachine,
    ResumeMachine,
    TopJob,
    parse_command,
)
from crown_edge.sync.wire import Rejected

JOB_VERBS = ("cancel", "top")
MACHINE_VERBS = ("pause", "resume")


def test_the_four_commands_and_their_handlers() -> None:
    assert parse_command("cancel", {"job_id": "A-G2"}) == CancelJob(job_id="A-G2")
    assert parse_command("top", {"job_id": "j.1_x"}) == TopJob(job_id="j.1_x")
    assert parse_command("pause", {"machine_id": "laser-1"}) == PauseMachine(machine_id="laser-1")
    assert parse_command("resume", {"machine_id": "m_2"}) == ResumeMachine(machine_id="m_2")
    command = parse_command("cancel", {"job_id": "A-G2"})
    assert isinstance(command, Command)
    assert (command.handler, command.args()) == (
        "jobs.cancel",
        {"job_id": "A-G2", "reason": "remote"},
    )


def test_every_handler_exists_on_the_daemon(tmp_path: Path) -> None:
    config = EdgeConfig(
        shop_id="s",
        store_path=tmp_path / "edge.db",
        control_socket=tmp_path / "ctl.sock",
        machines=(),
        temporal=TemporalConfig(enabled=False),
        mqtt=MqttConfig(enabled=False),
    )
    table = build_handlers(EdgeDaemon(config))
    assert {schema.handler for schema in COMMANDS.values()} <= set(table)


@pytest.mark.parametrize(
    ("verb", "payload", "why"),
    [
        ("explode", {"job_id": "J"}, "unknown command verb"),
        ("", {}, "unknown command verb"),
        ("Cancel", {"job_id": "J"}, "unknown command verb"),
        ("cancel", [], "must be a JSON object"),
        ("cancel", {}, "'job_id': Field required"),
        ("cancel", {"machine_id": "m1"}, "Extra inputs"),
        ("cancel", {"job_id": "J", "reason": "x"}, "Extra inputs"),
        ("cancel", {"job_id": 7}, "string"),
        ("cancel", {"job_id": None}, "string"),
        ("cancel", {"job_id": ["J"]}, "string"),
        ("cancel", {"job_id": ""}, "pattern"),
        ("cancel", {"job_id": "J 1"}, "pattern"),
        ("cancel", {"job_id": "J/1"}, "pattern"),
        ("cancel", {"job_id": "Jé"}, "pattern"),
        ("cancel", {"job_id": "J\n1"}, "pattern"),
        ("cancel", {"job_id": "J\n"}, "pattern"),
        ("cancel", {"job_id": "J" * 129}, "at most 128"),
        ("top", {"job_id": True}, "string"),
        ("pause", {}, "Field required"),
        ("pause", {"job_id": "J"}, "Extra inputs"),
        ("pause", {"machine_id": "laser.1"}, "pattern"),  # '.' is a job-id character only
        ("pause", {"machine_id": "m" * 65}, "at most 64"),
        ("resume", {"machine_id": 1.5}, "string"),
    ],
)
def test_malformed_commands_are_refused_with_a_reason(verb: str, payload: Any, why: str) -> None:
    result = parse_command(verb, payload)
    assert isinstance(result, Rejected)
    assert why in result.reason


def test_reasons_never_echo_values() -> None:
    result = parse_command("cancel", {"job_id": "<script>" + "x" * 500})
    assert isinstance(result, Rejected)
    assert "<script>" not in result.reason
    assert len(result.reason) < 300


def test_command_ids_follow_the_stores_rules() -> None:
    """A job id the command accepts is a job id intake accepts, and the other way round."""
    base = {"customer_id": "C", "item_id": "I", "due_date": "2026-01-01"}
    for job_id in ("A-G2", "a.b_c-9", "x" * 128):
        IntakeMessage.parse({**base, "job_id": job_id})
        assert isinstance(parse_command("cancel", {"job_id": job_id}), CancelJob)


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=10,
)


@given(verb=st.text(max_size=40), payload=_json)
def test_parse_command_is_total(verb: str, payload: Any) -> None:
    result = parse_command(verb, payload)
    assert isinstance(result, Command | Rejected)
    if isinstance(result, Command):
        assert COMMANDS[verb] is type(result)


@given(
    verb=st.sampled_from(JOB_VERBS + MACHINE_VERBS),
    key=st.sampled_from(["job_id", "machine_id"]),
    value=st.from_regex(r"\A[A-Za-z0-9_-]{1,64}\Z"),
)
def test_the_right_id_for_the_verb_is_what_decides(verb: str, key: str, value: str) -> None:
    wanted = "job_id" if verb in JOB_VERBS else "machine_id"
    result = parse_command(verb, {key: value})
    assert isinstance(result, Command) == (key == wanted)
