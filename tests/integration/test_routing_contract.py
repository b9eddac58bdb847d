"""The Redis router gives the reference model's answers (routing/ROUTING.md).

A seeded random run drives ``routing.reference.Reference`` and the Redis
router in lockstep with one fake clock: agents with skills, languages, sites
and groups, logins, pauses, calls, answers, misses, hang-ups, overflows,
callbacks, requalifications, leases and wrap-ups. After every step the
snapshots (every agent's state and pending request, every ticket's stage
and agent) and every waiting call's position must be equal.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from typing import Any

import pytest

from routing.config import QueueConfig
from routing.errors import RoutingUnavailable
from routing.redis import RedisRouter
from routing.reference import Reference
from routing.states import InvalidTransition
from routing.types import Agent, Assignment, Ticket


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


QUEUES = {
    "q0": QueueConfig(),
    "q1": QueueConfig.model_validate({"strategy": "most_skilled", "wrap_up": 2}),
    "q2": QueueConfig.model_validate(
        {"strategy": "round_robin", "prefer_site": True, "wrap_up": 3}
    ),
    "q3": QueueConfig.model_validate({"strategy": "least_occupied", "group": "g2"}),
    "q4": QueueConfig.model_validate({"strategy": "longest_idle", "prefer_site": True}),
}
SKILLS = ("s1", "s2", "s3")
AGENTS = [f"a{i}" for i in range(8)]


def _levels(rng: random.Random, most: int) -> dict[str, int]:
    names = rng.sample(SKILLS, rng.randint(0, most))
    return {name: rng.randint(1, 5) for name in names}


def _agent(rng: random.Random, agent_id: str) -> Agent:
    return Agent(
        agent_id,
        f"PJSIP/{agent_id}",
        _levels(rng, 3),
        languages=tuple(rng.sample(("en", "ko"), rng.randint(0, 2))),
        site=rng.choice(("", "x", "y")),
        group="g2" if agent_id in ("a6", "a7") else "default",
        wrap_up=rng.choice((None, None, 0.0, 4.0)),
    )


@pytest.fixture
async def pair(redis_url: str) -> AsyncIterator[tuple[Reference, RedisRouter, Clock]]:
    clock = Clock()
    router = RedisRouter.connect(redis_url, clock=clock)
    router.ticking = False
    router.callback_window = 0.0
    await router.redis.flushall()
    await router.start()
    await router.replace_queues(QUEUES)
    reference = Reference(clock, lease=30.0)
    reference.queues.update(QUEUES)
    try:
        yield reference, router, clock
    finally:
        await router.close()


async def _both(ref_call: Any, redis_call: Any) -> tuple[Any, Any]:
    """Each side's answer, or the class of its refusal."""
    try:
        mine = ref_call()
    except (InvalidTransition, ValueError) as exc:
        mine = type(exc).__name__
    try:
        theirs = await redis_call()
    except (InvalidTransition, ValueError) as exc:
        theirs = type(exc).__name__
    return mine, theirs


def _change(value: Any) -> Any:
    if isinstance(value, str):
        return value
    released = value.released.ticket.call_id if value.released is not None else None
    return (value.result, released)


