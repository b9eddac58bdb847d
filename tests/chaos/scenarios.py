"""The chaos scenarios of issue 12, each a coroutine sized by its arguments.

``tests/chaos/`` runs them at CI sizes, ``bench/chaos.py`` at full size. Each one
runs the real engine process (``ivr serve``), a real redis-server and the
Asterisk emulator over TCP, calls going through the entry context of the
rendered ``extensions.conf``; it raises :class:`AssertionError` naming what broke
and returns its figures (seconds measured, counts) for the report.
"""

from __future__ import annotations

import asyncio
import collections
from pathlib import Path
from typing import Any

from ivr.testing import AsteriskEmulator, DialOutcome, Hangup
from tests.chaos.rig import (
    Dialplan,
    EngineProcess,
    Outcome,
    RedisServer,
    busy_agents,
    free_port,
    live_tickets,
    routing_state,
    running,
    until,
    write_setup,
)

__all__ = ["engine_killed"]

#: Seconds within which every call must leave a dead engine (issue 12).
LEAVE_WITHIN = 5.0
#: A caller who never hangs up during a scenario.
STAYS = [Hangup(at=600)]


def _paths(outcomes: list[Outcome]) -> dict[str, int]:
    return dict(collections.Counter(o.path for o in outcomes))


async def engine_killed(root: Path, *, calls: int = 50, agents: int = 10) -> dict[str, Any]:
    """kill -9 of the engine with ``calls`` calls up (``agents`` of them talking to an
    agent, the rest on hold). Every call leaves the engine within 5 s and the
    dialplan takes its fallback; once a new engine runs, no agent stays held."""
    port = free_port()
    write_setup(root, agents=agents, port=port)
    redis = RedisServer(root / "redis", "aof")
    engine = EngineProcess(root, port=port, redis_url=redis.url)
    talk = LEAVE_WITHIN - 1.0  # an answered call's Dial outlives the engine (§8.6)
    async with running(engine, redis):
        await redis.start()
        await engine.start()
        dialplan = Dialplan(root / "deploy.yaml")
        emulator = AsteriskEmulator(
            port=port,
            speed=1.0,
            sound_dirs=[engine.var / "prompts"],
            default_dial=DialOutcome("ANSWER", ring=0.2, talk=talk),
        )
        loop = asyncio.get_running_loop()
        placed = [
            asyncio.ensure_future(dialplan.call(emulator, actions=STAYS)) for _ in range(calls)
        ]

        async def all_up() -> bool:
            state = await routing_state(redis.url)
            return len(live_tickets(state)) == calls and len(busy_agents(state)) == agents

        await until(all_up, f"{calls} calls in the engine, {agents} with agents", 60)
        killed = loop.time()
        orphans = await engine.kill()
        outcomes = await asyncio.wait_for(asyncio.gather(*placed), LEAVE_WITHIN + 10)
        left = [o.agi_ended - killed for o in outcomes]
        late = [round(t, 2) for t in left if t > LEAVE_WITHIN]
        assert not late, f"calls left the dead engine after more than {LEAVE_WITHIN} s: {late}"
        on_hold = [t for t, o in zip(left, outcomes, strict=True) if not o.result.dialled]
        paths = _paths(outcomes)
        assert paths == {"fallback": calls}, f"every call takes the fallback, not {paths}"
        statuses = collections.Counter(o.agistatus for o in outcomes)
        # §8.6: the socket closed, so AGISTATUS=SUCCESS (no 'failure' was sent).
        assert statuses == {"SUCCESS": calls}, statuses
        cut = collections.Counter(
            (o.result.closed_mid_command or "").split(" ", 1)[0] for o in outcomes
        )

        # A new engine on the same Redis: the dead engine's agents are freed.
        restarted = loop.time()
        await engine.start()
        started = loop.time() - restarted

        async def nobody_held() -> bool:
            state = await routing_state(redis.url)
            return not busy_agents(state) and not live_tickets(state)

        freed = await until(nobody_held, "no agent held once the new engine runs", 60)
        state = await routing_state(redis.url)
        available = sum(1 for row in state["agents"].values() if row["state"] == "available")
        assert available == agents, state["agents"]
        # And the new engine takes calls with them.
        emulator.default_dial = DialOutcome("ANSWER", ring=0.1, talk=0.2)
        after = await asyncio.gather(
            *(dialplan.call(emulator, actions=STAYS) for _ in range(min(agents, 5)))
        )
        assert _paths(after) == {"hangup": len(after)}, _paths(after)
        assert all(o.result.dialled for o in after)
    return {
        "calls": calls,
        "agents": agents,
        "left_max_s": round(max(left), 3),
        "left_on_hold_max_s": round(max(on_hold, default=0.0), 3),
        "fallbacks": paths.get("fallback", 0),
        "cut_mid_command": dict(cut),
        "new_engine_ready_s": round(started, 2),
        "agents_free_after_new_engine_s": round(freed, 2),
        "helpers_left_by_kill": len(orphans),
    }


TERMINAL = frozenset(
    {"completed", "abandoned", "overflowed", "timed_out", "lease_expired", "unanswered"}
)


class DialLog:
    """Every Dial the emulated Asterisk runs: (endpoint, start, end), for double-booking."""

    def __init__(self) -> None:
        self.spans: list[tuple[str, float, float]] = []
        self.open: dict[str, int] = {}
        self.overlaps: list[tuple[str, float]] = []

    async def dial(self, session: Any, data: str) -> int:
        endpoint = data.split(",", 1)[0]
        loop = asyncio.get_running_loop()
        start = loop.time()
        if self.open.get(endpoint, 0):
            self.overlaps.append((endpoint, start))
        self.open[endpoint] = self.open.get(endpoint, 0) + 1
        try:
            result: int = await session.apps._dial(session, data)
        finally:
            self.open[endpoint] -= 1
            self.spans.append((endpoint, start, loop.time()))
        return result


