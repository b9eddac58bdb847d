"""Per-call prompt files: text rendered from a call's data lives only as long as the call.

A prompt that reads back what a caller typed or what a lookup found (``You
entered ${pin}``) must never be cached: a cached file named by a hash of its
text keeps the value on disk, and recoverable from the name alone. Such a
prompt is rendered into a file with a random name in a folder of its own call
(Asterisk plays prompts by path, so the folder is under the prompts folder it
shares), and the folder is removed when the call ends.

The layout is ``<root>/<engine>/<call>/<random>.wav``. Each engine holds an
``flock`` on ``<root>/<engine>.lock`` while it runs, so the lock goes with the
process however it ends; an engine that starts removes every engine folder
whose lock nobody holds (the calls of an engine that crashed), and never
another running engine's (several engines may share one prompts folder).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
import shutil
from pathlib import Path

import structlog

__all__ = ["CallFolder", "PrivateFolders"]

log = structlog.get_logger("speech.private")

_LOCK = ".lock"


def _token() -> str:
    """A name that says nothing about what the file holds."""
    return secrets.token_hex(10)


class CallFolder:
    """One call's prompt files; :meth:`remove` deletes them all."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def new_file(self, suffix: str = ".wav") -> Path:
        """A fresh random path in the folder (the file is not created)."""
        return self.path / f"{_token()}{suffix}"

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


class PrivateFolders:
    """The per-call folders of one engine under ``root``; made on first use."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._fd: int | None = None
        self._mine: Path | None = None

    def sweep(self) -> int:
        """Remove the folders of engines that no longer run; how many were removed."""
        if not self.root.is_dir():
            return 0
        removed = 0
        for entry in self.root.iterdir():
            if entry.name.startswith("."):
                continue  # an engine's lock being made (see _open)
            if entry.suffix == _LOCK:
                folder = entry.with_suffix("")
                if folder == self._mine or not _unheld(entry):
                    continue
                shutil.rmtree(folder, ignore_errors=True)
                entry.unlink(missing_ok=True)
                removed += 1
            elif (
                entry.is_dir()
                and entry != self._mine
                and not entry.with_name(entry.name + _LOCK).exists()
            ):
                # A folder whose lock is gone: a sweep stopped between the two steps.
                shutil.rmtree(entry, ignore_errors=True)
                removed += 1
        if removed:
            log.info("prompts.per_call_leftovers_removed", engines=removed)
        return removed

    def call_folder(self) -> CallFolder:
        """A new, empty folder for one call's prompts."""
        mine = self._open()
        path = mine / _token()
        path.mkdir()
        return CallFolder(path)

    def close(self) -> None:
        """Remove this engine's folder (its calls have ended) and release its lock."""
        mine, fd = self._mine, self._fd
        self._mine = self._fd = None
        if mine is not None:
            shutil.rmtree(mine, ignore_errors=True)
            mine.with_name(mine.name + _LOCK).unlink(missing_ok=True)
        if fd is not None:
            os.close(fd)

    def _open(self) -> Path:
        if self._mine is not None:
            return self._mine
        self.root.mkdir(parents=True, exist_ok=True)
        self.sweep()
        name = _token()
        # Locked under a hidden name, then renamed: a sweep never sees a lock file
        # that is not held yet (it would take it for a dead engine's).
        making = self.root / f".{name}{_LOCK}"
        fd = os.open(making, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            mine = self.root / name
            mine.mkdir()
            making.rename(mine.with_name(name + _LOCK))
        except BaseException:
            os.close(fd)
            making.unlink(missing_ok=True)
            raise
        self._fd, self._mine = fd, mine
        return mine


def _unheld(lock: Path) -> bool:
    """True when no process holds ``lock`` (its engine is gone)."""
    try:
        fd = os.open(lock, os.O_RDWR)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        with contextlib.suppress(OSError):
            os.close(fd)
    return True
