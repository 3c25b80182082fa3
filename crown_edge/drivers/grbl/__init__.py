"""GRBL lasers: sans-I/O protocol, character-counting streamer, serial transport, asyncio driver.

Layers, bottom up: :mod:`.codes` (error/alarm tables), :mod:`.protocol` (bytes <-> events, pure),
:mod:`.streamer` (what may be sent now, pure), :mod:`.transport` (pyserial link),
:mod:`.connection` (reader, poller, handshake), :mod:`.run` (one program run) and
:mod:`.driver` (:class:`GrblDriver`, the face the daemon uses). ``GrblDriver`` is imported
lazily so the pure modules stay free of serial and asyncio imports.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from crown_edge.drivers.grbl.driver import GrblDriver

__all__ = ["GrblDriver"]


def __getattr__(name: str) -> Any:
    if name == "GrblDriver":
        from crown_edge.drivers.grbl.driver import GrblDriver

        return GrblDriver
    raise AttributeError(name)
