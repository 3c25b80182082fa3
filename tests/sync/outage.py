"""A broker outage, measured: workshop store + MqttLink, a locked-down mosquitto, the bridge and
moto's SQS, with the bridge coming back only after the workshop.

Used by ``test_delivery.py`` (a few seconds of outage) and runnable for the figures::

    .venv/bin/python -m tests.sync.outage --jobs 50 --events 6 --outage 90

prints one JSON object: events produced, delivered (distinct event ids in
``crown-trophy-job-events.fifo``), copies in the queue, duplicates dropped by the bridge,
retransmissions, drain time (from the bridge's return to an empty outbox) and the outbox peak.
``--lose-session`` also deletes the broker's persistence file during the outage (the session
forgotten, as with ``persistence false``): the workshop's retransmits must then bring the events.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from crown_edge.cloud.bridge import Bridge, BridgeSettings
from crown_edge.embedded import MotoServer, MqttBroker
from crown_edge.lifecycle import JobEvent
from crown_edge.models import IntakeMessage
from crown_edge.store import Store
from crown_edge.sync import queues
from crown_edge.sync.mqtt import MqttLink
from crown_edge.sync.sqs import OrderQueue

_CYCLE = (JobEvent.START, JobEvent.INTERRUPT, JobEvent.RESTART)


@dataclass(frozen=True, slots=True)
class OutageFigures:
    """What one outage run measured."""

    produced: int
    delivered: int
    copies_in_queue: int
    duplicates_dropped: int
    published: int
    replays: int
    drain_s: float
    outbox_peak: int
    in_order: bool


def read_events_queue(sqs: Any, urls: dict[str, str]) -> list[dict[str, Any]]:
    """Every message of the job-events queue, in receive order (deleted as read)."""
    out: list[dict[str, Any]] = []
    url = urls[queues.EVENTS_QUEUE]
    while True:
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
        messages = got.get("Messages", [])
        if not messages:
            return out
        for m in messages:
            out.append(json.loads(m["Body"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])


def in_order_once(events: list[dict[str, Any]], expected: dict[str, list[str]]) -> bool:
    """Whether each job's events arrived exactly once, in ``seq`` order, all of them."""
    per_job: dict[str, list[str]] = {}
    for event in events:
        per_job.setdefault(event["job_id"], []).append(event["event_id"])
    return per_job == expected


async def produce(store: Store, job_id: str, events: int, now: float) -> None:
    """A job with ``events`` status events (received, validated, queued, then start/interrupt/
    restart cycles)."""
    await store.submit(
        IntakeMessage.parse(
            {"job_id": job_id, "customer_id": "C", "item_id": "plaque-a5", "due_date": "2026-12-01"}
        ),
        now,
    )
    steps = [JobEvent.VALIDATE, JobEvent.ENQUEUE] + [_CYCLE[i % 3] for i in range(events)]
    for step in steps[: events - 1]:
        await store.transition(job_id, step, now)


def bridge_settings(broker: MqttBroker, client_id: str) -> BridgeSettings:
    """A bridge with a fixed identity and short, test-sized timings."""
    return broker.bridge_settings(
        client_id=client_id, reconnect_max=0.5, gap_wait=0.5, replay_every=2.0
    )


