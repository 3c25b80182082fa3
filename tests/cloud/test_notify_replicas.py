"""One mail sender among cloud replicas: several notifiers on one store file, a real SMTP server.

Every replica records into the shared store; only the holder of the store's lease sends, so each
notice goes out once whichever replica recorded it, and when the sender goes (a clean stop, or
SIGKILL in a child process) another one takes over and sends what it left, with the attempts
made so far carried over.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from crown_edge.cloud.lease import holder, lock_path
from crown_edge.cloud.mail import MailSettings, SmtpTransport
from crown_edge.cloud.mail_sink import MailSink
from crown_edge.cloud.notify import Notifier
from crown_edge.cloud.notify_store import NoticeStore
from crown_edge.cloud.notify_words import Contact, Notice
from tests.cloud.test_notify_delivery import _settings as delivery_settings

LINK = "http://127.0.0.1:1/status/J-1?token=t"
POLL = 0.05  # the replicas' poll, small so a takeover takes a blink here
ROOT = Path(__file__).resolve().parents[2]


def _settings(store: Path, port: int, **kw: Any) -> MailSettings:
    """The delivery tests' quick-retry settings, on the store ``store``."""
    return delivery_settings(store.parent, port, **{"store": store, **kw})


def _notifier(settings: MailSettings, owner: str, registry: CollectorRegistry) -> Notifier:
    return Notifier(
        settings, SmtpTransport(settings), registry=registry, owner=owner, poll_interval=POLL
    )


def _event(seq: int, status: str, job_id: str = "J-1", **kw: Any) -> dict[str, Any]:
    return {"event_id": f"{job_id}:{seq}", "job_id": job_id, "seq": seq, "status": status, **kw}


