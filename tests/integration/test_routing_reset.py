"""Redis comes back empty (a restart without persistence): the router notices by the
group's generation key, calls ``on_reset`` (the engine rebuilds its agents there)
and puts its callers on hold back, each in its place."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

from routing.embedded import EmbeddedRedis
from routing.redis import RedisRouter
from routing.types import Agent

AGENTS = [Agent("ann", "PJSIP/1", {"billing": 5})]


async def until(check: object, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():  # type: ignore[operator]
        assert asyncio.get_running_loop().time() < deadline, "not in time"
        await asyncio.sleep(0.05)


async def test_callers_on_hold_come_back_in_their_place(tmp_path: Path) -> None:
    folder = tmp_path / "redis"
    server = EmbeddedRedis(folder)
    url = await server.start()
    resets = 0

    async def rebuild() -> None:
        nonlocal resets
        resets += 1
        await router.add_agents(AGENTS)  # routing.yaml; AMI presence would log them in

    router = RedisRouter.connect(url, on_reset=rebuild)
    try:
        await router.start()
        await router.add_agents(AGENTS)
        first = await router.enqueue("c1", "billing", {"billing": 3})
        vip = await router.enqueue("c2", "billing", {"billing": 3}, 5)
        last = await router.enqueue("c3", "billing", {"billing": 3})
        waits = [asyncio.ensure_future(router.wait(t)) for t in (first, vip, last)]

        await server.stop()  # the data goes with it: no persistence to restart from
        shutil.rmtree(folder)
        await server.start()

        async def rebuilt() -> bool:
            return resets == 1 and await router.position(last) == 3

        await until(rebuilt)
        assert [await router.position(t) for t in (vip, first, last)] == [1, 2, 3]
        assert await router.agent_state("ann") == "logged_out"
        assert (await router.login("ann")).result == "done"
        assert (await asyncio.wait_for(waits[1], 2)).agent_id == "ann"  # the best call
        fresh = await router.enqueue("c4", "billing", {})
        assert fresh.id > last.id  # ids never reused
        assert not waits[0].done() and not waits[2].done()
        for waiting in waits:
            waiting.cancel()
    finally:
        await router.close()
        await server.stop()


async def test_agents_talking_or_ringing_come_back_busy(tmp_path: Path) -> None:
    """An agent on a call, and one ringing, are not offered a caller after the reset:
    they come back busy with their calls, before the reload logs everyone in."""
    folder = tmp_path / "redis"
    server = EmbeddedRedis(folder)
    url = await server.start()
    staff = [Agent("ann", "PJSIP/1", {"billing": 5}), Agent("bob", "PJSIP/2", {"billing": 5})]
    free = Agent("cat", "PJSIP/3", {"billing": 5})

    async def rebuild() -> None:  # routing.yaml with log_in: true for everyone
        await router.add_agents([*staff, free])
        for agent in (*staff, free):
            if await router.agent_state(agent.id) == "logged_out":
                await router.login(agent.id)

    router = RedisRouter.connect(url, on_reset=rebuild)
    try:
        await router.start()
        await router.add_agents(staff)
        for agent in staff:
            await router.login(agent.id)
        talking = await router.wait(await router.enqueue("c1", "billing", {"billing": 3}))
        await router.connected(talking)
        ringing = await router.wait(await router.enqueue("c2", "billing", {"billing": 3}))
        assert {talking.agent_id, ringing.agent_id} == {"ann", "bob"}

        await server.stop()
        shutil.rmtree(folder)
        await server.start()

        async def rebuilt() -> bool:
            try:
                return await router.agent_state("cat") == "available"
            except Exception:  # Redis still coming back: look again
                return False

        await until(rebuilt)
        assert await router.agent_state(talking.agent_id) == "on_call"
        assert await router.agent_state(ringing.agent_id) == "reserved"
        taken = await router.wait(await router.enqueue("c3", "billing", {"billing": 3}))
        assert taken.agent_id == "cat"  # not one of the two busy agents
        # The restored calls end as any other: the agents take calls again after.
        await router.completed(talking)
        await router.connected(ringing)
        await router.completed(ringing)
        assert await router.agent_state(talking.agent_id) == "available"
        assert await router.agent_state(ringing.agent_id) == "available"
    finally:
        await router.close()
        await server.stop()
