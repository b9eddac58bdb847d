"""One contract, two stores: the in-process router and the Redis router behave alike."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis

from routing.errors import RoutingUnavailable
from routing.memory import Agent, MemoryRouter
from routing.redis_router import RedisRouter


@pytest.fixture(params=["memory", "redis"])
async def router(request: pytest.FixtureRequest, redis_url: str) -> AsyncIterator[Any]:
    if request.param == "memory":
        yield MemoryRouter()
        return
    store = RedisRouter.connect(redis_url)
    await store.redis.flushall()
    try:
        yield store
    finally:
        await store.close()


async def staff(router: Any, *agents: Agent) -> None:
    await router.add_agents(agents)
    for agent in agents:
        await router.login(agent.id)
        await asyncio.sleep(0.002)  # distinct idle times: the first is the longest idle


async def reserved(router: Any, ticket: Any, timeout: float = 2.0) -> Any:
    return await asyncio.wait_for(router.wait(ticket), timeout)


async def test_skills_and_levels_decide(router: Any) -> None:
    """Only an agent with every required skill at the required level is reserved."""
    await staff(
        router, Agent("low", "PJSIP/1", {"billing": 2}), Agent("other", "PJSIP/2", {"tv": 9})
    )
    await staff(router, Agent("good", "PJSIP/3", {"billing": 5, "tv": 1}))
    ticket = await router.enqueue("c1", "billing", {"billing": 3})
    assignment = await reserved(router, ticket)
    assert (assignment.agent_id, assignment.endpoint) == ("good", "PJSIP/3")
    assert await router.agent_state("good") == "reserved"
    assert await router.agent_state("low") == "available"


async def test_longest_idle_agent_first(router: Any) -> None:
    await staff(router, Agent("a", "PJSIP/1"), Agent("b", "PJSIP/2"))
    first = await reserved(router, await router.enqueue("c1", "general", {}))
    second = await reserved(router, await router.enqueue("c2", "general", {}))
    assert [first.agent_id, second.agent_id] == ["a", "b"]


async def test_priority_then_age(router: Any) -> None:
    """When an agent frees up, the highest priority waiting call goes first, then the oldest."""
    await router.add_agents([Agent("a", "PJSIP/1")])
    old = await router.enqueue("old", "general", {}, 0)
    vip = await router.enqueue("vip", "general", {}, 9)
    young = await router.enqueue("young", "general", {}, 0)
    await router.login("a")
    assert (await reserved(router, vip)).agent_id == "a"
    waiting = [asyncio.ensure_future(router.wait(t)) for t in (old, young)]
    await asyncio.sleep(0.05)
    assert not any(w.done() for w in waiting)
    for w in waiting:
        w.cancel()


async def test_missed_call_goes_back_to_the_head(router: Any) -> None:
    """An agent who does not answer is set 'missed'; the call is next for another agent."""
    await staff(router, Agent("sleepy", "PJSIP/1"))
    first = await router.enqueue("c1", "general", {})
    assignment = await reserved(router, first)
    later = await router.enqueue("c2", "general", {})
    await router.missed(assignment)
    assert await router.agent_state("sleepy") == "missed"
    await staff(router, Agent("awake", "PJSIP/2"))
    again = await reserved(router, first)
    assert again.agent_id == "awake"
    waiting = asyncio.ensure_future(router.wait(later))
    await asyncio.sleep(0.05)
    assert not waiting.done()
    waiting.cancel()


async def test_abandon_frees_a_reserved_agent(router: Any) -> None:
    """A caller who hangs up while the agent's phone rings frees the agent at once."""
    await staff(router, Agent("a", "PJSIP/1"))
    first = await router.enqueue("c1", "general", {})
    await reserved(router, first)
    second = await router.enqueue("c2", "general", {})
    await router.abandon(first)
    assert (await reserved(router, second)).agent_id == "a"


async def test_completed_agent_takes_the_next_call(router: Any) -> None:
    await staff(router, Agent("a", "PJSIP/1"))
    first = await router.enqueue("c1", "general", {})
    assignment = await reserved(router, first)
    await router.connected(assignment)
    assert await router.agent_state("a") == "on_call"
    second = await router.enqueue("c2", "general", {})
    await router.completed(assignment)
    assert (await reserved(router, second)).agent_id == "a"


