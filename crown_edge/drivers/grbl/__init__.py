"""GRBL lasers: sans-I/O protocol, character-counting streamer, serial transport, asyncio driver.

Layers, bottom up: :mod:`.codes` (error/alarm tables), :mod:`.protocol` (bytes <-> events, pure),
:mod:`.streamer` (what may be sent now, pure), :mod:`.transport` (pyserial link),
:mod:`.connection` (reader, poller, handshake), :mod:`.run` (one program run) and
:mod:`.driver` (:class:`GrblDriver`, the face the daemon uses).
"""

from crown_edge.drivers.grbl.driver import GrblDriver

__all__ = ["GrblDriver"]
