"""What the routing scripts keep for speed, and why it never changes an answer.

* The two hashes a decision reads field by field stay hash tables (issue 11's
  throughput). Redis keeps a hash of up to 512 short fields as a listpack, where
  HMGET finds each field by scanning the whole hash. A group of a few hundred skill
  profiles had its free-agent heads (``pfree``) in one: a call -> agent decision's
  HMGET of the requirement's profiles then took about a third of Redis's time per
  enqueue (bench/README.md). The scripts keep a long ``|wide|`` value in ``pfree``
  and ``rwait`` (routing/lua/lib.lua), which makes both hash tables for good;
  nothing that reads them takes the marker for a profile or a requirement.
* The eligibility graph's ranges are kept in the library's Lua state between
  calls: a profile that appears later, another database with the same key names,
  and a group whose keys were wiped must each see their own graph.
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


async def _served_by(router: RedisRouter, call: str, skills: dict[str, int]) -> str | None:
    ticket = await router.enqueue(call, "q", skills)
    try:
        assignment = await asyncio.wait_for(router.wait(ticket), 0.5)
    except TimeoutError:
        await router.abandon(ticket)
        return None
    await router.connected(assignment)
    await router.completed(assignment)
    return assignment.agent_id


async def test_the_cached_graph_follows_new_profiles_and_other_databases(redis_url: str) -> None:
    """The scripts keep the eligibility graph's ranges between calls (lib.lua): a
    profile that appears later is served at once, and a second store in another
    database of the same server, same names, never uses the first one's ranges."""
    one = RedisRouter.connect(f"{redis_url}?db=4", namespace="graph")
    other = RedisRouter.connect(f"{redis_url}?db=3", namespace="graph")
    try:
        await one.redis.flushdb()  # databases of their own: flushed here only
        await other.redis.flushdb()
        await one.start()
        await other.start()
        await one.add_agents([Agent("a1", "PJSIP/a1", {"sales": 1})])
        await one.login("a1")
        assert await _served_by(one, "c1", {"sales": 1}) == "a1"  # the range is cached
        # A new profile, eligible for the same requirement: its agent is the only
        # one free, and is found.
        await one.add_agents([Agent("a2", "PJSIP/a2", {"sales": 5})])
        await one.login("a2")
        await one.pause("a1", "lunch")
        assert await _served_by(one, "c2", {"sales": 1}) == "a2"
        # The same requirement in another database, with other profiles.
        await other.add_agents([Agent("b1", "PJSIP/b1", {"sales": 3})])
        await other.login("b1")
        assert await _served_by(other, "d1", {"sales": 1}) == "b1"
        assert await _served_by(one, "c3", {"sales": 1}) == "a2"
        await one.resume("a1")
        await one.pause("a2", "lunch")
        assert await _served_by(one, "c4", {"sales": 1}) == "a1"
        assert await _served_by(other, "d2", {"sales": 1}) == "b1"
        # The group's keys gone (a flush), other agents: a new graph.
        await one.redis.flushdb()
        await one.add_agents([Agent("a9", "PJSIP/a9", {"sales": 9})])
        await one.login("a9")
        assert await _served_by(one, "c5", {"sales": 1}) == "a9"
    finally:
        await one.close()
        await other.close()


async def test_a_reservation_is_one_stream_entry_read_as_two_events(redis_url: str) -> None:
    """The reservation's agent state change rides on its ``reserved`` entry (one XADD
    less per reservation); every reader gives ``state`` then ``reserved`` as before."""
    router = RedisRouter.connect(redis_url, namespace="fold")
    try:
        await router.start()
        await router.add_agents([Agent("a1", "PJSIP/a1", {"sales": 1}, site="seoul")])
        await router.login("a1")
        stream = router.names.group(DEFAULT_GROUP).events
        before = await router.redis.xlen(stream)
        ticket = await router.enqueue("c1", "q", {"sales": 1}, site="busan")
        await asyncio.wait_for(router.wait(ticket), 5)
        assert await router.redis.xlen(stream) - before == 2  # enqueued, reserved
        expected = [
            ("state", {"agent": "a1", "before": "available", "after": "reserved",
                       "reason": "", "site": "seoul"}),
            ("reserved", {"ticket": str(ticket.id), "call": "c1", "queue": "q",
                          "site": "busan", "agent": "a1"}),
        ]  # fmt: skip
        read = [e for _, e in await router.events(0) if e["event"] in ("state", "reserved")]
        tailed = [e for _, e in await router.tail(DEFAULT_GROUP, "0-0")]
        tailed = [e for e in tailed if e["event"] in ("state", "reserved")]
        for rows in (read, tailed):
            last = rows[-2:]
            assert [
                (e["event"], {k: e[k] for k in fields})
                for e, (_, fields) in zip(last, expected, strict=True)
            ] == expected
            assert "before" not in last[1] and "agent_site" not in last[1]
            assert last[0]["at"] == last[1]["at"] and last[0]["group"] == DEFAULT_GROUP
    finally:
        await router.close()
