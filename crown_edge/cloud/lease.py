"""File leases: which cloud process owns a file-backed duty, held for exactly its lifetime.

Several cloud processes (``crown-edge cloud --instance NAME``) run the same code on one host
and share only files. Two duties must never run twice at once:

- an intake journal is sent on by the process that journals into it (and, when that process
  is gone, by one survivor that adopts it: :mod:`crown_edge.cloud.intake`);
- customer emails go out from one process (:mod:`crown_edge.cloud.notify`).

A lease is an exclusive ``flock`` on a ``.lock`` file beside the resource. The kernel drops it
when its process dies however it dies (SIGKILL, OOM, power cut of a container), so there is no
expiry to tune and no stale owner to clear by hand; a second process asking for a held lease is
told at once (:meth:`FileLease.try_acquire`) or waits (:meth:`FileLease.acquire`). The lock file
holds the owner's pid and name for the operator (``cat intake-a.db.lock``), never for a decision.
``flock`` is per host: processes on different hosts need their own files (docs/scaling.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import time
from pathlib import Path

from crown_edge.errors import SyncError

log = logging.getLogger(__name__)


class LeaseBusy(SyncError):
    """Another process holds the lease."""


def lock_path(resource: Path) -> Path:
    """The lock file of ``resource`` (``intake.db`` → ``intake.db.lock``)."""
    return resource.with_name(resource.name + ".lock")


def holder(resource: Path) -> str:
    """What the lock file of ``resource`` says about its holder ('' if nothing)."""
    try:
        return lock_path(resource).read_text("utf-8").strip()[:200]
    except OSError:
        return ""


class FileLease:
    """An exclusive lease on ``resource`` for ``owner`` (a name shown to operators).

    One object per holder: :meth:`try_acquire` takes the lease without waiting, :meth:`acquire`
    waits up to a deadline (LeaseBusy after it).
    """

    def __init__(self, resource: Path, owner: str) -> None:
        self.resource = Path(resource)
        self.path = lock_path(self.resource)
        self.owner = owner
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        """Whether this object holds the lease."""
        return self._fd is not None

    def try_acquire(self) -> bool:
        """Take the lease if it is free; False (at once) if another process holds it."""
        if self._fd is not None:
            return True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} {self.owner}\n".encode(), 0)
        self._fd = fd
        return True

    async def acquire(self, timeout: float, poll: float = 0.2) -> None:
        """Take the lease, waiting up to ``timeout`` s for its holder to let go (a survivor may
        hold an owner's journal for the few seconds it takes to send it on); LeaseBusy then."""
        deadline = time.monotonic() + timeout
        told = False
        while not await asyncio.to_thread(self.try_acquire):
            if not told:
                told = True
                log.warning(
                    "%s is held by another process (%s): waiting up to %.0f s",
                    self.resource,
                    holder(self.resource) or "?",
                    timeout,
                )
            if time.monotonic() >= deadline:
                raise LeaseBusy(
                    f"{self.resource} is in use by another process ({holder(self.resource) or '?'})"
                    ": give each cloud process its own --instance",
                    operation="lease",
                )
            await asyncio.sleep(poll)

    def release(self) -> None:
        """Let go (closing the descriptor drops the lock); the lock file stays."""
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
            os.close(fd)


__all__ = ["FileLease", "LeaseBusy", "holder", "lock_path"]
