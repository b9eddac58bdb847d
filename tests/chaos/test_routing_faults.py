"""Two routing faults the chaos scenarios found, each pinned on a real redis-server.

- An engine that dies (``kill -9``) held its callers' tickets: its peers end them
  within seconds (its heartbeat stopped), its waiting callers before its ringing
  and talking ones, so a freed agent is never reserved for a caller who is gone.
- A transition queued in the outbox while the outbox was being replayed was lost
  when the replay rewrote the file: the agent stayed ``reserved`` for good.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from routing.redis import RedisRouter
from routing.types import Agent
from tests.chaos.rig import until


@pytest.fixture
def namespace(redis_url: str) -> str:
    """A namespace of its own on the session's redis-server."""
    return f"chaos-{uuid.uuid4().hex[:8]}"


async def _router(url: str, namespace: str, **kw: Any) -> RedisRouter:
    router = RedisRouter.connect(url, namespace, **kw)
    router.dead_after = 0.6
    router.reap_every = 0.1
    await router.start()
    return router


async def _die(router: RedisRouter) -> None:
    """What kill -9 leaves: no more ticks, beats or renewals, connections dropped."""
    for task in (router._ticker, router._listener):
        if task is not None:
            task.cancel()
            await asyncio.wait({task}, timeout=2)
    router._closed = True
    router._beating_since = None  # no goodbye: its heartbeat key just expires
    await router.close()


class TestDeadEngine:
    async def test_a_dead_engines_calls_end_and_its_agent_serves_the_living(
        self, redis_url: str, namespace: str
    ) -> None:
        """The peer ends the dead engine's waiting and ringing calls within seconds, and
        the agent the dead call held takes the peer's caller, not the dead one's."""
        dead = await _router(redis_url, namespace)
        peer = await _router(redis_url, namespace)
        try:
            await dead.add_agents([Agent("ann", "PJSIP/1")])
            await dead.login("ann")
            ringing = await dead.enqueue("dead-1", "q", {})
            assert (await asyncio.wait_for(dead.wait(ringing), 2)).agent_id == "ann"
            for n in range(2, 5):  # callers on hold at the dead engine, first in line
                await dead.enqueue(f"dead-{n}", "q", {})
            await until(lambda: peer._beating_since is not None, "the peer beats", 5)
            await asyncio.sleep(0.3)
            await _die(dead)
            living = await peer.enqueue("living", "q", {})
            assignment = await asyncio.wait_for(peer.wait(living), 5)
            assert assignment.agent_id == "ann"
            snapshot = await peer.snapshot()
            stages = {call: row["stage"] for call, row in snapshot["tickets"].items()}
            assert stages == {
                "dead-1": "lease_expired",
                "dead-2": "lease_expired",
                "dead-3": "lease_expired",
                "dead-4": "lease_expired",
                "living": "reserved",
            }
            assert await peer.dead_engines() == []  # forgotten once it holds nothing
        finally:
            await peer.close()

    async def test_a_living_engine_is_never_reaped(self, redis_url: str, namespace: str) -> None:
        """Two engines that beat keep each other's calls, well past dead_after."""
        first = await _router(redis_url, namespace)
        second = await _router(redis_url, namespace)
        try:
            await first.add_agents([Agent("bo", "PJSIP/2")])
            await first.login("bo")
            ringing = await first.enqueue("held", "q", {})
            await asyncio.wait_for(first.wait(ringing), 2)
            waiting = await first.enqueue("waits", "q", {})
            await asyncio.sleep(first.dead_after * 3)
            snapshot = await second.snapshot()
            assert snapshot["tickets"]["held"]["stage"] == "reserved"
            assert snapshot["tickets"]["waits"]["stage"] == "waiting"
            await first.abandon(waiting)
            await first.abandon(ringing)
        finally:
            await first.close()
            await second.close()

    async def test_an_engine_that_never_beat_is_left_to_its_leases(
        self, redis_url: str, namespace: str
    ) -> None:
        """An older engine (no heartbeat at all) is not judged: only its leases end it."""
        old = RedisRouter.connect(redis_url, namespace)
        old.ticking = False  # it neither beats nor ticks
        peer = await _router(redis_url, namespace)
        try:
            await old.start()
            await old.add_agents([Agent("cy", "PJSIP/3")])
            await old.login("cy")
            await old.enqueue("older", "q", {})
            await asyncio.sleep(peer.dead_after * 3)
            assert (await peer.snapshot())["tickets"]["older"]["stage"] == "reserved"
        finally:
            await old.close()
            await peer.close()


class TestOutboxReplay:
    async def test_a_transition_queued_during_a_replay_is_kept(
        self, redis_url: str, namespace: str, tmp_path: Path
    ) -> None:
        """While the outbox replays (awaiting Redis), a new transition is appended behind;
        the replay's rewrite keeps it, and the agent ends free."""
        outbox = tmp_path / "outbox.jsonl"
        router = RedisRouter.connect(redis_url, namespace, outbox=outbox)
        router.ticking = False  # the test replays by hand
        try:
            await router.start()
            await router.add_agents([Agent("di", "PJSIP/4")])
            await router.login("di")
            call = await asyncio.wait_for(router.wait(await router.enqueue("c1", "q", {})), 2)
            assert router.outbox is not None
            # Redis was away when the answer came: the transition waits in the outbox.
            entry = [router.clock(), call.ticket.id, "di", ""]
            router.outbox.add("connected", call.ticket.group, entry)
            release = asyncio.Event()
            original: Callable[..., Awaitable[Any]] = router.run

            async def slow_run(op: str, group: str, *args: Any, now: float | None = None) -> Any:
                await release.wait()  # Redis is slow to answer the replay
                return await original(op, group, *args, now=now)

            router.run = slow_run  # type: ignore[method-assign]
            replay = asyncio.ensure_future(router.replay())
            await asyncio.sleep(0.05)
            await router.completed(call)  # the call ends meanwhile: behind, in the outbox
            release.set()
            assert await replay == 1
            kept = [json.loads(line)["op"] for line in outbox.read_text().splitlines()]
            assert kept == ["completed"]
            router.run = original  # type: ignore[method-assign,assignment]
            assert await router.replay() == 1
            snapshot = await router.snapshot()
            assert snapshot["tickets"]["c1"]["stage"] == "completed"
            assert snapshot["agents"]["di"]["state"] == "available"
        finally:
            await router.close()


class TestLostNotice:
    async def test_a_reservation_made_while_nobody_listened_reaches_its_caller(
        self, redis_url: str, namespace: str
    ) -> None:
        """The subscription is lost; an agent is reserved for a caller meanwhile (its
        notice goes to nobody); a new call subscribes again before the ticker does. The
        ticker still looks the waiting caller up, who gets the agent."""
        engine = RedisRouter.connect(redis_url, namespace)
        other = RedisRouter.connect(redis_url, namespace)
        try:
            await engine.start()
            await engine.add_agents([Agent("eve", "PJSIP/5")])
            waiting = await engine.enqueue("w1", "q", {})
            engine.ticking = False  # only keeps the subscription for a while
            assert engine._listener is not None
            engine._listener.cancel()
            await asyncio.wait({engine._listener}, timeout=2)
            await other.login("eve")  # eve is reserved for w1: the notice is lost
            await engine.enqueue("w2", "q", {})  # subscribes again, before the ticker
            engine.ticking = True
            assignment = await asyncio.wait_for(engine.wait(waiting), 3)
            assert assignment.agent_id == "eve"
        finally:
            await engine.close()
            await other.close()
