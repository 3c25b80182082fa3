"""Single-stroke Hershey fonts, parsed once per font and cached as plain tuples.

Glyphs are normalised so that the cap height is 1.0, the baseline is y = 0 and y grows upwards;
x runs from the glyph's left side bearing, and ``advance`` is the pen advance. Layout multiplies by
the cap height in millimetres.

Only printable characters the font actually draws (or the space) are accepted: a character outside
the font raises :class:`~crown_edge.errors.GlyphMissing` naming it, never silently dropped.
"""

from __future__ import annotations

import functools
import threading
import unicodedata
from dataclasses import dataclass

from crown_edge.errors import GlyphMissing, ValidationError

DEFAULT_FONT = "futural"

TEXT_FONTS = (
    "futural",
    "futuram",
    "rowmans",
    "rowmand",
    "rowmant",
    "timesr",
    "timesrb",
    "timesi",
    "timesib",
    "scripts",
    "scriptc",
    "cursive",
    "gothiceng",
    "gothicger",
    "gothicita",
    "gothgbt",
    "gothgrt",
    "gothitt",
)
"""Hershey fonts that draw Latin letters for ASCII codes. The package's Greek, Cyrillic, Japanese
and symbol fonts map the same codes to other alphabets, so a customer's "Anna" would come out
as something else; they are not offered."""

Point = tuple[float, float]
Polyline = tuple[Point, ...]

_LOCK = threading.Lock()


@dataclass(frozen=True, slots=True)
class Glyph:
    """One character: strokes at unit cap height, its ink extent in x, and its pen advance."""

    strokes: tuple[Polyline, ...]
    advance: float
    ink_x0: float
    ink_x1: float
    ink_y0: float
    ink_y1: float


@dataclass(frozen=True, slots=True)
class Font:
    """A parsed font: glyphs by character, normalised to cap height 1."""

    name: str
    glyphs: dict[str, Glyph]
    descender: float

    def glyph(self, char: str, *, line_index: int = 0, column: int = 0) -> Glyph:
        """The glyph for ``char`` or GlyphMissing naming the character."""
        found = self.glyphs.get(char)
        if found is None:
            raise missing_glyph(self.name, char, line_index, column)
        return found


def char_name(char: str) -> str:
    """A printable name for any character: ``U+000A LINE FEED``, ``U+1F3C6 TROPHY``."""
    name = unicodedata.name(char, "")
    if not name:
        category = unicodedata.category(char)
        name = {"Cc": "control character", "Cs": "surrogate", "Co": "private use"}.get(
            category, "unnamed character"
        )
    return f"U+{ord(char):04X} {name}"


def missing_glyph(font: str, char: str, line_index: int, column: int) -> GlyphMissing:
    """The error for a character the font cannot draw (the message never echoes raw text)."""
    label = char_name(char)
    return GlyphMissing(
        f"font {font!r} has no glyph for {label} (line {line_index + 1}, column {column + 1})",
        font=font,
        char=char,
        codepoint=f"U+{ord(char):04X}",
        char_name=label,
        line=line_index,
        column=column,
    )


def available_fonts() -> tuple[str, ...]:
    """Names of the fonts a job may choose (:data:`TEXT_FONTS` present in the package)."""
    built_in = set(_loader().default_font_names)  # type: ignore[attr-defined]
    return tuple(name for name in TEXT_FONTS if name in built_in)


@functools.cache
def _loader() -> object:
    from HersheyFonts import HersheyFonts

    return HersheyFonts()


@functools.cache
def load_font(name: str = DEFAULT_FONT) -> Font:
    """Parse a built-in Hershey font once; later calls return the cached :class:`Font`."""
    if name not in available_fonts():
        raise ValidationError(
            f"unknown font {name!r}", font=name, allowed=", ".join(available_fonts())
        )
    with _LOCK:  # the HersheyFonts object keeps the loaded font as state
        loader = _loader()
        loader.load_default_font(name)  # type: ignore[attr-defined]
        opts = loader.render_options  # type: ignore[attr-defined]
        raw = loader.all_glyphs  # type: ignore[attr-defined]
        cap_line = float(opts["cap_line"])
        base_line = float(opts["base_line"])
        bottom_line = float(opts["bottom_line"])
    units = base_line - cap_line
    glyphs: dict[str, Glyph] = {}
    for char, glyph in raw.items():
        if not char.isprintable():  # DEL and friends are in some fonts as drawings
            continue
        left = float(glyph.left_offset)
        strokes = tuple(
            tuple(((x - left) / units, (base_line - y) / units) for x, y in stroke)
            for stroke in glyph.strokes
            if len(stroke) >= 1
        )
        if not strokes and char != " ":
            continue
        xs = [p[0] for s in strokes for p in s]
        ys = [p[1] for s in strokes for p in s]
        glyphs[char] = Glyph(
            strokes=strokes,
            advance=float(glyph.char_width) / units,
            ink_x0=min(xs, default=0.0),
            ink_x1=max(xs, default=0.0),
            ink_y0=min(ys, default=0.0),
            ink_y1=max(ys, default=0.0),
        )
    return Font(name=name, glyphs=glyphs, descender=(bottom_line - base_line) / units)


def check_text(font: Font, lines: list[str] | tuple[str, ...]) -> None:
    """Raise GlyphMissing for the first character of ``lines`` the font cannot draw."""
    glyphs = font.glyphs
    for index, line in enumerate(lines):
        for column, char in enumerate(line):
            if char not in glyphs:
                raise missing_glyph(font.name, char, index, column)
