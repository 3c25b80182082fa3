"""Many workshops on one box: isolation scenarios on a fleet rig (issue 14)::

    python -m hil.fleet [--scenario NAME ...] [--shops 3] [--outage-s 240] [--workdir DIR]

The rig is :class:`~crown_edge.stack.FullStack` with ``shops=N`` (N >= 2; ``shop-1`` …): one
cloud, and N workshop daemons, each its own ``crown-edge run`` process with its own state
directory, simulated lasers, broker identity and task queue. The scenarios check that the
workshops stay out of each other's way:

* ``orders_stay_in_their_shop``: every order is made by its own workshop's machines, and no
  other workshop's store ever hears of it;
* ``shop_outage``: workshop B's daemon is stopped for ``outage_s`` seconds while orders keep
  arriving for A and B; A's complete meanwhile, B's wait (durably, in their workflows) and
  complete once B is back, each engraved exactly once;
* ``broker_isolation``: B's broker identity neither reads A's commands nor publishes A's
  events, and a forged event for A's job on B's own topic is rejected by the bridge (the job's
  shop comes from the workflow, not the message) and changes nothing;
* ``rush_at_b_keeps_a_queue``: a rush order at B leaves A's queue order as it was;
* ``cloud_failover`` (a rig with ``cloud_processes`` >= 2, ``--cloud-processes 2``): orders
  arrive on the Order API's shared port, served by two cloud processes (each an Order API,
  dispatcher, bridge and workflow worker); one of them is SIGKILLed while jobs are in flight
  and orders keep coming; every accepted order completes, made once, and an order posted twice
  is one job.

Prints ``PASS``/``FAIL`` per scenario and ``N passed, M failed``; exit 1 on a failure.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import sys
import tempfile
import time
import traceback
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from crown_edge.stack import SETTLED, FullStack, StackSettings, Workshop
from crown_edge.workflow.names import workflow_id

#: statuses after which a job waits for nothing more from its workshop
END = SETTLED | {"blocked", "revision_requested"}
#: the HIL default outage of shop B (the issue's "several minutes")
OUTAGE_S = 240.0


class FleetRig:
    """Drives a fleet :class:`FullStack`: orders to a named workshop, its technician, its
    daemon process (stopped and started again), its broker identity."""

    def __init__(self, stack: FullStack) -> None:
        self.stack = stack
        self._counter = 0

    @property
    def shops(self) -> tuple[str, ...]:
        """The workshops' ids (``shop-1`` …)."""
        return self.stack.shop_ids

    def workshop(self, shop_id: str) -> Workshop:
        """Workshop ``shop_id`` (config, state directory, process, control socket)."""
        return self.stack.workshop(shop_id)

    # --- customer --------------------------------------------------------------------------

    def new_order(self, shop_id: str, **fields: Any) -> dict[str, Any]:
        """A fresh order for workshop ``shop_id`` (a new job id), ``fields`` laid over it."""
        self._counter += 1
        order: dict[str, Any] = {
            "job_id": f"F{uuid.uuid4().hex[:6]}-{shop_id}-{self._counter:03d}",
            "customer_id": f"CUST-{shop_id}",
            "item_id": "plaque-a5",
            "due_date": "2026-12-24T17:00:00Z",
            "text": ["Club Champion", shop_id],
            "shop_id": shop_id,
        }
        order.update(fields)
        return order

    async def order(self, shop_id: str, **fields: Any) -> str:
        """Place an order for workshop ``shop_id`` through the Order API; its job id."""
        order = self.new_order(shop_id, **fields)
        status, body = await self.stack.post_order(order)
        assert status == 202, f"order refused: {status} {body}"
        return str(order["job_id"])

    async def view(self, job_id: str) -> dict[str, Any]:
        """The workflow's view of the job (``received`` before the workflow exists)."""
        return await self.stack.job_view(job_id) or {"status": "received"}

    async def result(self, job_id: str, timeout: float = 300.0) -> dict[str, Any]:
        """The job settled (see :meth:`FullStack.result`)."""
        return await self.stack.result(job_id, timeout)

    # --- a workshop's technician -----------------------------------------------------------

    async def ctl(self, shop_id: str, cmd: str, **args: Any) -> Any:
        """A technician command on workshop ``shop_id``'s control socket."""
        return await self.workshop(shop_id).call(cmd, **args)

    async def store_jobs(self, shop_id: str) -> set[str]:
        """Every job workshop ``shop_id``'s store holds (``jobs.list``)."""
        return {j["job_id"] for j in await self.ctl(shop_id, "jobs.list", limit=100_000)}

    async def knows(self, shop_id: str, job_id: str) -> bool:
        """Whether workshop ``shop_id``'s store has any record of ``job_id``."""
        try:
            await self.ctl(shop_id, "jobs.show", job_id=job_id)
        except Exception:
            return False
        return True

    async def queue(self, shop_id: str) -> list[str]:
        """Workshop ``shop_id``'s queue, first to run first."""
        return [row["job_id"] for row in await self.ctl(shop_id, "queue", limit=1000)]

    async def wait_edge(
        self, shop_id: str, job_id: str, *statuses: str, timeout: float = 120.0
    ) -> dict[str, Any]:
        """Until workshop ``shop_id``'s record of the job is in one of ``statuses``."""
        shown: Any = None
        async with _within(timeout, lambda: f"{job_id} at {shop_id}: wanted {statuses}: {shown}"):
            while True:
                with contextlib.suppress(Exception):
                    shown = await self.ctl(shop_id, "jobs.show", job_id=job_id)
                    if shown["status"] in statuses:
                        return dict(shown)
                await asyncio.sleep(0.2)

    async def pause_all(self, shop_id: str) -> list[str]:
        """Pause every machine of ``shop_id`` (jobs then wait in its queue); their ids."""
        ids = [m.id for m in self.workshop(shop_id).config.machines]
        for mid in ids:
            await self.ctl(shop_id, "machines.pause", machine_id=mid)
        return ids

    async def resume_all(self, shop_id: str) -> None:
        """Resume every machine of ``shop_id``."""
        for m in self.workshop(shop_id).config.machines:
            await self.ctl(shop_id, "machines.resume", machine_id=m.id)

    # --- checks ----------------------------------------------------------------------------

    async def made_once_by(self, shop_id: str, job_id: str) -> None:
        """The job completed, engraved exactly once on ``shop_id``'s machines, and no other
        workshop's store knows it."""
        view = await self.view(job_id)
        assert view["status"] == "complete", (job_id, view)
        history = list(view.get("history", ()))
        assert history.count("complete") == 1, (job_id, history)
        # the workflow may coalesce a quick run's statuses; the workshop's record is the count
        assert history.count("engraving") <= 1, (job_id, history)
        shown = await self.ctl(shop_id, "jobs.show", job_id=job_id)
        assert shown["status"] == "complete", (shop_id, shown)
        machines = {m.id for m in self.workshop(shop_id).config.machines}
        runs = shown["runs"]
        assert len(runs) == 1 and runs[0]["machine_id"] in machines, (job_id, runs)
        for other in self.shops:
            if other != shop_id:
                assert not await self.knows(other, job_id), (job_id, "known at", other)


