"""Redis goes away mid-run and comes back: routing says so meanwhile, then resumes alone."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from routing.embedded import EmbeddedRedis
from routing.errors import RoutingUnavailable
from routing.redis import RedisRouter
from routing.types import Agent


async def test_routing_survives_a_redis_restart(tmp_path: Path) -> None:
    """While Redis is down enqueue raises RoutingUnavailable (the flow's fallback); after it
    restarts from its append-only file, agents and their states are there and calls route."""
    server = EmbeddedRedis(tmp_path / "redis")
    url = await server.start()
    router = RedisRouter.connect(url)
    try:
        await router.add_agents([Agent("a", "PJSIP/1", {"billing": 5})])
        await router.login("a")
        first = await router.enqueue("c1", "billing", {"billing": 3})
        assignment = await asyncio.wait_for(router.wait(first), 2)
        await router.connected(assignment)
        await router.completed(assignment)

        await server.stop()
        with pytest.raises(RoutingUnavailable):
            await router.enqueue("c2", "billing", {"billing": 3})

        await server.start()
        assert await router.agent_state("a") == "available"
        second = await router.enqueue("c3", "billing", {"billing": 3})
        assert (await asyncio.wait_for(router.wait(second), 5)).agent_id == "a"
    finally:
        await router.close()
        await server.stop()


async def test_a_waiting_call_is_served_after_a_restart(tmp_path: Path) -> None:
    """A call that waits through a Redis restart gets the agent who logs in afterwards."""
    server = EmbeddedRedis(tmp_path / "redis")
    url = await server.start()
    router = RedisRouter.connect(url)
    try:
        await router.add_agents([Agent("a", "PJSIP/1")])
        ticket = await router.enqueue("c1", "general", {})
        waiting = asyncio.ensure_future(router.wait(ticket))
        await server.stop()
        await asyncio.sleep(0.5)
        await server.start()
        await asyncio.sleep(0.6)  # the router listens again by itself
        other = RedisRouter.connect(url)  # an agent logs in through another engine
        await other.login("a")
        await other.close()
        assert (await asyncio.wait_for(waiting, 5)).agent_id == "a"
    finally:
        await router.close()
        await server.stop()
