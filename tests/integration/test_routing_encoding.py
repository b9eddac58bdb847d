"""The two hashes a decision reads field by field stay hash tables (issue 11's throughput).

Redis keeps a hash of up to 512 short fields as a listpack, where HMGET finds each
field by scanning the whole hash. A group of a few hundred skill profiles had its
free-agent heads (``pfree``) in one: a call -> agent decision's HMGET of the
requirement's profiles then took about a third of Redis's time per enqueue
(bench/README.md). The scripts keep a long ``|wide|`` value in ``pfree`` and
``rwait`` (routing/lua/lib.lua), which makes both hash tables for good; nothing that
reads them takes the marker for a profile or a requirement.
"""

from __future__ import annotations

import asyncio

from routing.redis import RedisRouter
from routing.types import DEFAULT_GROUP, Agent


async def test_a_few_hundred_profiles_are_read_from_hash_tables(redis_url: str) -> None:
    router = RedisRouter.connect(redis_url, namespace="wide")
    try:
        await router.start()
        # 200 profiles (each agent its own levels): under Redis's listpack limits.
        agents = [
            Agent(f"a{i}", f"PJSIP/a{i}", {"sales": 1 + i % 10, f"x{i}": 1}) for i in range(200)
        ]
        await router.add_agents(agents)
        for agent in agents:
            await router.login(agent.id)
            await asyncio.sleep(0)
        keys = router.names.group(DEFAULT_GROUP)
        assert await router.redis.object("encoding", keys.pfree) == b"hashtable"

        # A call no agent can take waits: its requirement's head is in rwait.
        waiting = await router.enqueue("c-rare", "q", {"rare": 1})
        assert await router.redis.object("encoding", keys.rwait) == b"hashtable"

        # Decisions are unchanged: the longest idle agent of those eligible.
        ticket = await router.enqueue("c-1", "q", {"sales": 5})
        first = await asyncio.wait_for(router.wait(ticket), 5)
        assert first.agent_id == "a4"  # the first logged in with sales >= 5
        await router.connected(first)
        await router.completed(first)
        # The marker is neither a profile nor a requirement: the waiting call stays,
        # the queue's count is one, and a callback worker's scan of rwait skips it.
        assert (await router.position(waiting)) == 1
        assert await router.claim_callback() is None
    finally:
        await router.close()