@contextlib.asynccontextmanager
async def _within(seconds: float, what: Callable[[], str]) -> AsyncIterator[None]:
    """A deadline whose failure says what was awaited (an AssertionError, not a bare timeout)."""
    try:
        async with asyncio.timeout(seconds):
            yield
    except TimeoutError:
        raise AssertionError(f"not within {seconds:.0f} s: {what()}") from None


async def until(predicate: Callable[[], bool], what: str, within: float = 30.0) -> None:
    """Poll ``predicate`` until it holds; AssertionError naming ``what`` after ``within`` s."""
    async with _within(within, lambda: what):
        while not predicate():  # noqa: ASYNC110 - polling observable state is the point
            await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def listening(
    broker: Any, login: Any, *patterns: str
) -> AsyncIterator[list[tuple[str, bytes]]]:
    """Collect (topic, payload) received as broker ``login`` on ``patterns`` (as the broker ACL
    tests do, tests/sync/test_broker_acl.py): MQTT 3.1.1 drops what the ACL refuses without an
    error, so "refused" is proven by an entitled listener that gets a later marker only."""
    got: list[tuple[str, bytes]] = []
    async with broker.client(login, identifier=f"hil-{uuid.uuid4().hex[:8]}") as client:
        for pattern in patterns:
            await client.subscribe(pattern, qos=1)

        async def collect() -> None:
            async for message in client.messages:
                payload = message.payload
                got.append((str(message.topic), payload if isinstance(payload, bytes) else b""))

        task = asyncio.create_task(collect())
        try:
            yield got
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


