"""Surfaces: map points on the item's surface (mm) to machine axes, and back.

Surface coordinates ``(u, v)``: ``u`` along the engraving area's width, ``v`` along its height,
origin at the area's bottom-left corner. A flat plate maps straight to ``X = u, Y = v``.

A cylinder lies in the rotary with its axis along machine X. The text's vertical direction runs
along the axis (``X = v``, the top of the text towards +X); its horizontal direction runs around
the circumference, driven by the rotary::

    rotary = u / (pi * diameter) * per_rotation        (sign flipped when ``reverse``)

GRBL's "Y as rotary" takes ``per_rotation`` in millimetre-equivalents (steps per rotation /
``$101`` steps per mm); a real A axis takes degrees (360 per rotation).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from crown_edge.errors import ValidationError
from crown_edge.models import Item, Surface


@dataclass(frozen=True, slots=True)
class RotaryConfig:
    """How a machine drives its rotary: which axis and how far one full turn is on it."""

    axis: Literal["Y", "A"] = "Y"
    per_rotation: float = 360.0
    """Y: mm-equivalents per turn; A: degrees per turn (normally 360)."""
    reverse: bool = False
    """Set when the chuck turns the other way round, so text would come out mirrored."""

    def __post_init__(self) -> None:
        if self.axis not in ("Y", "A"):
            raise ValidationError(f"rotary axis {self.axis!r}", key="axis", allowed="Y, A")
        if not (math.isfinite(self.per_rotation) and self.per_rotation > 0):
            raise ValidationError(
                f"rotary per_rotation {self.per_rotation!r}", key="per_rotation", allowed="> 0"
            )

    @classmethod
    def from_steps(cls, steps_per_rotation: float, steps_per_mm: float) -> RotaryConfig:
        """Y-as-rotary from the chuck's steps per rotation and GRBL's ``$101`` steps/mm."""
        return cls(axis="Y", per_rotation=steps_per_rotation / steps_per_mm)


@dataclass(frozen=True, slots=True)
class SurfaceMapping:
    """Surface (u, v) in mm ↔ the two machine axes ``axes`` (e.g. ``("X", "Y")``)."""

    surface: Surface
    axes: tuple[str, str]
    rotary_scale: float = 1.0
    """Rotary units per surface millimetre around the circumference (cylinder only)."""

    @property
    def is_rotary(self) -> bool:
        """True when the second axis is a rotary."""
        return self.surface is Surface.CYLINDER

    def to_machine(self, u: float, v: float) -> tuple[float, float]:
        """Surface point → machine coordinates on ``axes``."""
        if self.surface is Surface.CYLINDER:
            return v, u * self.rotary_scale
        return u, v

    def to_surface(self, m0: float, m1: float) -> tuple[float, float]:
        """Machine coordinates on ``axes`` → surface point (inverse of :meth:`to_machine`)."""
        if self.surface is Surface.CYLINDER:
            return m1 / self.rotary_scale, m0
        return m0, m1

    def feed_factor(self, du: float, dv: float) -> float:
        """Machine path length / surface path length for a straight surface move.

        GRBL applies F to the move's length in axis units; multiplying the material's surface
        feed by this keeps the laser's speed over the surface right on a rotary.
        """
        if self.surface is not Surface.CYLINDER:
            return 1.0
        surface_len = math.hypot(du, dv)
        if surface_len <= 0:
            return 1.0
        return math.hypot(du * self.rotary_scale, dv) / surface_len


def mapping_for(item: Item, rotary: RotaryConfig | None = None) -> SurfaceMapping:
    """The mapping for an item; a cylinder uses ``rotary`` (default :class:`RotaryConfig`)."""
    if item.surface is not Surface.CYLINDER:
        return SurfaceMapping(Surface.FLAT, ("X", "Y"))
    rot = rotary or RotaryConfig()
    diameter = item.diameter_mm
    if diameter is None or not diameter > 0:
        raise ValidationError(
            f"item {item.item_id}: a cylinder needs a diameter", item_id=item.item_id
        )
    circumference = math.pi * diameter
    if item.area.width_mm > circumference + 1e-9:
        raise ValidationError(
            f"item {item.item_id}: area width {item.area.width_mm:g} mm exceeds the "
            f"circumference {circumference:.1f} mm",
            item_id=item.item_id,
        )
    scale = rot.per_rotation / circumference
    return SurfaceMapping(Surface.CYLINDER, ("X", rot.axis), -scale if rot.reverse else scale)


def surface_to_machine(
    item: Item, u: float, v: float, rotary: RotaryConfig | None = None
) -> tuple[float, float]:
    """Convenience: one surface point of ``item`` → machine coordinates."""
    return mapping_for(item, rotary).to_machine(u, v)


def machine_to_surface(
    item: Item, m0: float, m1: float, rotary: RotaryConfig | None = None
) -> tuple[float, float]:
    """Convenience: machine coordinates → the surface point of ``item``."""
    return mapping_for(item, rotary).to_surface(m0, m1)