async def _load(
    dialplan: Dialplan,
    emulator: AsteriskEmulator,
    *,
    rate: float,
    seconds: float,
    actions: list[Any] | None = None,
    engines: list[tuple[str, int]] | None = None,
) -> list[asyncio.Future[Outcome]]:
    """Calls placed at ``rate`` per second for ``seconds`` (spread over ``engines``)."""
    placed: list[asyncio.Future[Outcome]] = []
    loop = asyncio.get_running_loop()
    start = loop.time()
    count = int(rate * seconds)
    for index in range(count):
        await asyncio.sleep(max(0.0, start + index / rate - loop.time()))
        target = engines[index % len(engines)] if engines else None
        placed.append(
            asyncio.ensure_future(dialplan.call(emulator, engine=target, actions=actions or STAYS))
        )
    return placed


async def _settled(url: str, timeout: float) -> float:
    """Until no agent is held and no ticket is live; the failure shows who is."""
    last: dict[str, Any] = {}

    async def settled() -> bool:
        state = await routing_state(url)
        last.update(busy=busy_agents(state), live=live_tickets(state))
        return not last["busy"] and not last["live"]

    try:
        return await until(settled, "every agent free and every ticket ended", timeout)
    except AssertionError as exc:
        history = await _history(url, set(last["live"]))
        raise AssertionError(
            f"{exc}: held agents {last['busy']}, live tickets {last['live']}, "
            f"their events {history}"
        ) from None


async def _history(url: str, calls: set[str]) -> dict[str, list[str]]:
    from routing.redis import RedisRouter

    router = RedisRouter.connect(url, connections=4)
    try:
        events = await router.events(0)
    finally:
        await router.close()
    found: dict[str, list[str]] = collections.defaultdict(list)
    for at, row in events:
        if row.get("call") in calls:
            found[row["call"]].append(f"{at:.3f} {row.get('event')} {row.get('agent', '')}")
    return dict(found)


async def _ended_once(url: str) -> dict[str, list[str]]:
    """Each call id's terminal events in the routing event stream."""
    from routing.redis import RedisRouter

    router = RedisRouter.connect(url, connections=4)
    try:
        events = await router.events(0)
    finally:
        await router.close()
    ends: dict[str, list[str]] = collections.defaultdict(list)
    for _, row in events:
        if row.get("event") in TERMINAL and row.get("call"):
            ends[row["call"]].append(row["event"])
    return dict(ends)


async def redis_killed(
    root: Path,
    *,
    persistence: str = "aof",
    agents: int = 5,
    rate: float = 10.0,
    seconds: float = 6.0,
    down: float = 1.0,
) -> dict[str, Any]:
    """kill -9 of redis-server under load, restarted ``down`` seconds later. No agent is
    ever dialled for two calls at once, every call ends in one terminal state (the
    caller's and routing's), and agent state is back within 5 s of the restart."""
    assert persistence in ("aof", "none")
    port = free_port()
    write_setup(root, agents=agents, port=port)
    redis = RedisServer(root / "redis", "aof" if persistence == "aof" else "none")
    engine = EngineProcess(root, port=port, redis_url=redis.url)
    dials = DialLog()
    async with running(engine, redis):
        await redis.start()
        await engine.start()
        dialplan = Dialplan(root / "deploy.yaml")
        emulator = AsteriskEmulator(
            port=port,
            speed=1.0,
            sound_dirs=[engine.var / "prompts"],
            default_dial=DialOutcome("ANSWER", ring=0.3, talk=1.0),
            applications={"Dial": dials.dial},
        )
        loop = asyncio.get_running_loop()
        load = asyncio.ensure_future(_load(dialplan, emulator, rate=rate, seconds=seconds))
        await asyncio.sleep(seconds / 2)
        state = await routing_state(redis.url)
        busy_before = len(busy_agents(state))
        waiting_before = len(live_tickets(state)) - busy_before
        await redis.kill()
        killed = loop.time()
        await asyncio.sleep(down)
        await redis.start()
        restarted = loop.time()

        async def agents_back() -> bool:
            try:
                return len((await routing_state(redis.url))["agents"]) == agents
            except Exception:
                return False

        back = await until(agents_back, "agents back after the restart", 30)
        placed = await load
        outcomes = await asyncio.wait_for(asyncio.gather(*placed), 60)
        paths = _paths(outcomes)
        assert not dials.overlaps, f"agents dialled for two calls at once: {dials.overlaps}"

        await _settled(redis.url, 40)
        ends = await _ended_once(redis.url)
        twice = {call: stages for call, stages in ends.items() if len(stages) > 1}
        assert not twice, f"tickets that ended twice: {twice}"
        answered = {
            o.result.variables.get("agi_uniqueid", "")
            for o in outcomes
            if o.result.variables.get("DIALSTATUS") == "ANSWER"
        }
        del answered
        logged = {name: engine.counts.get(name, 0) for name in ("routing.reset",)}
    return {
        "persistence": persistence,
        "calls": len(outcomes),
        "paths": paths,
        "busy_agents_at_kill": busy_before,
        "waiting_at_kill": waiting_before,
        "agents_back_s": round(back, 2),
        "redis_down_s": round(restarted - killed, 2),
        "dials": len(dials.spans),
        "ended_tickets": len(ends),
        "engine_logged": logged,
    }
