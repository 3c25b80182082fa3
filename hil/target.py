"""Hardware targets: the real things in the rig's loop, read from a TOML file.

``load_target(path)`` parses a target file (see ``hil/targets/example-bench.toml``, every key
commented) into a frozen :class:`Target`; a wrong value is one :class:`TargetError` line naming
the file, the section and the key, like the edge config's errors. Layout::

    [target]              name, description
    [safety]              interlocks = ["DEVICE:POINT", ...] read before every armed job;
                          allow_armed (false: --laser-armed is refused on this bench)
    [[devices]]           id, profile, url            (as in the edge config: Modbus TCP or RTU)
    [[machines]]          id, port, baud, materials, rotary, ... (as in the edge config;
                          driver is "grbl"; ``laser`` is the rig's: dry unless --laser-armed)
    [faults.KIND]         how this bench injects KIND (door, estop, unplug, controller_reset,
                          alarm): a Modbus write (device, point, value) or commands
                          (inject = [argv], clear = [argv]); machines = [...] it applies to
    [faults.KIND.vars.MACHINE]   strings for that machine's {placeholders} in the commands
    [simulator]           only in a target of simulators: what ``hil.bench_sim`` starts

Strings may name ``${VAR}``: the launcher's variables (``hil.bench_sim`` gives ``bench``, the
simulated bench's directory, and ``url.DEVICE``), then the environment. Commands may name
``{machine}``, ``{python}`` (this interpreter) and the fault's per-machine ``vars``.
"""

from __future__ import annotations

import os
import re
import string
import sys
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crown_edge.config import DeviceConfig, MachineConfig, parse_config
from crown_edge.drivers.modbus.profile import DeviceProfile, PointKind, Value, load_profile
from crown_edge.errors import ConfigError

#: The faults a scenario may need, and what each does on the bench.
FAULT_KINDS: dict[str, str] = {
    "door": "the door opens (the door interlock input reads open)",
    "estop": "the e-stop is pressed (the e-stop interlock input reads pressed)",
    "unplug": "the controller's USB power is cut, then restored",
    "controller_reset": "the controller resets by itself (its reset pin or button)",
    "alarm": "the controller raises an alarm during a program",
}
MODBUS_FAULTS = ("door", "estop")
COMMAND_PLACEHOLDERS = ("machine", "python")
TARGET_SECTIONS = ("target", "safety", "devices", "machines", "faults", "simulator")
_VAR = re.compile(r"\$\{([A-Za-z0-9_.\-]+)\}")


class TargetError(ConfigError):
    """A target file problem: one line naming the file, the section and the key."""

    def __init__(
        self, path: Path | str, section: str, key: str, problem: str, allowed: str | None = None
    ) -> None:
        super().__init__(section, key, problem, allowed)
        text = f"target error: {path}: [{section}] {key or '(section)'}: {problem}"
        if allowed:
            text += f" (allowed: {allowed})"
        self.message = text
        self.args = (text,)
        self.fields["file"] = str(path)


@dataclass(frozen=True, slots=True)
class InterlockPoint:
    """A point that must read ``safe`` before the rig arms the laser for a job."""

    device: str
    point: str
    safe: Value
    reason: str


@dataclass(frozen=True, slots=True)
class Safety:
    """``[safety]``: the laser runs dry unless armed; what must read safe before each armed job."""

    interlocks: tuple[InterlockPoint, ...] = ()
    allow_armed: bool = True


@dataclass(frozen=True, slots=True)
class Fault:
    """How the bench injects one kind of fault (a Modbus write or commands)."""

    kind: str
    machines: tuple[str, ...]
    device: str | None = None
    point: str | None = None
    value: Value = True
    inject: tuple[str, ...] = ()
    clear: tuple[str, ...] = ()
    vars: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    @property
    def by_modbus(self) -> bool:
        """True when the fault is a Modbus write (``device``/``point``), else commands."""
        return self.device is not None

    def argv(self, which: str, machine: str) -> list[str]:
        """The ``inject`` or ``clear`` command for ``machine``, placeholders filled in."""
        template = self.inject if which == "inject" else self.clear
        values = {"machine": machine, "python": sys.executable, **self.vars.get(machine, {})}
        return [arg.format_map(values) for arg in template]


