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
import itertools
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ivr.testing import AsteriskEmulator, DialOutcome, Hangup
from tests.chaos.rig import (
    Dialplan,
    EngineProcess,
    Outcome,
    RedisServer,
    alive,
    busy_agents,
    free_port,
    live_tickets,
    routing_state,
    running,
    until,
    write_setup,
)

__all__ = [
    "ami_dropped",
    "disk_unwritable",
    "engine_killed",
    "engine_of_two_killed",
    "namespaces_work",
    "redis_killed",
]

#: Seconds within which every call must leave a dead engine (issue 12).
LEAVE_WITHIN = 5.0
#: A caller who never hangs up during a scenario.
STAYS = [Hangup(at=600)]


def _paths(outcomes: Sequence[Outcome]) -> dict[str, int]:
    return dict(collections.Counter(o.path for o in outcomes))


async def engine_killed(root: Path, *, calls: int = 50, agents: int = 10) -> dict[str, Any]:
    """kill -9 of the engine with ``calls`` calls up (``agents`` of them talking to an
    agent, the rest on hold, and a tenth more hearing the greeting). Every call leaves
    the engine within 5 s and the dialplan takes its fallback (a prompt playing ends
    at once, §8.6); once a new engine runs, no agent stays held."""
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
        # A few more that are still hearing the greeting (STREAM FILE) at the kill.
        greeted = [
            asyncio.ensure_future(dialplan.call(emulator, actions=STAYS))
            for _ in range(max(1, calls // 10))
        ]
        await asyncio.sleep(0.3)
        placed += greeted
        calls += len(greeted)
        killed = loop.time()
        helpers = await engine.kill()
        outcomes = await asyncio.wait_for(asyncio.gather(*placed), LEAVE_WITHIN + 10)
        prompts_cut = [o for o in outcomes[-len(greeted) :] if o.result.closed_mid_command]
        assert all(
            o.result.closed_mid_command.startswith("STREAM FILE") and o.agi_ended - killed < 0.5
            for o in prompts_cut
            if o.result.closed_mid_command
        ), [(o.result.closed_mid_command, o.agi_ended - killed) for o in prompts_cut]
        assert prompts_cut, "no call was cut in its greeting"
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
        "left_on_hold_or_prompt_max_s": round(max(on_hold, default=0.0), 3),
        "fallbacks": paths.get("fallback", 0),
        "cut_mid_command": dict(cut),
        "new_engine_ready_s": round(started, 2),
        "agents_free_after_new_engine_s": round(freed, 2),
        "helpers_alive_5s_after_kill": sum(1 for pid in helpers if alive(pid)),
    }


TERMINAL = frozenset(
    {"completed", "abandoned", "overflowed", "timed_out", "lease_expired", "unanswered"}
)


class DialLog:
    """Every Dial the emulated Asterisk runs: (endpoint, start, end), for double-booking."""

    def __init__(self) -> None:
        self.spans: list[tuple[str, float, float]] = []
        self.overlaps: list[tuple[str, float]] = []
        #: Call id -> the endpoints it dialled, in order.
        self.by_call: dict[str, list[str]] = collections.defaultdict(list)
        #: Endpoint -> the calls dialling it now; and the calls of every overlap.
        self.now: dict[str, list[str]] = collections.defaultdict(list)
        self.overlapping: set[str] = set()

    async def dial(self, session: Any, data: str) -> int:
        endpoint = data.split(",", 1)[0]
        call = session.env.get("agi_uniqueid", "")
        self.by_call[call].append(endpoint)
        loop = asyncio.get_running_loop()
        start = loop.time()
        if self.now[endpoint]:
            self.overlaps.append((endpoint, start))
            self.overlapping |= {call, *self.now[endpoint]}
        self.now[endpoint].append(call)
        try:
            result: int = await session.apps._dial(session, data)
        finally:
            self.now[endpoint].remove(call)
            self.spans.append((endpoint, start, loop.time()))
        return result


#: Call ids the load generator gives (``agi_uniqueid``): ``<run>.<n>``.
_RUNS = itertools.count(int(time.time()))


async def _load(
    dialplan: Dialplan,
    emulator: AsteriskEmulator,
    *,
    rate: float,
    seconds: float,
    actions: list[Any] | None = None,
    engines: list[tuple[str, int]] | None = None,
    sent: dict[str, tuple[str, int]] | None = None,
    placed: dict[str, asyncio.Future[Outcome]] | None = None,
) -> dict[str, asyncio.Future[Outcome]]:
    """Calls placed at ``rate`` per second for ``seconds``, by call id; spread over
    ``engines`` in turn (as ``hagi://`` spreads them by DNS SRV), read at each call so
    a dead one can be taken out meanwhile; ``sent`` notes where each call went, and
    ``placed`` (filled as calls are placed) lets the caller look at them meanwhile."""
    placed = {} if placed is None else placed
    loop = asyncio.get_running_loop()
    start = loop.time()
    run = next(_RUNS)
    for index in range(int(rate * seconds)):
        await asyncio.sleep(max(0.0, start + index / rate - loop.time()))
        target = engines[index % len(engines)] if engines else None
        call_id = f"{run}.{index}"
        if sent is not None and target is not None:
            sent[call_id] = target
        placed[call_id] = asyncio.ensure_future(
            dialplan.call(emulator, engine=target, actions=actions or STAYS, uniqueid=call_id)
        )
    return placed


async def _finished(
    placed: dict[str, asyncio.Future[Outcome]],
    timeout: float,
    url: str,
    engines: list[EngineProcess],
) -> list[Outcome]:
    """Every call's outcome; a call still up after ``timeout`` s fails with its story
    (routing events, the engine's last lines about it)."""
    _, pending = await asyncio.wait(placed.values(), timeout=timeout)
    if pending:
        stuck = {call for call, future in placed.items() if future in pending}
        history = await _history(url, stuck)
        lines = [
            line.strip()[:200]
            for engine in engines
            for line in engine.lines
            if any(f'"{call}"' in line for call in stuck)
        ]
        for future in pending:
            future.cancel()
        raise AssertionError(
            f"{len(stuck)} calls still up after {timeout:g} s: {sorted(stuck)[:5]}; routing "
            f"events {history}; engine lines {lines[-12:]}"
        )
    return [placed[call].result() for call in placed]


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


async def _history(
    url: str, calls: set[str], agents: set[str] | None = None
) -> dict[str, list[str]]:
    from routing.redis import RedisRouter

    router = RedisRouter.connect(url, connections=4)
    try:
        events = await router.events(0)
    finally:
        await router.close()
    found: dict[str, list[str]] = collections.defaultdict(list)
    for at, row in events:
        if row.get("call") in calls:
            what, ticket, agent = row.get("event"), row.get("ticket", ""), row.get("agent", "")
            found[row["call"]].append(f"{at:.3f} {what} ticket={ticket} {agent}")
        elif agents and row.get("agent") in agents:
            said = " ".join(f"{k}={v}" for k, v in row.items() if k not in ("at", "group"))
            found[row["agent"]].append(f"{at:.3f} {said}")
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
    talk: float = 3.0,
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
            default_dial=DialOutcome("ANSWER", ring=0.3, talk=talk),
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
        outcomes = await _finished(placed, 60, redis.url, [engine])
        paths = _paths(outcomes)
        if dials.overlaps:
            agents_of = {agent_of_endpoint(e) for e, _ in dials.overlaps}
            story = await _history(redis.url, dials.overlapping, agents_of)
            raise AssertionError(
                f"agents dialled for two calls at once: {dials.overlaps}; routing events "
                f"of those calls and agents since the restart: {story}"
            )
        await _settled(redis.url, 40)
        ends = await _ended_once(redis.url)
        twice = {call: stages for call, stages in ends.items() if len(stages) > 1}
        assert not twice, f"tickets that ended twice: {twice}"
        answered = [
            call
            for call, outcome in zip(placed, outcomes, strict=True)
            if outcome.result.variables.get("DIALSTATUS") == "ANSWER"
        ]
        if persistence == "aof":  # the whole history survived: each answer is one completion
            wrong = {call: ends.get(call) for call in answered if ends.get(call) != ["completed"]}
            assert not wrong, f"answered calls that did not end completed once: {wrong}"
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
        "answered": len(answered),
        "engine_logged": logged,
    }