async def _until(predicate: Any, timeout: float = 20.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():  # noqa: ASYNC110 - polls files, a database and a lease
            await asyncio.sleep(0.02)


def _gauge(registry: CollectorRegistry) -> float | None:
    return registry.get_sample_value("crown_notifier_sender")


def _sent(registry: CollectorRegistry) -> float:
    return sum(
        s.value
        for metric in registry.collect()
        if metric.name == "crown_notifications_sent"
        for s in metric.samples
        if s.name == "crown_notifications_sent_total"
    )


def _free_port() -> int:
    """A loopback port where nothing listens (connections are refused: a refusal for now)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_notices_recorded_by_either_replica_are_sent_once_by_the_one_sender(
    tmp_path: Path,
) -> None:
    store = tmp_path / "notify" / "notices.db"
    ra, rb = CollectorRegistry(), CollectorRegistry()
    async with MailSink(tmp_path / "mail") as sink:
        settings = _settings(store, sink.port)
        async with _notifier(settings, "a", ra) as a:
            await _until(lambda: a.sender)
            async with _notifier(settings, "b", rb) as b:
                await asyncio.sleep(POLL * 4)  # b has asked for the lease a few times by now
                assert not b.sender and _gauge(rb) == 0 and _gauge(ra) == 1
                assert holder(store) == f"pid {os.getpid()} a"
                # the Order API of either replica keeps the contact; the activities of either
                # publish statuses, and a retried activity may publish the same one on the other
                await b.remember(Contact("J-1", "jane@example.com", LINK))
                await a.remember(Contact("J-2", "joe@example.com", LINK))
                await b.record("status", _event(3, "pending_approval"))
                await a.record("status", _event(3, "pending_approval"))  # the same event
                await b.record("status", _event(9, "complete", "J-2"))
                await b.record("status", _event(9, "complete"))
                await a.record("status", _event(9, "complete", "J-2"))  # the same event
                await a.record("status", _event(12, "escalated", "J-2"))
                assert a.store is not None
                await _until(lambda: a.store is not None and a.store.counts() == {"sent": 4})
                assert not b.sender
        messages = sink.messages()
    assert len(messages) == 4
    assert len({str(m["Message-ID"]) for m in messages}) == 4
    assert (
        sorted(str(m["To"]) for m in messages) == ["jane@example.com"] * 2 + ["joe@example.com"] * 2
    )
    assert _sent(ra) == 4 and _sent(rb) == 0


async def test_closing_the_sender_hands_over_what_it_left_to_the_other(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The out-of-stock notice a recorded waits for its offer; a stops; the offer arrives at b,
    which has taken over and sends it, once."""
    store = tmp_path / "notices.db"
    ra, rb = CollectorRegistry(), CollectorRegistry()
    caplog.set_level(logging.INFO, logger="crown_edge.cloud.notify")
    async with MailSink(tmp_path / "mail") as sink:
        settings = _settings(store, sink.port, offer_wait=3600.0)
        b = _notifier(settings, "b", rb)
        async with _notifier(settings, "a", ra) as a:
            await _until(lambda: a.sender)
            await b.__aenter__()
            try:
                await a.remember(Contact("J-1", "jane@example.com", LINK))
                await a.record("status", _event(2, "blocked", reason="no_inventory"))
                await b.record("status", _event(5, "complete", "J-1"))
                await _until(lambda: len(sink.files()) == 1)  # sent by a
                assert b.store is not None
                # the sink has the message before a records it sent: wait for the record too
                await _until(
                    lambda: b.store is not None and b.store.counts() == {"pending": 1, "sent": 1}
                )
            except BaseException:
                await b.__aexit__(None, None, None)
                raise
        try:
            assert not a.sender and _gauge(ra) == 0
            await _until(lambda: b.sender)
            assert _gauge(rb) == 1
            assert b.store.counts() == {"pending": 1, "sent": 1}  # still waiting for the offer
            offer = [{"item_id": "plaque-a5", "name": "Plaque A5", "material": "brass"}]
            await b.record("alternatives_offered", {"job_id": "J-1", "alternatives": offer})
            await _until(lambda: len(sink.files()) == 2)
            await _until(lambda: b.store is not None and b.store.counts() == {"sent": 2})
        finally:
            await b.__aexit__(None, None, None)
        messages = sink.messages()
    assert len({str(m["Message-ID"]) for m in messages}) == 2
    assert _sent(ra) == 1 and _sent(rb) == 1
    logged = [r.getMessage() for r in caplog.records]
    assert "notifier a sends customer mail" in logged
    assert any(m.startswith("notifier b: customer mail is sent by pid ") for m in logged)
    assert any(
        m.startswith("notifier b took over sending customer mail (was: pid ") for m in logged
    )


_CHILD = textwrap.dedent(
    """
    import asyncio, sys
    from pathlib import Path
    from crown_edge.cloud.mail import MailSettings, SmtpTransport
    from crown_edge.cloud.notify import Notifier
    from crown_edge.cloud.notify_words import Contact

    store, port = Path(sys.argv[1]), int(sys.argv[2])

    async def main() -> None:
        # its mail server refuses for now, forever: the notices stay pending, tried again
        settings = MailSettings(smtp_port=port, store=store, retry_initial=0.02,
                                retry_max=0.05, max_attempts=1_000_000, timeout=5.0)
        async with Notifier(settings, SmtpTransport(settings), owner="doomed",
                            poll_interval=0.05) as notifier:
            while not notifier.sender:
                await asyncio.sleep(0.01)
            for job in ("J-1", "J-2", "J-3"):
                await notifier.remember(Contact(job, f"{job.lower()}@example.com", "http://x/"))
                await notifier.record("status", {"event_id": f"{job}:9", "job_id": job,
                                                 "seq": 9, "status": "complete"})
            assert notifier.store is not None
            while any(r["attempts"] < 2 for j in ("J-1", "J-2", "J-3")
                      for r in notifier.store.notices(j)):
                await asyncio.sleep(0.01)
            print("tried", flush=True)
            await asyncio.sleep(3600)

    asyncio.run(main())
    """
)


async def test_a_sender_killed_hands_over_to_a_survivor(tmp_path: Path) -> None:
    """The child holds the lease and keeps failing to send what it recorded; SIGKILL; the
    survivor takes over within its poll and sends all of it, plus its own, once each."""
    store = tmp_path / "notices.db"
    registry = CollectorRegistry()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    async with MailSink(tmp_path / "mail") as sink:
        settings = _settings(store, sink.port)
        child = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            _CHILD,
            str(store),
            str(_free_port()),
            stdout=asyncio.subprocess.PIPE,
            cwd=ROOT,
            env=env,
        )
        try:
            assert child.stdout is not None
            line = await asyncio.wait_for(child.stdout.readline(), 60)
            assert line.strip() == b"tried"
            async with _notifier(settings, "survivor", registry) as survivor:
                await asyncio.sleep(POLL * 4)
                assert not survivor.sender and _gauge(registry) == 0
                assert holder(store) == f"pid {child.pid} doomed"
                await survivor.remember(Contact("J-4", "j-4@example.com", LINK))
                await survivor.record("status", _event(9, "complete", "J-4"))
                assert survivor.store is not None
                assert survivor.store.counts() == {"pending": 4}
                assert sink.files() == []
                child.send_signal(signal.SIGKILL)
                await asyncio.wait_for(child.wait(), 30)
                await _until(lambda: len(sink.files()) == 4)
                assert survivor.sender and _gauge(registry) == 1
                await _until(
                    lambda: survivor.store is not None and survivor.store.counts() == {"sent": 4}
                )
                rows = [r for j in ("J-1", "J-2", "J-3") for r in survivor.store.notices(j)]
            messages = sink.messages()
        finally:
            if child.returncode is None:
                child.kill()
                await asyncio.wait_for(child.wait(), 30)
    assert child.returncode == -signal.SIGKILL
    assert len({str(m["Message-ID"]) for m in messages}) == 4
    assert sorted(str(m["To"]) for m in messages) == [f"j-{n}@example.com" for n in range(1, 5)]
    # the survivor went on from the child's count: attempts the child made stay counted
    assert all(r["state"] == "sent" and r["attempts"] >= 3 for r in rows), rows