@dataclass(frozen=True, slots=True)
class SimulatedMachine:
    """``[simulator.machines.ID]``: the GRBL simulator process standing in for a machine."""

    id: str
    time_scale: float
    axes: str
    homing: bool


@dataclass(frozen=True, slots=True)
class SimulatedDevice:
    """``[simulator.devices.ID]``: the Modbus simulator process standing in for a device."""

    id: str
    relays: tuple[tuple[str, str], ...]  # (coil, input): the coil on inverts the input


@dataclass(frozen=True, slots=True)
class Simulator:
    """``[simulator]``: what ``hil.bench_sim`` starts before the target is loaded."""

    machines: tuple[SimulatedMachine, ...]
    devices: tuple[SimulatedDevice, ...]


@dataclass(frozen=True, slots=True)
class Target:
    """A parsed target file: machines and devices as the daemon's config, faults, safety."""

    name: str
    path: Path
    machines: tuple[MachineConfig, ...]
    devices: tuple[DeviceConfig, ...]
    faults: Mapping[str, Fault] = field(default_factory=dict)
    safety: Safety = Safety()
    description: str = ""
    simulator: Simulator | None = None

    @property
    def simulated(self) -> bool:
        """True when simulator processes stand in for the hardware (``[simulator]``)."""
        return self.simulator is not None

    def machine(self, machine_id: str) -> MachineConfig:
        """The machine with that id (KeyError otherwise)."""
        for m in self.machines:
            if m.id == machine_id:
                return m
        raise KeyError(machine_id)

    def cannot_inject(self, kind: str, machine: str | None = None) -> str | None:
        """Why ``kind`` cannot be injected (on ``machine``), or None when it can."""
        fault = self.faults.get(kind)
        if fault is None:
            return f"target {self.name!r} cannot inject {kind}: no [faults.{kind}]"
        if machine is not None and machine not in fault.machines:
            return f"target {self.name!r} cannot inject {kind} on {machine}"
        if not fault.machines:
            return f"target {self.name!r}: [faults.{kind}] applies to no machine"
        return None


def load_target(path: Path | str, variables: Mapping[str, str] | None = None) -> Target:
    """Read and validate a target file; every problem is one :class:`TargetError` line."""
    path = Path(path)
    try:
        text = path.read_text("utf-8")
    except OSError as exc:
        raise TargetError(path, "(file)", "", f"cannot read: {exc.strerror or exc}") from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise TargetError(path, "(file)", "", f"invalid TOML: {exc}") from exc
    return parse_target(data, path, variables)


