"""Delivery you can trust, against a real SMTP server (aiosmtpd) and the real notice store:
a server refusing for a while still gets each notice exactly once, a duplicate event sends
nothing more (also after a restart), a notice given up is counted and logged, and the job's
activity is never held up by the mail server. The Order API keeps the contact at the door."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session
from prometheus_client import CollectorRegistry

from crown_edge.cloud import ApiSettings, Credentials, create_app
from crown_edge.cloud.bridge import Bridge
from crown_edge.cloud.mail import MailSettings, SesTransport, SmtpTransport
from crown_edge.cloud.mail_sink import EmlHandler, MailSink
from crown_edge.cloud.notify import Notifier
from crown_edge.cloud.notify_words import Contact
from crown_edge.sync.sqs import OrderQueue
from tests.cloud.client import post_json

LINK = "http://127.0.0.1:1/status/J-1?token=t"


class RefusingHandler(EmlHandler):
    """Answers ``code`` to the first ``refuse`` messages, then stores them like the sink."""

    def __init__(self, directory: Path, refuse: int, code: str = "451 4.3.0 Try again later"):
        super().__init__(directory)
        self.refuse = refuse
        self.code = code
        self.attempts = 0

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.attempts += 1
        if self.attempts <= self.refuse:
            return self.code
        return await super().handle_DATA(server, session, envelope)


def _settings(tmp_path: Path, port: int, **kw: Any) -> MailSettings:
    params: dict[str, Any] = {
        "smtp_port": port,
        "store": tmp_path / "notices.db",
        "retry_initial": 0.02,
        "retry_max": 0.1,
        "max_attempts": 6,
        "timeout": 5.0,
    }
    params.update(kw)
    return MailSettings(**params)


def _event(seq: int, status: str, job_id: str = "J-1", **kw: Any) -> dict[str, Any]:
    return {"event_id": f"{job_id}:{seq}", "job_id": job_id, "seq": seq, "status": status, **kw}


async def _until(predicate: Any, timeout: float = 20.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():  # noqa: ASYNC110 - polls files and a database, not an event
            await asyncio.sleep(0.02)


@pytest.fixture
async def refusing(tmp_path: Path) -> AsyncIterator[tuple[MailSink, RefusingHandler]]:
    handler = RefusingHandler(tmp_path / "mail", refuse=3)
    (tmp_path / "mail").mkdir()
    async with MailSink(tmp_path / "mail", handler=handler) as sink:
        yield sink, handler


def _sample(registry: CollectorRegistry, name: str, kind: str) -> float:
    return registry.get_sample_value(name, {"kind": kind}) or 0.0


async def test_a_server_refusing_for_a_while_gets_each_notice_once(
    tmp_path: Path, refusing: tuple[MailSink, RefusingHandler]
) -> None:
    sink, handler = refusing
    registry = CollectorRegistry()
    settings = _settings(tmp_path, sink.port)
    async with Notifier(settings, SmtpTransport(settings), registry=registry) as notifier:
        await notifier.remember(Contact("J-1", "jane@example.com", LINK))
        await notifier.record("status", _event(3, "pending_approval", design_url="/d/J-1.svg"))
        await _until(lambda: len(sink.files()) == 1)
        assert handler.attempts == 4  # three 451s, then taken
        await notifier.record("status", _event(3, "pending_approval"))  # the same event again
        await notifier.record("status", _event(4, "approved"))  # nothing to tell
        await notifier.record("status", _event(9, "complete"))
        await _until(lambda: len(sink.files()) == 2)
        assert notifier.store is not None
        rows = notifier.store.notices("J-1")
    subjects = [str(m["Subject"]) for m in sink.messages()]
    assert "ready for your approval" in subjects[0] and "is ready" in subjects[1]
    assert [(r["event_id"], r["state"], r["attempts"]) for r in rows] == [
        ("J-1:3", "sent", 4),
        ("J-1:9", "sent", 1),
    ]
    assert _sample(registry, "crown_notifications_sent_total", "design_ready") == 1
    assert _sample(registry, "crown_notification_retries_total", "design_ready") == 3
    assert _sample(registry, "crown_notifications_failed_total", "design_ready") == 0

    # a restart of the cloud process: the sent set is on disk, a replayed event sends nothing
    registry = CollectorRegistry()
    async with Notifier(settings, SmtpTransport(settings), registry=registry) as notifier:
        await notifier.record("status", _event(3, "pending_approval"))
        await notifier.record("status", _event(9, "complete"))
        await notifier.record("status", _event(12, "escalated"))
        await _until(lambda: len(sink.files()) == 3)
    assert "About your order J-1" in str(sink.messages()[2]["Subject"])
    assert _sample(registry, "crown_notifications_sent_total", "design_ready") == 0


async def test_a_notice_pending_at_shutdown_is_sent_after_the_restart(
    tmp_path: Path, refusing: tuple[MailSink, RefusingHandler]
) -> None:
    sink, handler = refusing
    handler.refuse = 1
    slow = _settings(tmp_path, sink.port, retry_initial=3600.0, retry_max=3600.0)
    async with Notifier(slow, SmtpTransport(slow)) as notifier:
        await notifier.remember(Contact("J-1", "jane@example.com", LINK))
        await notifier.record("status", _event(9, "complete"))
        await _until(lambda: handler.attempts == 1)
        assert notifier.store is not None
        await _until(lambda: notifier.store is not None and notifier.store.next_due() is not None)
    assert sink.files() == []
    # back up with the retry due at once: the pending notice goes out, once
    settings = _settings(tmp_path, sink.port)
    async with Notifier(settings, SmtpTransport(settings)) as notifier:
        assert notifier.store is not None
        await asyncio.to_thread(notifier.store.retry, "J-1:9", 1, "test", 0.0)
        notifier._wake.set()
        await _until(lambda: len(sink.files()) == 1)
        assert notifier.store.notices("J-1")[0]["state"] == "sent"


async def test_after_the_last_attempt_the_failure_is_counted_and_logged(
    tmp_path: Path, refusing: tuple[MailSink, RefusingHandler], caplog: pytest.LogCaptureFixture
) -> None:
    sink, handler = refusing
    handler.refuse = 100
    registry = CollectorRegistry()
    settings = _settings(tmp_path, sink.port, max_attempts=3)
    events: list[dict[str, Any]] = []

    async def on_failed(event: dict[str, Any]) -> None:
        events.append(event)

    with caplog.at_level(logging.WARNING, logger="crown_edge.cloud.notify"):
        async with Notifier(
            settings, SmtpTransport(settings), registry=registry, on_failed=on_failed
        ) as notifier:
            await notifier.remember(Contact("J-1", "jane@example.com", LINK))
            await notifier.record("status", _event(9, "complete"))
            await _until(
                lambda: _sample(registry, "crown_notifications_failed_total", "complete") == 1
            )
            await _until(lambda: len(events) == 1)
            assert notifier.store is not None
            (row,) = notifier.store.notices("J-1")
    assert handler.attempts == 3
    assert row["state"] == "failed" and "451" in row["last_error"]
    (event,) = events  # the failure is an event too, once
    assert event["kind"] == "notification_failed" and event["job_id"] == "J-1"
    assert event["notification"] == "complete" and event["attempts"] == 3
    assert "451" in event["error"] and event["event_id"].endswith(":notification_failed")
    assert any("NOT SENT after 3 attempts" in r.getMessage() for r in caplog.records)
    assert sink.files() == []


async def test_a_final_refusal_is_not_retried(
    tmp_path: Path, refusing: tuple[MailSink, RefusingHandler]
) -> None:
    sink, handler = refusing
    handler.refuse, handler.code = 100, "550 5.1.1 No such mailbox"
    registry = CollectorRegistry()
    settings = _settings(tmp_path, sink.port)
    async with Notifier(settings, SmtpTransport(settings), registry=registry) as notifier:
        await notifier.remember(Contact("J-1", "gone@example.com", LINK))
        await notifier.record("status", _event(9, "complete"))
        await _until(lambda: _sample(registry, "crown_notifications_failed_total", "complete") == 1)
    assert handler.attempts == 1


async def test_the_job_is_never_held_up_by_a_mail_server_that_is_down(tmp_path: Path) -> None:
    async with MailSink(tmp_path / "gone") as gone:
        port = gone.port  # a port nobody listens on once the sink is closed
    settings = _settings(tmp_path, port, retry_initial=3600.0, retry_max=3600.0)
    async with Notifier(settings, SmtpTransport(settings)) as notifier:
        await notifier.remember(Contact("J-1", "jane@example.com", LINK))
        async with asyncio.timeout(5):  # only a database insert: never the SMTP round trip
            for seq in range(20):
                await notifier.record("status", _event(seq, "complete"))
        assert notifier.store is not None
        await _until(lambda: notifier.store is not None and bool(notifier.store.counts()))
        states = notifier.store.counts()
    assert states == {"pending": 20}


async def test_only_orders_with_an_email_hear_and_engraving_only_when_asked(
    tmp_path: Path,
) -> None:
    async with MailSink(tmp_path / "mail") as sink:
        settings = _settings(tmp_path, sink.port)
        async with Notifier(settings, SmtpTransport(settings)) as notifier:
            await notifier.remember(Contact("J-1", "jane@example.com", LINK))
            await notifier.remember(Contact("J-2", "joe@example.com", LINK, notify_engraving=True))
            await notifier.record("status", _event(5, "engraving", "J-1"))
            await notifier.record("status", _event(5, "engraving", "J-3"))  # no email given
            await notifier.record("design_ready", _event(6, "complete", "J-1"))  # not a status
            await notifier.record("status", _event(5, "engraving", "J-2"))
            await _until(lambda: len(sink.files()) == 1)
            await notifier.record("status", _event(7, "complete", "J-1"))
            await _until(lambda: len(sink.files()) == 2)
        got = [(str(m["To"]), str(m["Subject"])) for m in sink.messages()]
    assert got[0][0] == "joe@example.com" and "being engraved" in got[0][1]
    assert got[1][0] == "jane@example.com" and "is ready" in got[1][1]


async def test_ses_option_sends_the_same_message_through_moto(
    tmp_path: Path, moto_server: Any
) -> None:
    settings = _settings(tmp_path, 25, backend="ses", ses_endpoint_url=moto_server.endpoint_url)
    registry = CollectorRegistry()
    transport = SesTransport(settings)
    try:
        async with Notifier(settings, transport, registry=registry) as notifier:
            await notifier.remember(Contact("J-1", "jane@example.com", LINK))
            await notifier.record("status", _event(9, "complete"))
            await _until(
                lambda: _sample(registry, "crown_notifications_sent_total", "complete") == 1
            )
        quota = transport.client.get_send_quota()
    finally:
        transport.client.close()
    assert quota["SentLast24Hours"] >= 1


async def test_the_door_refuses_a_malformed_email_and_keeps_a_good_one(
    tmp_path: Path, sqs_queues: dict[str, str], sqs: Any
) -> None:
    key = "test-api-key-0123456789"
    creds = Credentials(api_keys=(key,), token_secrets=("secret-0123456789abcdef",))
    order = {
        "job_id": "J-1",
        "customer_id": "C-1",
        "item_id": "plaque-a5",
        "due_date": "2099-12-01",
    }
    async with MailSink(tmp_path / "mail") as sink:
        settings = _settings(tmp_path, sink.port)
        async with (
            Notifier(settings, SmtpTransport(settings)) as notifier,
            Bridge(None) as bridge,
            create_app(
                OrderQueue(sqs, sqs_queues),
                bridge,
                ApiSettings(credentials=creds),
                contacts=notifier,
            ) as app,
        ):
            bad = await post_json(
                f"{app.url}/orders", {**order, "customer_email": "jane at example"}, key
            )
            flag = await post_json(
                f"{app.url}/orders",
                {**order, "customer_email": "jane@example.com", "notify_engraving": "yes"},
                key,
            )
            good = await post_json(
                f"{app.url}/orders",
                {**order, "customer_email": "jane@example.com", "text": ["Hi"]},
                key,
            )
            none = await post_json(f"{app.url}/orders", {**order, "job_id": "J-2"}, key)
            assert notifier.store is not None
            kept = notifier.store.contact("J-1")
            assert notifier.store.contact("J-2") is None
    assert bad.status == 400
    assert bad.json()["error"] == "invalid_message"
    assert any(r.startswith("customer_email: ") for r in bad.json()["reasons"])
    assert flag.status == 400 and "notify_engraving" in json.dumps(flag.json())
    assert good.status == 202 and none.status == 202
    assert kept == Contact("J-1", "jane@example.com", good.json()["status_url"], text=("Hi",))


async def test_out_of_stock_waits_for_the_offer_and_lists_it(tmp_path: Path) -> None:
    async with MailSink(tmp_path / "mail") as sink:
        settings = _settings(tmp_path, sink.port, offer_wait=3600.0)
        async with Notifier(settings, SmtpTransport(settings)) as notifier:
            await notifier.remember(Contact("J-1", "jane@example.com", LINK))
            await notifier.record("status", _event(2, "blocked", reason="no_inventory"))
            assert notifier.store is not None
            assert notifier.store.counts() == {"pending": 1}
            offer = [
                {"item_id": "plaque-a5", "name": "Plaque A5", "material": "brass"},
                {"item_id": "bad"},
                "junk",
            ]
            await notifier.record("alternatives_offered", {"job_id": "J-1", "alternatives": offer})
            await _until(lambda: len(sink.files()) == 1)
        (message,) = sink.messages()
    text = message.get_body(("plain",))
    assert text is not None
    assert "  - Plaque A5 (brass)\r\n  - bad\r\n" in text.get_content()


def test_the_notice_store_is_owner_only(tmp_path: Path) -> None:
    """Customer emails and texts: the database and its WAL files are 0600, like the workshop's."""
    import os
    import stat

    from crown_edge.cloud.notify_store import NoticeStore

    path = tmp_path / "notify" / "notifications.db"
    old = os.umask(0o022)
    try:
        store = NoticeStore(path)
    finally:
        os.umask(old)
    try:
        files = [p for p in path.parent.iterdir() if p.name.startswith(path.name)]
        assert path in files
        for p in files:
            assert stat.S_IMODE(p.stat().st_mode) == 0o600, (p, oct(p.stat().st_mode))
    finally:
        store.close()