async def _agent(url: str, agent: str) -> dict[str, Any]:
    from routing.redis import RedisRouter

    router = RedisRouter.connect(url, connections=4)
    try:
        return await router.agent(agent, skills=False) or {}
    finally:
        await router.close()


def agent_of_endpoint(endpoint: str) -> str:
    return f"a{int(endpoint.rpartition('/')[2]) - 1000:03d}"


async def ami_dropped(root: Path, *, drop: float = 10.0, talk: float = 8.0) -> dict[str, Any]:
    """The AMI link is cut for ``drop`` seconds while calls are up (Asterisk and its
    calls go on). Meanwhile one agent's phone goes unreachable, a paused agent's phone
    comes back and a new call is answered by an agent, all unseen by the engine.
    Within 5 s of the link's return presence and calls are resynced (the first agent
    paused, the second resumed, the new call's agent on_call), and no call is lost."""
    from tests.chaos.rig import endpoint_of

    port = free_port()
    agents = 4
    write_setup(root, agents=agents, port=port)
    redis = RedisServer(root / "redis", "none")
    dials = DialLog()
    emulator = AsteriskEmulator(
        port=port,
        speed=1.0,
        sound_dirs=[root / "var" / "prompts"],
        default_dial=DialOutcome("ANSWER", ring=0.3, talk=talk),
        applications={"Dial": dials.dial},
    )
    ami = await emulator.start_ami()
    for index in range(1, agents + 1):
        emulator.pbx.add_endpoint(endpoint_of(f"a{index:03d}"))
    engine = EngineProcess(
        root,
        port=port,
        redis_url=redis.url,
        IVR_AMI_HOST="127.0.0.1",
        IVR_AMI_PORT=str(ami.port),
        IVR_AMI_USER="ivr",
        IVR_AMI_SECRET="ivr-secret",
    )
    figures: dict[str, Any] = {"drop_s": drop}
    try:
        async with running(engine, redis):
            await redis.start()
            await engine.start()
            await until(lambda: engine.logged("presence.resynced"), "AMI connected", 20)
            dialplan = Dialplan(root / "deploy.yaml")
            # a004's phone is unreachable before the cut: presence pauses them.
            emulator.pbx.set_registered(endpoint_of("a004"), False)

            async def state_of(agent: str) -> tuple[str, str]:
                row = await _agent(redis.url, agent)
                return str(row.get("state", "")), str(row.get("reason", ""))

            await until(
                lambda: _is(state_of("a004"), ("paused", "phone unreachable")), "a004 paused", 10
            )
            first = asyncio.ensure_future(dialplan.call(emulator, actions=STAYS, uniqueid="c.1"))
            await until(lambda: dials.by_call.get("c.1"), "the first call rings an agent", 20)
            first_agent = agent_of_endpoint(dials.by_call["c.1"][0])
            await until(
                lambda: _is(state_of(first_agent), ("on_call", "")), "first agent on_call", 10
            )

            loop = asyncio.get_running_loop()
            await ami.stop()  # the link drops; Asterisk and its calls go on
            cut = loop.time()
            await until(lambda: engine.logged("ami_disconnected"), "the engine saw the cut", 5)
            free = sorted({"a001", "a002", "a003"} - {first_agent})
            gone = free[0]
            emulator.pbx.set_registered(endpoint_of(gone), False)  # unseen: unreachable
            emulator.pbx.set_registered(endpoint_of("a004"), True)  # unseen: back
            # A call during the cut: the only agent routing would pick that can answer.
            second = asyncio.ensure_future(dialplan.call(emulator, actions=STAYS, uniqueid="c.2"))
            await until(
                lambda: any(e != endpoint_of(gone) for e in dials.by_call.get("c.2", [])),
                "the second call reaches an agent during the cut",
                drop,
            )
            second_agent = agent_of_endpoint(dials.by_call["c.2"][-1])
            await asyncio.sleep(max(0.0, cut + drop - loop.time()))
            await ami.start()  # the link may come back: same port
            back = loop.time()

            waits = {
                "gone_paused_s": (gone, ("paused", "phone unreachable")),
                "a004_resumed_s": ("a004", None),
                "second_on_call_s": (second_agent, ("on_call", "")),
            }
            for name, (agent, wanted) in waits.items():

                async def reached(agent: str = agent, wanted: Any = wanted) -> bool:
                    state = await state_of(agent)
                    if wanted is None:  # resumed: no longer paused for the phone
                        return state[0] in ("available", "reserved", "on_call", "wrap_up")
                    return bool(state == wanted)

                await until(reached, f"{agent} {wanted or 'resumed'} after the AMI returned", 15)
                figures[name] = round(loop.time() - back, 2)
            late = {k: v for k, v in figures.items() if k.endswith("_s") and k != "drop_s"}
            assert all(v <= LEAVE_WITHIN for v in late.values()), (
                f"resynced later than 5 s after the AMI came back: {late}"
            )
            outcomes = await asyncio.wait_for(asyncio.gather(first, second), talk + 30)
            assert _paths(outcomes) == {"hangup": 2}, _paths(outcomes)
            for outcome in outcomes:
                assert outcome.result.variables.get("DIALSTATUS") == "ANSWER", outcome.result
            await _settled(redis.url, 20)
            ends = await _ended_once(redis.url)
            assert ends.get("c.1") == ["completed"] and ends.get("c.2") == ["completed"], ends
            figures["reconnects"] = engine.counts.get("ami_resync", 0) - 1
    finally:
        await emulator.close()
    return figures