async def _step(
    rng: random.Random,
    reference: Reference,
    router: RedisRouter,
    clock: Clock,
    calls: dict[str, Any],
) -> str:
    roll = rng.random()
    engine = router.engine_id
    snap = reference.snapshot()["tickets"]
    live = [c for c, row in snap.items() if row["stage"] in ("waiting", "reserved", "connected")]
    if roll < 0.08:
        clock.now += rng.choice((0.0, 0.5, 1.0, 2.5, 5.0, 31.0))
        return "clock"
    if roll < 0.14:
        agents = [_agent(rng, rng.choice(AGENTS)) for _ in range(rng.randint(1, 3))]
        reference.add_agents(agents)
        await router.add_agents(agents)
        return "add_agents"
    if roll < 0.36:
        agent_id = rng.choice(AGENTS)
        action = rng.choice(("login", "login", "logout", "pause", "resume", "end_wrap_up"))
        args = (agent_id, "lunch") if action == "pause" and rng.random() < 0.5 else (agent_id,)
        mine, theirs = await _both(
            lambda: getattr(reference, action)(*args),
            lambda: getattr(router, action)(*args),
        )
        assert _change(mine) == _change(theirs), (action, args)
        return action
    if roll < 0.56:
        call_id = f"c{len(calls)}"
        queue = rng.choice(sorted(QUEUES))
        kwargs = {
            "strategy": QUEUES[queue].strategy,
            "customer": rng.choice(("", "", "555001", "555002")),
            "any_skills": _levels(rng, 2) or None,
            "language": rng.choice((None, None, "en", "ko")),
            "site": rng.choice(("", "x", "y")),
        }
        skills, priority = _levels(rng, 2), rng.choice((0, 0, 1, 5, 100))
        mine = reference.enqueue(call_id, queue, skills, priority, engine=engine, **kwargs)
        theirs = await router.enqueue(call_id, queue, skills, priority, **kwargs)
        calls[call_id] = (mine, theirs)
        return f"enqueue {call_id} {queue} {skills} {priority} {kwargs}"
    if not live:
        return "nothing"
    call_id = rng.choice(live)
    mine_t, theirs_t = calls[call_id]
    row = snap[call_id]
    agent = row["agent"] or rng.choice(AGENTS)
    if rng.random() < 0.1:
        agent = rng.choice(AGENTS)  # the wrong agent: nothing happens
    mine_a = Assignment(mine_t, agent, f"PJSIP/{agent}")
    theirs_a = Assignment(theirs_t, agent, f"PJSIP/{agent}")
    if roll < 0.62:
        skills = _levels(rng, 2)
        priority = rng.choice((None, 0, 50))
        any_skills = rng.choice((None, {}, _levels(rng, 2)))
        site_only = rng.choice((None, True, False))
        reference.requalify(mine_t, skills, priority, any_skills, site_only)
        await router.requalify(theirs_t, skills, priority, any_skills, site_only)
        return "requalify"
    if roll < 0.67:
        reason = rng.choice(("caller", "overflow", "timeout", "unanswered", "other"))
        reference.abandon(mine_t, reason)
        await router.abandon(theirs_t, reason)
        return "abandon"
    if roll < 0.75:
        reference.connected(mine_a)
        await router.connected(theirs_a)
        return "connected"
    if roll < 0.83:
        reference.completed(mine_a)
        await router.completed(theirs_a)
        return "completed"
    if roll < 0.89:
        fault = rng.random() < 0.6
        reference.missed(mine_a, agent_fault=fault)
        await router.missed(theirs_a, agent_fault=fault)
        return "missed"
    if roll < 0.93:
        mine, theirs = await _both(
            lambda: reference.request_callback(mine_t, "5551234"),
            lambda: router.request_callback(theirs_t, "5551234"),
        )
        assert mine == theirs
        return "callback"
    if roll < 0.96:
        claimed = reference.claim_callback(engine)
        got = await router.claim_callback()
        assert (claimed and claimed.ticket.call_id) == (got and got.ticket.call_id), (
            "claim",
            claimed,
            got,
        )
        return "claim"
    if roll < 0.98:
        reference.renew(engine)
        await router.renew()
        return "renew"
    ended = reference.tick()
    assert ended == await router.tick(), f"tick: {ended}"
    return "tick"


async def _compare(reference: Reference, router: RedisRouter, calls: dict[str, Any]) -> None:
    theirs, mine = await router.snapshot(), reference.snapshot()
    diff = {
        (part, key): (mine[part].get(key), theirs[part].get(key))
        for part in ("agents", "tickets")
        for key in sorted(set(theirs[part]) | set(mine[part]))
        if mine[part].get(key) != theirs[part].get(key)
    }
    assert not diff, f"(reference, redis): {diff}"
    for call_id, (mine, theirs) in calls.items():
        assert await router.position(theirs) == reference.position(mine), call_id
    for skills in ({}, {"s1": 2}, {"s2": 4, "s3": 1}):
        assert await router.staffed(skills) == reference.staffed(skills), skills


