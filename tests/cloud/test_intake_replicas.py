"""Intake journals of several cloud processes: one owner each, and none left behind by a death.

Each cloud process journals into its own file and holds it by a lease; a process that dies
between its 202 and SQS leaves rows that a surviving process adopts and sends on (moto here; the
child that dies journals against an endpoint where nothing listens, so its rows must stay).
"""

from __future__ import annotations

import asyncio
import json
import textwrap
from pathlib import Path
from typing import Any

import pytest

from crown_edge.cloud.intake import IntakeJournal
from crown_edge.cloud.lease import LeaseBusy
from crown_edge.models import IntakeMessage
from crown_edge.sync import queues
from crown_edge.sync.sqs import OrderQueue
from tests.children import ready_child
from tests.cloud.test_intake import drain, job_ids, order, refusing

pytestmark = pytest.mark.integration

__all__ = ["refusing"]  # the fixture, shared with test_intake

_CHILD = textwrap.dedent(
    """
    import asyncio, json, socket, sys
    from pathlib import Path
    from crown_edge.cloud.intake import IntakeJournal
    from crown_edge.embedded.sqs import sqs_client
    from crown_edge.models import IntakeMessage
    from crown_edge.sync.sqs import OrderQueue

    path, urls, jobs = Path(sys.argv[1]), json.loads(sys.argv[2]), sys.argv[3:]

    async def main() -> None:
        with socket.socket() as probe:  # an endpoint where nothing listens: rows must stay
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        client = sqs_client(f"http://127.0.0.1:{port}", "eu-west-2")
        async with IntakeJournal(path, OrderQueue(client, urls), owner="doomed") as journal:
            for job in jobs:
                order = {"job_id": job, "customer_id": "C-1", "item_id": "plaque-a5",
                         "due_date": "2026-12-01"}
                await journal.send_order(IntakeMessage.parse(order))
            print("accepted", flush=True)
            await asyncio.sleep(3600)

    asyncio.run(main())
    """
)


def _accept_then_die(path: Path, urls: dict[str, str], jobs: list[str]) -> None:
    """A child process journals ``jobs`` (SQS unreachable) and is SIGKILLed after its 202s."""
    with ready_child(_CHILD, str(path), json.dumps(urls), *jobs, ready="accepted") as child:
        child.kill()  # the 202s' worth is on disk; none of it reached SQS
        child.wait(timeout=10)


async def test_a_journal_has_one_owner(
    sqs: Any, sqs_queues: dict[str, str], tmp_path: Path
) -> None:
    orders = OrderQueue(sqs, sqs_queues)
    path = tmp_path / "intake-a.db"
    async with IntakeJournal(path, orders, owner="cloud a"):
        second = IntakeJournal(path, orders, owner="cloud b", lease_wait_s=0.3)
        with pytest.raises(LeaseBusy, match=r"intake-a\.db is in use .*cloud a.*--instance"):
            await second.__aenter__()
    # the owner let go: the next process (a restart) takes it
    async with IntakeJournal(path, orders, owner="cloud a again") as journal:
        assert await journal.pending() == []


async def test_a_living_sibling_is_left_alone(
    sqs: Any, sqs_queues: dict[str, str], refusing: OrderQueue, tmp_path: Path
) -> None:
    orders = OrderQueue(sqs, sqs_queues)
    async with IntakeJournal(tmp_path / "intake-a.db", refusing, close_flush_s=0.1) as stuck:
        await stuck.send_order(IntakeMessage.parse(order("J-a")))
        async with IntakeJournal(
            tmp_path / "intake-b.db", orders, siblings="intake*.db", adopt_every_s=3600
        ) as other:
            assert other.orphans() == [tmp_path / "intake-a.db"]
            assert await other.adopt_orphans() == 0
            assert [r.job_id for r in await stuck.pending()] == ["J-a"]
    assert drain(sqs, sqs_queues[queues.ENGRAVING_QUEUE]) == []


async def test_a_survivor_sends_on_what_a_killed_process_accepted(
    sqs: Any, sqs_queues: dict[str, str], tmp_path: Path
) -> None:
    doomed = tmp_path / "intake-a.db"
    await asyncio.to_thread(_accept_then_die, doomed, sqs_queues, ["J-1", "J-2", "J-3"])
    assert drain(sqs, sqs_queues[queues.ENGRAVING_QUEUE]) == []

    orders = OrderQueue(sqs, sqs_queues)
    async with IntakeJournal(
        tmp_path / "intake-b.db", orders, siblings="intake*.db", adopt_every_s=3600
    ) as survivor:
        assert await survivor.adopt_orphans() == 3
        assert survivor.adopted == 3
        assert await survivor.adopt_orphans() == 0  # nothing left to adopt
    assert job_ids(drain(sqs, sqs_queues[queues.ENGRAVING_QUEUE])) == ["J-1", "J-2", "J-3"]
    # the dead process's journal is empty, and free for it when it comes back
    async with IntakeJournal(doomed, orders, owner="restarted") as back:
        assert await back.pending() == []