async def _is(value: Any, wanted: Any) -> bool:
    return bool(await value == wanted)


async def engine_of_two_killed(
    root: Path,
    *,
    agents: int = 6,
    rate: float = 6.0,
    seconds: float = 8.0,
    talk: float = 1.5,
) -> dict[str, Any]:
    """Two engines share Redis and the calls; kill -9 of one mid-load. Its calls leave it
    for the fallback, the other engine ends its tickets and frees its agents within
    seconds, and the calls that keep coming (now all to the survivor) are answered."""
    port_a, port_b = free_port(), free_port()
    write_setup(root, agents=agents, port=port_a)
    redis = RedisServer(root / "redis", "none")
    dying = EngineProcess(root, port=port_a, var=root / "var-a", redis_url=redis.url)
    survivor = EngineProcess(root, port=port_b, var=root / "var-b", redis_url=redis.url)
    dials = DialLog()
    targets = [("127.0.0.1", port_a), ("127.0.0.1", port_b)]
    sent: dict[str, tuple[str, int]] = {}
    calls: dict[str, asyncio.Future[Outcome]] = {}
    async with running(dying, survivor, redis):
        await redis.start()
        await asyncio.gather(dying.start(), survivor.start())
        dialplan = Dialplan(root / "deploy.yaml")
        emulator = AsteriskEmulator(
            speed=1.0,
            sound_dirs=[root / "var-a" / "prompts", root / "var-b" / "prompts"],
            default_dial=DialOutcome("ANSWER", ring=0.3, talk=talk),
            applications={"Dial": dials.dial},
        )
        loop = asyncio.get_running_loop()
        load = asyncio.ensure_future(
            _load(
                dialplan,
                emulator,
                rate=rate,
                seconds=seconds,
                engines=targets,
                sent=sent,
                placed=calls,
            )
        )
        await asyncio.sleep(seconds / 3)
        targets.remove(("127.0.0.1", port_a))  # SRV's next record: the survivor
        await dying.kill()
        killed = loop.time()
        # The dead engine's calls: those it still had (the others ended normally).
        held_by_dead = {c for c, t in sent.items() if t[1] == port_a and not calls[c].done()}

        async def dead_calls_ended() -> bool:
            tickets = (await routing_state(redis.url))["tickets"]
            return not any(
                tickets[c]["stage"] in ("waiting", "reserved", "connected")
                for c in held_by_dead
                if c in tickets
            )

        ended = await until(dead_calls_ended, "the survivor ends the dead engine's calls", 30)
        placed = await load
        outcomes = await _finished(placed, 60, redis.url, [survivor])
        by_call = dict(zip(placed, outcomes, strict=True))
        dead = {c: o for c, o in by_call.items() if c in held_by_dead}
        late = [round(o.agi_ended - killed, 2) for o in dead.values() if o.agi_ended - killed > 5]
        assert not late, f"calls left the dead engine after more than 5 s: {late}"
        assert _paths(list(dead.values())) == {"fallback": len(dead)}, _paths(list(dead.values()))
        after = {c: o for c, o in by_call.items() if sent[c][1] == port_b}
        unanswered = {
            c: o.result.variables.get("DIALSTATUS")
            for c, o in after.items()
            if o.result.variables.get("DIALSTATUS") != "ANSWER"
        }
        assert not unanswered, f"survivor's calls not answered: {unanswered}"
        assert not dials.overlaps, f"agents dialled for two calls at once: {dials.overlaps}"
        await _settled(redis.url, 20)
        ends = await _ended_once(redis.url)
        expired = sum(1 for c in held_by_dead if ends.get(c) == ["lease_expired"])
    return {
        "agents": agents,
        "calls": len(outcomes),
        "calls_of_dead_engine": len(dead),
        "calls_it_ended_before": sum(1 for t in sent.values() if t[1] == port_a) - len(dead),
        "dead_engines_tickets_ended_s": round(ended, 2),
        "their_tickets_lease_expired": expired,
        "survivor_calls_answered": len(after),
        "survivor_reaped_logged": sum(
            1 for line in survivor.lines if "routing.dead_engine_reaped" in line
        ),
    }