@pytest.mark.parametrize("seed", range(12))
async def test_lockstep_with_the_reference(
    pair: tuple[Reference, RedisRouter, Clock], seed: int
) -> None:
    reference, router, clock = pair
    rng = random.Random(seed)
    calls: dict[str, tuple[Ticket, Ticket]] = {}
    agents = [_agent(rng, agent_id) for agent_id in AGENTS]
    reference.add_agents(agents)
    await router.add_agents(agents)
    done = []
    for _ in range(250):
        done.append(await _step(rng, reference, router, clock, calls))
        try:
            await _compare(reference, router, calls)
        except AssertionError:
            print("steps:", done[-10:])
            raise


# --------------------------------------------------------------------------
# The cases of issue 11, each against the Redis router alone.


@pytest.fixture
async def store(redis_url: str) -> AsyncIterator[tuple[RedisRouter, Clock]]:
    clock = Clock()
    router = RedisRouter.connect(redis_url, clock=clock)
    router.ticking = False
    router.callback_window = 0.0
    await router.redis.flushall()
    await router.start()
    await router.replace_queues(QUEUES)
    try:
        yield router, clock
    finally:
        await router.close()


async def _staff(router: RedisRouter, clock: Clock, *agents: Agent) -> None:
    await router.add_agents(agents)
    for agent in agents:
        clock.now += 1
        assert (await router.login(agent.id)).result == "done"


async def test_no_window_starves_a_call(store: tuple[RedisRouter, Clock]) -> None:
    """250 Korean calls ahead do not hide the English call from the English agent."""
    router, clock = store
    for n in range(250):
        await router.enqueue(f"ko{n}", "q0", {}, language="ko")
    english = await router.enqueue("en", "q0", {}, language="en")
    await _staff(router, clock, Agent("ann", "PJSIP/1", languages=("en",)))
    assert (await router.wait(english)).agent_id == "ann"
    assert (await router.queue_sizes())["q0"] == 250


async def test_priority_across_queues(store: tuple[RedisRouter, Clock]) -> None:
    """A freed agent takes the priority-100 call of another queue before older calls."""
    router, clock = store
    for n in range(5):
        await router.enqueue(f"plain{n}", "q0", {})
    clock.now += 10
    vip = await router.enqueue("vip", "q1", {}, 100, strategy="most_skilled")
    await _staff(router, clock, Agent("ann", "PJSIP/1"))
    assert (await router.wait(vip)).agent_id == "ann"


@pytest.mark.parametrize("strategy", ["round_robin", "least_occupied"])
async def test_fairness_is_exact(store: tuple[RedisRouter, Clock], strategy: str) -> None:
    """Among 60 free agents, the one reserved longest ago (or least busy) is chosen,
    wherever they stand in idle order. It is the group's first call by that strategy:
    its index is built then, from every agent free at that moment."""
    router, clock = store
    agents = [Agent(f"a{n:02d}", f"PJSIP/{n}") for n in range(60)]
    await _staff(router, clock, *agents)
    await router.pause("a37", "away")
    # Everybody else takes a call lasting 10 s, in idle order; a37 comes back last.
    for n in range(59):
        got = await router.wait(await router.enqueue(f"c{n}", "q0", {}))
        await router.connected(got)
        clock.now += 10
        await router.completed(got)
    await router.resume("a37")
    fair = await router.enqueue("fair", "q0", {}, strategy=strategy)
    assert (await router.wait(fair)).agent_id == "a37"


async def test_escalated_priority_stays(store: tuple[RedisRouter, Clock]) -> None:
    router, _ = store
    ticket = await router.enqueue("c1", "q0", {"s1": 3})
    other = await router.enqueue("c2", "q0", {"s1": 1}, 50)
    await router.requalify(ticket, {"s1": 3}, priority=90)
    await router.requalify(ticket, {"s1": 1})  # no priority: keeps 90
    assert await router.position(ticket) == 1
    assert await router.position(other) == 2


async def test_a_replayed_transition_changes_nothing(store: tuple[RedisRouter, Clock]) -> None:
    """A repeated connected() for a finished call leaves the agent's new call alone; a
    repeated missed() puts nothing back."""
    router, clock = store
    await _staff(router, clock, Agent("ann", "PJSIP/1"))
    first = await router.wait(await router.enqueue("c1", "q0", {}))
    await router.connected(first)
    await router.completed(first)
    second = await router.wait(await router.enqueue("c2", "q0", {}))
    await router.connected(first)
    await router.missed(first)
    await router.abandon(first.ticket)
    snapshot = await router.snapshot()
    assert snapshot["agents"]["ann"]["state"] == "reserved"
    assert snapshot["tickets"]["c1"] == {"stage": "completed", "agent": "ann"}
    assert second.agent_id == "ann"