def read_simulator(path: Path | str) -> Simulator | None:
    """Only the ``[simulator]`` section (needs no variables): what ``hil.bench_sim`` starts."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text("utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise TargetError(path, "(file)", "", f"cannot read: {exc}") from exc
    return _simulator(_Ctx(path), data)


class _Ctx:
    def __init__(self, path: Path, variables: Mapping[str, str] | None = None) -> None:
        self.path = path
        self.variables = dict(variables or {})

    def error(
        self, section: str, key: str, problem: str, allowed: str | None = None
    ) -> TargetError:
        return TargetError(self.path, section, key, problem, allowed)

    def expand(self, value: Any, section: str, key: str) -> Any:
        """``${VAR}`` in every string of ``value`` (lists and tables too)."""
        if isinstance(value, str):

            def one(match: re.Match[str]) -> str:
                name = match.group(1)
                got = self.variables.get(name, os.environ.get(name))
                if got is None:
                    raise self.error(section, key, f"${{{name}}} is not set", "a set variable")
                return got

            return _VAR.sub(one, value)
        if isinstance(value, list):
            return [self.expand(v, section, key) for v in value]
        if isinstance(value, dict):
            return {
                k: self.expand(v, section, f"{key}.{k}" if key else k) for k, v in value.items()
            }
        return value


def parse_target(
    data: dict[str, Any], path: Path, variables: Mapping[str, str] | None = None
) -> Target:
    """Validate a decoded target file (``path`` names it in errors and anchors relative paths)."""
    ctx = _Ctx(path, variables)
    _known(ctx, "(top)", data, TARGET_SECTIONS)
    head = _table(ctx, data, "target")
    _known(ctx, "target", head, ("name", "description"))
    name = head.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ctx.error("target", "name", f"got {name!r}", "a non-empty string")
    description = head.get("description", "")
    if not isinstance(description, str):
        raise ctx.error("target", "description", f"got {description!r}", "a string")
    simulator = _simulator(ctx, data)

    # [[devices]] and [[machines]] are the edge config's tables: its parser checks them
    raw_devices = ctx.expand(data.get("devices", []), "devices", "")
    raw_machines = ctx.expand(data.get("machines", []), "machines", "")
    if not isinstance(raw_machines, list) or not raw_machines:
        raise ctx.error("machines", "", "no [[machines]]", "at least one machine")
    if isinstance(raw_devices, list):
        for dev in raw_devices:
            if isinstance(dev, dict) and isinstance(dev.get("profile"), str):
                dev["profile"] = profile_ref(path, dev["profile"])
    for i, m in enumerate(raw_machines):
        if isinstance(m, dict):
            sec = f"machines.{m.get('id', i)}"
            if "laser" in m:
                raise ctx.error(sec, "laser", "set by the rig", "nothing: dry unless --laser-armed")
            if m.get("driver", "grbl") != "grbl":
                raise ctx.error(
                    sec,
                    "driver",
                    f"got {m.get('driver')!r}",
                    "grbl (a target names real ports; simulators run as processes, [simulator])",
                )
    try:
        cfg = parse_config({"devices": raw_devices, "machines": raw_machines}, path.parent)
    except ConfigError as exc:
        raise ctx.error(exc.fields["section"], exc.fields["key"], _problem(exc)) from None
    profiles: dict[str, DeviceProfile] = {}
    for dev in cfg.devices:
        try:
            profiles[dev.id] = load_profile(dev.profile)
        except ConfigError as exc:
            raise ctx.error(f"devices.{dev.id}", "profile", _problem(exc)) from None
    machine_ids = tuple(m.id for m in cfg.machines)
    safety = _safety(ctx, data, profiles)
    faults = _faults(ctx, data, profiles, cfg.machines)
    if simulator is not None:
        for sm in simulator.machines:
            if sm.id not in machine_ids:
                raise ctx.error(
                    f"simulator.machines.{sm.id}", "", "no such machine", ", ".join(machine_ids)
                )
        for sd in simulator.devices:
            if sd.id not in profiles:
                raise ctx.error(
                    f"simulator.devices.{sd.id}", "", "no such device", ", ".join(profiles)
                )
    return Target(
        name=name.strip(),
        path=path,
        machines=cfg.machines,
        devices=cfg.devices,
        faults=faults,
        safety=safety,
        description=description,
        simulator=simulator,
    )


def _problem(exc: ConfigError) -> str:
    """The problem part of a ConfigError line (after ``[section] key: ``)."""
    text = exc.message.removeprefix("config error: ")
    _, _, rest = text.partition("] ")
    _, _, problem = rest.partition(": ")
    return problem or text


def profile_ref(path: Path, ref: str) -> str:
    """A built-in profile name as it is; a file path anchored at the target file's directory."""
    from crown_edge.drivers.modbus.profiles import BUILTIN

    if ref in BUILTIN:
        return ref
    p = Path(ref).expanduser()
    return str(p if p.is_absolute() else (path.parent / p).resolve())


def _table(ctx: _Ctx, data: Mapping[str, Any], key: str, section: str = "") -> dict[str, Any]:
    raw = data.get(key, {})
    if not isinstance(raw, dict):
        raise ctx.error(section or key, "", f"must be a table, got {type(raw).__name__}")
    return raw


def _known(ctx: _Ctx, section: str, raw: Mapping[str, Any], keys: tuple[str, ...]) -> None:
    for key in raw:
        if key not in keys:
            raise ctx.error(section, key, "unknown key", ", ".join(sorted(keys)))