# --- scenarios ----------------------------------------------------------------------------


async def orders_stay_in_their_shop(rig: FleetRig, per_shop: int = 2) -> None:
    """Orders for each workshop: each made once by its own machines; no other store has it."""
    jobs = {shop: [await rig.order(shop) for _ in range(per_shop)] for shop in rig.shops}
    for shop, ids in jobs.items():
        for job_id in ids:
            result = await rig.result(job_id)
            assert result["status"] == "complete", (shop, job_id, result)
            code, order = await rig.stack.get_order(job_id)  # what the customer's page shows
            assert code == 200 and order.get("shop_id") == shop, (shop, job_id, code, order)
    for shop, ids in jobs.items():
        for job_id in ids:
            await rig.made_once_by(shop, job_id)
        others = {j for s, js in jobs.items() if s != shop for j in js}
        held = await rig.store_jobs(shop)
        assert set(ids) <= held, (shop, held)
        assert not held & others, (shop, "holds other shops' jobs", held & others)


async def shop_outage(
    rig: FleetRig, outage_s: float = OUTAGE_S, orders: int = 3, *, kill: bool = False
) -> None:
    """B's daemon stopped (``kill``: SIGKILL, as a power cut) for ``outage_s`` while ``orders``
    orders each arrive for A and B (spread over the outage): A's complete while B is down; B's
    wait and complete after. One more B job is in B's queue when B goes (its machines paused):
    it survives in B's store and completes once, too."""
    a, b = rig.shops[0], rig.shops[1]
    before_b = await rig.store_jobs(b)
    await rig.pause_all(b)
    held = await rig.order(b)
    await rig.wait_edge(b, held, "queued")
    await rig.stack.stop_workshop(b, kill=kill)
    down_at = time.monotonic()
    a_jobs: list[str] = []
    b_jobs: list[str] = [held]
    for i in range(orders):
        a_jobs.append(await rig.order(a))
        b_jobs.append(await rig.order(b, rush=i == 0))
        await asyncio.sleep(outage_s / (2 * orders))  # orders keep coming during the outage
    for job_id in a_jobs:  # A is unaffected: done while B is still down
        result = await rig.result(job_id, timeout=max(120.0, outage_s))
        assert result["status"] == "complete", (job_id, result)
    process = rig.workshop(b).process
    assert process is not None and not process.running, "B came back by itself"
    for job_id in b_jobs:  # B's wait, durably: a workflow each, stuck before B's machines
        view = await rig.view(job_id)
        assert view["status"] in ("received", "validated", "queued"), (job_id, view)
        assert await rig.stack.job_view(job_id) is not None, (job_id, "no workflow")
    await asyncio.sleep(max(0.0, outage_s - (time.monotonic() - down_at)))
    await rig.stack.start_workshop(b)
    shown = await rig.ctl(b, "jobs.show", job_id=held)  # kept in B's store through the outage
    assert shown["status"] == "queued" and not shown["runs"], shown
    await rig.resume_all(b)
    for job_id in b_jobs:
        result = await rig.result(job_id, timeout=300.0)
        assert result["status"] == "complete", (job_id, result)
    for job_id in a_jobs:
        await rig.made_once_by(a, job_id)
    for job_id in b_jobs:
        await rig.made_once_by(b, job_id)
    # none lost, none doubled, nothing else appeared in B's store
    assert await rig.store_jobs(b) - before_b == set(b_jobs)