async def test_leases_end_what_no_engine_holds(store: tuple[RedisRouter, Clock]) -> None:
    """A reserved ticket whose engine stops renewing ends lease_expired and frees the
    agent, who takes the next call; renewed leases live on."""
    router, clock = store
    await _staff(router, clock, Agent("ann", "PJSIP/1"))
    ringing = await router.enqueue("c1", "q0", {})
    waiting = await router.enqueue("c2", "q0", {})
    clock.now += 20
    await router.renew()
    clock.now += 20
    assert await router.tick() == 0  # renewed at +20: due at +50
    clock.now += 11
    assert await router.tick() == 1
    snapshot = await router.snapshot()
    assert snapshot["tickets"]["c1"]["stage"] == "lease_expired"
    assert snapshot["tickets"]["c2"] == {"stage": "reserved", "agent": "ann"}
    assert (await router.wait(waiting)).agent_id == "ann"
    kinds = [f["event"] for _, f in await router.events(0)]
    assert "lease_expired" in kinds
    del ringing


async def test_wrap_up_and_a_stale_timer(store: tuple[RedisRouter, Clock]) -> None:
    """q2 wraps up 3 s; ending it early, then a later wrap-up is not cut by the first."""
    router, clock = store
    await _staff(router, clock, Agent("ann", "PJSIP/1", site="x"))
    first = await router.wait(await router.enqueue("c1", "q2", {}, site="x"))
    await router.connected(first)
    await router.completed(first)
    assert await router.agent_state("ann") == "wrap_up"
    assert (await router.end_wrap_up("ann")).result == "done"
    clock.now += 2
    second = await router.wait(await router.enqueue("c2", "q2", {}, site="x"))
    await router.connected(second)
    await router.completed(second)  # wrap-up until now + 3
    clock.now += 1.5  # the first wrap-up's time is over, not this one's
    await router.tick()
    assert await router.agent_state("ann") == "wrap_up"
    clock.now += 1.5
    await router.tick()
    assert await router.agent_state("ann") == "available"


async def test_pending_pause_and_forced_logout(store: tuple[RedisRouter, Clock]) -> None:
    router, clock = store
    await _staff(router, clock, Agent("ann", "PJSIP/1"), Agent("bob", "PJSIP/2"))
    call = await router.wait(await router.enqueue("c1", "q0", {}))
    assert call.agent_id == "ann"
    await router.connected(call)
    assert (await router.pause("ann", "lunch")).result == "pending"
    await router.completed(call)
    row = await router.agent("ann")
    assert row is not None and (row["state"], row["reason"]) == ("paused", "lunch")
    ringing = await router.enqueue("c2", "q0", {})
    assert (await router.wait(ringing)).agent_id == "bob"
    change = await router.logout("bob")
    assert change.result == "done" and change.released is not None
    assert change.released.ticket.call_id == "c2"
    assert await router.position(ringing) == 1  # back at its place, waiting
    with pytest.raises(InvalidTransition, match="pause is allowed from available"):
        await router.pause("bob", "x")


async def test_sites_and_languages(store: tuple[RedisRouter, Clock]) -> None:
    """q4 keeps to the caller's site until a step widens it; languages must match."""
    router, clock = store
    await _staff(
        router,
        clock,
        Agent("far", "PJSIP/1", languages=("en",), site="y"),
        Agent("ko", "PJSIP/2", languages=("ko",), site="x"),
    )
    ticket = await router.enqueue("c1", "q4", {}, language="en", site="x")
    assert await router.position(ticket) == 1
    await router.requalify(ticket, {}, site_only=False)
    assert (await router.wait(ticket)).agent_id == "far"


