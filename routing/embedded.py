"""A private ``redis-server`` for when no Redis is configured.

Started on a Unix socket inside a data directory (no TCP port at all),
persisting with an append-only file there, and stopped with the engine. The
binary comes from PATH (Debian's ``redis-server``). Tests use the same class
to run against a real server.

It also goes when the engine is killed (``kill -9``, a crash): on Linux the
server is started with ``prctl(PR_SET_PDEATHSIG, SIGTERM)``, so the kernel
sends it SIGTERM (it flushes the append-only file and exits) when the thread
that forked it ends. That thread is the event loop's, which lives as long as
the engine (``asyncio.create_subprocess_exec`` forks in the calling thread).

Elsewhere, or if a server survived anyway, the folder tells: the engine holds
an exclusive lock on ``redis.lock`` while its server runs (the kernel drops it
with the engine), and the server writes its pid to ``redis.pid``. A new start
whose lock is free but whose pidfile names a live redis-server in that folder
stops that server (a dead engine's) before starting its own, instead of running
two servers on the same files; a start whose lock is taken (a live engine runs
there) is refused with a message that says so.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import fcntl
import logging
import os
import shutil
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

import redis.asyncio as aioredis

from routing.errors import RoutingError

__all__ = ["EmbeddedRedis", "previous_server", "stop_previous"]

log = logging.getLogger("routing.embedded")

_PR_SET_PDEATHSIG = 1
#: Seconds a previous server gets to flush and exit after SIGTERM before SIGKILL.
_STOP_TIMEOUT = 10.0


def previous_server(folder: Path) -> int | None:
    """The pid of a live redis-server that ``folder/redis.pid`` names and that serves
    from ``folder`` (its working directory, or its socket there): a previous engine's.

    ``None`` when there is no pidfile, it holds no pid, the process is gone (or a
    zombie), or the pid now belongs to another program or folder (a reused pid is
    never touched). Needs /proc (Linux); elsewhere always ``None``.
    """
    folder = Path(folder).resolve()
    try:
        pid = int((folder / "redis.pid").read_text().strip())
    except (OSError, ValueError):
        return None
    if pid <= 0 or pid == os.getpid() or _state(pid) in {None, "Z", "X"}:
        return None
    proc = Path(f"/proc/{pid}")
    try:
        redis = (proc / "comm").read_text().strip().startswith("redis-server")
        cwd = Path(os.readlink(proc / "cwd"))
        cmdline = (proc / "cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return None
    same = cwd == folder or f"unixsocket:{folder / 'redis.sock'}" in cmdline
    return pid if redis and same else None


async def stop_previous(folder: Path, timeout: float = _STOP_TIMEOUT) -> int | None:
    """Stop the redis-server :func:`previous_server` finds (SIGTERM, so it flushes its
    append-only file; SIGKILL after ``timeout`` s). Returns its pid, or ``None``."""
    pid = previous_server(folder)
    if pid is None:
        return None
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _state(pid) not in {None, "Z", "X"}:
        if time.monotonic() >= deadline:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            deadline = float("inf")
        await asyncio.sleep(0.05)
    return pid


def _state(pid: int) -> str | None:
    """The process's state letter from /proc (``Z`` a zombie), ``None`` if it is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except (OSError, IndexError):
        return None


def _die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` that has the kernel send the child SIGTERM when the forking thread
    ends (Linux ``PR_SET_PDEATHSIG``); ``None`` where there is no such thing."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()
    signum = int(signal.SIGTERM)

    def hook() -> None:  # in the child, between fork and exec: resolved beforehand
        prctl(_PR_SET_PDEATHSIG, signum)
        if os.getppid() != parent:  # the engine died before prctl took effect
            os._exit(1)

    return hook


class EmbeddedRedis:
    """``async with EmbeddedRedis(folder) as url:`` runs redis-server until the block ends."""

    def __init__(self, folder: Path, executable: str = "redis-server") -> None:
        self.folder = Path(folder).resolve()  # redis-server changes into it
        self.executable = executable
        self.socket = self.folder / "redis.sock"
        self.pidfile = self.folder / "redis.pid"
        self.lockfile = self.folder / "redis.lock"
        self._process: asyncio.subprocess.Process | None = None
        self._lock: int | None = None  # fd holding the folder's lock while the server runs

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    async def start(self, timeout: float = 10.0) -> str:
        binary = shutil.which(self.executable)
        if binary is None:
            raise RoutingError(
                f"{self.executable} is not installed and no Redis URL is configured; "
                "install it (Debian: apt-get install redis-server) or set IVR_REDIS_URL"
            )
        self.folder.mkdir(parents=True, exist_ok=True)
        if len(str(self.socket)) > 100:
            raise RoutingError(f"{self.socket}: too long for a Unix socket; use a shorter folder")
        self._take_lock()
        try:
            await self._spawn(binary, timeout)
        except BaseException:
            self._release_lock()
            raise
        return self.url

    def _take_lock(self) -> None:
        """The folder is this engine's while it runs its server there (see the module)."""
        fd = os.open(self.lockfile, os.O_RDWR | os.O_CREAT, 0o600)  # not inherited
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise RoutingError(
                f"another engine (pid {holder}) runs redis-server in {self.folder}; "
                "stop it first, or give this one its own IVR_REDIS_DIR"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._lock = fd

    def _release_lock(self) -> None:
        fd, self._lock = self._lock, None
        if fd is not None:
            os.close(fd)  # the lock goes with the descriptor

    async def _spawn(self, binary: str, timeout: float) -> None:
        previous = await stop_previous(self.folder)
        if previous is not None:
            # A dead engine's server, still on these files: one server per folder.
            log.warning(
                "routing.embedded_redis_stopped pid=%d folder=%s (a previous engine's)",
                previous,
                self.folder,
            )
        self.socket.unlink(missing_ok=True)
        self._process = await asyncio.create_subprocess_exec(
            binary,
            "--port",
            "0",
            "--unixsocket",
            str(self.socket),
            "--unixsocketperm",
            "700",
            "--dir",
            str(self.folder),
            "--appendonly",
            "yes",
            "--save",
            "",
            "--daemonize",
            "no",
            "--logfile",
            "redis.log",
            "--pidfile",
            str(self.pidfile),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            preexec_fn=_die_with_parent(),
            # Its own session: Ctrl-C in the engine's terminal (SIGINT to the whole
            # process group) would stop Redis under the draining engine; the engine
            # stops it last (and the kernel, if the engine dies: PR_SET_PDEATHSIG).
            start_new_session=True,
        )
        client = aioredis.Redis.from_url(self.url)
        try:
            async with asyncio.timeout(timeout):
                while True:
                    if self._process.returncode is not None:
                        raise RoutingError(
                            f"redis-server exited with {self._process.returncode}; "
                            f"see {self.folder / 'redis.log'}"
                        )
                    with contextlib.suppress(OSError, aioredis.ConnectionError):
                        if await client.ping():
                            break
                    await asyncio.sleep(0.05)
        except TimeoutError:
            await self.stop()
            raise RoutingError(f"redis-server did not start within {timeout:g} s") from None
        finally:
            await client.aclose()

    async def stop(self) -> None:
        process, self._process = self._process, None
        try:
            if process is None or process.returncode is not None:
                return
            process.terminate()  # redis-server flushes its append-only file on SIGTERM
            try:
                await asyncio.wait_for(process.wait(), _STOP_TIMEOUT)
            except TimeoutError:
                process.kill()
                await process.wait()
        finally:
            self._release_lock()

    async def __aenter__(self) -> str:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