#: Scenario 5's flow: cached prompts, a read-back rendered per call (a write under
#: var/prompts), the queue.
DISK_FLOW = """
id: chaos
defaults: {language: en, timeout: 3, retries: 0}
nodes:
  hello: {type: play, say: "Thank you for calling.", next: code}
  code:
    type: gather
    prompt: Enter four digits.
    variable: code
    min_length: 4
    max_length: 4
    next: readback
    on_failure: bye
  readback: {type: play, say: "You entered ${code}.", next: wait}
  wait: {type: queue, queue: chaos, next: bye, on_failure: bye}
  bye: {type: hangup, say: Goodbye.}
"""

#: Run inside ``unshare -rm`` (a user and mount namespace: no privilege needed where
#: user namespaces are allowed): var/ made read-only, or a 1 MB tmpfs filled up.
_READ_ONLY = 'set -e; mount --bind "$VAR" "$VAR"; mount -o remount,bind,ro "$VAR"; exec "$@"'
_FULL = (
    'set -e; mount -t tmpfs -o size=1m tmpfs "$VAR"; cp -a "$CACHE/." "$VAR/"; '
    'dd if=/dev/zero of="$VAR/filler" bs=4k 2>/dev/null || true; exec "$@"'
)


def namespaces_work() -> str:
    """'' when ``unshare -rm`` can mount here, else why not."""
    import shutil
    import subprocess

    if shutil.which("unshare") is None:
        return "unshare (util-linux) is not installed"
    probe = subprocess.run(
        ["unshare", "-rm", "sh", "-c", "mount -t tmpfs tmpfs /mnt"],
        capture_output=True,
        text=True,
        check=False,
    )
    return "" if probe.returncode == 0 else f"unshare -rm cannot mount: {probe.stderr.strip()}"


