"""The workshop's stock artwork library: ``library:NAME`` artwork URLs.

Customers may pick stock artwork (stars, laurels, club crests the shop keeps) instead of sending
a file. ``library:star`` names ``crown_edge/data/artwork/star.svg``; such files are the shop's own,
so they are read from disk, while every other URL goes through the customer-URL rules of
:func:`crown_edge.artwork.load_job_artwork` (``https://`` only, size, type and time limits).
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

from crown_edge.errors import ArtworkError

SCHEME = "library:"
_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")


def library_names() -> list[str]:
    """Names of the stock artwork shipped with crown-edge."""
    folder = resources.files("crown_edge").joinpath("data/artwork")
    return sorted(p.name[:-4] for p in folder.iterdir() if p.name.endswith(".svg"))


def library_path(url: str) -> Path:
    """The file behind a ``library:NAME`` URL; ArtworkError for an unknown or odd name."""
    name = url[len(SCHEME) :]
    if not _NAME.fullmatch(name) or name not in library_names():
        raise ArtworkError(
            f"artwork {url[:80]!r}: no such library artwork (have: {', '.join(library_names())})",
            url=url[:120],
            reason="unknown_library_artwork",
        )
    return Path(str(resources.files("crown_edge").joinpath(f"data/artwork/{name}.svg")))