def _safety(ctx: _Ctx, data: Mapping[str, Any], profiles: Mapping[str, DeviceProfile]) -> Safety:
    raw = _table(ctx, data, "safety")
    _known(ctx, "safety", raw, ("interlocks", "allow_armed"))
    allow = raw.get("allow_armed", True)
    if not isinstance(allow, bool):
        raise ctx.error("safety", "allow_armed", f"got {allow!r}", "true, false")
    names = raw.get("interlocks", [])
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ctx.error("safety", "interlocks", f"got {names!r}", 'an array of "DEVICE:POINT"')
    points: list[InterlockPoint] = []
    for ref in names:
        device, sep, point = ref.partition(":")
        if not sep or device not in profiles:
            raise ctx.error(
                "safety",
                "interlocks",
                f"{ref!r} names no device",
                '"DEVICE:POINT" with DEVICE one of: ' + (", ".join(profiles) or "(no devices)"),
            )
        spec = next((i for i in profiles[device].interlocks if i.point == point), None)
        if spec is None:
            allowed = ", ".join(i.point for i in profiles[device].interlocks) or "(none)"
            raise ctx.error(
                "safety", "interlocks", f"{ref!r} is not an interlock of {device}", allowed
            )
        points.append(InterlockPoint(device, point, spec.safe, spec.reason))
    return Safety(tuple(points), allow)


def _faults(
    ctx: _Ctx,
    data: Mapping[str, Any],
    profiles: Mapping[str, DeviceProfile],
    machines: tuple[MachineConfig, ...],
) -> dict[str, Fault]:
    raw_all = _table(ctx, data, "faults")
    ids = tuple(m.id for m in machines)
    faults: dict[str, Fault] = {}
    for kind, raw0 in raw_all.items():
        sec = f"faults.{kind}"
        if kind not in FAULT_KINDS:
            raise ctx.error("faults", kind, "unknown fault", ", ".join(FAULT_KINDS))
        if not isinstance(raw0, dict):
            raise ctx.error(sec, "", "must be a table")
        raw = ctx.expand(raw0, sec, "")
        _known(ctx, sec, raw, ("device", "point", "value", "inject", "clear", "machines", "vars"))
        listed = raw.get("machines")
        if listed is not None and (
            not isinstance(listed, list) or any(m not in ids for m in listed)
        ):
            raise ctx.error(sec, "machines", f"got {listed!r}", ", ".join(ids))
        by_modbus = "device" in raw or "point" in raw
        by_command = "inject" in raw or "clear" in raw
        if by_modbus == by_command:
            raise ctx.error(
                sec, "", "needs one way to inject", "device + point (Modbus), or inject = [argv]"
            )
        if by_modbus:
            if kind not in MODBUS_FAULTS:
                raise ctx.error(sec, "device", f"{kind} is not a Modbus fault", "inject = [argv]")
            faults[kind] = _modbus_fault(ctx, sec, kind, raw, profiles, machines)
        else:
            faults[kind] = _command_fault(ctx, sec, kind, raw, ids)
        if listed is not None:
            faults[kind] = Fault(
                **{**_fields(faults[kind]), "machines": tuple(m for m in ids if m in listed)}
            )
    return faults


def _fields(fault: Fault) -> dict[str, Any]:
    return {name: getattr(fault, name) for name in Fault.__dataclass_fields__}


def _modbus_fault(
    ctx: _Ctx,
    sec: str,
    kind: str,
    raw: Mapping[str, Any],
    profiles: Mapping[str, DeviceProfile],
    machines: tuple[MachineConfig, ...],
) -> Fault:
    device = raw.get("device")
    if device not in profiles:
        raise ctx.error(sec, "device", f"got {device!r}", ", ".join(profiles) or "(no devices)")
    assert isinstance(device, str)
    point = raw.get("point")
    spec = profiles[device].points.get(point) if isinstance(point, str) else None
    if spec is None or spec.kind is not PointKind.COIL or not spec.writable:
        coils = [
            p.name
            for p in profiles[device].points.values()
            if p.kind is PointKind.COIL and p.writable
        ]
        raise ctx.error(
            sec, "point", f"{point!r} is not a writable coil of {device}", ", ".join(coils)
        )
    value = raw.get("value", True)
    if not isinstance(value, bool):
        raise ctx.error(sec, "value", f"got {value!r}", "true, false (written to inject)")
    # by default the machines guarded by an interlock device of the same bench
    bound = tuple(m.id for m in machines if m.rotary is not None)
    return Fault(kind, bound, device=device, point=point, value=value)