async def disk_unwritable(root: Path, *, how: str = "read_only", calls: int = 20) -> dict[str, Any]:
    """var/ read-only (``read_only``) or full (``full``) from the engine's start, after a
    first run cached the fixed prompts. Calls go on (cached prompts play, the queue
    works), and the error is logged clearly, once per interval rather than per call."""
    assert how in ("read_only", "full")
    import shutil

    port = free_port()
    agents = 5
    write_setup(root, agents=agents, port=port)
    (root / "flows" / "chaos.yaml").write_text(DISK_FLOW)
    redis = RedisServer(root / "redis", "none")
    first = EngineProcess(root, port=port, redis_url=redis.url)
    figures: dict[str, Any] = {"how": how, "calls": calls}
    async with running(first, redis):
        await redis.start()
        await first.start()  # caches every fixed prompt under var/prompts
        await first.stop()
        cache = root / "var-cache"
        shutil.copytree(root / "var", cache, symlinks=True)
        script = _READ_ONLY if how == "read_only" else _FULL
        engine = EngineProcess(
            root,
            port=port,
            redis_url=redis.url,
            launcher=("unshare", "-rm", "sh", "-c", script, "sh"),
            VAR=str(root / "var"),
            CACHE=str(cache),
        )
        async with running(engine):
            await engine.start()
            dialplan = Dialplan(root / "deploy.yaml")
            emulator = AsteriskEmulator(
                port=port,
                speed=None,
                sound_dirs=[root / "var" / "prompts"],
                default_dial=DialOutcome("ANSWER", ring=0.1, talk=0.5),
            )
            from ivr.testing import Keys

            outcomes = await asyncio.wait_for(
                asyncio.gather(
                    *(dialplan.call(emulator, actions=[Keys("1234")]) for _ in range(calls))
                ),
                120,
            )
            await asyncio.sleep(0.5)  # the engine's last log lines reach the file
            # The cached prompts played: the greeting and the question, every call.
            played = collections.Counter(p for o in outcomes for p in o.result.played)
            figures["cached_prompts_played"] = sum(played.values())
            paths = _paths(outcomes)
            figures["paths"] = paths
            figures["answered"] = sum(
                1 for o in outcomes if o.result.variables.get("DIALSTATUS") == "ANSWER"
            )
            disk = [
                line.strip()
                for line in engine.lines
                if "Read-only file system" in line or "No space left on device" in line
            ]
            figures["disk_error_lines"] = len(disk)
            crashed = engine.counts.get("agi.handler_crashed", 0)
            figures["calls_crashed"] = crashed
            assert crashed == 0 and paths == {"hangup": calls}, (
                f"calls did not go on: {paths}, {crashed} crashed; first error: {disk[:1]}"
            )
            assert figures["answered"] == calls, figures
            # Clear: it names the folder and the cause; rate-limited: not once per call.
            assert disk, "the disk error is never said"
            assert str(root / "var") in disk[0], disk[0]
            assert len(disk) <= 2, f"said {len(disk)} times for {calls} calls: {disk[:3]}"
    return figures
