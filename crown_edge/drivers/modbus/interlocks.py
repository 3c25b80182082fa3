"""Safety interlocks: a check before a job and a monitor while it runs.

The profile's ``[interlocks.POINT]`` tables say which points must hold which ``safe`` value.
:func:`check_interlocks` reads them all (door, e-stop, exhaust...) and raises
:class:`~crown_edge.errors.InterlockOpen` naming the first open one. :class:`InterlockMonitor`
polls the ``monitor = true`` ones (door, e-stop) at the profile's rate while a job runs and, the
moment one opens, awaits ``on_trip(error)`` exactly once. The daemon wires ``on_trip`` to the GRBL
driver's emergency stop (real-time ``!``, then ``M5``) and marks the job ``interrupted``.

The monitor fails safe: a device that stops answering for ``failures_to_trip`` polls in a row
trips it too, with the :class:`~crown_edge.errors.DeviceError` as the reason, because a door that
cannot be read cannot be trusted closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Self

from crown_edge.drivers.modbus.profile import InterlockSpec, Value
from crown_edge.errors import DeviceError, DriverError, InterlockOpen

if TYPE_CHECKING:
    from crown_edge.drivers.modbus.client import ModbusDevice

logger = logging.getLogger(__name__)

#: The trip callback: receives :class:`InterlockOpen` (a point opened) or :class:`DeviceError`
#: (the device stopped answering).
OnTrip = Callable[[DriverError], Awaitable[None]]


def open_interlocks(
    interlocks: Iterable[InterlockSpec], values: Mapping[str, Value]
) -> list[InterlockSpec]:
    """The interlocks whose point does not hold its safe value (pure)."""
    return [spec for spec in interlocks if values.get(spec.point) != spec.safe]


def interlock_error(
    device_id: str, spec: InterlockSpec, value: Value | None, others: Iterable[str] = ()
) -> InterlockOpen:
    """The :class:`InterlockOpen` error for ``spec`` reading ``value``."""
    return InterlockOpen(
        f"interlock open on {device_id}: {spec.point} is {value!r}, needs {spec.safe!r}"
        f" ({spec.reason})",
        device_id=device_id,
        point=spec.point,
        reason=spec.reason,
        value=value,
        safe=spec.safe,
        open_points=[spec.point, *others],
    )


async def check_interlocks(device: ModbusDevice) -> None:
    """Read every interlock of ``device``; raise :class:`InterlockOpen` for the first open one.

    A device that cannot be read raises :class:`DeviceError` (never a silent pass).
    """
    specs = device.profile.interlocks
    if not specs:
        return
    values = await device.read_points(*(spec.point for spec in specs))
    failed = open_interlocks(specs, values)
    if failed:
        first, rest = failed[0], [spec.point for spec in failed[1:]]
        raise interlock_error(device.device_id, first, values.get(first.point), rest)


class InterlockMonitor:
    """Polls a device's monitored interlocks and calls ``on_trip`` once when one opens.

    An async context manager owning its polling task: entering starts it (the first poll runs at
    once), leaving stops it — but leaving waits for an ``on_trip`` already running rather than
    cancel it. ``tripped`` holds the reason after a trip. If ``on_trip`` itself raises, the error
    is re-raised when the block exits.
    """

    def __init__(
        self,
        device: ModbusDevice,
        on_trip: OnTrip,
        *,
        poll_hz: float | None = None,
        failures_to_trip: int | None = None,
    ) -> None:
        """Monitor ``device``; ``poll_hz`` and ``failures_to_trip`` override the profile."""
        spec = device.profile.monitor
        self.device = device
        self.on_trip = on_trip
        self.period_s = 1.0 / (poll_hz or spec.poll_hz)
        self.failures_to_trip = failures_to_trip or spec.failures_to_trip
        self.interlocks = tuple(i for i in device.profile.interlocks if i.monitor)
        self.tripped: DriverError | None = None
        self.polls = 0
        self._trip_event = asyncio.Event()
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._callback_error: BaseException | None = None

    @property
    def running(self) -> bool:
        """True while the polling task is alive."""
        return self._task is not None and not self._task.done()

    async def __aenter__(self) -> Self:
        if self._task is not None:
            raise RuntimeError("an InterlockMonitor runs once")
        self._task = asyncio.create_task(
            self._run(), name=f"interlock-monitor:{self.device.device_id}"
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        task, self._task = self._task, None
        if task is not None:
            self._stop.set()
            # A trip in progress is never cancelled: on_trip is the emergency stop. Otherwise
            # cancel the poll in flight; the stop flag ends the loop even if a cancellation is
            # swallowed on the way (asyncio.wait_for in Python 3.11 can do that).
            while not task.done():
                if self.tripped is None:
                    task.cancel()
                await asyncio.wait({task}, timeout=self.period_s)
            if not task.cancelled():
                task.result()
        if self._callback_error is not None:
            if exc is None:
                raise self._callback_error
            logger.error(
                "modbus device %s: on_trip failed: %r",
                self.device.device_id,
                self._callback_error,
            )

    async def wait_tripped(self) -> DriverError:
        """Wait until the monitor has tripped and ``on_trip`` has returned; return the reason.

        Callers bound the wait with their own timeout.
        """
        await self._trip_event.wait()
        assert self.tripped is not None
        return self.tripped

    async def _run(self) -> None:
        if not self.interlocks:
            logger.warning("modbus device %s: no monitored interlocks", self.device.device_id)
            return
        loop = asyncio.get_running_loop()
        names = [spec.point for spec in self.interlocks]
        failures = 0
        next_at = loop.time()
        while not self._stop.is_set():
            reason: DriverError | None = None
            try:
                values = await self.device.read_points(*names)
            except DeviceError as exc:
                failures += 1
                logger.warning(
                    "modbus device %s: interlock poll failed (%d/%d): %s",
                    self.device.device_id,
                    failures,
                    self.failures_to_trip,
                    exc,
                )
                if failures >= self.failures_to_trip:
                    reason = exc
            except Exception as exc:  # a poll that cannot even be judged is unsafe: trip now
                reason = DeviceError(
                    f"modbus device {self.device.device_id}: interlock poll failed: {exc!r}",
                    device_id=self.device.device_id,
                    point=", ".join(names),
                    reason="monitor_error",
                )
                reason.__cause__ = exc
            else:
                failures = 0
                failed = open_interlocks(self.interlocks, values)
                if failed:
                    first = failed[0]
                    reason = interlock_error(
                        self.device.device_id,
                        first,
                        values.get(first.point),
                        [spec.point for spec in failed[1:]],
                    )
            self.polls += 1
            if reason is not None and not self._stop.is_set():
                await self._trip(reason)
                return
            next_at = max(next_at + self.period_s, loop.time())
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(next_at - loop.time()):
                    await self._stop.wait()

    async def _trip(self, reason: DriverError) -> None:
        self.tripped = reason
        logger.error("modbus device %s: interlock tripped: %s", self.device.device_id, reason)
        try:
            await self.on_trip(reason)
        except Exception as exc:
            self._callback_error = exc
        finally:
            self._trip_event.set()
