"""The intake journal against a real moto server, and against an endpoint that refuses.

An order the Order API accepted (202) is in the journal before the answer; it leaves the journal
only once SQS took it. Nothing here relies on what only moto does: a duplicate is sent while the
first message is still in the queue, which AWS drops as well (five-minute deduplication window).
"""

from __future__ import annotations

import asyncio
import json
import socket
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3.session
import pytest
from botocore.config import Config

from crown_edge.cloud import ApiSettings, Credentials, create_app
from crown_edge.cloud.bridge import Bridge
from crown_edge.cloud.intake import BATCH, IntakeJournal
from crown_edge.models import IntakeMessage
from crown_edge.sync import queues
from crown_edge.sync.sqs import ACCEPTED_AT, OrderQueue
from tests.cloud.client import post_json

pytestmark = pytest.mark.integration

KEY = "intake-test-key-0123456789"
CREDS = Credentials(api_keys=(KEY,), token_secrets=("intake-secret-0123456789",))


def order(job_id: str, **kw: Any) -> dict[str, Any]:
    return {
        "job_id": job_id,
        "customer_id": "C-1",
        "item_id": "plaque-a5",
        "due_date": "2026-12-01",
        **kw,
    }


@pytest.fixture
def refusing(sqs_queues: dict[str, str]) -> Iterator[OrderQueue]:
    """An OrderQueue whose endpoint refuses every connection (nothing listens on its port)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    session = boto3.session.Session(
        region_name="eu-west-2", aws_access_key_id="x", aws_secret_access_key="x"
    )
    client = session.client(
        "sqs",
        endpoint_url=f"http://127.0.0.1:{port}",
        config=Config(retries={"max_attempts": 1, "mode": "standard"}, connect_timeout=2),
    )
    try:
        # the real queues' URLs, on an endpoint that is not there
        yield OrderQueue(client, dict(sqs_queues))
    finally:
        client.close()


def drain(sqs: Any, url: str) -> list[dict[str, Any]]:
    """Every message in the queue (received, not deleted), with its attributes."""
    seen: list[dict[str, Any]] = []
    while True:
        got = sqs.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=0,
            MessageAttributeNames=[ACCEPTED_AT],
            MessageSystemAttributeNames=["SentTimestamp"],
            VisibilityTimeout=60,
        ).get("Messages", [])
        if not got:
            return seen
        seen.extend(got)


def job_ids(messages: list[dict[str, Any]]) -> list[str]:
    return sorted(json.loads(m["Body"])["job_id"] for m in messages)


async def test_an_accepted_order_survives_a_refusing_sqs_and_a_restart(
    sqs: Any, sqs_queues: dict[str, str], refusing: OrderQueue, tmp_path: Path
) -> None:
    path = tmp_path / "intake.db"
    settings = ApiSettings(credentials=CREDS)
    async with (
        Bridge(None) as bridge,
        IntakeJournal(path, refusing, close_flush_s=0.2) as journal,
        create_app(journal, bridge, settings) as app,
    ):
        replies = [
            await post_json(f"{app.url}/orders", order("J-std"), KEY),
            await post_json(f"{app.url}/orders", order("J-rush", rush=True), KEY),
        ]
        assert [r.status for r in replies] == [202, 202]
        kept = await journal.pending()
        assert [r.job_id for r in kept] == ["J-std", "J-rush"]
        assert [r.queue for r in kept] == [queues.ENGRAVING_QUEUE, queues.PRIORITY_QUEUE]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert drain(sqs, sqs_queues[queues.ENGRAVING_QUEUE]) == []

    # the next process on the same journal sends what the first one could not
    async with IntakeJournal(path, OrderQueue(sqs, sqs_queues)) as journal:
        await journal.drained()
        assert await journal.pending() == []
        assert journal.sent == 2

    standard = drain(sqs, sqs_queues[queues.ENGRAVING_QUEUE])
    rush = drain(sqs, sqs_queues[queues.PRIORITY_QUEUE])
    assert job_ids(standard) == ["J-std"]
    assert job_ids(rush) == ["J-rush"]
    # the timeline's two stages stay apart: the journal's commit time, and SQS's own send time
    for message, row in zip((standard[0], rush[0]), kept, strict=True):
        accepted = float(message["MessageAttributes"][ACCEPTED_AT]["StringValue"])
        assert accepted == pytest.approx(row.accepted_at, abs=1e-6)
        assert "SentTimestamp" in message["Attributes"]


async def test_a_resent_row_is_dropped_by_sqs_deduplication(
    sqs: Any, sqs_queues: dict[str, str], refusing: OrderQueue, tmp_path: Path
) -> None:
    orders = OrderQueue(sqs, sqs_queues)
    message = IntakeMessage.parse(order("J-twice"))
    async with IntakeJournal(tmp_path / "a.db", orders) as journal:
        await journal.send_order(message)
        await journal.drained()
    # a process that died after SQS took the row but before deleting it left it behind
    path = tmp_path / "b.db"
    async with IntakeJournal(path, refusing, close_flush_s=0.2) as journal:
        await journal.send_order(message)
    async with IntakeJournal(path, orders) as journal:
        await journal.drained()
        assert journal.sent == 1

    assert job_ids(drain(sqs, sqs_queues[queues.ENGRAVING_QUEUE])) == ["J-twice"]


async def test_rows_go_to_sqs_ten_per_call(
    sqs: Any, sqs_queues: dict[str, str], refusing: OrderQueue, tmp_path: Path
) -> None:
    path = tmp_path / "intake.db"
    async with IntakeJournal(path, refusing, close_flush_s=0.2) as journal:
        for i in range(25):
            await journal.send_order(IntakeMessage.parse(order(f"J-{i:02d}")))
    calls: list[int] = []

    def count(params: dict[str, Any], **_: Any) -> None:
        calls.append(len(params["Entries"]))

    sqs.meta.events.register("provide-client-params.sqs.SendMessageBatch", count)
    async with IntakeJournal(path, OrderQueue(sqs, sqs_queues)) as journal:
        await journal.drained()

    assert calls == [BATCH, BATCH, 5]
    assert job_ids(drain(sqs, sqs_queues[queues.ENGRAVING_QUEUE])) == [
        f"J-{i:02d}" for i in range(25)
    ]


async def test_orders_arriving_together_share_a_commit(
    refusing: OrderQueue, tmp_path: Path
) -> None:
    messages = [IntakeMessage.parse(order(f"J-{i:02d}")) for i in range(20)]
    async with IntakeJournal(tmp_path / "intake.db", refusing, close_flush_s=0.2) as journal:
        answers = await asyncio.gather(*(journal.send_order(m) for m in messages))
        kept = await journal.pending()

    assert len(set(answers)) == 20
    assert [row.job_id for row in kept] == [m.job_id for m in messages]
    assert 1 <= journal.commits < 20