async def test_no_agent_is_reserved_twice(router: Any) -> None:
    """200 calls racing for 50 agents: 50 distinct reservations, 150 still waiting."""
    await staff(router, *(Agent(f"a{i}", f"PJSIP/{i}") for i in range(50)))
    tickets = await asyncio.gather(*(router.enqueue(f"c{i}", "general", {}) for i in range(200)))
    waits = [asyncio.ensure_future(router.wait(t)) for t in tickets]
    await asyncio.sleep(0.3)
    done = [w.result() for w in waits if w.done()]
    assert len(done) == 50
    assert len({a.agent_id for a in done}) == 50
    for w in waits:
        w.cancel()


async def test_redis_down_is_routing_unavailable() -> None:
    """With its store unreachable the router says so; the flow takes its fallback."""
    client = aioredis.Redis.from_url("unix:///nonexistent/redis.sock")
    store = RedisRouter(client)
    with pytest.raises(RoutingUnavailable, match="unreachable"):
        await store.add_agents([Agent("a", "PJSIP/1")])
    await client.aclose()


async def test_state_machine_refuses_and_replays(router: Any) -> None:
    """Invalid moves are refused with what is allowed; a replayed move changes nothing."""
    from routing.states import InvalidTransition

    await router.add_agents([Agent("a", "PJSIP/1")])
    assert await router.agent_state("a") == "logged_out"
    with pytest.raises(InvalidTransition, match="logged_out; pause is allowed from available"):
        await router.pause("a", "lunch")
    assert await router.login("a") is True
    assert await router.login("a") is False  # a replay
    assert await router.pause("a", "lunch") is True
    assert await router.agent_state("a") == "paused"
    ticket = await router.enqueue("c1", "general", {})
    waiting = asyncio.ensure_future(router.wait(ticket))
    await asyncio.sleep(0.05)
    assert not waiting.done()  # a paused agent takes no calls
    await router.resume("a")
    assert (await asyncio.wait_for(waiting, 2)).agent_id == "a"
    with pytest.raises(InvalidTransition, match="reserved; logout is allowed from"):
        await router.logout("a")


async def test_wrap_up_then_available(router: Any) -> None:
    """After a call the agent wraps up for the given time, then takes the next call."""
    await staff(router, Agent("a", "PJSIP/1"))
    assignment = await reserved(router, await router.enqueue("c1", "general", {}))
    await router.connected(assignment)
    await router.completed(assignment, wrap_up=0.3)
    assert await router.agent_state("a") == "wrap_up"
    second = await router.enqueue("c2", "general", {})
    assert (await reserved(router, second, timeout=3)).agent_id == "a"


async def test_repeated_misses_pause_the_agent(router: Any) -> None:
    """Three unanswered calls in a row pause the agent instead of ringing them again."""
    await staff(router, Agent("a", "PJSIP/1"))
    ticket = await router.enqueue("c1", "general", {})
    for _ in range(3):
        assignment = await reserved(router, ticket)
        await router.missed(assignment)
        if await router.agent_state("a") == "missed":
            await router.resume("a")  # the agent comes back, and misses again
    assert await router.agent_state("a") == "paused"


async def test_new_skills_take_effect_for_an_available_agent(router: Any) -> None:
    """Changing a logged-in agent's skills re-indexes them: the next call sees the new ones."""
    await staff(router, Agent("a", "PJSIP/1", {"billing": 5}))
    ticket = await router.enqueue("c1", "support", {"internet": 2})
    waiting = asyncio.ensure_future(router.wait(ticket))
    await asyncio.sleep(0.05)
    assert not waiting.done()
    await router.add_agents([Agent("a", "PJSIP/1", {"billing": 5, "internet": 3})])
    assert (await asyncio.wait_for(waiting, 2)).agent_id == "a"


