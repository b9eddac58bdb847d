"""The Redis router gives the reference model's answers (routing/ROUTING.md).

A seeded random run drives ``routing.reference.Reference`` and the Redis
router in lockstep with one fake clock: agents with skills, languages, sites
and groups, logins, pauses, calls, answers, misses, hang-ups, overflows,
callbacks, requalifications, leases and wrap-ups. After every step the
snapshots (every agent's state and pending request, every ticket's stage
and agent) and every waiting call's position must be equal.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from typing import Any

import pytest

from routing.config import QueueConfig
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
    rng: random.Random, reference: Reference, router: RedisRouter, clock: Clock, calls: dict[str, Any]
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
            "claim", claimed, got)
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
