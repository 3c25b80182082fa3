"""The asyncio face of one Modbus device: named points read and written over pymodbus.

:class:`ModbusDevice` owns one pymodbus async client (TCP, RTU over TCP, or serial RTU; see
:mod:`crown_edge.drivers.modbus.endpoint`). Callers speak in point names from the device profile;
every failure comes back as a :class:`~crown_edge.errors.DeviceError` naming the device and the
point, with ``reason`` one of ``timeout``, ``exception`` (the device answered a Modbus exception;
``code`` holds it), ``disconnected`` or ``unreachable``. pymodbus' own reconnect task is switched
off: the device reconnects on the next request, so no task runs that nobody owns.

Example::

    async with ModbusDevice.from_profile("rotary-1", "rotary-io", "tcp://10.0.0.7:502") as dev:
        await dev.check_interlocks()
        async with dev.monitor(on_trip=grbl_emergency_stop):
            ...  # stream the job
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, Self

from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.client.base import ModbusBaseClient
from pymodbus.constants import ExcCodes
from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException
from pymodbus.framer import FramerType
from pymodbus.pdu import ModbusPDU

from crown_edge.drivers.modbus import codec
from crown_edge.drivers.modbus.endpoint import Endpoint, Transport
from crown_edge.drivers.modbus.interlocks import InterlockMonitor, OnTrip, check_interlocks
from crown_edge.drivers.modbus.profile import (
    DeviceProfile,
    PointKind,
    PointSpec,
    Value,
    load_profile,
)
from crown_edge.errors import DeviceError, ValidationError

logger = logging.getLogger(__name__)


class DeviceSettings(Protocol):
    """What :meth:`ModbusDevice.from_config` needs of a device's config entry."""

    @property
    def id(self) -> str:
        """The device id, e.g. ``rotary-1``."""

    @property
    def profile(self) -> str:
        """A built-in profile name or a path to a TOML profile."""

    @property
    def url(self) -> str:
        """The device URL (``tcp://``, ``rtu+tcp://`` or ``rtu://``)."""


_Request = Callable[[ModbusBaseClient], Awaitable[ModbusPDU]]


