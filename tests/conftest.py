"""Shared fixtures: the Asterisk transcripts and a running FastAGI server."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from ivr.agi.server import FastAgiServer

DATA = Path(__file__).parent / "data"
TRANSCRIPTS = DATA / "transcripts"


@pytest.fixture(scope="session")
def agi_sessions() -> list[dict[str, Any]]:
    """The captured Asterisk 22 FastAGI sessions."""
    sessions: list[dict[str, Any]] = json.loads((TRANSCRIPTS / "agi-sessions.json").read_text())
    return sessions


@pytest.fixture
async def agi_server() -> AsyncIterator[FastAgiServer]:
    """A FastAGI server on a free loopback port with no routes yet."""
    server = FastAgiServer(port=0, command_timeout=5.0, env_timeout=1.0, hangup_grace=0.5)
    await server.start()
    try:
        yield server
    finally:
        await server.drain(1.0)


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real redis-server on a Unix socket for the whole session."""
    import redis

    folder = tmp_path_factory.mktemp("redis")
    socket = folder / "redis.sock"
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not installed: run ./dev setup (apt-get install redis-server)")
    process = subprocess.Popen(
        [binary, "--port", "0", "--unixsocket", str(socket), "--dir", str(folder), "--save", ""],
        stdout=subprocess.DEVNULL,
    )
    client = redis.Redis(unix_socket_path=str(socket))
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            break
        except (redis.ConnectionError, OSError):
            if time.monotonic() > deadline:
                process.kill()
                pytest.fail("redis-server did not start")
            time.sleep(0.05)
    client.close()
    try:
        yield f"unix://{socket}"
    finally:
        process.terminate()
        process.wait(10)
