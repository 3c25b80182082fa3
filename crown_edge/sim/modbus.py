"""A Modbus device simulator: a pymodbus TCP server exposing a device profile's points.

Used by tests, ``crown-edge up``, ``crown-edge sim modbus`` and the HIL rig. It serves exactly the
profile's addresses (anything else answers ``ILLEGAL ADDRESS``), refuses writes to read-only
points, and has test hooks for the physical world and for faults::

    async with ModbusSimulator("rotary-io") as sim:
        device = ModbusDevice.from_profile("rotary-1", sim.profile, sim.url)
        sim.open_door()                      # set any point: sim.set_point("door_closed", False)
        sim.fail_point("estop_released", 4)  # answer Modbus exception 4 for that point
        sim.silence_point("door_closed")     # never answer requests touching that point
        sim.disconnect_clients()             # drop every client connection
        await sim.clear_faults()

The server binds ``127.0.0.1`` on an ephemeral port by default; :attr:`ModbusSimulator.url` is
``tcp://127.0.0.1:PORT`` (or ``rtu+tcp://...`` with ``framer="rtu"``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Literal, Self, cast

from pymodbus.constants import ExcCodes
from pymodbus.datastore import ModbusServerContext
from pymodbus.framer import FramerType
from pymodbus.server import ModbusTcpServer

from crown_edge.drivers.modbus import codec
from crown_edge.drivers.modbus.profile import (
    DeviceProfile,
    Point,
    PointKind,
    PointSpec,
    Value,
    load_profile,
)

logger = logging.getLogger(__name__)

# Modbus function code -> the table it addresses.
_TABLE: dict[int, PointKind] = {
    1: PointKind.COIL,
    5: PointKind.COIL,
    15: PointKind.COIL,
    2: PointKind.DISCRETE_INPUT,
    3: PointKind.HOLDING_REGISTER,
    6: PointKind.HOLDING_REGISTER,
    16: PointKind.HOLDING_REGISTER,
    22: PointKind.HOLDING_REGISTER,
    23: PointKind.HOLDING_REGISTER,
    4: PointKind.INPUT_REGISTER,
}

#: A fault on a point: ``"silent"`` (never answer) or a Modbus exception code to answer with.
Fault = Literal["silent"] | int


class ModbusSimulator:
    """A simulated Modbus TCP device serving a profile's points; an async context manager."""

    def __init__(
        self,
        profile: DeviceProfile | str | Path = "rotary-io",
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        framer: Literal["tcp", "rtu"] = "tcp",
        initial: Mapping[str, Value] | None = None,
    ) -> None:
        """Serve ``profile`` on ``host:port`` (0 picks a free port) with ``framer`` framing.

        Points start at zero/false, then the profile's ``[simulator.initial]``, then ``initial``.
        """
        self.profile = profile if isinstance(profile, DeviceProfile) else load_profile(profile)
        self.host = host
        self.port = port
        self.framer = framer
        self.requests = 0
        self._memory: dict[tuple[int, PointKind, int], int | bool] = {}
        self._owner: dict[tuple[int, PointKind, int], PointSpec] = {}
        for spec in self.profile.points.values():
            for addr in range(spec.address, spec.address + spec.width):
                key = (spec.unit, spec.kind, addr)
                self._owner[key] = spec
                self._memory[key] = False if spec.kind.is_bit else 0
        for name, value in {**self.profile.sim_initial, **(initial or {})}.items():
            self.set_point(name, value)
        self._faults: dict[str, Fault] = {}
        self._silent_all = False
        self._held: set[asyncio.Task[object]] = set()
        self._changed: asyncio.Condition | None = None
        self._server: ModbusTcpServer | None = None

    # --- lifecycle ---------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The device URL clients use, e.g. ``tcp://127.0.0.1:40123``."""
        if self._server is None:
            raise RuntimeError("the simulator is not running")
        scheme = "rtu+tcp" if self.framer == "rtu" else "tcp"
        return f"{scheme}://{self.host}:{self.port}"

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        """Start listening; afterwards :attr:`port` is the bound port."""
        self._changed = asyncio.Condition()
        framer = FramerType.RTU if self.framer == "rtu" else FramerType.SOCKET
        server = ModbusTcpServer(_Datastore(self), framer=framer, address=(self.host, self.port))
        await server.serve_forever(background=True)
        listener = cast(asyncio.Server, server.transport)
        self.port = int(listener.sockets[0].getsockname()[1])
        self._server = server
        logger.info("modbus simulator %s listening on %s", self.profile.name, self.url)

    async def stop(self) -> None:
        """Answer nothing more, drop clients and stop listening. Safe to call twice."""
        server, self._server = self._server, None
        if server is None:
            return
        await self._release_held()
        listener = cast(asyncio.Server | None, server.transport)
        await server.shutdown()  # type: ignore[no-untyped-call]
        if listener is not None:
            await listener.wait_closed()
        await asyncio.sleep(0)  # let the connections' close callbacks run

    # --- test hooks: the physical world ------------------------------------------------------

    def set_point(self, name: str, value: Value) -> None:
        """Set a point as the device would see it (any point, whatever its access)."""
        spec = self.profile.point(name)
        raw = codec.encode(spec, value)
        words: Sequence[int | bool] = [raw] if isinstance(raw, bool) else raw
        for offset, word in enumerate(words):
            self._memory[(spec.unit, spec.kind, spec.address + offset)] = word

    def get_point(self, name: str) -> Value:
        """The current value of a point (e.g. to see what a client wrote)."""
        spec = self.profile.point(name)
        raw = [self._memory[(spec.unit, spec.kind, spec.address + i)] for i in range(spec.width)]
        return codec.decode(spec, raw)

    def open_door(self) -> None:
        """Open the door (``door_closed`` = false)."""
        self.set_point(Point.DOOR_CLOSED, False)

    def close_door(self) -> None:
        """Close the door."""
        self.set_point(Point.DOOR_CLOSED, True)

    def press_estop(self) -> None:
        """Press the e-stop (``estop_released`` = false)."""
        self.set_point(Point.ESTOP_RELEASED, False)

    def release_estop(self) -> None:
        """Release the e-stop."""
        self.set_point(Point.ESTOP_RELEASED, True)

    # --- test hooks: faults ------------------------------------------------------------------

    def fail_point(self, name: str, code: int = ExcCodes.DEVICE_FAILURE) -> None:
        """Answer every request touching ``name`` with Modbus exception ``code``."""
        self.profile.point(name)
        self._faults[name] = ExcCodes(code).value

    def silence_point(self, name: str) -> None:
        """Never answer requests touching ``name`` (the client times out)."""
        self.profile.point(name)
        self._faults[name] = "silent"

    def silence(self) -> None:
        """Never answer any request."""
        self._silent_all = True

    async def clear_faults(self) -> None:
        """Remove every fault; requests held by a silence are dropped unanswered."""
        self._faults.clear()
        self._silent_all = False
        await self._release_held()

    def disconnect_clients(self) -> int:
        """Close every client connection (the listener stays up); returns how many."""
        if self._server is None:
            return 0
        connections = list(self._server.active_connections.values())
        for connection in connections:
            connection.close()
        return len(connections)

    async def wait_requests(self, count: int) -> None:
        """Wait until the simulator has received ``count`` requests in total."""
        assert self._changed is not None, "the simulator is not running"
        async with self._changed:
            await self._changed.wait_for(lambda: self.requests >= count)

    # --- serving -----------------------------------------------------------------------------

    async def handle(
        self, unit: int, function_code: int, address: int, count: int, values: Sequence[object]
    ) -> list[int] | list[bool] | ExcCodes | None:
        """Serve one datastore access (called by the pymodbus server; ``values`` for writes)."""
        kind = _TABLE.get(function_code)
        if kind is None:
            return ExcCodes.ILLEGAL_FUNCTION
        keys = [(unit, kind, addr) for addr in range(address, address + count)]
        if values or function_code in (1, 2, 3, 4):  # a write's read-back is not a request
            await self._count_request()
        if any(key not in self._owner for key in keys):
            return ExcCodes.ILLEGAL_ADDRESS
        touched = {self._owner[key].name: self._owner[key] for key in keys}
        faults = [self._faults[name] for name in touched if name in self._faults]
        if self._silent_all or "silent" in faults:
            await self._hold()
        if faults:
            return ExcCodes(cast(int, faults[0]))
        if not values:
            return [self._memory[key] for key in keys]
        if any(not spec.writable for spec in touched.values()):
            return ExcCodes.ILLEGAL_ADDRESS
        for key, value in zip(keys, values, strict=True):
            self._memory[key] = bool(value) if kind.is_bit else int(cast(int, value)) & 0xFFFF
        return None

    async def _count_request(self) -> None:
        assert self._changed is not None
        async with self._changed:
            self.requests += 1
            self._changed.notify_all()

    async def _hold(self) -> None:
        """Park the request handler until a fault is cleared; it is then cancelled unanswered."""
        task = asyncio.current_task()
        assert task is not None
        self._held.add(task)
        try:
            await asyncio.get_running_loop().create_future()
        finally:
            self._held.discard(task)

    async def _release_held(self) -> None:
        held = list(self._held)
        for task in held:
            task.cancel()
        if held:
            await asyncio.wait(held)


class _Datastore(ModbusServerContext):
    """Routes the pymodbus server's datastore calls to :meth:`ModbusSimulator.handle`.

    pymodbus 3.x hands a :class:`ModbusServerContext` whose ``old_simulator`` flag is set straight
    to the request handlers; the base ``__init__`` (deprecated device contexts) is not wanted.
    """

    def __init__(self, sim: ModbusSimulator) -> None:
        self.simdevices = []
        self.old_simulator = True
        self._sim = sim

    def device_ids(self) -> list[int]:
        """Unit ids the profile uses."""
        return sorted({spec.unit for spec in self._sim.profile.points.values()})

    async def async_getValues(
        self, device_id: int, func_code: int, address: int, count: int = 1
    ) -> list[int] | list[bool] | ExcCodes:
        """Read ``count`` values."""
        result = await self._sim.handle(device_id, func_code, address, count, ())
        return ExcCodes.DEVICE_FAILURE if result is None else result

    async def async_setValues(
        self,
        device_id: int,
        func_code: int,
        address: int,
        values: Sequence[int] | Sequence[bool],
    ) -> ExcCodes | None:
        """Write ``values``."""
        result = await self._sim.handle(device_id, func_code, address, len(values), values)
        return result if isinstance(result, ExcCodes) else None
