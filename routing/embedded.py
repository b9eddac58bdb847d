"""A private ``redis-server`` for when no Redis is configured.

Started on a Unix socket inside a data directory (no TCP port at all),
persisting with an append-only file there, and stopped with the engine. The
binary comes from PATH (Debian's ``redis-server``). Tests use the same class
to run against a real server.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from pathlib import Path

import redis.asyncio as aioredis

from routing.errors import RoutingError

__all__ = ["EmbeddedRedis"]


class EmbeddedRedis:
    """``async with EmbeddedRedis(folder) as url:`` runs redis-server until the block ends."""

    def __init__(self, folder: Path, executable: str = "redis-server") -> None:
        self.folder = Path(folder).resolve()  # redis-server changes into it
        self.executable = executable
        self.socket = self.folder / "redis.sock"
        self._process: asyncio.subprocess.Process | None = None

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
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
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
        return self.url

    async def stop(self) -> None:
        process, self._process = self._process, None
        if process is None or process.returncode is not None:
            return
        process.terminate()  # redis-server flushes its append-only file on SIGTERM
        try:
            await asyncio.wait_for(process.wait(), 10)
        except TimeoutError:
            process.kill()
            await process.wait()

    async def __aenter__(self) -> str:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
