"""Pure conversions between point values and Modbus words, and read planning.

No I/O. A register point's raw words are decoded by its ``type`` (16- or 32-bit, signed or not,
IEEE float) and ``word_order``, then multiplied by ``scale``; encoding is the inverse, rounding to
the nearest raw integer and refusing values the registers cannot hold::

    uint32 0x0001_0C80 (68736), word_order big    -> words [0x0001, 0x0C80]
                                 word_order little -> words [0x0C80, 0x0001]
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from crown_edge.drivers.modbus.profile import PointKind, PointSpec, Value, ValueType, WordOrder

_STRUCT = {
    ValueType.UINT16: ">H",
    ValueType.INT16: ">h",
    ValueType.UINT32: ">I",
    ValueType.INT32: ">i",
    ValueType.FLOAT32: ">f",
}

#: Largest single read per table (Modbus application protocol, section 6).
MAX_READ = {
    PointKind.COIL: 2000,
    PointKind.DISCRETE_INPUT: 2000,
    PointKind.HOLDING_REGISTER: 125,
    PointKind.INPUT_REGISTER: 125,
}


def decode(spec: PointSpec, raw: Sequence[int] | Sequence[bool]) -> Value:
    """The engineering value of ``spec`` from its ``spec.width`` raw bits or words."""
    if len(raw) < spec.width:
        raise ValueError(f"{spec.name}: need {spec.width} values, got {len(raw)}")
    if spec.type is ValueType.BOOL:
        return bool(raw[0])
    words = [int(w) & 0xFFFF for w in raw[: spec.width]]
    if spec.word_order is WordOrder.LITTLE:
        words.reverse()
    packed = b"".join(w.to_bytes(2, "big") for w in words)
    number: int | float = struct.unpack(_STRUCT[spec.type], packed)[0]
    if spec.scale == 1.0:
        return number
    return number * spec.scale


def encode(spec: PointSpec, value: Value) -> list[int] | bool:
    """The raw bit (``bool``) or words of ``value``; ``ValueError`` says what does not fit."""
    if spec.type is ValueType.BOOL:
        if not isinstance(value, bool):
            raise ValueError(f"{value!r} is not a boolean (allowed: true, false)")
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{value!r} is not a number")
    scaled = value / spec.scale if spec.scale != 1.0 else value
    if not math.isfinite(scaled):
        raise ValueError(f"{value!r} is not a finite number")
    fmt = _STRUCT[spec.type]
    if spec.type is ValueType.FLOAT32:
        try:
            packed = struct.pack(fmt, float(scaled))
        except OverflowError:
            raise ValueError(f"{value!r} does not fit a float32") from None
    else:
        raw = round(scaled)
        lo, hi = _int_range(spec.type)
        if not lo <= raw <= hi:
            raise ValueError(
                f"{value!r} is out of range (allowed: {lo * spec.scale:g}..{hi * spec.scale:g})"
            )
        packed = struct.pack(fmt, raw)
    words = [int.from_bytes(packed[i : i + 2], "big") for i in range(0, len(packed), 2)]
    if spec.word_order is WordOrder.LITTLE:
        words.reverse()
    return words


def _int_range(vtype: ValueType) -> tuple[int, int]:
    bits = 16 * vtype.width
    if vtype in (ValueType.INT16, ValueType.INT32):
        return -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return 0, (1 << bits) - 1


@dataclass(frozen=True, slots=True)
class ReadBlock:
    """One read request covering consecutive addresses of one table on one unit."""

    unit: int
    kind: PointKind
    address: int
    count: int
    points: tuple[PointSpec, ...]

    def slice(self, spec: PointSpec, raw: Sequence[int] | Sequence[bool]) -> Value:
        """Decode ``spec`` out of this block's raw response."""
        offset = spec.address - self.address
        return decode(spec, raw[offset : offset + spec.width])


def plan_reads(points: Iterable[PointSpec]) -> list[ReadBlock]:
    """Group points into as few reads as possible, merging only strictly adjacent addresses.

    Gaps are never bridged: a device may answer ``ILLEGAL ADDRESS`` for an unmapped address.
    """
    ordered = sorted(set(points), key=lambda p: (p.unit, p.kind.value, p.address))
    blocks: list[ReadBlock] = []
    for spec in ordered:
        last = blocks[-1] if blocks else None
        if (
            last is not None
            and last.unit == spec.unit
            and last.kind is spec.kind
            and last.address + last.count == spec.address
            and last.count + spec.width <= MAX_READ[spec.kind]
        ):
            blocks[-1] = ReadBlock(
                last.unit, last.kind, last.address, last.count + spec.width, (*last.points, spec)
            )
        else:
            blocks.append(ReadBlock(spec.unit, spec.kind, spec.address, spec.width, (spec,)))
    return blocks
