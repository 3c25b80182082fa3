"""Live reporting of one ``send_to_machine`` run: heartbeats and ``machine_update`` signals.

Heartbeats carry the edge's view of the run (status, queue position, machine, progress) on every
poll; they are cheap and the SDK throttles what reaches the server. Signals are history events
in the workflow, so they go out when the status or machine changes, and otherwise (queue
position, progress) at most every ``signal_every_s``. A signal that fails (Temporal unreachable,
no client in a unit test) is retried after a back-off: the run itself never depends on it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from temporalio import activity
from temporalio.client import Client
from temporalio.service import RPCError

from crown_edge.workflow.data import CancelRequest, MachineUpdate
from crown_edge.workflow.names import CANCEL, MACHINE_UPDATE, workflow_id

log = logging.getLogger(__name__)

SIGNAL_RPC_TIMEOUT = timedelta(seconds=5)
SIGNAL_BACKOFF_S = 30.0


def activity_client() -> Client | None:
    """The worker's client inside an activity, or None (ActivityEnvironment without one)."""
    try:
        return activity.client()
    except RuntimeError:
        return None


class RunReporter:
    """Heartbeats and throttled ``machine_update`` signals for one (job_id, attempt)."""

    def __init__(
        self,
        job_id: str,
        attempt: int,
        *,
        signal_every_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.job_id = job_id
        self.attempt = attempt
        self.signal_every_s = signal_every_s
        self._clock = clock
        self._client = activity_client()
        self._sent: MachineUpdate | None = None
        self._sent_at = 0.0
        self._quiet_until = 0.0

    async def report(
        self,
        status: str,
        *,
        queue_position: int | None = None,
        machine_id: str | None = None,
        progress: float | None = None,
        reason: str | None = None,
    ) -> dict[str, Any]:
        """Heartbeat the details now and signal the workflow when due; returns the details."""
        details: dict[str, Any] = {
            "status": status,
            "attempt": self.attempt,
            "queue_position": queue_position,
            "machine_id": machine_id,
            "progress": progress,
        }
        if reason:
            details["reason"] = reason
        activity.heartbeat(details)
        update = MachineUpdate(
            status,
            self.attempt,
            machine_id=machine_id,
            progress=progress,
            queue_position=queue_position,
        )
        if self._due(update):
            await self._signal(update)
        return details

    def _due(self, update: MachineUpdate) -> bool:
        if self._client is None or update == self._sent:
            return False
        now = self._clock()
        if now < self._quiet_until:
            return False
        last = self._sent
        if last is None or last.status != update.status or last.machine_id != update.machine_id:
            return True
        return now - self._sent_at >= self.signal_every_s

    async def _signal(self, update: MachineUpdate) -> None:
        assert self._client is not None
        handle = self._client.get_workflow_handle(workflow_id(self.job_id))
        try:
            await handle.signal(MACHINE_UPDATE, update, rpc_timeout=SIGNAL_RPC_TIMEOUT)
        except (RPCError, RuntimeError, OSError, TimeoutError) as exc:
            self._quiet_until = self._clock() + SIGNAL_BACKOFF_S
            log.info("job %s: machine_update not delivered (%s); will retry", self.job_id, exc)
            return
        self._sent = update
        self._sent_at = self._clock()

    async def ask_cancel(self, reason: str) -> bool:
        """Tell the workflow the job was cancelled on the workshop; True when delivered."""
        if self._client is None:
            return False
        handle = self._client.get_workflow_handle(workflow_id(self.job_id))
        try:
            await handle.signal(
                CANCEL, CancelRequest(reason=reason, by="workshop"), rpc_timeout=SIGNAL_RPC_TIMEOUT
            )
        except (RPCError, RuntimeError, OSError, TimeoutError) as exc:
            log.info("job %s: cancel not delivered to the workflow (%s)", self.job_id, exc)
            return False
        return True
