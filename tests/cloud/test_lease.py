"""File leases: one holder at a time, released when the holder's process dies however it dies."""

from __future__ import annotations

import asyncio
import os
import textwrap
from pathlib import Path

import pytest

from crown_edge.cloud.lease import FileLease, LeaseBusy, holder, lock_path
from tests.children import ready_child


def test_one_holder_at_a_time(tmp_path: Path) -> None:
    resource = tmp_path / "intake.db"
    first, second = FileLease(resource, "a"), FileLease(resource, "b")
    assert first.try_acquire()
    assert first.try_acquire()  # already ours
    assert not second.try_acquire()
    assert holder(resource) == f"pid {os.getpid()} a"
    assert lock_path(resource).stat().st_mode & 0o777 == 0o600
    first.release()
    assert not first.held
    assert second.try_acquire()
    assert holder(resource) == f"pid {os.getpid()} b"
    second.release()
    assert holder(resource) == ""


async def test_acquire_waits_then_names_the_holder(tmp_path: Path) -> None:
    resource = tmp_path / "intake-a.db"
    held = FileLease(resource, "cloud a")
    assert held.try_acquire()
    waiter = FileLease(resource, "cloud b")
    with pytest.raises(LeaseBusy, match=r"cloud a.*--instance"):
        await waiter.acquire(timeout=0.3, poll=0.05)
    asyncio.get_running_loop().call_later(0.1, held.release)
    await waiter.acquire(timeout=5.0, poll=0.02)
    assert waiter.held
    waiter.release()


def test_a_killed_holder_frees_the_lease(tmp_path: Path) -> None:
    """SIGKILL leaves the lock file behind, but not the lock: the kernel drops it."""
    resource = tmp_path / "intake-x.db"
    code = textwrap.dedent(
        f"""
        import sys, time
        from pathlib import Path
        from crown_edge.cloud.lease import FileLease
        assert FileLease(Path({str(resource)!r}), "child").try_acquire()
        print("held", flush=True)
        time.sleep(60)
        """
    )
    with ready_child(code, ready="held") as child:
        survivor = FileLease(resource, "survivor")
        assert not survivor.try_acquire()
        assert holder(resource) == f"pid {child.pid} child"
        child.kill()
        child.wait(timeout=10)
        assert survivor.try_acquire()
        survivor.release()
