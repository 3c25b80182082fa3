"""The item catalogue and material profiles, parsed once from TOML into frozen values.

The default catalogue ships with the package (``crown_edge/data/catalog.toml``); a workshop names
its own with ``[store] catalog``. Initial stock comes from here; live stock lives in the store.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from crown_edge.errors import ConfigError, UnknownItem
from crown_edge.models import EngravingArea, Item, MaterialProfile, Surface


@dataclass(frozen=True, slots=True)
class Catalog:
    """Items by id and material profiles by name."""

    items: dict[str, Item]
    materials: dict[str, MaterialProfile]

    def item(self, item_id: str) -> Item:
        """The item, or UnknownItem."""
        try:
            return self.items[item_id]
        except KeyError:
            raise UnknownItem(item_id) from None

    def material(self, name: str) -> MaterialProfile:
        """The material profile; an unknown name falls back to a safe default profile."""
        return self.materials.get(name, MaterialProfile(name=name))


def _num(section: str, key: str, raw: Any, lo: float, hi: float) -> float:
    if isinstance(raw, bool) or not isinstance(raw, int | float) or not lo <= raw <= hi:
        raise ConfigError(section, key, f"got {raw!r}", f"a number {lo}..{hi}")
    return float(raw)


def _int(section: str, key: str, raw: Any, lo: int, hi: int) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int) or not lo <= raw <= hi:
        raise ConfigError(section, key, f"got {raw!r}", f"an integer {lo}..{hi}")
    return raw


def parse_catalog(data: dict[str, Any]) -> Catalog:
    """Build a Catalog from parsed TOML, validating every value."""
    materials: dict[str, MaterialProfile] = {}
    for name, raw in dict(data.get("materials", {})).items():
        sec = f"materials.{name}"
        materials[name] = MaterialProfile(
            name=name,
            power=_int(sec, "power", raw.get("power", 600), 0, 1000),
            feed_mm_min=_num(sec, "feed_mm_min", raw.get("feed_mm_min", 3000), 10, 100_000),
            passes=_int(sec, "passes", raw.get("passes", 1), 1, 20),
            air_assist=bool(raw.get("air_assist", True)),
        )
    items: dict[str, Item] = {}
    for item_id, raw in dict(data.get("items", {})).items():
        sec = f"items.{item_id}"
        surface_raw = raw.get("surface", "flat")
        if surface_raw not in {s.value for s in Surface}:
            raise ConfigError(sec, "surface", f"got {surface_raw!r}", "flat, cylinder")
        surface = Surface(surface_raw)
        diameter = raw.get("diameter_mm")
        if surface is Surface.CYLINDER:
            diameter = _num(sec, "diameter_mm", diameter, 5, 500)
        material = raw.get("material", "")
        if material not in materials:
            raise ConfigError(
                sec, "material", f"unknown material {material!r}", ", ".join(materials)
            )
        area = EngravingArea(
            width_mm=_num(sec, "width_mm", raw.get("width_mm"), 5, 2000),
            height_mm=_num(sec, "height_mm", raw.get("height_mm"), 5, 2000),
            max_lines=_int(sec, "max_lines", raw.get("max_lines", 4), 1, 20),
            margin_mm=_num(sec, "margin_mm", raw.get("margin_mm", 2.0), 0, 50),
            nominal_cap_height_mm=_num(
                sec, "nominal_cap_height_mm", raw.get("nominal_cap_height_mm", 8.0), 0.5, 100
            ),
            min_cap_height_mm=_num(
                sec, "min_cap_height_mm", raw.get("min_cap_height_mm", 2.5), 0.5, 100
            ),
        )
        items[item_id] = Item(
            item_id=item_id,
            name=str(raw.get("name", item_id)),
            material=material,
            area=area,
            surface=surface,
            diameter_mm=float(diameter) if diameter is not None else None,
            stock_available=_int(sec, "stock", raw.get("stock", 0), 0, 1_000_000),
        )
    return Catalog(items=items, materials=materials)


def load_catalog(path: Path | None = None) -> Catalog:
    """Load a catalogue file, or the packaged default when ``path`` is None."""
    if path is None:
        text = resources.files("crown_edge").joinpath("data/catalog.toml").read_text("utf-8")
    else:
        try:
            text = path.read_text("utf-8")
        except OSError as exc:
            raise ConfigError("store", "catalog", f"cannot read {path}: {exc.strerror}") from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(
            "store", "catalog", f"invalid TOML in {path or 'default'}: {exc}"
        ) from exc
    return parse_catalog(data)