async def broker_isolation(rig: FleetRig) -> None:
    """B's identity cannot read A's commands nor publish A's events; a forged event for A's job
    on B's own topic is rejected by the bridge and changes nothing."""
    a, b = rig.shops[0], rig.shops[1]
    job = await rig.order(a)
    done = await rig.result(job)
    assert done["status"] == "complete", done
    broker = rig.stack.services.broker
    login_a, login_b, cloud = broker.workshop(a), broker.workshop(b), broker.cloud()
    machine_a = rig.workshop(a).config.machines[0].id
    machine_b = rig.workshop(b).config.machines[0].id
    # reading: B subscribes to A's commands (and its own); the cloud commands both
    async with (
        listening(broker, login_b, f"crown/v1/{a}/commands/#", f"crown/v1/{b}/commands/#") as bs,
        listening(broker, login_a, f"crown/v1/{a}/commands/#") as as_,
    ):
        async with broker.client(cloud) as client:  # harmless: resume a running machine
            await client.publish(
                f"crown/v1/{a}/commands/resume", json.dumps({"machine_id": machine_a}), qos=1
            )
            await client.publish(
                f"crown/v1/{b}/commands/resume", json.dumps({"machine_id": machine_b}), qos=1
            )
        await until(lambda: len(bs) >= 1 and len(as_) >= 1, "the commands' listeners")
    assert [t for t, _ in bs] == [f"crown/v1/{b}/commands/resume"], bs
    assert [t for t, _ in as_] == [f"crown/v1/{a}/commands/resume"], as_
    # publishing: B forges a cancel of A's job on A's topic (the ACL drops it), then on its own
    bridge = rig.stack.cloud.bridge
    rejected = bridge.rejected.get("wrong_shop", 0)
    board_before = (bridge.board.job(job) or {}).get("status")
    view_before = await rig.view(job)
    forged = {
        "event_id": f"{job}:{10_000}",
        "job_id": job,
        "seq": 10_000,
        "status": "cancelled",
        "at": time.time(),
        "shop_id": a,
    }
    marker = b"forged-" + uuid.uuid4().hex.encode()
    async with listening(broker, cloud, f"crown/v1/{a}/events", f"crown/v1/{b}/events") as seen:
        async with broker.client(login_b) as evil:
            await evil.publish(f"crown/v1/{a}/events", json.dumps(forged), qos=1)
            await evil.publish(f"crown/v1/{b}/events", json.dumps(forged), qos=1)
            await evil.publish(f"crown/v1/{b}/events", marker, qos=1)
        await until(lambda: any(p == marker for _, p in seen), "B's own marker")
    forged_seen = [(t, p) for t, p in seen if job.encode() in p]
    assert [t for t, _ in forged_seen] == [f"crown/v1/{b}/events"], forged_seen
    await until(lambda: bridge.rejected.get("wrong_shop", 0) > rejected, "the bridge's wrong_shop")
    assert (bridge.board.job(job) or {}).get("status") == board_before == "complete"
    view_after = await rig.view(job)
    assert view_after["status"] == view_before["status"] == "complete", view_after
    assert "cancelled" not in view_after.get("history", ()), view_after
    shown = await rig.ctl(a, "jobs.show", job_id=job)
    assert shown["status"] == "complete", shown
    assert not await rig.knows(b, job)


