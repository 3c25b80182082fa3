"""Shared fixtures for the toolpath tests."""

from __future__ import annotations

import pytest

from crown_edge.catalog import Catalog, load_catalog
from crown_edge.models import EngravingArea, Item, Surface


@pytest.fixture(scope="session")
def catalog() -> Catalog:
    """The packaged catalogue."""
    return load_catalog()


def flat_item(width: float = 100.0, height: float = 40.0, **area: float) -> Item:
    """A flat test item with the given area."""
    return Item(
        item_id="test-plate",
        name="test plate",
        material="test",
        area=EngravingArea(width, height, **area),  # type: ignore[arg-type]
    )


def cylinder_item(diameter: float = 80.0, width: float = 100.0, height: float = 40.0) -> Item:
    """A cylindrical test item."""
    return Item(
        item_id="test-cup",
        name="test cup",
        material="test",
        area=EngravingArea(width, height),
        surface=Surface.CYLINDER,
        diameter_mm=diameter,
    )
