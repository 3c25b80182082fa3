"""The rig: the whole flow plus the handles a scenario needs (orders, technician, faults)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from crown_edge.control import call
from crown_edge.stack import FullStack, StackSettings

END = {"complete", "escalated", "cancelled", "failed", "blocked", "revision_requested"}


class Rig:
    """Drives a running :class:`FullStack` the way customers and technicians would."""

    def __init__(self, stack: FullStack) -> None:
        self.stack = stack
        assert stack.config is not None
        self.socket = stack.config.control_socket
        self.qa_plan: dict[str, list[bool]] = {}  # job -> verdicts in order; default pass
        self.qa_given: dict[str, list[bool]] = {}
        self._counter = 0
        self._qa_task: asyncio.Task[None] | None = None

    # --- customer ------------------------------------------------------------------------------

    def new_id(self, prefix: str = "H") -> str:
        """A job id unique in this rig."""
        self._counter += 1
        return f"{prefix}-{int(time.time()) % 100000}-{self._counter:03d}"

    async def order(self, **fields: Any) -> str:
        """Place an order through the Order API (HTTP); returns its job id."""
        order = {
            "job_id": fields.pop("job_id", None) or self.new_id(),
            "customer_id": "CUST-1",
            "item_id": "plaque-a5",
            "due_date": "2026-12-24T17:00:00Z",
            "text": ["Club Champion", "2026"],
        }
        order.update(fields)
        status, body = await self.stack.post_order(order)
        assert status == 202, f"order refused: {status} {body}"
        return str(order["job_id"])

    async def view(self, job_id: str) -> dict[str, Any]:
        """The workflow's view of the job (status, retry_count, queue_position, ...)."""
        return await self.stack.job_view(job_id) or {"status": "received"}

    async def wait_for(self, job_id: str, *statuses: str, timeout: float = 120.0) -> dict[str, Any]:
        """Until the workflow reports one of ``statuses``; AssertionError on timeout or end."""
        deadline = time.monotonic() + timeout
        view: dict[str, Any] = {}
        while time.monotonic() < deadline:
            view = await self.view(job_id)
            if view.get("status") in statuses:
                return view
            if view.get("status") in END:
                break
            await asyncio.sleep(0.2)
        raise AssertionError(f"{job_id}: wanted {statuses}, got {view.get('status')}: {view}")

    async def wait_edge(self, job_id: str, *statuses: str, timeout: float = 120.0) -> Any:
        """Until the workshop's own record of the job is in one of ``statuses``."""
        deadline = time.monotonic() + timeout
        job: Any = None
        while time.monotonic() < deadline:
            with contextlib.suppress(Exception):
                job = await self.ctl("jobs.show", job_id=job_id)
                if job["status"] in statuses:
                    return job
            await asyncio.sleep(0.2)
        raise AssertionError(f"{job_id} on the workshop: wanted {statuses}, got {job}")

    async def result(self, job_id: str, timeout: float = 180.0) -> dict[str, Any]:
        """The workflow's final result."""
        return await self.stack.result(job_id, timeout)

    # --- technician ----------------------------------------------------------------------------

    async def ctl(self, cmd: str, **args: Any) -> Any:
        """A technician command over the daemon's control socket."""
        return await call(self.socket, cmd, args)

    def machine(self, machine_id: str) -> Any:
        """The daemon's machine object (``.simulator`` for fault injection)."""
        assert self.stack.daemon is not None
        return self.stack.daemon.machines[machine_id]

    @contextlib.asynccontextmanager
    async def technician_qa(self) -> AsyncIterator[None]:
        """A technician at the QA bench: verdicts from ``qa_plan`` (default: pass)."""
        self._qa_task = asyncio.create_task(self._qa_loop())
        try:
            yield
        finally:
            self._qa_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._qa_task

    async def _qa_loop(self) -> None:
        while True:
            for job in await self.ctl("jobs.list", status="qa_pending"):
                job_id = job["job_id"]
                plan = self.qa_plan.get(job_id, [])
                given = self.qa_given.setdefault(job_id, [])
                verdict = plan[len(given)] if len(given) < len(plan) else True
                with contextlib.suppress(Exception):
                    await self.ctl("qa.verdict", job_id=job_id, passed=verdict, notes="rig")
                    given.append(verdict)
            await asyncio.sleep(0.2)


@contextlib.asynccontextmanager
async def rig(workdir: Path, **settings: Any) -> AsyncIterator[Rig]:
    """A rig on a fresh FullStack (manual QA: the rig's technician answers)."""
    params: dict[str, Any] = {"qa_mode": "manual", "time_scale": 0.05, "lasers": 3}
    params.update(settings)
    async with FullStack(StackSettings(workdir=workdir, **params)) as stack:
        r = Rig(stack)
        async with r.technician_qa():
            yield r
