"""``crown-edge gcode render``: render engraving text (and artwork) to G-code from the shell."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from crown_edge.artwork import load_artwork
from crown_edge.catalog import load_catalog
from crown_edge.errors import CrownEdgeError
from crown_edge.models import EngravingArea, Item
from crown_edge.toolpath.artwork import ArtworkLimits
from crown_edge.toolpath.render import render_job
from crown_edge.toolpath.surface import RotaryConfig

_AREA = re.compile(r"\s*(\d+(?:\.\d+)?)\s*[xX×]\s*(\d+(?:\.\d+)?)\s*")


def _fail(message: str, code: int = 1) -> NoReturn:
    print(f"crown-edge: {message}", file=sys.stderr)
    raise typer.Exit(code)


def _area_item(spec: str) -> Item:
    match = _AREA.fullmatch(spec)
    if not match:
        _fail(f"--area must look like WIDTHxHEIGHT in mm (e.g. 120x60), got {spec!r}", 2)
    width, height = float(match.group(1)), float(match.group(2))
    if not (5 <= width <= 2000 and 5 <= height <= 2000):
        _fail("--area sides must be 5..2000 mm", 2)
    area = EngravingArea(width, height)
    return Item(item_id="area", name=f"{spec} area", material="default", area=area)


def render(
    item: Annotated[str | None, typer.Option("--item", help="Item id from the catalogue.")] = None,
    line: Annotated[
        list[str] | None, typer.Option("--line", help="A line of text (repeat for more lines).")
    ] = None,
    material: Annotated[
        str | None, typer.Option("--material", help="Material profile (default: the item's).")
    ] = None,
    font: Annotated[str | None, typer.Option("--font", help="Hershey font name.")] = None,
    artwork: Annotated[
        str | None, typer.Option("--artwork", help="SVG artwork URL (https:// or file://).")
    ] = None,
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="Write G-code here (default: stdout).")
    ] = None,
    preview: Annotated[Path | None, typer.Option("--preview", help="Write a preview SVG.")] = None,
    area: Annotated[
        str | None, typer.Option("--area", help="Ad-hoc flat area WxH in mm, instead of --item.")
    ] = None,
    catalog: Annotated[Path | None, typer.Option("--catalog", help="Catalogue TOML file.")] = None,
    job_id: Annotated[str, typer.Option("--job-id", help="Job id for the header.")] = "cli",
    rotary_axis: Annotated[
        str, typer.Option("--rotary-axis", help="Rotary on Y (mm-equivalent) or A (degrees).")
    ] = "Y",
    per_rotation: Annotated[
        float, typer.Option("--per-rotation", help="Rotary units per full turn.")
    ] = 360.0,
    travel: Annotated[
        bool, typer.Option("--travel", help="Draw air moves in the preview.")
    ] = False,
    allow_insecure: Annotated[
        bool, typer.Option("--allow-insecure", help="Allow http:// and private hosts (testing).")
    ] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print the figures as JSON.")] = False,
) -> None:
    """Render text lines for an item (or an ad-hoc area) to G-code, with preview and figures."""
    if (item is None) == (area is None):
        _fail("give exactly one of --item or --area", 2)
    if not line and not artwork:
        _fail("nothing to engrave: give --line and/or --artwork", 2)
    try:
        cat = load_catalog(catalog)
        the_item = cat.item(item) if item is not None else _area_item(area or "")
        if material is not None and material not in cat.materials:
            _fail(f"unknown material {material!r} (choose from: {', '.join(cat.materials)})", 2)
        profile = cat.material(material or the_item.material)
        art = None
        if artwork:
            limits = ArtworkLimits(allow_file=True, allow_insecure=allow_insecure)
            art = load_artwork(artwork, limits)
        rotary = None
        if the_item.diameter_mm is not None:
            axis = rotary_axis.upper()
            if axis not in ("Y", "A"):
                _fail("--rotary-axis must be Y or A", 2)
            rotary = RotaryConfig(axis="Y" if axis == "Y" else "A", per_rotation=per_rotation)
        result = render_job(
            the_item, line or [], profile, job_id=job_id, font=font, artwork=art, rotary=rotary
        )
    except CrownEdgeError as exc:
        _fail(str(exc).replace("\n", " "))
    try:
        if output is not None:
            output.write_text(result.gcode_text(), encoding="ascii")
        if preview is not None:
            preview.write_text(result.preview_svg(travel=travel), encoding="utf-8")
    except OSError as exc:
        _fail(f"cannot write output: {exc.strerror or exc}")
    if output is None and not json_out:
        sys.stdout.write(result.gcode_text())
    if json_out:
        figures = result.stats.to_dict()
        figures.update(
            item=the_item.item_id,
            lines=len(result.gcode),
            output=str(output) if output else None,
            preview=str(preview) if preview else None,
        )
        print(json.dumps(figures, sort_keys=True))