class ModbusDevice:
    """One Modbus device reached at an :class:`Endpoint`, spoken to by point name.

    An async context manager: entering connects (a device that cannot be reached raises
    :class:`DeviceError` with ``reason="unreachable"``), leaving closes the link. Requests are
    serialised by pymodbus; a lost link is re-opened on the next request.
    """

    def __init__(
        self,
        device_id: str,
        profile: DeviceProfile,
        endpoint: Endpoint,
        *,
        timeout_s: float | None = None,
        retries: int | None = None,
    ) -> None:
        """Prefer :meth:`from_profile`. ``timeout_s``/``retries`` override the profile's."""
        self.device_id = device_id
        self.profile = profile
        self.endpoint = endpoint
        self.timeout_s = profile.timeout_s if timeout_s is None else timeout_s
        self.retries = profile.retries if retries is None else retries
        self._client: ModbusBaseClient | None = None
        self._connect_lock = asyncio.Lock()
        self._closed = False

    @classmethod
    def from_profile(
        cls,
        device_id: str,
        profile: DeviceProfile | str | Path,
        url: str,
        *,
        timeout_s: float | None = None,
        retries: int | None = None,
    ) -> ModbusDevice:
        """Build a device from a profile (object, TOML path or built-in name) and a URL.

        URL forms: ``tcp://HOST[:PORT]``, ``rtu+tcp://HOST:PORT``,
        ``rtu:///dev/ttyUSB0?baud=19200&parity=N&stopbits=1&bytesize=8``.
        """
        if not isinstance(profile, DeviceProfile):
            profile = load_profile(profile)
        return cls(device_id, profile, Endpoint.parse(url), timeout_s=timeout_s, retries=retries)

    @classmethod
    def from_config(cls, config: DeviceSettings) -> ModbusDevice:
        """Build from a ``[[devices]]`` entry of the edge config (``id``, ``profile``, ``url``)."""
        return cls.from_profile(config.id, config.profile, config.url)

    # --- lifecycle ---------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        """True while the link to the device is open."""
        return self._client is not None and self._client.connected

    async def __aenter__(self) -> Self:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def connect(self) -> None:
        """Open the link now (requests also open it on demand)."""
        self._closed = False
        await self._ensure_connected(())

    async def close(self) -> None:
        """Close the link. Safe to call twice."""
        self._closed = True
        client, self._client = self._client, None
        if client is not None:
            client.close()
            logger.info("modbus device %s: closed", self.device_id)
        # Let the transport's close callbacks run so the socket is released before we return.
        await asyncio.sleep(0)

    # --- points ------------------------------------------------------------------------------

    async def read_point(self, name: str) -> Value:
        """Read one point's value (``bool`` for bits, a number for registers)."""
        return (await self.read_points(name))[name]

    async def read_points(self, *names: str) -> dict[str, Value]:
        """Read several points, adjacent addresses in one request each."""
        specs = [self.profile.point(name) for name in dict.fromkeys(names)]
        values: dict[str, Value] = {}
        for block in codec.plan_reads(specs):
            request = _read_request(block.kind, block.address, block.count, block.unit)
            response = await self._execute(block.points, request)
            raw: Sequence[int] | Sequence[bool] = (
                response.bits if block.kind.is_bit else response.registers
            )
            if len(raw) < block.count:
                raise self._error(
                    block.points, "bad_response", f"asked {block.count} values, got {len(raw)}"
                )
            for spec in block.points:
                values[spec.name] = block.slice(spec, raw)
        return values

    async def write_point(self, name: str, value: Value) -> None:
        """Write a point the profile marks ``read_write``; a bad value is a ValidationError."""
        spec = self.profile.point(name)
        if not spec.writable:
            raise ValidationError(
                f"{self.device_id}: point {name} is read-only",
                device_id=self.device_id,
                point=name,
            )
        try:
            raw = codec.encode(spec, value)
        except ValueError as exc:
            raise ValidationError(
                f"{self.device_id}: {name}: {exc}", device_id=self.device_id, point=name
            ) from None
        request: _Request
        if isinstance(raw, bool):
            request = _write_coil(spec.address, raw, spec.unit)
        else:
            request = _write_registers(spec.address, raw, spec.unit)
        await self._execute((spec,), request)

    # --- interlocks --------------------------------------------------------------------------

    async def check_interlocks(self) -> None:
        """Raise :class:`~crown_edge.errors.InterlockOpen` naming the first unsafe interlock."""
        await check_interlocks(self)

    def monitor(
        self,
        on_trip: OnTrip,
        *,
        poll_hz: float | None = None,
        failures_to_trip: int | None = None,
    ) -> InterlockMonitor:
        """An :class:`InterlockMonitor` polling this device's monitored interlocks."""
        return InterlockMonitor(self, on_trip, poll_hz=poll_hz, failures_to_trip=failures_to_trip)

    # --- internals ---------------------------------------------------------------------------

    def _make_client(self) -> ModbusBaseClient:
        ep = self.endpoint
        common: dict[str, Any] = {
            "name": self.device_id,
            "timeout": self.timeout_s,
            "retries": self.retries,
            "reconnect_delay": 0,
        }
        if ep.transport is Transport.RTU:
            return AsyncModbusSerialClient(
                ep.device,
                framer=FramerType.RTU,
                baudrate=ep.baud,
                parity=ep.parity,
                stopbits=ep.stopbits,
                bytesize=ep.bytesize,
                **common,
            )
        framer = FramerType.RTU if ep.transport is Transport.RTU_TCP else FramerType.SOCKET
        return AsyncModbusTcpClient(ep.host, port=ep.port, framer=framer, **common)

    async def _ensure_connected(self, points: Sequence[PointSpec]) -> ModbusBaseClient:
        async with self._connect_lock:
            if self._closed and points:
                raise self._error(points, "disconnected", "device is closed")
            if self._client is None:
                self._client = self._make_client()
            client = self._client
            if client.connected:
                return client
            try:
                async with asyncio.timeout(self.timeout_s * 2 + 1):
                    ok = await client.connect()
            except TimeoutError:
                ok = False
            if not ok or not client.connected:
                client.close()
                raise self._error(points, "unreachable", f"cannot connect to {self.endpoint}")
            logger.info("modbus device %s: connected to %s", self.device_id, self.endpoint)
            return client

    async def _execute(self, points: Sequence[PointSpec], request: _Request) -> ModbusPDU:
        client = await self._ensure_connected(points)
        budget = self.timeout_s * (self.retries + 1) + 1.0
        try:
            async with asyncio.timeout(budget):
                response = await request(client)
        except ConnectionException as exc:
            raise self._error(points, "disconnected", "link lost") from exc
        except (ModbusIOException, TimeoutError) as exc:
            if not client.connected:
                raise self._error(points, "disconnected", "link lost") from exc
            raise self._error(points, "timeout", f"no response within {self.timeout_s} s") from exc
        except ModbusException as exc:
            raise self._error(points, "protocol", str(exc)) from exc
        if response.isError():
            code = int(getattr(response, "exception_code", 0))
            try:
                code_name = ExcCodes(code).name
            except ValueError:
                code_name = "UNKNOWN"
            raise self._error(
                points,
                "exception",
                f"device answered exception {code} ({code_name})",
                code=code,
                code_name=code_name,
            )
        return response

    def _error(
        self, points: Sequence[PointSpec], reason: str, detail: str, **fields: Any
    ) -> DeviceError:
        names = ", ".join(p.name for p in points) or "(connect)"
        where = f" ({points[0].describe()})" if len(points) == 1 else ""
        return DeviceError(
            f"modbus device {self.device_id}: {names}{where}: {detail}",
            device_id=self.device_id,
            point=names,
            reason=reason,
            endpoint=str(self.endpoint),
            **fields,
        )


def _read_request(kind: PointKind, address: int, count: int, unit: int) -> _Request:
    def request(client: ModbusBaseClient) -> Awaitable[ModbusPDU]:
        if kind is PointKind.COIL:
            return client.read_coils(address, count=count, device_id=unit)
        if kind is PointKind.DISCRETE_INPUT:
            return client.read_discrete_inputs(address, count=count, device_id=unit)
        if kind is PointKind.HOLDING_REGISTER:
            return client.read_holding_registers(address, count=count, device_id=unit)
        return client.read_input_registers(address, count=count, device_id=unit)

    return request


def _write_coil(address: int, value: bool, unit: int) -> _Request:
    def request(client: ModbusBaseClient) -> Awaitable[ModbusPDU]:
        return client.write_coil(address, value, device_id=unit)

    return request


def _write_registers(address: int, words: list[int], unit: int) -> _Request:
    def request(client: ModbusBaseClient) -> Awaitable[ModbusPDU]:
        if len(words) == 1:
            return client.write_register(address, words[0], device_id=unit)
        return client.write_registers(address, words, device_id=unit)

    return request
