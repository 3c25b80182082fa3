"""A fleet's settings and ``up``'s demo spread, without starting anything."""

from __future__ import annotations

from pathlib import Path

import pytest

from crown_edge.cli.up import _table, demo_orders
from crown_edge.stack import StackSettings


def test_one_shop_is_todays_demo_workshop(tmp_path: Path) -> None:
    settings = StackSettings(workdir=tmp_path)
    assert settings.shop_ids == ("demo",) and not settings.fleet
    assert StackSettings(workdir=tmp_path, shop_id="north").shop_ids == ("north",)


def test_n_shops_are_numbered_and_a_fleet(tmp_path: Path) -> None:
    settings = StackSettings(workdir=tmp_path, shops=3)
    assert settings.shop_ids == ("shop-1", "shop-2", "shop-3") and settings.fleet
    named = StackSettings(workdir=tmp_path, shops=("north", "south"))
    assert named.shop_ids == ("north", "south") and named.fleet


@pytest.mark.parametrize("shops", [0, -1, (), ("a", "a")])
def test_no_shop_or_a_repeated_one_is_refused(tmp_path: Path, shops: int | tuple[str, ...]) -> None:
    with pytest.raises(ValueError, match="shops"):
        _ = StackSettings(workdir=tmp_path, shops=shops).shop_ids


def test_demo_orders_spread_over_the_shops_in_turn() -> None:
    orders = demo_orders("R", 7, ("shop-1", "shop-2", "shop-3"))
    assert [o["shop_id"] for o in orders] == ["shop-1", "shop-2", "shop-3"] * 2 + ["shop-1"]
    assert all("shop_id" not in o for o in demo_orders("R", 4))  # one shop: as before


def test_the_progress_table_shows_the_shop_only_in_a_fleet() -> None:
    views = {"J-1": {"status": "engraving", "machine_id": "laser-1", "progress": 0.5}}
    single = _table(["J-1"], views)
    assert [c.header for c in single.columns][:2] == ["job", "status"]
    fleet = _table(["J-1"], views, {"J-1": "shop-2"})
    assert [c.header for c in fleet.columns][:3] == ["job", "shop", "status"]
    assert list(fleet.columns[1].cells) == ["shop-2"]
