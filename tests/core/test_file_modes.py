"""Local state is the service user's alone: state directory 0700, database and companions 0600."""

from __future__ import annotations

import asyncio
import logging
import os
import stat
from collections.abc import Iterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest

from crown_edge.config import EdgeConfig, MqttConfig, TemporalConfig
from crown_edge.daemon.app import EdgeDaemon
from crown_edge.store import Store
from crown_edge.store.files import private_database, private_dir, private_file


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture(params=[0o022, 0o000, 0o277], ids=["umask022", "umask000", "umask277"])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    """Run the test under a given process umask (restored after)."""
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


def test_fresh_directory_and_file_are_private(tmp_path: Path, umask: int) -> None:
    state = private_dir(tmp_path / "a" / "state")
    assert mode(state) == 0o700
    assert mode(private_dir(tmp_path / "shared", group_traverse=True)) == 0o710
    assert mode(private_file(state / "edge.db")) == 0o600


def test_looser_modes_are_tightened_with_a_log_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    state = tmp_path / "state"
    state.mkdir()
    os.chmod(state, 0o755)
    db = state / "edge.db"
    db.write_bytes(b"")
    os.chmod(db, 0o644)
    wal = state / "edge.db-wal"
    wal.write_bytes(b"")
    os.chmod(wal, 0o666)
    with caplog.at_level(logging.WARNING, logger="crown_edge.store.files"):
        private_dir(state)
        private_database(db)
    assert (mode(state), mode(db), mode(wal)) == (0o700, 0o600, 0o600)
    assert sum("tightened" in r.getMessage() for r in caplog.records) == 3
    os.chmod(state, 0o751)
    private_dir(state, group_traverse=True)
    assert mode(state) == 0o710


def test_stricter_modes_are_left_alone(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "ro.db"
    path.write_bytes(b"")
    os.chmod(path, 0o400)
    with caplog.at_level(logging.WARNING):
        private_file(path)
    assert mode(path) == 0o400
    assert not caplog.records


async def test_store_creates_database_wal_and_shm_private(tmp_path: Path, umask: int) -> None:
    db = tmp_path / "edge.db"
    async with Store.from_path(db) as store:
        assert await store.healthy()
        files = [db, *(db.with_name(db.name + s) for s in ("-wal", "-shm"))]
        assert all(f.exists() for f in files)
        assert [mode(f) for f in files] == [0o600] * 3


async def test_store_tightens_an_existing_world_readable_database(tmp_path: Path) -> None:
    db = tmp_path / "edge.db"
    async with Store.from_path(db):
        pass
    os.chmod(db, 0o644)
    async with Store.from_path(db):
        files = [db, *(db.with_name(db.name + s) for s in ("-wal", "-shm"))]
        assert [mode(f) for f in files] == [0o600] * 3


def _config(state: Path, socket: Path) -> EdgeConfig:
    return EdgeConfig(
        shop_id="test",
        store_path=state / "edge.db",
        control_socket=socket,
        machines=(),
        temporal=TemporalConfig(enabled=False),
        mqtt=MqttConfig(enabled=False),
    )


async def _modes_while_running(config: EdgeConfig) -> dict[str, int]:
    """Start the daemon, read the modes of its state directory's entries, stop it."""

    async def no_machines(cfg: EdgeConfig, stack: AsyncExitStack) -> dict[str, Any]:
        return {}

    d = EdgeDaemon(config)
    task = asyncio.create_task(d.run(machine_factory=no_machines))
    try:
        await asyncio.wait_for(d.ready.wait(), 30)
        state = config.store_path.parent
        return {".": mode(state), **{p.name: mode(p) for p in state.iterdir()}}
    finally:
        d.stop_event.set()
        await asyncio.wait_for(task, 30)


@pytest.mark.parametrize("fresh", [True, False], ids=["fresh", "existing-0755-0644"])
async def test_daemon_state_directory_is_private(tmp_path: Path, fresh: bool) -> None:
    state = tmp_path / "lib" / "crown-edge"
    run = tmp_path / "run"
    if not fresh:
        state.mkdir(parents=True)
        os.chmod(state, 0o755)
        (state / "edge.db").write_bytes(b"")
        os.chmod(state / "edge.db", 0o644)
    modes = await _modes_while_running(_config(state, run / "control.sock"))
    assert modes == {".": 0o700, "edge.db": 0o600, "edge.db-wal": 0o600, "edge.db-shm": 0o600}
    assert (mode(state), mode(state / "edge.db")) == (0o700, 0o600)


async def test_socket_in_the_state_directory_keeps_group_traverse(tmp_path: Path) -> None:
    state = tmp_path / "var"
    modes = await _modes_while_running(_config(state, state / "control.sock"))
    assert modes.pop("control.sock") == 0o660  # the one group-accessible entry
    assert modes == {".": 0o710, "edge.db": 0o600, "edge.db-wal": 0o600, "edge.db-shm": 0o600}
