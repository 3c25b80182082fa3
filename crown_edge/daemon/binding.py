"""Binding configured machines to real drivers: GRBL over serial, Modbus I/O, or simulators.

``driver = "sim"`` starts an in-process GRBL simulator on a pseudo-terminal and talks to it
through the very same serial driver as real hardware. A machine with a Modbus device (its
``rotary``) gets its interlocks checked before every job and monitored during it: door open or
e-stop trips a real-time feed hold and soft reset (laser off at once) and the run ends
``interrupted``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Sequence
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, Any

from crown_edge.config import EdgeConfig, MachineConfig
from crown_edge.drivers.base import (
    MachineDriver,
    ProgressCallback,
    ReserveCallback,
    RunOutcome,
    RunResult,
)
from crown_edge.drivers.grbl.driver import GrblDriver
from crown_edge.drivers.modbus import ModbusDevice, prepare_rotary, set_air_assist, set_exhaust
from crown_edge.errors import DriverError
from crown_edge.models import MachineState

if TYPE_CHECKING:
    from crown_edge.sim.grbl import GrblSimulator

log = logging.getLogger(__name__)

READY_TIMEOUT_S = 10.0
SIM_SILENCE_TIMEOUT_S = 30.0


class GrblMachine:
    """A GRBL laser with optional Modbus safety I/O: the daemon's :class:`MachineDriver`."""

    def __init__(
        self,
        config: MachineConfig,
        driver: GrblDriver,
        io: ModbusDevice | None = None,
        *,
        ready_timeout_s: float = READY_TIMEOUT_S,
    ) -> None:
        self.config = config
        self.driver = driver
        self.io = io
        self.ready_timeout_s = ready_timeout_s
        self.tripped: str | None = None

    @property
    def machine_id(self) -> str:
        """Configured machine id."""
        return self.config.id

    def state(self) -> MachineState:
        """The driver's live state."""
        return self.driver.state

    def work_position(self) -> dict[str, float] | None:
        """The head's work position from the controller's last report."""
        return self.driver.work_position

    async def run_program(
        self,
        job_id: str,
        lines: Sequence[str],
        *,
        start_line: int = 0,
        on_progress: ProgressCallback | None = None,
        cylinder: bool = False,
        on_reserve: ReserveCallback | None = None,
    ) -> RunResult:
        """Prepare the machine I/O, check interlocks, stream the program, report how it ended."""
        try:
            await self.driver.wait_ready(self.ready_timeout_s)
            if self.io is not None:
                # fume extraction and air assist on, the chuck clamped for a cylinder, then the
                # safety interlocks (door, e-stop, exhaust) must all read safe before any line
                await set_exhaust(self.io, True)
                await set_air_assist(self.io, True)
                if cylinder:
                    await prepare_rotary(self.io)
                await self.io.check_interlocks()
        except DriverError as exc:
            # nothing was sent: the scheduler may give the job to another machine
            return RunResult(
                job_id,
                RunOutcome.INTERRUPTED,
                0,
                len(lines),
                start_line,
                start_line=start_line,
                reason=str(exc),
                before_start=True,
            )
        self.tripped = None
        monitor = self.io.monitor(self._trip) if self.io is not None else None
        try:
            async with monitor if monitor is not None else contextlib.nullcontext():
                result = await self.driver.run_program(
                    job_id,
                    lines,
                    start_line=start_line,
                    on_progress=on_progress,
                    on_reserve=on_reserve,
                )
        finally:
            if self.io is not None:
                with contextlib.suppress(DriverError):
                    await set_air_assist(self.io, False)
        if self.tripped:
            result = dataclasses.replace(result, interlock=self.tripped)
        return result

    async def _trip(self, error: DriverError) -> None:
        self.tripped = str(error.fields.get("reason") or error)
        log.warning("machine %s: interlock tripped (%s): stopping", self.config.id, self.tripped)
        await self.driver.emergency_stop()

    async def pause(self) -> None:
        """Feed hold ``!``: motion decelerates to a stop, the laser goes off."""
        await self.driver.feed_hold()

    async def resume(self) -> None:
        """Cycle start ``~`` once the hold has come to rest."""
        await self.driver.resume()

    async def stop(self) -> None:
        """Feed-hold, then stop (soft reset: laser off, planner flushed)."""
        with contextlib.suppress(DriverError):
            await self.driver.feed_hold()
        with contextlib.suppress(DriverError):
            await self.driver.emergency_stop()

    async def home(self) -> None:
        """``$H``: technician action."""
        await self.driver.home()

    async def unlock(self) -> None:
        """``$X``: technician action."""
        await self.driver.unlock()

    async def frame(self) -> None:
        """Trace the bed's engraving window with the laser off."""
        await self.driver.frame(0.0, 0.0, self.config.bed_width_mm, self.config.bed_height_mm)


class SimulatedMachine(GrblMachine):
    """``driver = "sim"``: the GRBL binding over an in-process simulator on a pseudo-terminal,
    through the very same serial driver as real hardware; ``simulator`` takes fault injection
    (the HIL rig)."""

    def __init__(
        self,
        config: MachineConfig,
        driver: GrblDriver,
        simulator: GrblSimulator,
        io: ModbusDevice | None = None,
    ) -> None:
        super().__init__(config, driver, io)
        self.simulator = simulator


async def build_machines(config: EdgeConfig, stack: AsyncExitStack) -> dict[str, MachineDriver]:
    """Start drivers (and simulators for ``driver = "sim"``) for every configured machine."""
    from crown_edge.sim.grbl import GrblSimulator

    devices: dict[str, ModbusDevice] = {}
    for dev in config.devices:
        device = ModbusDevice.from_profile(dev.id, dev.profile, dev.url)
        devices[dev.id] = await stack.enter_async_context(device)
    machines: dict[str, MachineDriver] = {}
    for cfg in config.machines:
        url = cfg.port
        sim = None
        if cfg.driver == "sim":
            # grbl 1.1 has no A axis; the grblHAL-style simulator does, for A-axis rotaries
            axes = "XYZA" if cfg.rotary_axis == "A" and cfg.has_rotary else "XYZ"
            sim = GrblSimulator(baud=cfg.baud, time_scale=cfg.sim_time_scale, axes=axes)
            await stack.enter_async_context(sim)
            url = sim.device_path
            log.info("machine %s: simulated GRBL on %s", cfg.id, url)
        options: dict[str, Any] = {"stall_timeout": cfg.stall_timeout_s}
        if sim is not None:
            # an in-process simulator answers from the daemon's own event loop: a busy loop is
            # not a silent controller, so give it longer before the link counts as lost
            options["silence_timeout"] = SIM_SILENCE_TIMEOUT_S
        driver = GrblDriver.from_config(cfg.id, url, cfg.baud, **options)
        await stack.enter_async_context(driver)
        io = devices.get(cfg.rotary) if cfg.rotary else None
        if sim is not None:
            machines[cfg.id] = SimulatedMachine(cfg, driver, sim, io)
        else:
            machines[cfg.id] = GrblMachine(cfg, driver, io)
    return machines
