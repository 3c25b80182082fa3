"""Codec: value <-> words round trips, range checks, and read planning (pure)."""

from __future__ import annotations

import math
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crown_edge.drivers.modbus import Access, PointKind, PointSpec, ValueType, WordOrder
from crown_edge.drivers.modbus.codec import MAX_READ, decode, encode, plan_reads

RANGES = {
    ValueType.UINT16: (0, 0xFFFF),
    ValueType.INT16: (-0x8000, 0x7FFF),
    ValueType.UINT32: (0, 0xFFFF_FFFF),
    ValueType.INT32: (-0x8000_0000, 0x7FFF_FFFF),
}


def spec(
    vtype: ValueType = ValueType.UINT16,
    *,
    kind: PointKind = PointKind.HOLDING_REGISTER,
    address: int = 0,
    unit: int = 1,
    scale: float = 1.0,
    order: WordOrder = WordOrder.BIG,
    name: str | None = None,
) -> PointSpec:
    return PointSpec(
        name=name or f"p{unit}_{kind.value}_{address}",
        kind=kind,
        address=address,
        unit=unit,
        type=vtype,
        scale=scale,
        access=Access.READ_WRITE,
        word_order=order,
        description="",
    )


@given(st.sampled_from(list(RANGES)), st.sampled_from(list(WordOrder)), st.data())
def test_integer_round_trip(vtype: ValueType, order: WordOrder, data: st.DataObject) -> None:
    lo, hi = RANGES[vtype]
    value = data.draw(st.integers(lo, hi))
    point = spec(vtype, order=order)
    words = encode(point, value)
    assert isinstance(words, list)
    assert len(words) == vtype.width
    assert all(0 <= w <= 0xFFFF for w in words)
    assert decode(point, words) == value


@given(st.floats(width=32, allow_nan=False, allow_infinity=False), st.sampled_from(list(WordOrder)))
def test_float32_round_trip(value: float, order: WordOrder) -> None:
    point = spec(ValueType.FLOAT32, order=order)
    assert decode(point, encode(point, value)) == value


@given(st.integers(-32768, 32767))
def test_scaled_round_trip_is_within_half_a_step(raw: int) -> None:
    point = spec(ValueType.INT16, scale=0.1)
    value = raw * 0.1
    assert math.isclose(decode(point, encode(point, value)), value, abs_tol=0.05)


@given(st.lists(st.integers(0, 0xFFFF), min_size=2, max_size=2))
def test_decode_never_fails_on_any_words(words: list[int]) -> None:
    for vtype in (*RANGES, ValueType.FLOAT32):
        decode(spec(vtype), words)


def test_word_order() -> None:
    big = spec(ValueType.UINT32)
    little = spec(ValueType.UINT32, order=WordOrder.LITTLE)
    assert encode(big, 0x0001_0C80) == [0x0001, 0x0C80]
    assert encode(little, 0x0001_0C80) == [0x0C80, 0x0001]
    assert decode(spec(ValueType.INT16), [0xFFFF]) == -1
    assert (
        decode(spec(ValueType.FLOAT32), list(struct.unpack(">HH", struct.pack(">f", 1.5)))) == 1.5
    )


@pytest.mark.parametrize(
    ("vtype", "scale", "value"),
    [
        (ValueType.UINT16, 1.0, -1),
        (ValueType.UINT16, 1.0, 65536),
        (ValueType.INT16, 0.1, 3276.8),
        (ValueType.UINT32, 1.0, 2**32),
        (ValueType.UINT16, 1.0, True),
        (ValueType.UINT16, 1.0, math.inf),
        (ValueType.FLOAT32, 1.0, 1e300),
    ],
)
def test_encode_refuses_what_does_not_fit(vtype: ValueType, scale: float, value: float) -> None:
    with pytest.raises(ValueError):
        encode(spec(vtype, scale=scale), value)


def test_bits() -> None:
    coil = spec(ValueType.BOOL, kind=PointKind.COIL)
    assert encode(coil, True) is True
    assert decode(coil, [False]) is False
    with pytest.raises(ValueError):
        encode(coil, 1)


def test_plan_merges_only_adjacent_points_of_one_table_and_unit() -> None:
    a = spec(ValueType.BOOL, kind=PointKind.DISCRETE_INPUT, address=0)
    b = spec(ValueType.BOOL, kind=PointKind.DISCRETE_INPUT, address=1)
    gap = spec(ValueType.BOOL, kind=PointKind.DISCRETE_INPUT, address=3)
    coil = spec(ValueType.BOOL, kind=PointKind.COIL, address=2)
    other_unit = spec(ValueType.BOOL, kind=PointKind.DISCRETE_INPUT, address=2, unit=2)
    wide = spec(ValueType.UINT32, address=10)
    after_wide = spec(ValueType.UINT16, address=12)
    blocks = plan_reads([gap, b, coil, a, other_unit, wide, after_wide])
    shapes = {(blk.unit, blk.kind, blk.address, blk.count) for blk in blocks}
    assert shapes == {
        (1, PointKind.DISCRETE_INPUT, 0, 2),
        (1, PointKind.DISCRETE_INPUT, 3, 1),
        (1, PointKind.COIL, 2, 1),
        (2, PointKind.DISCRETE_INPUT, 2, 1),
        (1, PointKind.HOLDING_REGISTER, 10, 3),
    }
    merged = next(blk for blk in blocks if blk.address == 10)
    assert merged.slice(after_wide, [0, 7, 9]) == 9
    assert merged.slice(wide, [0, 7, 9]) == 7


@given(st.sets(st.integers(0, 400), min_size=1, max_size=300))
def test_plan_covers_every_point_once_within_limits(addresses: set[int]) -> None:
    points = [spec(address=a) for a in addresses]
    blocks = plan_reads(points)
    covered = [p.name for blk in blocks for p in blk.points]
    assert sorted(covered) == sorted(p.name for p in points)
    for blk in blocks:
        assert blk.count <= MAX_READ[blk.kind]
        assert [p.address for p in blk.points] == list(range(blk.address, blk.address + blk.count))
