"""A transition Redis cannot take is kept in a durable outbox and replayed in order.

A real redis-server is stopped under the router: ``completed`` and ``abandon``
return (their lines are fsync'd to the outbox file), and when the server is
back the router replays them by itself; nothing is lost or swallowed.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from routing.embedded import EmbeddedRedis
from routing.errors import RoutingUnavailable
from routing.redis import RedisRouter
from routing.types import Agent


async def until(check: object, timeout: float = 10.0) -> None:
    """Poll ``check`` (an async callable) until it is true."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():  # type: ignore[operator]
        assert asyncio.get_running_loop().time() < deadline, "not in time"
        await asyncio.sleep(0.05)


async def test_transitions_wait_in_the_outbox_while_redis_is_away(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path / "redis")
    url = await server.start()
    outbox = tmp_path / "outbox.jsonl"
    router = RedisRouter.connect(url, outbox=outbox)
    try:
        await router.start()
        await router.add_agents([Agent("ann", "PJSIP/1")])
        await router.login("ann")
        call = await asyncio.wait_for(router.wait(await router.enqueue("c1", "q", {})), 2)
        await router.connected(call)
        behind = await router.enqueue("c2", "q", {})

        await server.stop()
        await router.completed(call)  # kept, not raised, not dropped
        await router.abandon(behind)
        lines = [json.loads(line) for line in outbox.read_text().splitlines()]
        assert [line["op"] for line in lines] == ["completed", "abandon"]
        with pytest.raises(RoutingUnavailable):
            await router.login("ann")  # an answer is needed now: said, not queued

        await server.start()

        async def replayed() -> bool:
            return outbox.read_text() == ""

        await until(replayed)
        snapshot = await router.snapshot()
        assert snapshot["tickets"]["c1"] == {"stage": "completed", "agent": "ann"}
        assert snapshot["tickets"]["c2"]["stage"] == "abandoned"
        assert snapshot["agents"]["ann"]["state"] == "available"  # not stuck on_call
    finally:
        await router.close()
        await server.stop()


async def test_without_an_outbox_the_failure_is_raised(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path / "redis")
    url = await server.start()
    router = RedisRouter.connect(url)
    try:
        await router.add_agents([Agent("ann", "PJSIP/1")])
        await router.login("ann")
        call = await asyncio.wait_for(router.wait(await router.enqueue("c1", "q", {})), 2)
        await server.stop()
        with pytest.raises(RoutingUnavailable, match="unreachable"):
            await router.connected(call)
    finally:
        await router.close()
        await server.stop()
