"""Commissioning judgements: what a controller said in, one :class:`Check` out (pure).

Each function takes recorded answers (the ``$I`` lines, the ``$$`` settings, a run's figures)
and the workshop's configuration, and returns a :class:`Check` saying whether the machine is fit
for crown-edge and, when it is not, what to change. No I/O and no clock: the shell
(:mod:`crown_edge.commission.run`) asks the controller and the Modbus devices and times the runs.

The settings that matter for a laser under crown-edge (grbl 1.1, ``settings.c`` / ``report.c``):

* ``$32=1`` laser mode: the laser is off on rapids and during holds, ``M4`` follows speed. The
  G-code crown-edge writes depends on it, and the driver refuses programs without it.
* ``$30`` maximum spindle speed: the S value of full power. The catalogue's material powers are
  S values on a 0..1000 scale (:data:`POWER_SCALE`), so ``$30`` must be 1000, or every material
  burns at the wrong power.
* ``$22=1`` homing and ``$20=1`` soft limits: after homing the controller knows where the head
  is, and soft limits refuse a move past the travel instead of crashing into the frame.
* ``$130``/``$131`` maximum travel: at least the bed in the config, and every item the machine
  may take must fit in it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from crown_edge.config import MachineConfig
from crown_edge.models import Item, Surface

POWER_SCALE = 1000
"""The S value of full power in the catalogue's material profiles (``power`` is 0..1000)."""
SUPPORTED_VERSION = "1.1"
"""crown-edge speaks the grbl 1.1 protocol (status fields, real-time commands, ``$I``)."""
MIN_RX_BUFFER = 64
"""Below this the character-counting streamer can hardly keep a line in flight."""

Figure = str | int | float | bool | None