async def test_groups_are_apart(store: tuple[RedisRouter, Clock]) -> None:
    """q3 is group g2: only g2's agents take its calls; each group has its own keys."""
    router, clock = store
    await _staff(router, clock, Agent("d", "PJSIP/1"), Agent("g", "PJSIP/2", group="g2"))
    ticket = await router.enqueue("c1", "q3", {}, strategy="least_occupied")
    assert ticket.group == "g2"
    assert (await router.wait(ticket)).agent_id == "g"
    keys = await router.redis.keys("*g2*")
    assert keys and all(b"{g:g2}" in key for key in keys)


async def test_callbacks_are_claimed_once(store: tuple[RedisRouter, Clock]) -> None:
    router, clock = store
    first = await router.enqueue("c1", "q0", {})
    second = await router.enqueue("c2", "q0", {})
    assert await router.request_callback(first, "+15551234")
    await _staff(router, clock, Agent("ann", "PJSIP/1"))
    claimed = await router.claim_callback()
    assert claimed is not None and (claimed.ticket.call_id, claimed.callback) == ("c1", "+15551234")
    assert await router.claim_callback() is None
    assert await router.position(second) == 1
    await router.connected(claimed)  # the customer answered
    await router.completed(claimed)
    assert (await router.wait(second)).agent_id == "ann"
    with pytest.raises(ValueError, match="3 to 20 digits"):
        await router.request_callback(second, "555;Dial(PJSIP/evil)")


async def test_two_engines_never_lose_a_reservation_notice(redis_url: str) -> None:
    """Engine B's script can reserve an agent for engine A's new ticket, and A hear of it,
    before A has read its own enqueue reply; A must still get the agent."""
    engines = [RedisRouter.connect(redis_url), RedisRouter.connect(redis_url)]
    await engines[0].redis.flushall()
    for engine in engines:
        await engine.start()
    await engines[0].add_agents(Agent(f"x{i}", f"PJSIP/{i}") for i in range(10))
    for i in range(10):
        await engines[0].login(f"x{i}")
    served = 0

    async def caller(engine: RedisRouter, worker: int) -> None:
        nonlocal served
        for n in range(100):
            ticket = await engine.enqueue(f"{engine.engine_id}-{worker}-{n}", "q", {})
            assignment = await asyncio.wait_for(engine.wait(ticket), 5)
            await engine.connected(assignment)
            await engine.completed(assignment)
            served += 1

    try:
        await asyncio.gather(*(caller(e, w) for e in engines for w in range(16)))
    finally:
        for engine in engines:
            await engine.close()
    assert served == 2 * 16 * 100


async def test_redis_down_is_routing_unavailable() -> None:
    """With its store unreachable and no outbox, the router says so."""
    router = RedisRouter.connect("unix:///nonexistent/redis.sock")
    with pytest.raises(RoutingUnavailable, match="unreachable"):
        await router.add_agents([Agent("a", "PJSIP/1")])
    await router.close()


async def test_a_lost_engine_s_calls_end_by_their_leases(redis_url: str) -> None:
    """An engine dies with a ringing call, a call on the line and a caller on hold: no
    more renewals, so another engine's ticker ends all three lease_expired and frees
    both agents (the on-call one through the end of wrap-up)."""
    dead = RedisRouter.connect(redis_url, lease=1.0)
    await dead.redis.flushall()
    await dead.add_agents([Agent("ann", "PJSIP/1"), Agent("bob", "PJSIP/2")])
    await dead.login("ann")
    await dead.login("bob")
    talking = await asyncio.wait_for(dead.wait(await dead.enqueue("c1", "q", {})), 2)
    await dead.connected(talking)
    await asyncio.wait_for(dead.wait(await dead.enqueue("c2", "q", {})), 2)
    await dead.enqueue("c3", "q", {})
    await dead.close()
    alive = RedisRouter.connect(redis_url, lease=1.0)
    await alive.start()
    try:
        deadline = asyncio.get_running_loop().time() + 10
        while (await alive.snapshot())["tickets"]["c3"]["stage"] != "lease_expired":
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.05)
        snapshot = await alive.snapshot()
        assert {c: row["stage"] for c, row in snapshot["tickets"].items()} == dict.fromkeys(
            ("c1", "c2", "c3"), "lease_expired"
        )
        assert {a: row["state"] for a, row in snapshot["agents"].items()} == {
            "ann": "available",
            "bob": "available",
        }
    finally:
        await alive.close()
