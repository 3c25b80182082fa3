"""One fake machine for the daemon's tests: implements :class:`MachineDriver` with instant runs.

Real runs (the GRBL simulator over a pty, through the production driver) are in
tests/integration and tests/grbl; this fake is for tests about the daemon around the machine:
the queue, the control socket, the CLI, MQTT sessions.

- ``script``: outcomes popped per run, ``completed`` (default), ``alarm`` (ALARM:1 after 5
  lines), ``error`` (error:20 after 3 lines);
- ``gate`` (asyncio) holds every run until set; :meth:`stop` while a run waits there ends it
  ``interrupted`` after 2 lines (``stopped``), like a real controller;
- ``hold`` (threading, set by a test thread) reports half the program done and holds the run
  while set — :meth:`stop` clears it;
- ``programs`` records ``(job_id, start_line, total_lines)`` per run, ``stopped`` counts stops.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence

from crown_edge.drivers.base import (
    MachineDriver,
    ProgressCallback,
    ReserveCallback,
    RunOutcome,
    RunProgress,
    RunResult,
)
from crown_edge.models import Availability, Execution, MachineState


class FakeMachine:
    """A machine that runs programs instantly; see the module docstring."""

    def __init__(self, machine_id: str, *, hold: threading.Event | None = None) -> None:
        self._machine_id = machine_id
        self.script: list[str] = []
        self.programs: list[tuple[str, int, int]] = []
        self.stopped = 0
        self.paused = False
        self.gate: asyncio.Event | None = None
        self.halted = False
        self.hold = hold

    @property
    def machine_id(self) -> str:
        return self._machine_id

    def state(self) -> MachineState:
        execution = Execution.FEED_HOLD if self.paused else Execution.READY
        return MachineState(self._machine_id, Availability.AVAILABLE, execution, paused=self.paused)

    def work_position(self) -> dict[str, float] | None:
        return None

    async def run_program(
        self,
        job_id: str,
        lines: Sequence[str],
        *,
        start_line: int = 0,
        on_progress: ProgressCallback | None = None,
        cylinder: bool = False,
        on_reserve: ReserveCallback | None = None,
    ) -> RunResult:
        total = len(lines)
        self.programs.append((job_id, start_line, total))

        def progress(acked: int) -> None:
            if on_progress is not None:
                on_progress(RunProgress(job_id, acked, total, start_line))

        if self.hold is not None:
            progress((total - start_line) // 2)
            while self.hold.is_set():  # noqa: ASYNC110 (a threading.Event set by a test thread)
                await asyncio.sleep(0.02)
        if self.gate is not None:
            await self.gate.wait()
        if self.halted:  # stopped mid-run, like a real controller: the run ends there
            self.halted = False
            return RunResult(
                job_id,
                RunOutcome.INTERRUPTED,
                2,
                total,
                start_line + 2,
                start_line,
                reason="stopped",
            )
        outcome = self.script.pop(0) if self.script else "completed"
        if outcome == "completed":
            progress(total - start_line)
            return RunResult(
                job_id, RunOutcome.COMPLETED, total - start_line, total, total, start_line
            )
        if outcome == "alarm":
            return RunResult(
                job_id,
                RunOutcome.INTERRUPTED,
                5,
                total,
                start_line + 5,
                start_line,
                alarm_code=1,
                reason="alarm",
            )
        return RunResult(
            job_id, RunOutcome.FAILED, 3, total, start_line + 3, start_line, error_code=20
        )

    async def pause(self) -> None:
        self.paused = True

    async def resume(self) -> None:
        self.paused = False

    async def stop(self) -> None:
        self.stopped += 1
        if self.hold is not None:
            self.hold.clear()
        if self.gate is not None and not self.gate.is_set():
            self.halted = True
            self.gate.set()


def _implements(machine: FakeMachine) -> MachineDriver:
    return machine  # mypy checks here that the fake has the protocol's shape