async def test_calls_of_a_lost_engine_free_their_agents(redis_url: str) -> None:
    """An engine that dies with a reserved agent and waiting calls: another engine cleans up."""
    dead = RedisRouter.connect(redis_url)
    await dead.redis.flushall()
    await staff(dead, Agent("a", "PJSIP/1"))
    first = await dead.enqueue("c1", "general", {})
    await reserved(dead, first)
    await dead.enqueue("c2", "general", {})
    await dead.close()  # the engine is gone: no more heartbeats
    alive = RedisRouter.connect(redis_url)
    alive.lost_after = 0.5
    await alive.start()
    try:
        await asyncio.sleep(1.2)
        assert await alive.agent_state("a") == "available"
        assert await alive.redis.zcard(f"{alive.ns}:q:general") == 0
        third = await alive.enqueue("c3", "general", {})
        assert (await reserved(alive, third)).agent_id == "a"
    finally:
        await alive.close()


async def test_most_skilled_strategy(router: Any) -> None:
    """'most_skilled' takes the highest level first; 'longest_idle' the longest waiting agent."""
    await staff(router, Agent("idle", "PJSIP/1", {"tv": 3}), Agent("expert", "PJSIP/2", {"tv": 9}))
    skilled = await router.enqueue("c1", "tv", {"tv": 2}, strategy="most_skilled")
    assert (await reserved(router, skilled)).agent_id == "expert"
    idle = await router.enqueue("c2", "tv", {"tv": 2})
    assert (await reserved(router, idle)).agent_id == "idle"


async def test_last_agent_first(router: Any) -> None:
    """A caller who calls again rings the agent who served them last, if free and able."""
    await staff(router, Agent("first", "PJSIP/1"), Agent("second", "PJSIP/2"))
    one = await router.enqueue("c1", "general", {}, customer="5551234")
    served = await reserved(router, one)
    assert served.agent_id == "first"
    await router.connected(served)
    await router.completed(served)  # 'first' is now the most recently idle
    again = await router.enqueue("c2", "general", {}, customer="5551234")
    assert (await reserved(router, again)).agent_id == "first"
    stranger = await router.enqueue("c3", "general", {}, customer="5559999")
    assert (await reserved(router, stranger)).agent_id == "second"


async def test_any_of_skills_and_a_second_team(router: Any) -> None:
    """'any_skills' needs one of them; a step can widen it to another team."""
    await staff(
        router,
        Agent("de", "PJSIP/1", {"de": 5, "team.b": 1}),
        Agent("ko", "PJSIP/2", {"ko": 4, "team.b": 1}),
    )
    speaks = await router.enqueue("c1", "lang", {}, any_skills={"en": 3, "ko": 3})
    assert (await reserved(router, speaks)).agent_id == "ko"
    team = await router.enqueue("c2", "sales", {}, any_skills={"team.a": 1})
    waiting = asyncio.ensure_future(router.wait(team))
    await asyncio.sleep(0.05)
    assert not waiting.done()  # nobody in team A is free
    await router.requalify(team, {}, None, {"team.a": 1, "team.b": 1})
    assert (await asyncio.wait_for(waiting, 2)).agent_id == "de"


@pytest.mark.parametrize("strategy", ["round_robin", "least_occupied"])
async def test_fairness_strategies(router: Any, strategy: str) -> None:
    """After 'a' took a call, fairness picks 'b' even though 'a' has been idle longer."""
    await staff(router, Agent("a", "PJSIP/1"), Agent("b", "PJSIP/2"))
    first = await reserved(router, await router.enqueue("c1", "general", {}))
    assert first.agent_id == "a"
    await router.connected(first)
    await asyncio.sleep(1.1)  # on the call long enough to count
    await router.completed(first)
    await router.pause("b", "coffee")
    await router.resume("b")  # 'b' is now the most recently idle
    fair = await router.enqueue("c2", "general", {}, strategy=strategy)
    assert (await reserved(router, fair)).agent_id == "b"
    plain = await router.enqueue("c3", "general", {})
    assert (await reserved(router, plain)).agent_id == "a"


async def test_handle_time_is_measured(router: Any) -> None:
    """A queue's recent handle time follows its calls (for the wait estimate on hold)."""
    await staff(router, Agent("a", "PJSIP/1"))
    assert await router.handle_time("general") is None
    call = await reserved(router, await router.enqueue("c1", "general", {}))
    await router.connected(call)
    await asyncio.sleep(0.3)
    await router.completed(call)
    assert 0.25 < (await router.handle_time("general")) < 1.0


