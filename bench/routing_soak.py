"""Routing soak: a million random events through the reference model, with ROUTING.md's
invariants checked after every one; prints events/s and the count of violations (0).

Agents with random skills, levels, languages, sites and groups log in and out, pause
(pending while on a call), are moved by reloads; calls arrive with random needs,
priorities and strategies, ring, are answered, missed (with and without fault),
abandoned, overflowed, timed out, requalified, turned into callbacks (claimed,
unanswered); the clock steps, leases lapse and wrap-ups end. After every event: no
double reservation, work-conserving, a freed agent takes the best call of its group,
terminal stages stay; every 100 events the KPIs folded from the stream equal the
model's counters and each ticket ended once, then ended tickets are forgotten.
``--redis URL`` drives the Redis router in lockstep too (snapshots compared after
every event; far slower: use ``--events``).

    python bench/routing_soak.py                      # 1,000,000 events, a few minutes
    python bench/routing_soak.py --events 20000 --redis unix:///tmp/redis.sock
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
from pathlib import Path
from typing import Any, NamedTuple

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from routing.config import QueueConfig  # noqa: E402
from routing.errors import UnknownTicket  # noqa: E402
from routing.reference import Reference  # noqa: E402
from routing.states import InvalidTransition  # noqa: E402
from routing.types import Agent, Assignment, Change, Ticket  # noqa: E402
from tests.model import invariants  # noqa: E402

AGENTS = [f"a{n:02d}" for n in range(12)]
QUEUES = ["q0", "q1", "q2", "q3"]
SKILLS = ["s1", "s2", "s3"]
SITES = ["", "x", "y"]
GROUPS = ["default", "default", "default", "g2"]
STRATEGIES = ["longest_idle", "most_skilled", "round_robin", "least_occupied"]
REASONS = ["caller", "overflow", "timeout", "unanswered"]
LEASE = 30.0
CHECKPOINT = 100


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def levels(rng: random.Random, top: int, most: int) -> dict[str, int]:
    return {s: rng.randint(1, top) for s in rng.sample(SKILLS, rng.randint(0, most))}


def profile(rng: random.Random, agent_id: str) -> Agent:
    return Agent(
        agent_id,
        f"PJSIP/{agent_id}",
        levels(rng, 3, 3),
        rng.choice([(), (), ("en",), ("ko",), ("en", "ko")]),
        rng.choice(SITES),
        rng.choice(GROUPS),
        rng.choice([None, None, 0.0, 3.0]),
    )


class Soak:
    """One random run: the reference, optionally a Redis router in lockstep."""

    def __init__(self, seed: int, redis: Any = None) -> None:
        self.rng = random.Random(seed)
        self.clock = Clock()
        self.ref = Reference(self.clock, lease=LEASE, callback_window=10.0)
        self.redis = redis
        self.loop = asyncio.new_event_loop() if redis is not None else None
        if redis is not None:
            redis.clock, redis.ticking = self.clock, False  # the soak ticks, on its clock
            self.run(redis.redis.flushall())
        self.tickets: dict[str, tuple[Ticket, Ticket | None]] = {}
        self.assigned: dict[str, str] = {}
        self.numbers = 0
        self.violations: list[str] = []
        self.orphans: set[str] = set()
        self.composite = False  # the step was several operations (tick)
        self.before = self.ref.snapshot()
        configs = {
            q: QueueConfig(
                group=self.rng.choice(GROUPS),
                wrap_up=self.rng.choice([0.0, 0.0, 2.0, 5.0]),
                prefer_site=self.rng.random() < 0.3,
            )
            for q in QUEUES
        }
        self.ref.queues.update(configs)
        self.both("add_agents", [profile(self.rng, a) for a in AGENTS])
        if self.redis is not None:
            self.run(self.redis.replace_queues(configs))

    def run(self, coroutine: Any) -> Any:
        assert self.loop is not None
        return self.loop.run_until_complete(coroutine)

    def both(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """The operation on the reference, and on Redis when there is one: same answers."""
        mine = _answer(lambda: getattr(self.ref, name)(*_side(args, 0), **kwargs))
        if self.redis is not None:
            method = getattr(self.redis, name)

            async def theirs() -> Any:
                rest = [a for a in _side(args, 1) if a is not None or name != "claim_callback"]
                return await method(*rest, **kwargs)

            other = _answer(lambda: self.run(theirs()))
            if _plain(mine) != _plain(other):
                self.violations.append(f"{name}{args}: reference {mine}, redis {other}")
        return mine

    # ------------------------------------------------------------ events

    def step(self) -> None:
        rng = self.rng
        roll = rng.random()
        agent = rng.choice(AGENTS)
        if roll < 0.22:
            self.enqueue()
        elif roll < 0.30:
            self.both("login", agent)
        elif roll < 0.33:
            self.both("logout", agent)
        elif roll < 0.36:
            self.both("pause", agent, rng.choice(["lunch", "coffee"]))
        elif roll < 0.41:
            self.both("resume", agent)
        elif roll < 0.43:
            self.both("end_wrap_up", agent)
        elif roll < 0.44:
            moved = profile(rng, agent)
            if moved.group != self.ref.agents[agent].config.group:
                self.orphans |= invariants.orphaned(self.before, agent)
            self.both("add_agents", [moved])
        elif roll < 0.82:
            self.call_event(roll)
        elif roll < 0.86:
            self.clock.now += rng.choice([0.5, 1.0, 3.0, 10.0, 31.0])
        elif roll < 0.93:
            self.composite = True
            self.both("tick")
        elif roll < 0.97:
            self.both("renew", Pair("e1", None))
        else:
            self.both("claim_callback", Pair("e1", None))

    def enqueue(self) -> None:
        self.numbers += 1
        call = f"c{self.numbers}"
        rng = self.rng
        args = (call, rng.choice(QUEUES), levels(rng, 2, 1), rng.choice([0, 0, 5, 100]))
        kwargs = {
            "strategy": rng.choice(STRATEGIES),
            "customer": rng.choice(["", "555", "777"]),
            "any_skills": levels(rng, 3, 2) if rng.random() < 0.3 else {},
            "language": rng.choice([None, None, "en", "ko"]),
            "site": rng.choice(SITES),
        }
        mine = self.ref.enqueue(*args, **kwargs, engine="e1")
        theirs = None
        if self.redis is not None:
            theirs = self.run(self.redis.enqueue(*args, **kwargs))
        self.tickets[call] = (mine, theirs)

    def call_event(self, roll: float) -> None:
        live = [c for c in self.tickets if c in self.before["tickets"]]
        if not live:
            return
        rng = self.rng
        call = rng.choice(live)
        pair = Pair(*self.tickets[call])
        agent = self.assigned.get(call) or rng.choice(AGENTS)
        assignment = Pair(*(Assignment(t, agent, f"PJSIP/{agent}") if t else None for t in pair))
        if roll < 0.52:
            self.both("connected", assignment, None if rng.random() < 0.7 else self.clock() - 1)
        elif roll < 0.63:
            self.both("completed", assignment)
        elif roll < 0.68:
            self.both("missed", assignment, agent_fault=rng.random() < 0.6)
        elif roll < 0.73:
            self.both("abandon", pair, rng.choice(REASONS))
        elif roll < 0.78:
            self.both(
                "requalify",
                pair,
                levels(rng, 2, 1),
                rng.choice([None, None, 10, 100]),
                rng.choice([None, {}, levels(rng, 3, 2)]),
                rng.choice([None, None, True, False]),
            )
        else:
            self.both("request_callback", pair, "5551234")

    # ------------------------------------------------------------ checks

    def check(self, n: int) -> None:
        after = self.ref.snapshot()
        for call, row in after["tickets"].items():
            if row["stage"] == "reserved":
                self.assigned[call] = row["agent"]
        profiles = {a.id: a.config for a in self.ref.agents.values()}
        needs = {t.call_id: t for t in self.ref.tickets.values()}
        closed = set() if self.ref.placeable() else {c for c, t in needs.items() if t.callback}
        self.violations += invariants.all_of(
            self.before, after, profiles, needs, closed, self.orphans, composite=self.composite
        )
        self.composite = False
        if self.redis is not None:
            theirs = self.run(self.redis.snapshot())
            mine = {part: dict(after[part]) for part in after}
            theirs = {
                "agents": theirs["agents"],
                "tickets": {c: r for c, r in theirs["tickets"].items() if c in mine["tickets"]},
            }
            if mine != theirs:
                diff = [
                    f"{key}: {mine[part].get(key)} / {theirs[part].get(key)}"
                    for part in ("agents", "tickets")
                    for key in sorted(set(mine[part]) | set(theirs[part]))
                    if mine[part].get(key) != theirs[part].get(key)
                ]
                self.violations.append(f"event {n}: (reference / redis) {'; '.join(diff[:4])}")
        if n % CHECKPOINT == 0:
            events = self.ref.events
            self.violations += invariants.one_terminal_event(events)
            self.violations += invariants.kpis_match(events, self.ref.counters(), self.clock())
            self.ref.forget_ended()
            self.tickets = {c: p for c, p in self.tickets.items() if c in needs}
            self.assigned = {c: a for c, a in self.assigned.items() if c in self.tickets}
            self.orphans &= set(self.tickets)
            after = self.ref.snapshot()
        self.before = after


class Pair(NamedTuple):
    """An argument that differs between the sides (their own tickets, engine names)."""

    ref: Any
    redis: Any


def _side(args: tuple[Any, ...], index: int) -> list[Any]:
    return [a[index] if isinstance(a, Pair) else a for a in args]


def _answer(call: Any) -> Any:
    try:
        return call()
    except InvalidTransition:
        return "refused"
    except UnknownTicket:
        return "unknown"
    except ValueError:
        return "invalid"


def _plain(value: Any) -> Any:
    if isinstance(value, Change):
        return (value.result, value.released.ticket.call_id if value.released else None)
    if isinstance(value, Assignment):
        return (value.ticket.call_id, value.agent_id)
    if isinstance(value, bool) or value is None:
        return None  # the reference answers changed or not; the protocol says nothing
    return value


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--redis", help="a Redis URL: drive the Redis router in lockstep")
    args = parser.parse_args()
    redis = None
    if args.redis:
        from routing.redis import RedisRouter

        redis = RedisRouter.connect(args.redis, clock=Clock(), lease=LEASE)
    soak = Soak(args.seed, redis)
    started = time.perf_counter()
    for n in range(1, args.events + 1):
        soak.step()
        soak.check(n)
        if n % 100_000 == 0:
            rate = n / (time.perf_counter() - started)
            print(f"{n:>9,} events  {rate:,.0f}/s  violations {len(soak.violations)}", flush=True)
    elapsed = time.perf_counter() - started
    print(
        f"events: {args.events:,}  seconds: {elapsed:.1f}  events/s: {args.events / elapsed:,.0f}"
    )
    print(f"violations: {len(soak.violations)}")
    for line in soak.violations[:20]:
        print("  " + line)
    if redis is not None:
        soak.run(redis.close())
    return 1 if soak.violations else 0


if __name__ == "__main__":
    raise SystemExit(main())