async def rush_at_b_keeps_a_queue(rig: FleetRig, standard: int = 3) -> None:
    """With every machine paused, A queues standard jobs; a rush order at B goes to the head of
    B's queue and leaves A's queue exactly as it was."""
    a, b = rig.shops[0], rig.shops[1]
    await rig.pause_all(a)
    await rig.pause_all(b)
    try:
        a_jobs = [await rig.order(a) for _ in range(standard)]
        b_std = await rig.order(b)
        for job_id in a_jobs:
            await rig.wait_edge(a, job_id, "queued")
        await rig.wait_edge(b, b_std, "queued")
        a_queue = await rig.queue(a)
        assert sorted(a_queue) == sorted(a_jobs), a_queue  # equals: in the order they arrived
        rush = await rig.order(b, rush=True)
        await rig.wait_edge(b, rush, "queued")
        assert (await rig.queue(b))[:2] == [rush, b_std]  # B's rush heads B's queue …
        assert await rig.queue(a) == a_queue  # … and A's queue is untouched
        assert not await rig.knows(a, rush)
    finally:
        await rig.resume_all(a)
        await rig.resume_all(b)
    for job_id in (*a_jobs, b_std, rush):
        result = await rig.result(job_id)
        assert result["status"] == "complete", (job_id, result)


async def _order_retrying(rig: FleetRig, shop_id: str, job_id: str | None = None) -> str:
    """An order for ``shop_id`` posted as a customer's client would: a connection that fails
    (a cloud process died holding it) is tried again with the same job id, which the cloud
    takes once however often it arrives."""
    order = rig.new_order(shop_id, **({} if job_id is None else {"job_id": job_id}))
    job_id = str(order["job_id"])
    for attempt in range(1, 6):
        try:
            status, body = await rig.stack.post_order(order)
        except OSError:  # urllib's URLError too: refused or reset
            await asyncio.sleep(0.2 * attempt)
            continue
        assert status == 202, f"order refused: {status} {body}"
        return job_id
    raise AssertionError(f"{job_id}: the Order API's port answered no attempt")


def _journaled(path: Path) -> int:
    """How many orders a cloud process's intake journal ever took (its row id sequence)."""
    import sqlite3

    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        row = db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'intake'").fetchone()
        return int(row[0]) if row else 0
    finally:
        db.close()


async def cloud_failover(rig: FleetRig, after: int = 4, at_least: int = 2) -> None:
    """Two cloud processes behind one port; one is SIGKILLed while jobs are in flight.

    Orders go to the Order API's port (the kernel spreads connections over the processes)
    until the doomed replica has taken ``at_least`` of them, then it is killed with jobs in
    flight, and ``after`` more orders per workshop arrive (one of them posted twice). Every
    accepted order completes, engraved once by its own workshop: no order lost, no workflow
    stuck, no job started twice (the dispatchers of both processes share the intake queues).
    """
    replicas = rig.stack.cloud_replicas
    assert replicas, "cloud_failover needs a rig with cloud_processes >= 2"
    name, doomed = next(iter(replicas.items()))
    journal = rig.stack.settings.workdir / f"intake-{name}.db"
    jobs: dict[str, str] = {}

    def busy() -> bool:  # it took orders, and its worker ran the flow's cloud activities
        log = doomed.log_path.read_text("utf-8", "replace")
        return _journaled(journal) >= at_least and "crown_edge.cloud.activities" in log

    for i in range(60):  # until the doomed one is busy: orders, workflows, activities
        shop = rig.shops[i % len(rig.shops)]
        jobs[await _order_retrying(rig, shop)] = shop
        if i >= 3 and await asyncio.to_thread(busy):
            break
        await asyncio.sleep(0.5)
    assert await asyncio.to_thread(busy), f"{name} took no share of {len(jobs)} orders"
    started = time.monotonic()
    await doomed.stop(kill=True)  # an Order API, a dispatcher, a bridge and a worker die
    for _ in range(after):
        for shop in rig.shops:
            jobs[await _order_retrying(rig, shop)] = shop
    again = next(iter(jobs))
    await _order_retrying(rig, jobs[again], job_id=again)  # posted twice: still one job
    for job_id in jobs:
        result = await rig.result(job_id, timeout=300.0)
        assert result["status"] == "complete", (job_id, result)
    for job_id, shop in jobs.items():
        await rig.made_once_by(shop, job_id)
    # one workflow run per job, whichever dispatcher took its message(s)
    client = rig.stack.client
    for job_id in jobs:
        query = f"WorkflowId = '{workflow_id(job_id)}'"
        runs = [w async for w in client.list_workflows(query)]
        assert len(runs) == 1, (job_id, [r.run_id for r in runs])
    print(
        f"cloud_failover: {len(jobs)} jobs complete, "
        f"{time.monotonic() - started:.1f} s after {name} was killed",
        flush=True,
    )