async def test_staffed_counts_who_can_serve(router: Any) -> None:
    """The wait estimate's divisor: logged in, not paused, able to take the call."""
    await staff(
        router,
        Agent("a", "PJSIP/1", {"billing": 5}),
        Agent("b", "PJSIP/2", {"billing": 3, "tv": 2}),
        Agent("c", "PJSIP/3", {"tv": 9}),
    )
    await router.add_agents([Agent("off", "PJSIP/4", {"billing": 9})])  # logged out
    assert await router.staffed({"billing": 3}) == 2
    assert await router.staffed({"billing": 4}) == 1
    assert await router.staffed({}, {"tv": 2}) == 2
    assert await router.staffed({"billing": 1}, {"tv": 1}) == 1
    assert await router.staffed({}) == 3
    busy = await reserved(router, await router.enqueue("c1", "billing", {"billing": 5}))
    assert busy.agent_id == "a"
    assert await router.staffed({"billing": 3}) == 2  # a reserved agent still serves
    await router.pause("b", "lunch")
    assert await router.staffed({"billing": 3}) == 1
    # New skills move an agent between the indexes at once.
    await router.add_agents([Agent("c", "PJSIP/3", {"billing": 7})])
    assert await router.staffed({"billing": 3}) == 2
    assert await router.staffed({}, {"tv": 1}) == 0


async def test_callback_keeps_the_place_without_the_caller(router: Any) -> None:
    """A caller who asks to be called back keeps their place; the agent reserved for the
    call is handed to a callback worker with the number, not to the (gone) call."""
    first = await router.enqueue("c1", "general", {})
    second = await router.enqueue("c2", "general", {})
    assert await router.request_callback(first, "+15551234") is True
    worker = asyncio.ensure_future(router.next_callback())  # a callback worker is looking
    await asyncio.sleep(0.05)
    await staff(router, Agent("a", "PJSIP/1"))
    due = await asyncio.wait_for(worker, 2)
    assert (due.ticket.id, due.agent_id, due.endpoint, due.callback) == (
        first.id,
        "a",
        "PJSIP/1",
        "+15551234",
    )
    assert await router.agent_state("a") == "reserved"
    assert await router.position(second) == 1
    # The agent's phone is not answered: the callback goes back to the head and
    # the next agent gets it before the call that was behind it.
    worker = asyncio.ensure_future(router.next_callback())
    await router.missed(due)
    await staff(router, Agent("b", "PJSIP/2"))
    again = await asyncio.wait_for(worker, 2)
    assert (again.ticket.id, again.agent_id) == (first.id, "b")
    await router.connected(again)
    await router.completed(again)
    # Free again, b takes the call that waited behind the callback.
    assert (await reserved(router, second)).agent_id in ("a", "b")


async def test_callback_too_late_or_bad_number(router: Any) -> None:
    await staff(router, Agent("a", "PJSIP/1"))
    ticket = await router.enqueue("c1", "general", {})
    await reserved(router, ticket)
    assert await router.request_callback(ticket, "5551234") is False  # connect instead
    waiting = await router.enqueue("c2", "general", {})
    with pytest.raises(ValueError, match="3 to 20 digits"):
        await router.request_callback(waiting, "555;Dial(PJSIP/evil)")


async def test_a_callback_outlives_the_engine_placing_it(redis_url: str) -> None:
    """The engine that claimed a callback dies mid-way: the agent is freed and the
    callback, back at the head of its queue, goes to another engine."""
    first = RedisRouter.connect(redis_url)
    await first.redis.flushall()
    ticket = await first.enqueue("c1", "general", {})
    assert await first.request_callback(ticket, "5551234")
    looking = asyncio.ensure_future(first.next_callback())
    await asyncio.sleep(0.05)
    await staff(first, Agent("a", "PJSIP/1"))
    claimed = await asyncio.wait_for(looking, 2)
    assert claimed.agent_id == "a"
    await first.close()  # gone before it placed the call
    second = RedisRouter.connect(redis_url)
    second.lost_after = 0.5
    await second.start()
    try:
        again = await asyncio.wait_for(second.next_callback(), 5)
        assert (again.ticket.id, again.agent_id, again.callback) == (ticket.id, "a", "5551234")
    finally:
        await second.close()


