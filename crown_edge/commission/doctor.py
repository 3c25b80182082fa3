"""``crown-edge doctor --machines``: the short commissioning form as doctor rows.

Nothing moves and nothing is written to a controller: per machine the handshake and firmware
version, the ``$I`` buffers, the laser settings, the controller's state and the interlocks as
they read now. Motion (homing, a frame, the dry job, interlock trips) belongs to the rig's
``--commissioning`` run, where a technician stands at the machine.

The serial ports belong to the daemon while it runs (a second opener would steal its answers),
so the CLI asks here only when the daemon does not answer on its control socket.
"""

from __future__ import annotations

import asyncio
from typing import Any

from crown_edge.catalog import load_catalog
from crown_edge.commission.report import rows
from crown_edge.commission.run import Options, check_machines
from crown_edge.config import EdgeConfig
from crown_edge.errors import CrownEdgeError

DAEMON_OWNS_PORTS = (
    "not asked: the daemon is running and owns the serial ports; stop it "
    "(systemctl stop crown-edge), run doctor --machines, then start it again"
)
DAEMON_UNKNOWN = (
    "not asked: cannot tell whether the daemon holds the serial ports (see the daemon row); "
    "make sure it is stopped and its control socket reachable, then run doctor --machines"
)


def machine_rows(cfg: EdgeConfig, timeout: float) -> list[dict[str, Any]]:
    """Doctor rows (``check``, ``ok``, ``detail`` + ``machine``, ``step``, ``figures``)."""
    if not cfg.machines:
        return [{"check": "machines", "ok": True, "detail": "no machines configured"}]
    try:
        catalog = load_catalog(cfg.catalog_path)
    except CrownEdgeError as exc:
        return [{"check": "machines", "ok": False, "detail": f"catalogue: {exc}"}]
    options = Options(motion=False, connect_timeout_s=max(timeout, 5.0))
    found = asyncio.run(
        check_machines(
            cfg.machines, cfg.devices, catalog.items.values(), catalog.materials, options
        )
    )
    return rows(found)