async def run_outage(
    tmp: Path,
    moto: MotoServer,
    *,
    jobs: int = 20,
    events: int = 6,
    outage_s: float = 3.0,
    bridge_late_s: float = 1.0,
    lose_session: bool = False,
    ack_timeout: float = 0.5,
) -> OutageFigures:
    """Events before, during and after a broker outage; the bridge returns ``bridge_late_s``
    after the workshop reconnected. Returns the figures (see the module docstring)."""
    shop = f"shop-{uuid.uuid4().hex[:6]}"
    moto.reset()
    urls = moto.create_queues()
    sqs = moto.client()
    peak = 0
    job_ids = [f"O-{i:03d}" for i in range(jobs)]
    bridges: list[Bridge] = []
    try:
        with MqttBroker(state_dir=tmp / "mqtt", shops=(shop,)) as broker:
            settings = broker.workshop_settings(
                shop,
                poll_interval=0.2,
                ack_timeout=ack_timeout,
                ack_timeout_max=4 * ack_timeout,
                backoff_max=0.5,
            )
            identity = f"crown-bridge-{uuid.uuid4().hex[:6]}"
            async with Store.from_path(tmp / "edge.db") as store, MqttLink(settings, store) as link:
                store.on_commit.append(link.wake)

                async def sample() -> None:
                    nonlocal peak
                    while True:
                        stats = await store.outbox_stats(time.time())
                        peak = max(peak, stats.backlog_rows)
                        await asyncio.sleep(0.05)

                sampler = asyncio.create_task(sample())
                try:
                    thirds = [job_ids[i::3] for i in range(3)]
                    bridge = Bridge(bridge_settings(broker, identity), OrderQueue(sqs, urls))
                    bridges.append(bridge)
                    async with bridge:
                        for job in job_ids:
                            bridge.jobs.learn(job, shop)
                        async with asyncio.timeout(20):
                            await bridge.wait_connected()
                            await link.wait_connected()
                        for job in thirds[0]:  # everything up
                            await produce(store, job, events, time.time())
                        await wait_drained(store, 60)
                    # the bridge is away; then the broker goes down
                    await broker.astop()
                    gap = outage_s / max(1, len(thirds[1]))
                    for job in thirds[1]:  # during the outage
                        await produce(store, job, events, time.time())
                        await asyncio.sleep(gap)
                    if lose_session:
                        for f in (tmp / "mqtt" / "persist").glob("*.db"):
                            f.unlink()
                    await broker.astart()
                    async with asyncio.timeout(30):
                        while not link.connected:  # noqa: ASYNC110 - the link's own state
                            await asyncio.sleep(0.02)
                    for job in thirds[2]:  # the workshop is back, the bridge not yet
                        await produce(store, job, events, time.time())
                    await asyncio.sleep(bridge_late_s)
                    back = time.monotonic()
                    bridge = Bridge(bridge_settings(broker, identity), OrderQueue(sqs, urls))
                    bridges.append(bridge)
                    async with bridge:
                        for job in job_ids:
                            bridge.jobs.learn(job, shop)
                        await wait_drained(store, 90)
                        drain = time.monotonic() - back
                        await asyncio.sleep(0.3)  # late duplicates, if any, get dropped
                finally:
                    sampler.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await sampler
                history = {j: [e["event_id"] for e in await store.events(j)] for j in job_ids}
                published = link.published
                replays = link.replays
        relayed = read_events_queue(sqs, urls)
    finally:
        sqs.close()
    return OutageFigures(
        produced=sum(len(v) for v in history.values()),
        delivered=len({e["event_id"] for e in relayed}),
        copies_in_queue=len(relayed),
        duplicates_dropped=sum(b.duplicates for b in bridges),
        published=published,
        replays=replays,
        drain_s=round(drain, 2),
        outbox_peak=peak,
        in_order=in_order_once(relayed, history),
    )


async def wait_drained(store: Store, within: float) -> None:
    """Until the outbox has no row waiting for the cloud (fail after ``within`` seconds)."""
    async with asyncio.timeout(within):
        while (await store.outbox_stats(time.time())).backlog_rows:  # noqa: ASYNC110 - polling
            await asyncio.sleep(0.05)


def main() -> None:
    """Run one outage and print its figures as JSON."""
    import tempfile

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=50)
    parser.add_argument("--events", type=int, default=6)
    parser.add_argument("--outage", type=float, default=90.0)
    parser.add_argument("--bridge-late", type=float, default=15.0)
    parser.add_argument("--lose-session", action="store_true")
    parser.add_argument("--ack-timeout", type=float, default=2.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, MotoServer() as moto:
        figures = asyncio.run(
            run_outage(
                Path(tmp),
                moto,
                jobs=args.jobs,
                events=args.events,
                outage_s=args.outage,
                bridge_late_s=args.bridge_late,
                lose_session=args.lose_session,
                ack_timeout=args.ack_timeout,
            )
        )
    print(
        json.dumps({"outage_s": args.outage, "ack_timeout_s": args.ack_timeout, **asdict(figures)})
    )


if __name__ == "__main__":
    main()