async def test_two_engines_never_lose_a_reservation_notice(redis_url: str) -> None:
    """Engine B's script can reserve an agent for engine A's new ticket, and A hear of it,
    before A has read its own enqueue reply; A must still get the agent."""
    engines = [RedisRouter.connect(redis_url), RedisRouter.connect(redis_url)]
    await engines[0].redis.flushall()
    for engine in engines:
        await engine.start()
    await staff(engines[0], *(Agent(f"x{i}", f"PJSIP/{i}") for i in range(10)))
    served = 0

    async def caller(engine: RedisRouter, worker: int) -> None:
        nonlocal served
        for n in range(150):
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
    assert served == 2 * 16 * 150


async def test_no_agent_waits_on_a_callback_nobody_can_place(redis_url: str) -> None:
    """Without a live callback worker (no AMI anywhere) a callback does not take agents:
    the call behind it is served; once a worker looks for work, the callback is next.
    A callback reserved but never claimed (its worker died) frees its agent after 30 s."""
    router = RedisRouter.connect(redis_url)
    await router.redis.flushall()
    await router.start()
    try:
        first = await router.enqueue("c1", "general", {})
        assert await router.request_callback(first, "5551234")
        second = await router.enqueue("c2", "general", {})
        await staff(router, Agent("a", "PJSIP/1"))
        assert (await reserved(router, second)).agent_id == "a"
        await staff(router, Agent("b", "PJSIP/2"))
        assert await router.agent_state("b") == "available"  # not held for the callback
        due = await asyncio.wait_for(router.next_callback(), 2)  # a worker comes alive
        assert (due.ticket.id, due.agent_id) == (first.id, "b")
        # Asterisk refused the call: b is not blamed, and is offered it again.
        await router.missed(due, agent_fault=False)
        agent = await router.agent("b")
        assert agent is not None and agent["missed"] == "0"
        assert agent["state"] in ("available", "reserved")
    finally:
        await router.close()


async def test_an_unclaimed_callback_frees_its_agent(redis_url: str) -> None:
    """A worker heartbeat makes the callback take an agent, then nobody claims it (the
    worker died between): after the claim deadline the agent is free again."""
    router = RedisRouter.connect(redis_url)
    await router.redis.flushall()
    router.callback_claim_within = 0.5
    await router.start()
    try:
        ticket = await router.enqueue("c1", "general", {})
        assert await router.request_callback(ticket, "5551234")
        now = int((await router.redis.time())[0])
        await router.redis.zadd(f"{router.ns}:cbworkers", {"gone": now})  # alive, never claims
        await staff(router, Agent("a", "PJSIP/1"))
        assert await router.agent_state("a") == "reserved"
        await router.redis.delete(f"{router.ns}:cbworkers")  # the worker is gone
        for _ in range(40):
            if await router.agent_state("a") == "available":
                break
            await asyncio.sleep(0.1)
        assert await router.agent_state("a") == "available"
        assert await router.position(ticket) == 1  # back at the head, waiting
    finally:
        await router.close()


async def test_a_lost_engine_does_not_leave_its_agents_on_a_call(redis_url: str) -> None:
    """The engine that connected a call dies: nobody will say when the call ends, so the
    other engines put the agent through wrap-up rather than leave them on_call for good."""
    dead = RedisRouter.connect(redis_url)
    await dead.redis.flushall()
    await staff(dead, Agent("a", "PJSIP/1"))
    assignment = await reserved(dead, await dead.enqueue("c1", "general", {}))
    await dead.connected(assignment)
    assert await dead.agent_state("a") == "on_call"
    await dead.close()
    alive = RedisRouter.connect(redis_url)
    alive.lost_after = 0.5
    await alive.start()
    try:
        for _ in range(40):
            if await alive.agent_state("a") == "available":
                break
            await asyncio.sleep(0.1)
        assert await alive.agent_state("a") == "available"
        events = [f for _, f in await alive.events(0)]
        assert any(f["event"] == "completed" and f.get("reason") == "engine lost" for f in events)
    finally:
        await alive.close()


async def test_a_call_completed_without_its_answer_recorded(router: Any) -> None:
    """The answer's notice was lost: completing the call still puts the agent through
    on_call and wrap-up, never leaves them reserved."""
    await staff(router, Agent("a", "PJSIP/1"))
    assignment = await reserved(router, await router.enqueue("c1", "general", {}))
    await router.completed(assignment)
    assert await router.agent_state("a") == "available"
