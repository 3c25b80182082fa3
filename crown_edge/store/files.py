"""File modes of the workshop's local state: private to the service user.

The store holds customer names and texts, so the database and its ``-wal``/``-shm``/``-journal``
companions are ``0600`` and the state directory ``0700``. Modes are set explicitly after creation
(a process umask can only take bits away, and an odd one could leave the owner without write
access) and a looser mode found at start — a store created by an older release, or by hand — is
tightened with a log line, so a restart is enough to mend an existing installation.

SQLite creates the WAL and shared-memory files with the database file's own mode, so a ``0600``
database keeps them ``0600`` too; they are still checked, because files left by an older run may
predate the database's tightening.

The one thing a technician's group may reach is the control socket (``0660``, set by
:mod:`crown_edge.control`). When it lives in the state directory itself (the default relative
layout puts both under ``var/``) the directory is ``0710`` instead: the group may traverse it to
reach the socket by name, but not list it, and every file in it is still owner-only.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

log = logging.getLogger(__name__)

DIR_MODE = 0o700
DIR_MODE_SHARED = 0o710
FILE_MODE = 0o600
SQLITE_COMPANIONS = ("-wal", "-shm", "-journal")


def private_dir(path: Path, *, group_traverse: bool = False) -> Path:
    """Create ``path`` (and missing parents) with mode ``0700`` or tighten it to that mode.

    ``group_traverse`` allows ``0710`` (module docstring). Only the directory itself is made
    private: parents created on the way keep the umask's default, like ``mkdir -p``.
    """
    wanted = DIR_MODE_SHARED if group_traverse else DIR_MODE
    if not path.exists():
        path.mkdir(parents=True, exist_ok=True, mode=wanted)
        os.chmod(path, wanted)  # the umask may have taken owner bits away
        return path
    _tighten(path, wanted, what="state directory")
    return path


def private_file(path: Path) -> Path:
    """Create ``path`` empty with mode ``0600`` if missing, else tighten it to ``0600``."""
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, FILE_MODE)
    except FileExistsError:
        _tighten(path, FILE_MODE, what="file")
        return path
    try:
        os.fchmod(fd, FILE_MODE)
    finally:
        os.close(fd)
    return path


def private_database(path: Path) -> None:
    """Make the database file and whichever SQLite companion files exist ``0600``."""
    private_file(path)
    for suffix in SQLITE_COMPANIONS:
        companion = path.with_name(path.name + suffix)
        if companion.exists():
            _tighten(companion, FILE_MODE, what="file")


def _tighten(path: Path, wanted: int, *, what: str) -> None:
    """Remove every permission bit ``wanted`` does not grant; keep the owner's own bits."""
    try:
        st = os.stat(path)
    except FileNotFoundError:  # a companion file SQLite removed meanwhile
        return
    mode = stat.S_IMODE(st.st_mode)
    extra = mode & ~wanted & 0o777
    if not extra:
        return
    new = (mode & ~extra) | (wanted & 0o700)
    try:
        os.chmod(path, new)
    except PermissionError:
        log.warning(
            "%s %s has mode %o and is owned by uid %s: cannot tighten it to %o as uid %s",
            what,
            path,
            mode,
            st.st_uid,
            new,
            os.geteuid(),
        )
        return
    log.warning("%s %s had mode %o; tightened to %o", what, path, mode, new)
