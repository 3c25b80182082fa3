"""The rig: the whole flow plus the handles a scenario needs (orders, technician, faults).

Two ways to build it, the same scenarios on both:

* :func:`rig` without a target: :class:`~crown_edge.stack.FullStack` with in-process simulated
  lasers and the simulated rotary chuck (faults go straight to the simulators' objects);
* :func:`rig` with ``target=FILE`` (a :mod:`hil.target` file): the stack with the target's
  machines and Modbus devices, the workshop daemon as its own ``crown-edge run`` process, every
  machine **dry** (``laser = "dry"``: all motion, no power) unless ``laser_armed``, and faults
  injected the way the target says (a Modbus coil write, a command such as ``uhubctl``). A
  target with ``[simulator]`` first gets its simulator processes (:mod:`hil.bench_sim`).

With ``laser_armed`` every order first reads the target's ``[safety]`` interlocks; one not safe
raises :class:`LaserRefused`, whose message is the one line the runner prints.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from crown_edge.control import call
from crown_edge.stack import FullStack, StackSettings
from crown_edge.toolpath import fires_laser
from hil.bench_sim import SimBench
from hil.target import Target, TargetError, load_target, read_simulator

END = {"complete", "escalated", "cancelled", "failed", "blocked", "revision_requested"}
#: faults the in-process simulators take (the door and e-stop only where the chuck's I/O is)
INPROCESS_FAULTS = ("door", "estop", "unplug", "controller_reset", "alarm")
#: an in-process alarm comes after this many lines of the next program (as hil.bench_sim's)
ALARM_AFTER_LINE = 30
#: how long a Modbus fault's interlocks may take to follow its relay coil (s)
FOLLOW_S = 5.0
F = TypeVar("F", bound=Callable[..., Awaitable[None]])
#: the repository root: fault commands run ``python -m hil.…`` from anywhere
ROOT = str(Path(__file__).resolve().parents[1])


class LaserRefused(Exception):
    """``--laser-armed`` and an interlock not safe (or no interlock to read): no job is sent."""


def needs(*kinds: str) -> Callable[[F], F]:
    """Declare the faults a scenario injects (the runner skips it where one cannot be)."""

    def mark(fn: F) -> F:
        fn.needs = kinds  # type: ignore[attr-defined]
        return fn

    return mark


class Rig:
    """Drives a running :class:`FullStack` the way customers and technicians would."""

    def __init__(
        self,
        stack: FullStack,
        target: Target | None = None,
        bench: SimBench | None = None,
        laser_armed: bool = False,
    ) -> None:
        self.stack = stack
        assert stack.config is not None
        self.config = stack.config
        self.socket = stack.config.control_socket
        self.target = target
        self.bench = bench
        self.laser_armed = laser_armed
        self.qa_plan: dict[str, list[bool]] = {}  # job -> verdicts in order; default pass
        self.qa_given: dict[str, list[bool]] = {}
        self._counter = 0
        self._scales: dict[str, float] = {}
        self._qa_task: asyncio.Task[None] | None = None

    # --- customer ------------------------------------------------------------------------------

    def new_id(self, prefix: str = "H") -> str:
        """A job id unique in this rig."""
        self._counter += 1
        return f"{prefix}-{int(time.time()) % 100000}-{self._counter:03d}"

    async def order(self, **fields: Any) -> str:
        """Place an order through the Order API (HTTP); returns its job id.

        With the laser armed, the interlocks are read first: :class:`LaserRefused` if one is
        not safe (nothing is ordered).
        """
        if self.laser_armed:
            await self.check_armed()
        order = {
            "job_id": fields.pop("job_id", None) or self.new_id(),
            "customer_id": "CUST-1",
            "item_id": "plaque-a5",
            "due_date": "2026-12-24T17:00:00Z",
            "text": ["Club Champion", "2026"],
        }
        order.update(fields)
        status, body = await self.stack.post_order(order)
        assert status == 202, f"order refused: {status} {body}"
        return str(order["job_id"])

    async def view(self, job_id: str) -> dict[str, Any]:
        """The workflow's view of the job (status, retry_count, queue_position, ...)."""
        return await self.stack.job_view(job_id) or {"status": "received"}

    async def wait_for(self, job_id: str, *statuses: str, timeout: float = 120.0) -> dict[str, Any]:
        """Until the workflow reports one of ``statuses``; AssertionError on timeout or end."""
        deadline = time.monotonic() + timeout
        view: dict[str, Any] = {}
        while time.monotonic() < deadline:
            view = await self.view(job_id)
            if view.get("status") in statuses:
                return view
            if view.get("status") in END:
                break
            await asyncio.sleep(0.2)
        raise AssertionError(f"{job_id}: wanted {statuses}, got {view.get('status')}: {view}")

    async def wait_edge(self, job_id: str, *statuses: str, timeout: float = 120.0) -> Any:
        """Until the workshop's own record of the job is in one of ``statuses``."""
        deadline = time.monotonic() + timeout
        job: Any = None
        while time.monotonic() < deadline:
            with contextlib.suppress(Exception):
                job = await self.ctl("jobs.show", job_id=job_id)
                if job["status"] in statuses:
                    return job
            await asyncio.sleep(0.2)
        raise AssertionError(f"{job_id} on the workshop: wanted {statuses}, got {job}")

    async def result(self, job_id: str, timeout: float = 180.0) -> dict[str, Any]:
        """The workflow's final result."""
        return await self.stack.result(job_id, timeout)

    # --- technician ----------------------------------------------------------------------------

    async def ctl(self, cmd: str, **args: Any) -> Any:
        """A technician command over the daemon's control socket."""
        return await call(self.socket, cmd, args)

    def machine(self, machine_id: str) -> Any:
        """The daemon's machine object (``.simulator`` for fault injection); in-process only."""
        assert self.stack.daemon is not None, "the daemon runs as its own process on a target"
        return self.stack.daemon.machines[machine_id]

    async def unlock(self, machine_id: str) -> None:
        """``$X`` on the machine, as the technician's ``machines action unlock`` does."""
        await self.ctl("machines.action", machine_id=machine_id, action="unlock")

    # --- machines --------------------------------------------------------------------------

    @property
    def machine_ids(self) -> list[str]:
        """Configured machines, in order."""
        return [m.id for m in self.config.machines]

    @property
    def dry(self) -> bool:
        """True when every machine runs the dry form (a target without ``--laser-armed``)."""
        return self.target is not None and not self.laser_armed

    def machine_for(self, item_id: str, among: list[str] | None = None) -> str:
        """The first machine (of ``among``) that can engrave ``item_id``."""
        item = self.stack.catalog.item(item_id)
        material = item.material
        cylinder = item.surface.value == "cylinder"
        for m in self.config.machines:
            if among is not None and m.id not in among:
                continue
            if (not m.materials or material in m.materials) and (m.has_rotary or not cylinder):
                return m.id
        raise AssertionError(f"no machine of {among or self.machine_ids} engraves {item_id}")

    def item_for(self, machine_id: str) -> str:
        """An item ``machine_id`` can engrave (a cylinder on a rotary, else a plate)."""
        # a rotary shows its chuck; plaque-small is left out (a scenario empties its stock)
        plates = ("plaque-a5", "trophy-plate", "acrylic-award")
        cylinders = ("glass-tumbler", "cup-silver")
        rotary = next(m.has_rotary for m in self.config.machines if m.id == machine_id)
        for item_id in (*cylinders, *plates) if rotary else (*plates, *cylinders):
            with contextlib.suppress(AssertionError):
                if self.machine_for(item_id, [machine_id]) == machine_id:
                    return item_id
        raise AssertionError(f"{machine_id} engraves no catalogue item")

    @contextlib.asynccontextmanager
    async def only(self, machine_id: str) -> AsyncIterator[None]:
        """Every other machine paused: the jobs placed meanwhile go to ``machine_id``."""
        others = [m for m in self.machine_ids if m != machine_id]
        for mid in others:
            await self.ctl("machines.pause", machine_id=mid)
        try:
            yield
        finally:
            for mid in others:
                await self.ctl("machines.resume", machine_id=mid)

    async def recover(self, machine_id: str, timeout: float = 60.0) -> dict[str, Any]:
        """Until the machine is AVAILABLE again, unlocking it (``$X``) while it is in alarm —
        what a technician does after a reset or a power cut."""
        deadline = time.monotonic() + timeout
        row: dict[str, Any] = {}
        error: Exception | None = None
        while time.monotonic() < deadline:
            rows = {r["machine_id"]: r for r in await self.ctl("machines.list")}
            row = rows.get(machine_id, {})
            if row.get("availability") == "AVAILABLE":
                return row
            if row.get("alarm"):
                try:
                    await self.unlock(machine_id)
                except Exception as exc:  # not connected yet: again on the next round
                    error = exc
            await asyncio.sleep(0.3)
        raise AssertionError(f"{machine_id} never came back: {row} (unlock: {error!r})")

    async def wait_running(self, job_id: str, timeout: float = 60.0) -> dict[str, Any]:
        """Until the job's program runs (``engraving`` with a line acknowledged)."""
        await self.wait_edge(job_id, "engraving", timeout=timeout)
        # "engraving" is recorded at the claim, before the pre-job interlock check
        deadline = time.monotonic() + timeout
        shown: dict[str, Any] = {}
        while time.monotonic() < deadline:
            shown = await self.ctl("jobs.show", job_id=job_id)
            if shown["status"] == "engraving" and (shown["acked_lines"] or 0) > 0:
                return shown
            if shown["status"] != "engraving":
                break
            await asyncio.sleep(0.02)
        raise AssertionError(f"{job_id} never started its program: {shown}")

    # --- what the simulators saw (None where the target is hardware) --------------------------

    async def engraved(self, job_id: str) -> list[dict[str, Any]] | None:
        """Every program received for ``job_id`` on any machine: ``received`` lines,
        ``executed`` count, ``interrupted``, ``resets_at`` (lines received by each reset, None
        when unknown). None on hardware (no record)."""
        if self.bench is not None and self.target is not None:
            out: list[dict[str, Any]] = []
            for m in self.target.simulator.machines if self.target.simulator else ():
                got = await self.bench.control(m.id, "programs", job_id=job_id)
                out.extend({**p, "machine_id": m.id} for p in got["programs"])
            return out
        if self.target is not None or self.stack.daemon is None:
            return None
        return [
            {
                "machine_id": mid,
                "job_id": p.job_id,
                "received": list(p.received),
                "executed": len(p.executed),
                "interrupted": p.interrupted,
                "resets_at": None,
            }
            for mid, machine in self.stack.daemon.machines.items()
            if getattr(machine, "simulator", None) is not None
            for p in getattr(machine, "simulator").runs_of(job_id)  # noqa: B009
        ]

    async def laser_on(self, machine_id: str) -> bool | None:
        """Whether the simulator fires right now (None on hardware)."""
        if self.bench is not None:
            return bool((await self.bench.control(machine_id, "state"))["laser_on"])
        if self.target is not None:
            return None
        return bool(self.machine(machine_id).simulator.laser_on)

    async def set_time_scale(self, machine_id: str, value: float) -> float | None:
        """Set a simulator's time scale; the previous one (None on hardware: real time)."""
        if self.bench is not None:
            assert self.target is not None and self.target.simulator is not None
            sm = next(m for m in self.target.simulator.machines if m.id == machine_id)
            previous = self._scales.get(machine_id, sm.time_scale)
            await self.bench.control(machine_id, "time_scale", value=value)
            self._scales[machine_id] = value
            return previous
        if self.target is not None:
            return None
        sim = self.machine(machine_id).simulator
        previous, sim.time_scale = sim.time_scale, value
        return float(previous)

    # --- faults ----------------------------------------------------------------------------

    def cannot_inject(self, kind: str, machine_id: str | None = None) -> str | None:
        """Why ``kind`` cannot be injected (on ``machine_id``) here, or None."""
        if self.target is not None:
            return self.target.cannot_inject(kind, machine_id)
        if kind not in INPROCESS_FAULTS:
            return f"the simulators cannot inject {kind}"
        if kind in ("door", "estop"):
            io = [m.id for m in self.config.machines if m.rotary is not None]
            if not io or (machine_id is not None and machine_id not in io):
                return f"no Modbus I/O on {machine_id or 'any machine'} to inject {kind}"
        return None

    def fault_machines(self, kind: str) -> list[str]:
        """The machines ``kind`` can be injected on."""
        return [m for m in self.machine_ids if self.cannot_inject(kind, m) is None]

    async def inject(self, kind: str, machine_id: str) -> None:
        """Inject ``kind`` on ``machine_id`` the way this bench does it."""
        await self._fault(kind, machine_id, inject=True)

    async def clear(self, kind: str, machine_id: str) -> None:
        """Undo ``kind`` (door closed, e-stop released, USB power back); no-op if one-shot."""
        await self._fault(kind, machine_id, inject=False)

    async def _fault(self, kind: str, machine_id: str, *, inject: bool) -> None:
        reason = self.cannot_inject(kind, machine_id)
        if reason is not None:
            raise AssertionError(reason)
        if self.target is None:
            self._fault_inprocess(kind, machine_id, inject)
            return
        fault = self.target.faults[kind]
        if fault.by_modbus:
            from crown_edge.drivers.modbus import ModbusDevice

            dev = next(d for d in self.target.devices if d.id == fault.device)
            assert fault.point is not None
            value = fault.value if inject else not fault.value
            async with ModbusDevice.from_profile(dev.id, dev.profile, dev.url) as io:
                await io.write_point(fault.point, value)
                await self._interlocks_follow(io, kind, inject=inject)
            return
        argv = fault.argv("inject" if inject else "clear", machine_id)
        if argv:
            await run_command(argv)

    async def _interlocks_follow(
        self, io: Any, kind: str, *, inject: bool, within: float = FOLLOW_S
    ) -> None:
        """Wait until the device's ``[safety]`` interlocks show the fault (one reads unsafe) or
        its end (all read safe): a relay takes its switching time, and the next check must see
        the door as it now is. AssertionError naming the points if they never follow."""
        assert self.target is not None
        device = self.target.faults[kind].device
        points = [i for i in self.target.safety.interlocks if i.device == device]
        if not points:
            return
        values: dict[str, Any] = {}
        deadline = asyncio.get_running_loop().time() + within
        while True:
            values = await io.read_points(*(i.point for i in points))
            unsafe = [i for i in points if values.get(i.point) != i.safe]
            if (inject and unsafe) or (not inject and not unsafe):
                return
            if asyncio.get_running_loop().time() >= deadline:
                raise AssertionError(
                    f"{kind} {'inject' if inject else 'clear'}: the interlocks of {device} "
                    f"did not follow within {within:.0f} s: {values}"
                )
            await asyncio.sleep(0.01)

    def _fault_inprocess(self, kind: str, machine_id: str, inject: bool) -> None:
        if kind in ("door", "estop"):
            modbus = self.stack.modbus
            action = {
                ("door", True): modbus.open_door,
                ("door", False): modbus.close_door,
                ("estop", True): modbus.press_estop,
                ("estop", False): modbus.release_estop,
            }[(kind, inject)]
            action()
            return
        sim = self.machine(machine_id).simulator
        if kind == "unplug":
            (sim.unplug if inject else sim.replug)()
        elif kind == "controller_reset" and inject:
            sim._realtime(0x18)  # the reset pin: grbl resets exactly as on Ctrl-X
        elif kind == "alarm" and inject:
            sim.alarm_after_line(ALARM_AFTER_LINE, code=1)

    # --- safety ----------------------------------------------------------------------------

    async def check_armed(self) -> None:
        """Read the target's ``[safety]`` interlocks; :class:`LaserRefused` unless all safe."""
        if self.target is None:
            return
        refused = "--laser-armed"
        safety = self.target.safety
        if not safety.allow_armed:
            raise LaserRefused(f"{refused}: target {self.target.name!r} sets allow_armed = false")
        if not safety.interlocks:
            raise LaserRefused(
                f"{refused}: target {self.target.name!r} names no [safety] interlocks"
            )
        from crown_edge.drivers.modbus import ModbusDevice
        from crown_edge.errors import DriverError

        for dev in self.target.devices:
            points = [i for i in safety.interlocks if i.device == dev.id]
            if not points:
                continue
            try:
                async with ModbusDevice.from_profile(dev.id, dev.profile, dev.url) as io:
                    values = await io.read_points(*(i.point for i in points))
            except DriverError as exc:
                raise LaserRefused(
                    f"{refused}: cannot read the interlocks of {dev.id}: {exc}"
                ) from None
            for i in points:
                if values.get(i.point) != i.safe:
                    raise LaserRefused(
                        f"{refused}: interlock {dev.id}:{i.point} reads {values.get(i.point)!r},"
                        f" needs {i.safe!r} ({i.reason}) before a job"
                    )

    async def assert_never_fired(self, job_id: str) -> None:
        """On a dry rig: no program received for the job switched the laser on with power."""
        if not self.dry:
            return
        records = await self.engraved(job_id)
        for record in records or []:
            assert not fires_laser(record["received"]), (job_id, "fired on a dry rig")

    @contextlib.asynccontextmanager
    async def technician_qa(self) -> AsyncIterator[None]:
        """A technician at the QA bench: verdicts from ``qa_plan`` (default: pass)."""
        self._qa_task = asyncio.create_task(self._qa_loop())
        try:
            yield
        finally:
            self._qa_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._qa_task

    async def _qa_loop(self) -> None:
        while True:
            for job in await self.ctl("jobs.list", status="qa_pending"):
                job_id = job["job_id"]
                plan = self.qa_plan.get(job_id, [])
                given = self.qa_given.setdefault(job_id, [])
                verdict = plan[len(given)] if len(given) < len(plan) else True
                with contextlib.suppress(Exception):
                    await self.ctl("qa.verdict", job_id=job_id, passed=verdict, notes="rig")
                    given.append(verdict)
            await asyncio.sleep(0.2)