Scenario = Callable[[FleetRig], Awaitable[None]]
ALL: dict[str, Scenario] = {
    "orders_stay_in_their_shop": orders_stay_in_their_shop,
    "shop_outage": shop_outage,
    "broker_isolation": broker_isolation,
    "rush_at_b_keeps_a_queue": rush_at_b_keeps_a_queue,
    "cloud_failover": cloud_failover,
}


@contextlib.asynccontextmanager
async def fleet_rig(workdir: Path, shops: int = 3, **settings: Any) -> AsyncIterator[FleetRig]:
    """A :class:`FleetRig` on a fresh fleet stack (auto QA, one flat laser a workshop, no
    rotary, a small sim time scale: light on a shared box)."""
    if shops < 2:
        raise ValueError("a fleet needs at least two workshops")
    params: dict[str, Any] = {
        "qa_mode": "auto",
        "lasers": 1,
        "rotary": False,
        "time_scale": 0.005,
        "shops": shops,
    }
    params.update(settings)
    async with FullStack(StackSettings(workdir=workdir, **params)) as stack:
        yield FleetRig(stack)


async def run(
    names: list[str],
    workdir: Path,
    shops: int,
    outage_s: float,
    kill: bool = False,
    cloud_processes: int = 1,
) -> int:
    """Run the named scenarios on one fleet rig; the exit status (0 ok, 1 a failure)."""
    passed = failed = 0
    if "cloud_failover" in names and cloud_processes < 2:
        print("SKIP cloud_failover (needs --cloud-processes 2 or more)", flush=True)
        names = [n for n in names if n != "cloud_failover"]
    async with fleet_rig(workdir, shops, cloud_processes=cloud_processes) as rig:
        print(f"fleet: {', '.join(rig.shops)} ({workdir})", flush=True)
        for name in names:
            started = time.monotonic()
            try:
                if name == "shop_outage":
                    await shop_outage(rig, outage_s, kill=kill)
                else:
                    await ALL[name](rig)
            except Exception:
                failed += 1
                print(f"FAIL {name} ({time.monotonic() - started:.1f} s)", flush=True)
                traceback.print_exc()
            else:
                passed += 1
                print(f"PASS {name} ({time.monotonic() - started:.1f} s)", flush=True)
    print(f"{passed} passed, {failed} failed", flush=True)
    return 1 if failed else 0


def main() -> None:
    """Command line entry point."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scenario", action="append", choices=sorted(ALL))
    parser.add_argument("--shops", type=int, default=3)
    parser.add_argument("--outage-s", type=float, default=OUTAGE_S)
    parser.add_argument("--kill", action="store_true", help="shop_outage: SIGKILL shop B")
    parser.add_argument(
        "--cloud-processes", type=int, default=1, help="cloud processes (cloud_failover: 2+)"
    )
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args()
    if args.shops < 2:
        parser.error("--shops: at least 2")
    logging.basicConfig(level=logging.INFO if args.verbose else logging.ERROR)
    names = args.scenario or list(ALL)
    with tempfile.TemporaryDirectory(prefix="crown-fleet-") as tmp:
        workdir = args.workdir or Path(tmp)
        status = asyncio.run(
            run(names, workdir, args.shops, args.outage_s, args.kill, args.cloud_processes)
        )
    sys.exit(status)


if __name__ == "__main__":
    main()
