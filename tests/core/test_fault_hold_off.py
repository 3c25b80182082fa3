"""A machine that faults before a job starts is held out of the queue for a growing while."""

from __future__ import annotations

from typing import Any, cast

from crown_edge.config import MachineConfig
from crown_edge.daemon.machines import FAULT_BACKOFF_S, MachineWorker


def _worker() -> MachineWorker:
    # the hold-off bookkeeping touches neither the store, the scheduler nor the driver
    none = cast(Any, None)
    return MachineWorker(MachineConfig(id="laser-1"), none, none, none, none, clock=lambda: 0.0)


def test_hold_off_doubles_from_the_first_to_the_longest_and_resets_on_success() -> None:
    worker = _worker()
    holds = []
    for _ in range(8):
        worker._set_fault("error:9", now=1000.0)
        holds.append(worker.fault_until - 1000.0)
    assert holds == [5.0, 10.0, 20.0, 40.0, 80.0, 120.0, 120.0, 120.0]
    assert (holds[0], holds[-1]) == FAULT_BACKOFF_S
    assert worker.fault == "error:9"
    worker._clear_fault()
    assert (worker.fault, worker.fault_until) == (None, 0.0)
    worker._set_fault("port gone", now=2000.0)
    assert worker.fault_until == 2005.0
