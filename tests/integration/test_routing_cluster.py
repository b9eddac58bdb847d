"""Scale-out: routing on a real three-master Redis Cluster (two routing groups whose
hash tags land on different masters, each group's decisions one script on its own
shard, calls reserved in both), and through a real Sentinel."""

from __future__ import annotations

import asyncio

import pytest
from redis.crc import key_slot
from redis.exceptions import RedisError

from routing.config import QueueConfig
from routing.redis import RedisRouter
from routing.redis.connect import open_clients
from routing.types import Agent
from tests.integration.redis_cluster import (  # noqa: F401
    Cluster,
    redis_cluster,
    redis_sentinel,
)


def _groups_on_two_masters(router: RedisRouter) -> tuple[str, str]:
    """'east', and the first 'west<n>' whose keys live on another master."""
    cluster = router.redis

    def master(group: str) -> str:
        node = cluster.get_node_from_key(router.names.group(group).agent)
        return f"{node.host}:{node.port}"

    for n in range(100):
        if master(f"west{n}") != master("east"):
            return "east", f"west{n}"
    raise AssertionError("no second master found")


async def test_two_groups_on_two_shards(redis_cluster: Cluster) -> None:  # noqa: F811
    router = RedisRouter.connect(redis_cluster.url)
    other = RedisRouter.connect(redis_cluster.url)  # a second engine
    try:
        await router.start()
        await other.start()
        east, west = _groups_on_two_masters(router)
        slots = {key_slot(router.names.group(g).agent.encode()) for g in (east, west)}
        assert len(slots) == 2
        for group in (east, west):  # every key of a group is in the group's one slot
            keys = router.names.group(group).all()
            assert len({key_slot(k.encode()) for k in keys}) == 1
        await router.replace_queues(
            {
                "sales": QueueConfig.model_validate({"group": east}),
                "support": QueueConfig.model_validate({"group": west}),
            }
        )
        await router.add_agents(
            [Agent("e1", "PJSIP/1", group=east), Agent("w1", "PJSIP/2", group=west)]
        )
        for agent in ("e1", "w1"):
            assert (await other.login(agent)).result == "done"
        sale = await router.enqueue("c1", "sales", {})
        help_ = await other.enqueue("c2", "support", {})
        got = await asyncio.gather(
            asyncio.wait_for(router.wait(sale), 5), asyncio.wait_for(other.wait(help_), 5)
        )
        assert [a.agent_id for a in got] == ["e1", "w1"]
        assert (sale.group, help_.group) == (east, west)
        # A call that waits is served through a notice published on another shard.
        later = await router.enqueue("c3", "support", {})
        await other.connected(got[1])
        await other.completed(got[1])
        assert (await asyncio.wait_for(router.wait(later), 5)).agent_id == "w1"
        events = [f["event"] for _, f in await router.events(0)]
        assert events.count("reserved") == 3
    finally:
        await router.close()
        await other.close()


async def test_sentinel_finds_the_master(redis_sentinel: str) -> None:  # noqa: F811
    """redis+sentinel://: a real Sentinel (redis-server --sentinel) monitoring a real
    master; the router finds the master through it and routes a call."""
    router = RedisRouter.connect(redis_sentinel)
    try:
        deadline = asyncio.get_running_loop().time() + 20
        while True:
            try:
                await router.redis.ping()
                break
            except (RedisError, OSError):
                assert asyncio.get_running_loop().time() < deadline, "sentinel did not answer"
                await asyncio.sleep(0.1)
        await router.redis.flushall()
        await router.add_agents([Agent("ann", "PJSIP/1")])
        await router.login("ann")
        ticket = await router.enqueue("c1", "q", {})
        assert (await asyncio.wait_for(router.wait(ticket), 5)).agent_id == "ann"
    finally:
        await router.close()


async def test_urls_choose_the_client() -> None:
    """Every URL form IVR_REDIS_URL accepts, and a clear refusal of the others."""
    for url, kind in (
        ("redis://127.0.0.1:6379/0", "plain"),
        ("rediss://127.0.0.1:6380/0", "plain"),
        ("unix:///run/redis.sock", "plain"),
        ("redis+cluster://127.0.0.1:7000,127.0.0.1:7001", "cluster"),
        ("redis+sentinel://127.0.0.1:26379,127.0.0.1:26380/main/2", "sentinel"),
    ):
        clients = open_clients(url, 4)
        assert clients.kind == kind, url
        await clients.aclose()
    with pytest.raises(ValueError, match="names the service"):
        open_clients("redis+sentinel://127.0.0.1:26379", 4)
    with pytest.raises(ValueError, match="use redis://"):
        open_clients("http://127.0.0.1", 4)