async def run_command(argv: list[str], timeout: float = 60.0) -> None:
    """Run a fault command (``uhubctl …``, the fake switch); AssertionError if it fails."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (ROOT, env.get("PYTHONPATH")) if p)
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=env,
    )
    try:
        async with asyncio.timeout(timeout):
            out, _ = await proc.communicate()
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise AssertionError(f"fault command timed out: {argv}") from None
    if proc.returncode != 0:
        text = out.decode(errors="replace").strip()
        raise AssertionError(f"fault command failed ({proc.returncode}): {argv}: {text}")


@contextlib.asynccontextmanager
async def rig(
    workdir: Path,
    target: Path | None = None,
    *,
    laser_armed: bool = False,
    **settings: Any,
) -> AsyncIterator[Rig]:
    """A rig on a fresh FullStack (manual QA: the rig's technician answers).

    ``target``: a target file; its machines and devices instead of the built-in simulators
    (see the module docstring). ``laser_armed`` only means something with a target.
    """
    if target is not None:
        async with _target_rig(workdir, target, laser_armed, settings) as r:
            yield r
        return
    params: dict[str, Any] = {"qa_mode": "manual", "time_scale": 0.05, "lasers": 3}
    params.update(settings)
    async with FullStack(StackSettings(workdir=workdir, **params)) as stack:
        r = Rig(stack)
        async with r.technician_qa():
            yield r


def missing_device(target: Target) -> None:
    """Raise :class:`~hil.target.TargetError` (one line) for the first serial device path of
    the target that does not exist (a controller not plugged in, a by-id name mistyped)."""
    ports = [(f"machines.{m.id}", "port", m.port) for m in target.machines]
    for d in target.devices:
        if d.url.startswith("rtu://"):
            ports.append((f"devices.{d.id}", "url", d.url.removeprefix("rtu://").split("?")[0]))
    for section, key, port in ports:
        if port.startswith("/") and not os.path.exists(port):
            raise TargetError(
                target.path, section, key, f"no such device: {port}", "a connected device"
            )


@contextlib.asynccontextmanager
async def _target_rig(
    workdir: Path, path: Path, laser_armed: bool, settings: dict[str, Any]
) -> AsyncIterator[Rig]:
    async with contextlib.AsyncExitStack() as es:
        bench: SimBench | None = None
        if read_simulator(path) is not None:
            bench = await es.enter_async_context(SimBench(path, workdir / "bench"))
            assert bench.target is not None
            target = bench.target
        else:
            target = load_target(path)
        missing_device(target)
        laser = "armed" if laser_armed else "dry"
        params: dict[str, Any] = {
            "qa_mode": "manual",
            "lasers": 0,
            "rotary": False,
            "extra_machines": tuple(dataclasses.replace(m, laser=laser) for m in target.machines),
            "extra_devices": target.devices,
            "edge_process": True,
        }
        params.update(settings)
        stack = await es.enter_async_context(FullStack(StackSettings(workdir=workdir, **params)))
        r = Rig(stack, target=target, bench=bench, laser_armed=laser_armed)
        await es.enter_async_context(r.technician_qa())
        yield r
