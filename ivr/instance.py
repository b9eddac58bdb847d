"""One engine per folder: a second ``ivr serve`` on the same ``var/`` refuses at once.

An engine that runs its own redis-server owns its folder (the socket, the data
files): a second one started there by accident would start another
redis-server on the same socket, and delete it on exit under the first. The
lock is an ``flock`` on a file beside the Redis folder, so it goes with the
process however it ends (no stale lock after ``kill -9``); the file names the
running engine (pid and ports) for the refusal.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from pathlib import Path

from ivr.errors import ConfigError

__all__ = ["engine_lock"]


@contextlib.contextmanager
def engine_lock(folder: Path, **ports: object) -> Iterator[Path]:
    """Hold ``folder``'s engine lock for the block; :class:`ConfigError` naming the
    engine that holds it. ``ports`` are written for that message."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    path = folder.parent / f"{folder.name}.engine.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ConfigError(_held_by(path, folder)) from None
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"pid": os.getpid(), **ports}).encode())
        yield path
    finally:
        os.close(fd)  # releases the lock


def _held_by(path: Path, folder: Path) -> str:
    try:
        owner = json.loads(path.read_text(encoding="utf-8") or "{}")
    except (OSError, ValueError):
        owner = {}
    described = ", ".join(f"{k} {v}" for k, v in owner.items()) or "pid unknown"
    return (
        f"another engine already runs on {folder} ({described}); stop it, or give this "
        "one its own folders (IVR_REDIS_DIR) or an external Redis (IVR_REDIS_URL)"
    )