def _command_fault(
    ctx: _Ctx, sec: str, kind: str, raw: Mapping[str, Any], ids: tuple[str, ...]
) -> Fault:
    variables = raw.get("vars", {})
    if not isinstance(variables, dict):
        raise ctx.error(sec, "vars", "must be a table", "[faults.KIND.vars.MACHINE]")
    per_machine: dict[str, dict[str, str]] = {}
    for mid, table in variables.items():
        if mid not in ids:
            raise ctx.error(f"{sec}.vars", mid, "no such machine", ", ".join(ids))
        if not isinstance(table, dict) or not all(isinstance(v, str) for v in table.values()):
            raise ctx.error(f"{sec}.vars", mid, f"got {table!r}", "a table of strings")
        per_machine[mid] = dict(table)
    argvs: dict[str, tuple[str, ...]] = {}
    for key in ("inject", "clear"):
        argv = raw.get(key, [])
        if key == "inject" and not argv:
            raise ctx.error(sec, key, "missing", "a command: an array of strings")
        if not isinstance(argv, list) or not all(isinstance(a, str) and a for a in argv):
            raise ctx.error(sec, key, f"got {argv!r}", "a command: an array of strings")
        for arg in argv:
            for name in _placeholders(ctx, sec, key, arg):
                known = set(COMMAND_PLACEHOLDERS)
                machines_with = [m for m in ids if name in per_machine.get(m, {})]
                if name not in known and not machines_with:
                    allowed = ", ".join(f"{{{n}}}" for n in (*COMMAND_PLACEHOLDERS, "VAR"))
                    raise ctx.error(sec, key, f"unknown placeholder {{{name}}}", allowed)
        argvs[key] = tuple(argv)
    names = {n for a in (*argvs["inject"], *argvs["clear"]) for n in _placeholders(ctx, sec, "", a)}
    needed = names - set(COMMAND_PLACEHOLDERS)
    # a machine takes the fault when its vars give every placeholder the commands use
    able = tuple(m for m in ids if needed <= set(per_machine.get(m, {})))
    if needed and per_machine and not able:
        raise ctx.error(f"{sec}.vars", "", f"no machine gives {sorted(needed)}")
    return Fault(kind, able, inject=argvs["inject"], clear=argvs["clear"], vars=per_machine)


def _placeholders(ctx: _Ctx, sec: str, key: str, arg: str) -> list[str]:
    try:
        return [name for _, name, _, _ in string.Formatter().parse(arg) if name]
    except ValueError as exc:
        raise ctx.error(sec, key, f"{arg!r}: {exc}", "{name} placeholders") from None


def _simulator(ctx: _Ctx, data: Mapping[str, Any]) -> Simulator | None:
    if "simulator" not in data:
        return None
    raw = _table(ctx, data, "simulator")
    _known(ctx, "simulator", raw, ("machines", "devices"))
    machines: list[SimulatedMachine] = []
    for mid, table in _table(ctx, raw, "machines", "simulator.machines").items():
        sec = f"simulator.machines.{mid}"
        if not isinstance(table, dict):
            raise ctx.error(sec, "", "must be a table")
        _known(ctx, sec, table, ("time_scale", "axes", "homing"))
        scale = table.get("time_scale", 0.05)
        if isinstance(scale, bool) or not isinstance(scale, int | float) or not 0 <= scale <= 10:
            raise ctx.error(sec, "time_scale", f"got {scale!r}", "a number 0..10")
        axes = table.get("axes", "XYZ")
        if axes not in ("XYZ", "XYZA"):
            raise ctx.error(sec, "axes", f"got {axes!r}", "XYZ, XYZA")
        homing = table.get("homing", False)
        if not isinstance(homing, bool):
            raise ctx.error(sec, "homing", f"got {homing!r}", "true, false")
        machines.append(SimulatedMachine(mid, float(scale), axes, homing))
    devices: list[SimulatedDevice] = []
    for did, table in _table(ctx, raw, "devices", "simulator.devices").items():
        sec = f"simulator.devices.{did}"
        if not isinstance(table, dict):
            raise ctx.error(sec, "", "must be a table")
        _known(ctx, sec, table, ("relays",))
        relays = table.get("relays", {})
        if not isinstance(relays, dict) or not all(isinstance(v, str) for v in relays.values()):
            raise ctx.error(sec, "relays", f"got {relays!r}", "COIL = INPUT pairs")
        devices.append(SimulatedDevice(did, tuple(relays.items())))
    return Simulator(tuple(machines), tuple(devices))
