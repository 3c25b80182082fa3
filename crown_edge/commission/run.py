"""The commissioning run: ask each machine and its Modbus I/O, judge the answers, time the runs.

The asyncio shell around :mod:`crown_edge.commission.judge`. It uses the product's own drivers
(:class:`~crown_edge.drivers.grbl.GrblDriver` on the configured serial port,
:class:`~crown_edge.drivers.modbus.ModbusDevice` for the door and e-stop), so it exercises the
path a job takes. Two depths:

* **short** (``crown-edge doctor --machines``): handshake and firmware version, ``$I`` buffers,
  the laser settings (``$32``, ``$30``, ``$22``, ``$20``, ``$130``/``$131``), the controller's
  state, and the interlocks as they read now. Nothing moves and nothing is written.
* **full** (``motion=True``, ``python -m hil.runner --target FILE --commissioning``): the short
  checks, then homing (``$H``), a frame run of a plate's bounds, a dry job (every motion of a
  rendered plate, laser power held at zero) timed against the toolpath estimate, and a trip of
  each monitored interlock through the bench's fault injection (or the technician).

The laser never fires: every program passes :func:`~crown_edge.commission.judge.firing_lines`
before a byte is sent, and one that would fire is refused. A failed check never stops the checks
of another machine; within a machine, a check whose prerequisite failed is reported ``not run``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from crown_edge.commission.judge import (
    POWER_SCALE,
    Check,
    Figure,
    firing_lines,
    judge_buffers,
    judge_settings,
    judge_timing,
    judge_version,
    machine_items,
    not_run,
    number,
    split_version,
)
from crown_edge.config import DeviceConfig, MachineConfig
from crown_edge.drivers.base import RunOutcome
from crown_edge.drivers.grbl import protocol as p
from crown_edge.drivers.grbl.driver import GrblDriver
from crown_edge.drivers.modbus import ModbusDevice
from crown_edge.drivers.modbus.interlocks import open_interlocks
from crown_edge.drivers.modbus.profile import InterlockSpec
from crown_edge.errors import CrownEdgeError, DriverError, InterlockOpen
from crown_edge.models import Item, MaterialProfile, Surface
from crown_edge.toolpath import MachineParams, dry_run, estimate_gcode, render_job

log = logging.getLogger(__name__)


class Tripper(Protocol):
    """Opens and closes a machine's interlock on the bench: a relay or coil wired to the door or
    e-stop input, or a technician asked to do it. ``reason`` is the interlock's reason in the
    device profile (``door_open``, ``estop_pressed``)."""

    def can_trip(self, machine: str, reason: str) -> bool:
        """True when this bench can open that interlock of ``machine``."""
        ...

    async def trip(self, machine: str, reason: str, open_: bool) -> None:
        """Make the interlock read open (``open_``) or safe again."""
        ...


@dataclass(frozen=True, slots=True)
class Options:
    """How deep and how long."""

    motion: bool = False
    """Home, frame, run the dry job and trip the interlocks (the full commissioning)."""
    power_scale: int = POWER_SCALE
    time_scale: float = 1.0
    """Wall seconds per estimated second (1 on hardware; a simulator's scale on a sim bench)."""
    connect_timeout_s: float = 10.0
    homing_timeout_s: float = 120.0
    trip_timeout_s: float = 5.0
    """How long a tripped interlock may take to reach the monitor (longer for a technician)."""
    frame_feed_mm_min: float = 3000.0
    text: tuple[str, ...] = ("CROWN EDGE", "ACCEPTANCE")
    """The dry job's text, rendered on the machine's largest plate."""


async def check_machines(
    machines: Sequence[MachineConfig],
    devices: Sequence[DeviceConfig],
    items: Iterable[Item],
    materials: Mapping[str, MaterialProfile],
    options: Options = Options(),
    tripper: Tripper | None = None,
) -> list[Check]:
    """Every check of every machine, one machine after the other (a technician watches)."""
    by_id = {d.id: d for d in devices}
    catalogue = list(items)
    out: list[Check] = []
    for machine in machines:
        try:
            out += await check_machine(machine, by_id, catalogue, materials, options, tripper)
        except Exception as exc:  # one machine's surprise never hides the others' results
            log.exception("machine %s: commissioning failed", machine.id)
            out.append(Check(machine.id, "run", False, f"stopped by {exc!r}"))
    return out


async def wait_connected(driver: GrblDriver, timeout: float) -> float:
    """Seconds until the driver's handshake finished; TimeoutError after ``timeout``."""
    start = time.monotonic()
    async with asyncio.timeout(timeout):
        while True:  # the driver offers no public change event: poll, bounded
            if driver.connected and driver.status is not None:
                break
            await asyncio.sleep(0.05)
    return time.monotonic() - start


async def check_machine(
    machine: MachineConfig,
    devices: Mapping[str, DeviceConfig],
    items: Sequence[Item],
    materials: Mapping[str, MaterialProfile],
    options: Options,
    tripper: Tripper | None = None,
) -> list[Check]:
    """The checks of one machine, in report order."""
    mid = machine.id
    device = devices.get(machine.rotary) if machine.rotary else None
    if machine.driver != "grbl":
        detail = f"driver {machine.driver!r} is the built-in simulator: nothing to commission"
        return [Check(mid, "driver", True, detail, {"driver": machine.driver})]
    mine = machine_items(machine, items)
    checks: list[Check] = []
    if port_missing(machine.port):
        detail = f"{machine.port}: no such device (unplugged, or another name: /dev/serial/by-id)"
        checks.append(Check(mid, "handshake", False, detail, {"port": machine.port}))
        return checks + await interlock_checks(mid, device, None, options, tripper)
    driver = GrblDriver.from_config(
        mid,
        machine.port,
        machine.baud,
        open_timeout=min(options.connect_timeout_s, 5.0),
        stall_timeout=machine.stall_timeout_s,
    )
    async with driver:
        try:
            connect_s = await wait_connected(driver, options.connect_timeout_s)
        except TimeoutError:
            checks.append(
                Check(
                    mid,
                    "handshake",
                    False,
                    f"{machine.port} at {machine.baud} baud: no grbl banner and status within "
                    f"{options.connect_timeout_s:g} s (port, baud, cable, power?)",
                    {"port": machine.port, "baud": machine.baud},
                )
            )
            checks += await interlock_checks(mid, device, None, options, tripper)
            return checks
        status = driver.status
        state = status.state if status is not None else "?"
        checks.append(
            Check(
                mid,
                "handshake",
                True,
                f"{machine.port} at {machine.baud} baud, state {state}",
                {
                    "port": machine.port,
                    "baud": machine.baud,
                    "connect_s": round(connect_s, 3),
                    "state": state,
                },
            )
        )
        feedback = await driver.command("$I")
        ver = next((e for e in feedback if isinstance(e, p.Version)), None)
        opt = next((e for e in feedback if isinstance(e, p.Options)), None)
        version, build = split_version(ver.version) if ver else (None, "")
        checks.append(judge_version(mid, version, build, ver.info if ver else ""))
        checks.append(
            judge_buffers(
                mid,
                opt.codes if opt else None,
                opt.planner_blocks if opt else None,
                opt.rx_buffer if opt else None,
            )
        )
        settings = await driver.settings()
        checks += judge_settings(machine, settings, mine, options.power_scale)
        no_code = driver.state.alarm in (None, "ALARM")  # no ALARM:n seen: the power-up lock
        locked = no_code and (number(settings, 22) or 0) >= 1
        checks.append(state_check(mid, state, homing_lock=locked))
        if options.motion:
            blocks = opt.planner_blocks if opt else None
            checks += await motion_checks(
                machine, driver, settings, blocks, mine, materials, options
            )
        checks += await interlock_checks(mid, device, driver, options, tripper)
    return checks


def port_missing(port: str) -> bool:
    """True for a device path that does not exist (a pyserial URL is left to the driver)."""
    return port.startswith("/") and not os.path.exists(port)


def state_check(machine: str, state: str, *, homing_lock: bool = False) -> Check:
    """The controller's state after the handshake: Idle is ready for jobs; Alarm with no alarm
    raised and homing on (``homing_lock``) is grbl's lock after power-up, waiting for ``$H``."""
    if state == "Idle":
        return Check(machine, "state", True, "Idle", {"state": state})
    if state == "Alarm" and homing_lock:
        detail = "Alarm: locked after power-up until homed ($22=1); home it before jobs"
        return Check(machine, "state", True, detail, {"state": state, "homing_lock": True})
    hint = {
        "Alarm": "locked (homing after power-up, or an alarm): home it ($H) before jobs",
        "Door": "the controller's own door input is open",
        "Hold": "in a feed hold: resume or reset it",
    }.get(state, "not at rest")
    return Check(machine, "state", False, f"{state}: {hint}", {"state": state})


def machine_params(settings: Mapping[int, str], planner_blocks: int | None) -> MachineParams:
    """The estimate's motion model from the controller's own ``$$`` (defaults where odd)."""
    default = MachineParams()

    def pick(*keys: int, fallback: float) -> float:
        values = [v for k in keys if (v := number(settings, k)) is not None and v > 0]
        return min(values) if values else fallback

    return MachineParams(
        acceleration_mm_s2=pick(120, 121, fallback=default.acceleration_mm_s2),
        max_rate_mm_min=pick(110, 111, fallback=default.max_rate_mm_min),
        junction_deviation_mm=number(settings, 11) or default.junction_deviation_mm,
        planner_blocks=planner_blocks if planner_blocks and planner_blocks >= 2 else 15,
    )


def plate_of(items: Sequence[Item]) -> Item | None:
    """The plate the frame and the dry job use: the largest flat item the machine takes."""
    flat = [i for i in items if i.surface is Surface.FLAT]
    return max(flat, key=lambda i: (i.area.width_mm * i.area.height_mm, i.item_id), default=None)


async def motion_checks(
    machine: MachineConfig,
    driver: GrblDriver,
    settings: Mapping[int, str],
    planner_blocks: int | None,
    items: Sequence[Item],
    materials: Mapping[str, MaterialProfile],
    options: Options,
) -> list[Check]:
    """Homing, the frame run and the timed dry job."""
    mid = machine.id
    out: list[Check] = []
    homing = number(settings, 22)
    if homing is None or not int(homing) & 1:
        out.append(not_run(mid, "homing", "homing is off ($22=0)"))
    else:
        start = time.monotonic()
        try:
            await driver.home(options.homing_timeout_s)
            await driver.wait_ready(10.0)
            took = time.monotonic() - start
            out.append(Check(mid, "homing", True, f"homed in {took:.1f} s", {"seconds": took}))
        except CrownEdgeError as exc:
            out.append(Check(mid, "homing", False, f"$H: {exc}"))
    try:
        await driver.wait_ready(5.0)
    except CrownEdgeError as exc:
        why = f"the machine is not ready: {exc}"
        return [*out, not_run(mid, "frame", why), not_run(mid, "dry job", why)]
    plate = plate_of(items)
    if plate is None:
        why = "no flat item in the catalogue for this machine"
        return [*out, not_run(mid, "frame", why), not_run(mid, "dry job", why)]
    out.append(await frame_check(mid, driver, plate, options))
    out += await dry_job_checks(
        mid, driver, plate, materials, machine_params(settings, planner_blocks), options
    )
    return out


async def frame_check(machine: str, driver: GrblDriver, plate: Item, options: Options) -> Check:
    """Trace the plate's bounds with the laser off (work coordinates: the jig's origin)."""
    w, h = plate.area.width_mm, plate.area.height_mm
    figures: dict[str, Figure] = {"item": plate.item_id, "width_mm": w, "height_mm": h}
    start = time.monotonic()
    try:
        result = await driver.frame(0.0, 0.0, w, h, options.frame_feed_mm_min)
    except CrownEdgeError as exc:
        return Check(machine, "frame", False, f"{plate.item_id}: {exc}", figures)
    figures["seconds"] = round(time.monotonic() - start, 3)
    if result.outcome is not RunOutcome.COMPLETED:
        return Check(machine, "frame", False, f"{plate.item_id}: {describe(result)}", figures)
    return Check(
        machine, "frame", True, f"{plate.item_id} {w:g} x {h:g} mm traced, laser off", figures
    )


async def dry_job_checks(
    machine: str,
    driver: GrblDriver,
    plate: Item,
    materials: Mapping[str, MaterialProfile],
    params: MachineParams,
    options: Options,
) -> list[Check]:
    """Render a plate, hold its power at zero, run it and time it against the estimate."""
    material = materials.get(plate.material, MaterialProfile(name=plate.material))
    job_id = f"commission-{machine}"
    figures: dict[str, Figure] = {"item": plate.item_id, "material": material.name}
    try:
        rendered = render_job(plate, options.text, material, job_id=job_id, machine=params)
    except CrownEdgeError as exc:
        return [Check(machine, "dry job", False, f"cannot render {plate.item_id}: {exc}", figures)]
    lines = dry_run(rendered.gcode)
    firing = firing_lines(lines)
    if firing:
        bad = lines[firing[0]]
        detail = f"refused: line {firing[0] + 1} ({bad}) would fire the laser"
        return [Check(machine, "dry job", False, detail, figures)]
    estimate = estimate_gcode(lines, params)
    figures |= {"lines": len(lines), "estimate_s": round(estimate.total_s, 3)}
    start = time.monotonic()
    try:
        result = await driver.run_program(job_id, lines)
    except CrownEdgeError as exc:
        why = f"refused by the driver: {exc}"
        return [
            Check(machine, "dry job", False, why, figures),
            not_run(machine, "dry job time", why),
        ]
    took = time.monotonic() - start
    figures |= {"seconds": round(took, 3), "acked_lines": result.acked_lines}
    if result.outcome is not RunOutcome.COMPLETED:
        why = describe(result)
        return [
            Check(machine, "dry job", False, f"{plate.item_id}: {why}", figures),
            not_run(machine, "dry job time", "the dry job did not complete"),
        ]
    done = Check(
        machine,
        "dry job",
        True,
        f"{plate.item_id} ({material.name}): {len(lines)} lines, power held at 0",
        figures,
    )
    return [
        done,
        judge_timing(machine, "dry job time", took, estimate.total_s, options.time_scale),
    ]


def describe(result: object) -> str:
    """A run that did not complete, in words."""
    outcome = getattr(result, "outcome", "?")
    parts = [str(outcome)]
    for name in ("reason", "error_text", "alarm_text", "detail"):
        value = getattr(result, name, None)
        if value:
            parts.append(str(value))
    line = getattr(result, "last_acked_line", None)
    if line is not None:
        parts.append(f"at line {line}")
    return ", ".join(parts)


# --- interlocks ----------------------------------------------------------------------------------


async def interlock_checks(
    machine: str,
    device: DeviceConfig | None,
    driver: GrblDriver | None,
    options: Options,
    tripper: Tripper | None,
) -> list[Check]:
    """Read the machine's interlocks; with ``motion``, trip each monitored one."""
    if device is None:
        return [
            Check(
                machine,
                "interlocks",
                True,
                "no Modbus I/O device for this machine (machines.rotary): crown-edge reads no "
                "door or e-stop of its own here, only grbl's inputs",
                {"device": None},
            )
        ]
    try:
        io = ModbusDevice.from_config(device)
        async with io:
            out = [await read_interlocks(machine, io)]
            if options.motion:
                for spec in io.profile.interlocks:
                    if not spec.monitor:
                        continue
                    try:
                        out.append(await trip_check(machine, io, spec, driver, options, tripper))
                    except CrownEdgeError as exc:  # the bench's injection itself failed
                        out.append(Check(machine, f"trip {spec.point}", False, str(exc)))
            return out
    except CrownEdgeError as exc:
        return [Check(machine, "interlocks", False, f"{device.id} ({device.url}): {exc}")]


async def read_interlocks(machine: str, io: ModbusDevice) -> Check:
    """The monitored interlocks (door, e-stop) must read safe; the others are reported (the
    daemon switches e.g. the exhaust on before a job)."""
    specs = io.profile.interlocks
    values = await io.read_points(*(s.point for s in specs)) if specs else {}
    figures: dict[str, Figure] = {"device": io.device_id}
    figures |= {s.point: values.get(s.point) for s in specs}
    monitored = [s for s in specs if s.monitor]
    if not monitored:
        detail = f"{io.device_id}: its profile monitors no interlock (door, e-stop)"
        return Check(machine, "interlocks", False, detail, figures)
    failed = open_interlocks(monitored, values)
    shown = ", ".join(f"{s.point}={values.get(s.point)}" for s in monitored)
    if failed:
        reasons = ", ".join(s.reason for s in failed)
        return Check(machine, "interlocks", False, f"{io.device_id}: {reasons} ({shown})", figures)
    return Check(machine, "interlocks", True, f"{io.device_id}: {shown}", figures)


async def trip_check(
    machine: str,
    io: ModbusDevice,
    spec: InterlockSpec,
    driver: GrblDriver | None,
    options: Options,
    tripper: Tripper | None,
) -> Check:
    """Open the interlock on the bench and see the monitor trip (and stop grbl) as in a job."""
    point = spec.point
    name = f"trip {point}"
    if tripper is None or not tripper.can_trip(machine, spec.reason):
        why = f"this bench cannot cause {spec.reason} (declare the fault in the target)"
        return not_run(machine, name, why)
    stopped: list[float] = []

    async def on_trip(error: DriverError) -> None:
        if driver is not None:
            await driver.emergency_stop(f"commissioning: {point}")
        stopped.append(time.monotonic())

    figures: dict[str, Figure] = {"device": io.device_id, "point": point}
    try:
        async with io.monitor(on_trip) as monitor:
            async with asyncio.timeout(options.trip_timeout_s):
                while True:  # until a first poll has read it safe
                    if monitor.polls >= 1:
                        break
                    await asyncio.sleep(0.01)
            if monitor.tripped is not None:
                return Check(machine, name, False, f"tripped before the test: {monitor.tripped}")
            start = time.monotonic()
            await tripper.trip(machine, spec.reason, True)
            try:
                async with asyncio.timeout(options.trip_timeout_s):
                    reason = await monitor.wait_tripped()
            except TimeoutError:
                return Check(
                    machine,
                    name,
                    False,
                    f"opened, but the monitor did not trip within {options.trip_timeout_s:g} s",
                    figures,
                )
            figures["trip_to_stop_ms"] = round(
                1000 * ((stopped[0] if stopped else start) - start), 1
            )
    finally:
        await tripper.trip(machine, spec.reason, False)
    if not isinstance(reason, InterlockOpen) or reason.fields.get("point") != point:
        return Check(machine, name, False, f"tripped for another reason: {reason}", figures)
    try:
        async with asyncio.timeout(options.trip_timeout_s):
            while True:
                if not open_interlocks([spec], await io.read_points(point)):
                    break
                await asyncio.sleep(0.05)
    except TimeoutError:
        return Check(machine, name, False, f"{point} tripped but never read safe again", figures)
    detail = f"{point} opened: monitor tripped"
    if driver is not None:
        detail += " and stopped grbl"
        try:
            await driver.wait_ready(options.trip_timeout_s)
            detail += ", ready again"
        except CrownEdgeError as exc:
            return Check(machine, name, False, f"{detail}, but: {exc}", figures)
    detail += f" ({figures['trip_to_stop_ms']} ms from opening to stopped)"
    return Check(machine, name, True, detail, figures)