@dataclass(frozen=True, slots=True)
class Check:
    """One commissioning result: ``check`` on ``machine`` passed (``ok``) or why not."""

    machine: str
    check: str
    ok: bool
    detail: str
    figures: Mapping[str, Figure] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The JSON record ``{machine, check, ok, detail, figures}``."""
        return {
            "machine": self.machine,
            "check": self.check,
            "ok": self.ok,
            "detail": self.detail,
            "figures": dict(self.figures),
        }


def not_run(machine: str, check: str, why: str) -> Check:
    """A check that could not be run (a prerequisite failed): not ok, with the reason."""
    return Check(machine, check, False, f"not run: {why}", {"run": False})


def number(settings: Mapping[int, str], key: int) -> float | None:
    """A ``$$`` value as a float, or None when missing or not a number."""
    raw = settings.get(key)
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


# --- firmware ------------------------------------------------------------------------------------


def judge_version(machine: str, version: str | None, build: str, info: str = "") -> Check:
    """``[VER:1.1h.20190830:info]``: the grbl 1.1 family is what the driver speaks."""
    figures: dict[str, Figure] = {"version": version, "build": build or None, "info": info or None}
    if version is None:
        return Check(machine, "firmware", False, "no [VER:] line in the $I answer", figures)
    label = (
        f"grbl {version}" + (f" (build {build})" if build else "") + (f" {info}" if info else "")
    )
    if not version.startswith(SUPPORTED_VERSION):
        return Check(
            machine,
            "firmware",
            False,
            f"{label}: crown-edge speaks grbl {SUPPORTED_VERSION}; update the firmware",
            figures,
        )
    return Check(machine, "firmware", True, label, figures)


def split_version(text: str) -> tuple[str, str]:
    """``1.1h.20190830`` -> (``1.1h``, ``20190830``); a version without a build date keeps ''."""
    match = re.fullmatch(r"(.+?)\.(\d{8})", text)
    return (match[1], match[2]) if match else (text, "")


def judge_buffers(
    machine: str, codes: str | None, planner_blocks: int | None, rx_buffer: int | None
) -> Check:
    """``[OPT:V,15,128]``: build options, planner blocks and serial RX buffer bytes.

    The streamer counts characters against the RX buffer, so it must be reported; ``V``
    (variable spindle) is what lets S set the laser's power.
    """
    figures: dict[str, Figure] = {
        "options": codes,
        "planner_blocks": planner_blocks,
        "rx_buffer": rx_buffer,
    }
    if codes is None:
        return Check(
            machine,
            "buffers",
            False,
            "no [OPT:] line in the $I answer: the RX buffer size is unknown (grbl 1.1 prints it)",
            figures,
        )
    problems = []
    if planner_blocks is None:
        problems.append("planner blocks not reported")
    if rx_buffer is None:
        problems.append("RX buffer not reported")
    elif rx_buffer < MIN_RX_BUFFER:
        problems.append(f"RX buffer {rx_buffer} bytes is below {MIN_RX_BUFFER}")
    if "V" not in codes:
        problems.append("built without variable spindle (V): S cannot set the laser power")
    detail = f"planner {planner_blocks} blocks, RX buffer {rx_buffer} bytes, options {codes}"
    if problems:
        return Check(machine, "buffers", False, f"{detail}: {'; '.join(problems)}", figures)
    return Check(machine, "buffers", True, detail, figures)


# --- settings ------------------------------------------------------------------------------------


def judge_laser_mode(machine: str, settings: Mapping[int, str]) -> Check:
    """``$32=1``: laser mode on."""
    value = number(settings, 32)
    figures: dict[str, Figure] = {"$32": value}
    if value == 1:
        return Check(machine, "laser mode", True, "$32=1", figures)
    shown = settings.get(32, "missing")
    return Check(
        machine,
        "laser mode",
        False,
        f"$32={shown}: laser mode is off, the laser would fire on rapids and holds; set $32=1",
        figures,
    )


def judge_spindle_max(
    machine: str, settings: Mapping[int, str], power_scale: int = POWER_SCALE
) -> Check:
    """``$30`` equals the catalogue's power scale, so a material's ``power`` is its S value."""
    s_max, s_min = number(settings, 30), number(settings, 31)
    figures: dict[str, Figure] = {"$30": s_max, "$31": s_min, "power_scale": power_scale}
    if s_max is None:
        return Check(machine, "power scale", False, "$30 missing from $$", figures)
    if s_max != power_scale:
        pct = f"{100.0 * power_scale / s_max:.0f}%" if s_max > 0 else "no power"
        return Check(
            machine,
            "power scale",
            False,
            f"$30={s_max:g} but material powers run 0..{power_scale}: full power would be {pct} "
            f"of the laser; set $30={power_scale}",
            figures,
        )
    return Check(machine, "power scale", True, f"$30={s_max:g} matches S 0..{power_scale}", figures)


def judge_homing(machine: str, settings: Mapping[int, str]) -> Check:
    """``$22=1``: a homing cycle gives the controller its position after power-up."""
    value = number(settings, 22)
    figures: dict[str, Figure] = {"$22": value}
    if value is not None and int(value) & 1:
        return Check(machine, "homing enabled", True, f"$22={settings[22]}", figures)
    return Check(
        machine,
        "homing enabled",
        False,
        f"$22={settings.get(22, 'missing')}: homing is off, positions after power-up are "
        "guesses; fit limit switches and set $22=1",
        figures,
    )


def judge_soft_limits(machine: str, settings: Mapping[int, str]) -> Check:
    """``$20=1``: moves past the travel are refused instead of hitting the frame."""
    value = number(settings, 20)
    figures: dict[str, Figure] = {"$20": value}
    if value == 1:
        return Check(machine, "soft limits", True, "$20=1", figures)
    return Check(
        machine,
        "soft limits",
        False,
        f"$20={settings.get(20, 'missing')}: soft limits are off, a program past the travel "
        "drives the head into the frame; set $20=1 (needs homing, $22=1)",
        figures,
    )


def machine_items(machine: MachineConfig, items: Iterable[Item]) -> list[Item]:
    """The catalogue items ``machine`` may take: its materials (all when it names none);
    cylinders only with a rotary."""
    out = []
    for item in items:
        if machine.materials and item.material not in machine.materials:
            continue
        if item.surface is Surface.CYLINDER and not machine.has_rotary:
            continue
        out.append(item)
    return out


def item_extent(item: Item) -> tuple[float, float | None]:
    """(along X, along Y) the item's area needs in travel; a cylinder's area wraps round the
    rotary (Y or A), so only its length along the axis (X) counts."""
    if item.surface is Surface.CYLINDER:
        return item.area.height_mm, None
    return item.area.width_mm, item.area.height_mm


def judge_travel(
    machine: MachineConfig, settings: Mapping[int, str], items: Sequence[Item]
) -> Check:
    """``$130``/``$131`` cover the configured bed and every item area the machine may take."""
    tx, ty = number(settings, 130), number(settings, 131)
    bed_w, bed_h = machine.bed_width_mm, machine.bed_height_mm
    figures: dict[str, Figure] = {
        "$130": tx,
        "$131": ty,
        "bed_width_mm": bed_w,
        "bed_height_mm": bed_h,
        "items_checked": len(items),
    }
    if tx is None or ty is None:
        return Check(machine.id, "travel", False, "$130/$131 missing from $$", figures)
    problems = []
    if tx < bed_w or ty < bed_h:
        problems.append(
            f"travel {tx:g} x {ty:g} mm is smaller than the configured bed {bed_w:g} x {bed_h:g}"
            " mm (fix $130/$131 or bed_width_mm/bed_height_mm)"
        )
    too_big = []
    for item in items:
        along_x, along_y = item_extent(item)
        if along_x > min(tx, bed_w) or (along_y is not None and along_y > min(ty, bed_h)):
            too_big.append(item.item_id)
    if too_big:
        problems.append(f"items larger than travel and bed: {', '.join(sorted(too_big))}")
        figures["items_too_big"] = ", ".join(sorted(too_big))
    detail = f"travel {tx:g} x {ty:g} mm, bed {bed_w:g} x {bed_h:g} mm, {len(items)} items fit"
    if problems:
        return Check(machine.id, "travel", False, "; ".join(problems), figures)
    return Check(machine.id, "travel", True, detail, figures)


def judge_settings(
    machine: MachineConfig,
    settings: Mapping[int, str],
    items: Sequence[Item],
    power_scale: int = POWER_SCALE,
) -> list[Check]:
    """Every settings judgement of one machine, in report order."""
    return [
        judge_laser_mode(machine.id, settings),
        judge_spindle_max(machine.id, settings, power_scale),
        judge_homing(machine.id, settings),
        judge_soft_limits(machine.id, settings),
        judge_travel(machine, settings, items),
    ]


# --- runs ----------------------------------------------------------------------------------------

_WORD = re.compile(r"([A-Z])\s*([-+]?(?:\d+\.?\d*|\.\d+))")
_COMMENT = re.compile(r"\([^)]*\)|;.*$")


def firing_lines(lines: Iterable[str]) -> list[int]:
    """Indexes of lines that could fire the laser: a non-zero S, or M3/M4 while S is not 0.

    The guard in front of every commissioning run, independent of how the program was made:
    grbl keeps S modal, so an ``M3``/``M4`` fires at the last S programmed.
    """
    firing: list[int] = []
    s_value = 0.0
    for i, line in enumerate(lines):
        words = [(m[1], float(m[2])) for m in _WORD.finditer(_COMMENT.sub("", line.upper()))]
        on = any(letter == "M" and value in (3, 4) for letter, value in words)
        for letter, value in words:
            if letter == "S":
                s_value = value
        if any(letter == "S" and value != 0 for letter, value in words) or (on and s_value != 0):
            firing.append(i)
    return firing


def judge_timing(
    machine: str,
    check: str,
    measured_s: float,
    estimate_s: float,
    time_scale: float = 1.0,
    *,
    tolerance: float = 0.25,
    slack_s: float = 1.5,
) -> Check:
    """A run's wall time against the toolpath estimate.

    ``time_scale`` is what one estimated second takes on this bench (1 on hardware; a
    simulator's scale on a simulated bench). Within ``tolerance`` of the expected time, plus
    ``slack_s`` for the start and end of the run (the first status poll, the last ``ok``), is ok.
    A slower run usually means the serial link starves the planner (baud, RX buffer) or the
    acceleration/rate settings differ from those the estimate read.
    """
    expected = estimate_s * time_scale
    ratio = measured_s / expected if expected > 0 else None
    figures: dict[str, Figure] = {
        "measured_s": round(measured_s, 3),
        "estimate_s": round(estimate_s, 3),
        "time_scale": time_scale,
        "expected_s": round(expected, 3),
        "ratio": None if ratio is None else round(ratio, 3),
    }
    low = expected * (1 - tolerance) - slack_s
    high = expected * (1 + tolerance) + slack_s
    detail = f"{measured_s:.2f} s against {expected:.2f} s expected"
    if time_scale != 1.0:
        detail += f" (estimate {estimate_s:.2f} s x {time_scale:g})"
    if measured_s > high:
        return Check(
            machine,
            check,
            False,
            f"{detail}: slower than the estimate by more than {tolerance:.0%}; check the serial "
            "link (baud, cable) and $110/$111, $120/$121, $11",
            figures,
        )
    if measured_s < low:
        return Check(
            machine,
            check,
            False,
            f"{detail}: faster than possible for the estimate; check $110/$111 and $120/$121",
            figures,
        )
    return Check(machine, check, True, detail, figures)