async def test_a_lease_that_cannot_be_taken_is_logged_and_tried_again(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A directory where the lock file should be: the notifier records, says why it does not
    send, and sends once the way is clear."""
    store = tmp_path / "notices.db"
    lock_path(store).mkdir()
    registry = CollectorRegistry()
    caplog.set_level(logging.INFO, logger="crown_edge.cloud.notify")
    async with MailSink(tmp_path / "mail") as sink:
        settings = _settings(store, sink.port)
        async with _notifier(settings, "a", registry) as a:
            await a.remember(Contact("J-1", "jane@example.com", LINK))
            await a.record("status", _event(9, "complete"))
            await asyncio.sleep(POLL * 4)
            assert not a.sender and sink.files() == []
            assert registry.get_sample_value("crown_notifications_pending") == 1
            errors = [
                r
                for r in caplog.records
                if r.levelno == logging.ERROR and r.name == "crown_edge.cloud.notify"
            ]
            assert len(errors) == 1  # once, not once per poll
            assert "cannot take the sending lease" in errors[0].getMessage()
            lock_path(store).rmdir()
            await _until(lambda: len(sink.files()) == 1)
            assert a.sender
            await _until(lambda: registry.get_sample_value("crown_notifications_pending") == 0)
    assert "notifier a sends customer mail" in [r.getMessage() for r in caplog.records]


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"owner": ""}, "owner"),
        ({"owner": "  "}, "owner"),
        ({"owner": "a\nb"}, "owner"),
        ({"poll_interval": 0.0}, "poll_interval"),
        ({"poll_interval": -1.0}, "poll_interval"),
        ({"poll_interval": float("nan")}, "poll_interval"),
        ({"poll_interval": float("inf")}, "poll_interval"),
    ],
)
def test_a_bad_owner_or_poll_is_refused(tmp_path: Path, kw: dict[str, Any], match: str) -> None:
    settings = _settings(tmp_path / "n.db", 25)
    with pytest.raises(ValueError, match=match):
        Notifier(settings, SmtpTransport(settings), **kw)


def test_an_out_of_stock_notice_waits_only_without_a_recent_offer(tmp_path: Path) -> None:
    """The look at the offers and the insert are one transaction (the store's docstring)."""
    store = NoticeStore(tmp_path / "n.db")
    try:
        store.remember(Contact("J-1", "jane@example.com", LINK), 0.0)
        store.remember(Contact("J-2", "joe@example.com", LINK), 0.0)
        store.offer("J-2", [], 95.0)
        store.remember(Contact("J-3", "jim@example.com", LINK), 0.0)
        store.offer("J-3", [], 10.0)  # too old to count for a block at 100

        def blocked(job: str) -> Notice:
            return Notice(f"{job}:2", job, "blocked", "no_inventory", None)

        assert store.enqueue(blocked("J-1"), 100.0, offer_wait=30.0)
        assert store.enqueue(blocked("J-2"), 100.0, offer_wait=30.0)
        assert store.enqueue(blocked("J-3"), 100.0, offer_wait=30.0)
        assert not store.enqueue(blocked("J-1"), 101.0, offer_wait=30.0)  # the same event
        due = {p.notice.job_id for p in store.due(100.0)}
        assert due == {"J-2"}
        assert store.next_due() == 100.0
        store.offer("J-1", [], 110.0)  # the offer makes the waiting notice due at once
        assert {p.notice.job_id for p in store.due(110.0)} == {"J-1", "J-2"}
        assert {p.notice.job_id for p in store.due(130.0)} == {"J-1", "J-2", "J-3"}
    finally:
        store.close()


_WRITER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from crown_edge.cloud.notify_store import NoticeStore
    from crown_edge.cloud.notify_words import Contact, Notice

    path, me, start = Path(sys.argv[1]), sys.argv[2], float(sys.argv[3])
    time.sleep(max(0.0, start - time.time()))  # all open the new file at once
    store = NoticeStore(path)
    for i in range(100):
        job = f"J-{i}"
        store.remember(Contact(job, "a@example.com", "http://x/"), 0.0)
        store.enqueue(Notice(f"{job}:{me}", job, "complete", None, None), 1.0)
        store.enqueue(Notice(f"{job}:0", job, "blocked", "no_inventory", None), 1.0,
                      offer_wait=5.0)
        store.offer(job, [], 2.0)
    store.close()
    print("done", flush=True)
    """
)


def test_processes_writing_one_new_store_at_once_all_succeed(tmp_path: Path) -> None:
    """Replicas start together on a store nobody created yet and write the same rows: no
    'database is locked', every row once."""
    path = tmp_path / "shared" / "notices.db"
    start = f"{time.time() + 1.0:.3f}"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", _WRITER, str(path), str(n), start],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            env=env,
        )
        for n in range(1, 5)
    ]
    results = [w.communicate(timeout=90) for w in writers]
    assert [(w.returncode, out.strip()) for w, (out, _) in zip(writers, results, strict=True)] == [
        (0, "done")
    ] * 4, [err for _, err in results]
    store = NoticeStore(path)
    try:
        assert store.counts() == {"pending": 500}  # 100 jobs x (4 writers' own + 1 shared)
        assert all(store.contact(f"J-{i}") is not None for i in range(100))
    finally:
        store.close()
