"""The private redis-server the engine starts when no Redis is configured."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import sys
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from routing.embedded import EmbeddedRedis
from routing.errors import RoutingError


async def test_starts_persists_and_stops(tmp_path: Path) -> None:
    """It serves on a Unix socket only, keeps data across restarts, and stops cleanly."""
    server = EmbeddedRedis(tmp_path / "data")
    async with server as url:
        client = aioredis.Redis.from_url(url)
        await client.set("kept", "yes")
        await client.aclose()
    assert not server.socket.exists()  # redis-server removes its socket on a clean stop
    async with EmbeddedRedis(tmp_path / "data") as url:
        client = aioredis.Redis.from_url(url)
        assert await client.get("kept") == b"yes"
        assert (await client.config_get("port"))["port"] == "0"
        await client.aclose()


async def test_missing_binary_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(RoutingError, match="apt-get install redis-server"):
        await EmbeddedRedis(tmp_path, executable="no-such-redis-server").start()


async def test_a_second_engine_on_the_same_folder_is_refused(tmp_path: Path) -> None:
    """A live engine's server is never stopped under it: the folder's lock says it runs."""
    async with EmbeddedRedis(tmp_path / "data") as url:
        with pytest.raises(RoutingError, match=rf"another engine \(pid {os.getpid()}\)"):
            await EmbeddedRedis(tmp_path / "data").start()
        client = aioredis.Redis.from_url(url)
        assert await client.ping()
        await client.aclose()
    async with EmbeddedRedis(tmp_path / "data"):  # the lock went with the first
        pass


async def test_a_dead_engines_server_is_stopped_before_starting(tmp_path: Path) -> None:
    """A redis-server a killed engine left on the folder (its pidfile names it) is
    stopped with SIGTERM (so its append-only file is flushed) before the new one starts:
    never two servers on the same files."""
    folder = tmp_path / "data"
    async with EmbeddedRedis(folder) as url:
        client = aioredis.Redis.from_url(url)
        await client.set("kept", "yes")
        await client.aclose()
    # The left-over server: started like the engine's, but not by an EmbeddedRedis
    # (so no lock and no parent that stops it).
    binary = shutil.which("redis-server")
    assert binary is not None
    orphan = await asyncio.create_subprocess_exec(
        *(binary, "--port", "0", "--unixsocket", str(folder / "redis.sock")),
        *("--dir", str(folder), "--appendonly", "yes", "--save", ""),
        *("--pidfile", str(folder / "redis.pid"), "--logfile", "redis.log"),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        for _ in range(200):
            if (folder / "redis.pid").exists():
                break
            await asyncio.sleep(0.02)
        async with EmbeddedRedis(folder) as url:
            assert await asyncio.wait_for(orphan.wait(), 5) == 0  # SIGTERM: clean
            client = aioredis.Redis.from_url(url)
            assert await client.get("kept") == b"yes"
            info = await client.info("server")
            assert info["process_id"] != orphan.pid
            assert int((folder / "redis.pid").read_text()) == info["process_id"]
            await client.aclose()
    finally:
        if orphan.returncode is None:
            orphan.kill()
            await orphan.wait()


def running(pid: int) -> bool:
    """Alive and not a zombie (whoever adopted it may reap it late)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


OWNER = """
import asyncio, sys
from pathlib import Path
from routing.embedded import EmbeddedRedis

async def main() -> None:
    server = EmbeddedRedis(Path(sys.argv[1]))
    await server.start()
    assert server._process is not None
    print(server._process.pid, flush=True)
    await asyncio.sleep(3600)

asyncio.run(main())
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG")
async def test_the_server_goes_when_its_owner_is_killed(tmp_path: Path) -> None:
    """kill -9 of the process that started it: the kernel sends redis-server SIGTERM."""
    owner = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        OWNER,
        str(tmp_path / "data"),
        stdout=asyncio.subprocess.PIPE,
        cwd=Path(__file__).parents[2],
    )
    assert owner.stdout is not None
    pid = int(await asyncio.wait_for(owner.stdout.readline(), 20))
    try:
        owner.kill()
        await owner.wait()
        for _ in range(200):
            if not running(pid):
                break
            await asyncio.sleep(0.05)
        assert not running(pid), "redis-server outlived its owner"
        async with EmbeddedRedis(tmp_path / "data"):  # the lock went with the owner
            pass
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


async def test_ctrl_c_in_the_engine_s_terminal_leaves_redis_to_the_engine(tmp_path: Path) -> None:
    """Ctrl-C sends SIGINT to the terminal's whole process group: Redis is in a session
    of its own, so it keeps serving the draining engine, which stops it last (before,
    it died at once and the engine's shutdown logged lost connections)."""
    redis = EmbeddedRedis(tmp_path / "r")
    await redis.start()
    try:
        pid = int(redis.pidfile.read_text())
        assert os.getsid(pid) == pid != os.getsid(0)
        assert os.getpgid(pid) != os.getpgid(0)
        client = aioredis.Redis.from_url(redis.url)
        try:
            assert await client.ping()
        finally:
            await client.aclose()
    finally:
        await redis.stop()
