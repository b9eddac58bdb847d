"""The proof harness: a Hypothesis state machine that drives the reference model and a
second router in lockstep, on one fake clock, and checks ROUTING.md after every step.

Random agents (skills, levels, languages, sites, groups, wrap-up), queues (groups,
wrap-up, site preference), logins, pauses and logouts (pending and forced), calls
with priorities, strategies, languages and sites, answers, misses with and without
fault, hang-ups, overflows, time-outs, requalifications, callbacks (asked, claimed,
unanswered), replays of finished transitions, clock steps, ``tick`` and ``renew``.
Both routers get the same operation through the async ``Router`` protocol; their
answers (results, refusals) and ``snapshot()`` must be equal, and the invariants of
``tests.model.invariants`` hold on every snapshot. The second router is a parameter
(:func:`machine_for`): another reference, or the Redis router.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from routing.config import QueueConfig
from routing.errors import UnknownTicket
from routing.memory import MemoryRouter
from routing.reference import TicketRecord
from routing.states import InvalidTransition
from routing.types import TERMINAL, Agent, Assignment, Change, Ticket
from tests.model import invariants

#: Seconds a ticket's lease lasts (both routers are built with it).
LEASE = 30.0
AGENTS = tuple(f"a{n}" for n in range(6))
QUEUES = ("q0", "q1", "q2")
SKILLS = ("s1", "s2", "s3")
SITES = ("", "x", "y")
GROUPS = ("default", "default", "default", "g2")


class FakeClock:
    """Wall-clock seconds that move only when the test says."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


Factory = Callable[[FakeClock], Awaitable[Any]]


async def reference_router(clock: FakeClock) -> MemoryRouter:
    """The reference model behind the async protocol, driven by the test's clock."""
    return MemoryRouter(clock=clock, lease=LEASE, engine_id="e1", timers=False)


levels = st.dictionaries(st.sampled_from(SKILLS), st.integers(1, 3), max_size=2)
#: What calls ask for: mostly little, so that agents and calls meet often.
needs = st.one_of(
    st.just({}), st.dictionaries(st.sampled_from(SKILLS), st.integers(1, 2), max_size=1)
)
profiles = st.fixed_dictionaries(
    {
        "skills": st.dictionaries(st.sampled_from(SKILLS), st.integers(1, 3), max_size=3),
        "languages": st.sampled_from(((), (), ("en",), ("ko",), ("en", "ko"))),
        "site": st.sampled_from(SITES),
        "group": st.sampled_from(GROUPS),
        "wrap_up": st.sampled_from((None, None, 0.0, 3.0)),
    }
)
queue_configs = st.fixed_dictionaries(
    {
        name: st.builds(
            QueueConfig,
            group=st.sampled_from(GROUPS),
            wrap_up=st.sampled_from((0.0, 0.0, 2.0, 5.0)),
            prefer_site=st.booleans(),
        )
        for name in QUEUES
    }
)


@dataclass
class Side:
    """One router and the tickets it returned, by call id."""

    router: Any
    tickets: dict[str, Ticket] = field(default_factory=dict)


def _plain(value: Any) -> Any:
    """An answer reduced to what both routers must agree on."""
    if isinstance(value, Change):
        released = value.released.ticket.call_id if value.released else None
        return ("change", value.result, released)
    if isinstance(value, Ticket):
        return ("ticket", value.call_id)
    if isinstance(value, Assignment):
        return ("assignment", value.ticket.call_id, value.agent_id, value.callback)
    return value


async def _answer(call: Awaitable[Any]) -> Any:
    try:
        return ("ok", _plain(await call))
    except InvalidTransition:
        return ("refused",)
    except UnknownTicket:
        return ("unknown",)
    except ValueError:
        return ("invalid",)


class RoutingMachine(RuleBasedStateMachine):
    """Reference and ``other`` in lockstep (``other`` set by :func:`machine_for`)."""

    other: Factory = reference_router
    #: Reloads keep an existing agent's routing group (no moves between groups).
    keep_groups = False

    def __init__(self) -> None:
        super().__init__()
        self.clock = FakeClock()
        self.runner = asyncio.Runner()
        self.model = Side(self.runner.run(reference_router(self.clock)))
        self.peer = Side(self.runner.run(type(self).other(self.clock)))
        self.queues: dict[str, QueueConfig] = {}
        self.profiles: dict[str, Agent] = {}
        self.needs: dict[str, TicketRecord] = {}
        self.assigned: dict[str, str] = {}  # call -> the last agent reserved for it
        self.callbacks: dict[str, str] = {}
        self.worker_seen: float | None = None  # when a callback worker last looked
        self.orphans: set[str] = set()  # calls in progress whose agent changed group
        self.composite = False  # the step was several operations (tick)
        self.numbers = itertools.count(1)
        self.before: invariants.Snapshot = {"agents": {}, "tickets": {}}

    def teardown(self) -> None:
        for side in (self.model, self.peer):
            close = getattr(side.router, "close", None)
            if close is not None:
                self.runner.run(close())
        self.runner.close()

    # ------------------------------------------------------------- helpers

    def both(self, op: Callable[[Side], Awaitable[Any]]) -> Any:
        mine = self.runner.run(_answer(op(self.model)))
        theirs = self.runner.run(_answer(op(self.peer)))
        assert mine == theirs, f"reference answered {mine}, the other router {theirs}"
        return mine

    def snapshot(self) -> invariants.Snapshot:
        snap: invariants.Snapshot = self.runner.run(self.model.router.snapshot())
        return snap

    def assignment(self, side: Side, call: str) -> Assignment:
        agent = self.assigned[call]
        return Assignment(
            side.tickets[call],
            agent,
            self.profiles[agent].endpoint,
            callback=self.callbacks.get(call, ""),
        )

    def _calls(self) -> list[str]:
        return sorted(self.needs)

    # --------------------------------------------------------------- setup

    @initialize(
        configs=queue_configs,
        staff=st.lists(profiles, min_size=len(AGENTS), max_size=len(AGENTS)),
        logged_in=st.sets(st.sampled_from(AGENTS), max_size=3),
    )
    def configure(
        self, configs: dict[str, QueueConfig], staff: list[dict[str, Any]], logged_in: set[str]
    ) -> None:
        self.queues = configs
        self.both(lambda s: s.router.replace_queues(configs))
        for agent, profile in zip(AGENTS, staff, strict=True):
            self.add_agent(agent, profile)
        for agent in sorted(logged_in):
            self.both(lambda s, agent=agent: s.router.login(agent))  # type: ignore[misc]

    def pick(self, data: st.DataObject, *stages: str) -> str | None:
        """A call now in one of ``stages`` mostly; sometimes any call the agents saw (a
        replay of a finished transition)."""
        live = [c for c, row in self.before["tickets"].items() if row["stage"] in stages]
        if live and data.draw(st.integers(0, 5), label="live") > 0:
            return data.draw(st.sampled_from(sorted(live)), label="call")
        known = sorted(self.assigned) if "waiting" not in stages else self._calls()
        return data.draw(st.sampled_from(known), label="call") if known else None

    # -------------------------------------------------------------- agents

    @rule(agent=st.sampled_from(AGENTS), profile=profiles)
    def add_agent(self, agent: str, profile: dict[str, Any]) -> None:
        known = self.profiles.get(agent)
        if known is not None and self.keep_groups:
            profile = {**profile, "group": known.group}
        value = Agent(agent, f"PJSIP/{agent}", **profile)
        if known is not None and known.group != value.group:
            self.orphans |= invariants.orphaned(self.before, agent)
        self.profiles[agent] = value
        self.both(lambda s: s.router.add_agents([value]))

    @rule(
        agent=st.sampled_from(AGENTS),
        action=st.sampled_from(("login", "login", "logout", "resume", "end_wrap_up")),
    )
    def agent_action(self, agent: str, action: str) -> None:
        self.both(lambda s: getattr(s.router, action)(agent))

    @rule(agent=st.sampled_from(AGENTS), reason=st.sampled_from(("lunch", "coffee")))
    def pause(self, agent: str, reason: str) -> None:
        self.both(lambda s: s.router.pause(agent, reason))

    # --------------------------------------------------------------- calls

    calls = st.fixed_dictionaries(
        {
            "queue": st.sampled_from(QUEUES),
            "skills": needs,
            "any_skills": st.one_of(st.just({}), levels),
            "priority": st.sampled_from((0, 0, 5, 100)),
            "strategy": st.sampled_from(
                ("longest_idle", "most_skilled", "round_robin", "least_occupied")
            ),
            "customer": st.sampled_from(("", "555", "777")),
            "language": st.sampled_from((None, None, "en", "ko")),
            "site": st.sampled_from(SITES),
        }
    )

    # Calls come more often than anything else, so that queues build up.
    @rule(call=calls)
    def call_arrives(self, call: dict[str, Any]) -> None:
        self.enqueue(**call)

    @rule(call=calls)
    def another_call_arrives(self, call: dict[str, Any]) -> None:
        self.enqueue(**call)

    @rule(first=calls, second=calls)
    def two_calls_arrive(self, first: dict[str, Any], second: dict[str, Any]) -> None:
        self.enqueue(**first)
        self.agree_and_hold()  # the invariants hold per operation
        self.enqueue(**second)

    def enqueue(
        self,
        queue: str,
        skills: dict[str, int],
        any_skills: dict[str, int],
        priority: int,
        strategy: str,
        customer: str,
        language: str | None,
        site: str,
    ) -> None:
        n = next(self.numbers)
        call = f"c{n}"
        config = self.queues.get(queue, QueueConfig())
        self.needs[call] = TicketRecord(
            id=n, call_id=call, queue=queue, group=config.group,
            skills=tuple(sorted(skills.items())), any_skills=tuple(sorted(any_skills.items())),
            language=language, site=site, site_only=config.prefer_site and bool(site),
            priority=priority, arrival=self.clock(), seq=n, strategy=strategy, prefer="",
            customer=customer, engine="",
        )  # fmt: skip

        async def enqueue(side: Side) -> Ticket:
            ticket: Ticket = await side.router.enqueue(
                call, queue, skills, priority, strategy=strategy, customer=customer,
                any_skills=any_skills, language=language, site=site,
            )  # fmt: skip
            side.tickets[call] = ticket
            return ticket

        self.both(enqueue)

    @precondition(lambda self: bool(self.needs))
    @rule(data=st.data())
    def enqueue_again(self, data: st.DataObject) -> None:
        """A client's retry of an enqueue whose reply was lost: the call's live ticket
        comes back, and nothing else changes."""
        live = sorted(
            c for c, row in self.before["tickets"].items()
            if row["stage"] in ("waiting", "reserved", "connected")
        )  # fmt: skip
        if not live:
            return
        call = data.draw(st.sampled_from(live), label="call")
        need = self.needs[call]

        async def again(side: Side) -> Ticket:
            ticket: Ticket = await side.router.enqueue(
                call, need.queue, dict(need.skills), need.priority, strategy=need.strategy,
                customer=need.customer, any_skills=dict(need.any_skills),
                language=need.language, site=need.site,
            )  # fmt: skip
            assert ticket.id == side.tickets[call].id, (
                f"a retried enqueue of {call} made ticket {ticket.id}, not"
                f" {side.tickets[call].id} ({self.before['tickets'].get(call)})"
                f" orphan={call in self.orphans}"
            )
            return ticket

        self.both(again)

    @precondition(lambda self: bool(self.assigned))
    @rule(data=st.data(), late=st.sampled_from((None, 0.0, 2.0)))
    def connected(self, data: st.DataObject, late: float | None) -> None:
        call = self.pick(data, "reserved")
        if call is None:
            return
        at = None if late is None else self.clock() - late
        self.both(lambda s: s.router.connected(self.assignment(s, call), at))

    @precondition(lambda self: bool(self.assigned))
    @rule(data=st.data())
    def call_ends(self, data: st.DataObject) -> None:
        self.completed(data)

    @precondition(lambda self: bool(self.assigned))
    @rule(data=st.data(), late=st.sampled_from((None, 1.0)))
    def agent_answers(self, data: st.DataObject, late: float | None) -> None:
        self.connected(data, late)

    @precondition(lambda self: bool(self.assigned))
    @rule(data=st.data())
    def completed(self, data: st.DataObject) -> None:
        call = self.pick(data, "connected", "connected", "reserved")
        if call is None:
            return
        self.both(lambda s: s.router.completed(self.assignment(s, call)))

    @precondition(lambda self: bool(self.assigned))
    @rule(data=st.data(), fault=st.booleans())
    def missed(self, data: st.DataObject, fault: bool) -> None:
        call = self.pick(data, "reserved")
        if call is None:
            return
        self.both(lambda s: s.router.missed(self.assignment(s, call), agent_fault=fault))

    @precondition(lambda self: bool(self.needs))
    @rule(data=st.data(), reason=st.sampled_from(("caller", "overflow", "timeout", "unanswered")))
    def abandon(self, data: st.DataObject, reason: str) -> None:
        call = self.pick(data, "waiting", "reserved")
        if call is None:
            return
        self.both(lambda s: s.router.abandon(s.tickets[call], reason))

    @precondition(lambda self: bool(self.needs))
    @rule(
        data=st.data(),
        skills=needs,
        priority=st.sampled_from((None, None, 10, 100)),
        any_skills=st.one_of(st.none(), levels),
        site_only=st.sampled_from((None, None, False, True)),
    )
    def requalify(
        self,
        data: st.DataObject,
        skills: dict[str, int],
        priority: int | None,
        any_skills: dict[str, int] | None,
        site_only: bool | None,
    ) -> None:
        call = self.pick(data, "waiting", "reserved")
        if call is None:
            return
        need = self.needs[call]
        if self.before["tickets"][call]["stage"] in ("waiting", "reserved"):
            need.skills = tuple(sorted(skills.items()))
            if priority is not None:
                need.priority = priority
            if any_skills is not None:
                need.any_skills = tuple(sorted(any_skills.items()))
            if site_only is not None:
                need.site_only = site_only and bool(need.site)
        self.both(
            lambda s: s.router.requalify(s.tickets[call], skills, priority, any_skills, site_only)
        )

    @precondition(lambda self: bool(self.needs))
    @rule(data=st.data(), number=st.sampled_from(("5551234", "+15557777")))
    def request_callback(self, data: st.DataObject, number: str) -> None:
        call = self.pick(data, "waiting")
        if call is None:
            return
        answer = self.both(lambda s: s.router.request_callback(s.tickets[call], number))
        if answer == ("ok", True):
            self.callbacks[call] = number

    @precondition(lambda self: hasattr(self.peer.router, "claim_callback"))
    @rule()
    def claim_callback(self) -> None:
        self.worker_seen = self.clock()
        self.both(lambda s: s.router.claim_callback())

    def closed(self) -> set[str]:
        """Callbacks while no callback worker is alive: they take no agent."""
        window = self.model.router.reference.callback_window
        if self.worker_seen is not None and self.worker_seen >= self.clock() - window:
            return set()
        return set(self.callbacks)

    @precondition(lambda self: bool(self.needs))
    @rule(data=st.data(), skills=needs, any_skills=st.one_of(st.none(), levels))
    def reads(
        self, data: st.DataObject, skills: dict[str, int], any_skills: dict[str, int] | None
    ) -> None:
        """Positions in the queue and the staff able to serve agree too."""
        call = data.draw(st.sampled_from(self._calls()))
        self.both(lambda s: s.router.position(s.tickets[call]))
        self.both(lambda s: s.router.staffed(skills, any_skills))

    # ---------------------------------------------------------------- time

    @rule(seconds=st.sampled_from((0.5, 1.0, 3.0, 10.0, 31.0)))
    def advance(self, seconds: float) -> None:
        self.clock.now += seconds

    @rule()
    def tick(self) -> None:
        self.composite = True
        self.both(lambda s: s.router.tick())

    @rule()
    def renew(self) -> None:
        self.both(lambda s: s.router.renew(s.router.engine_id))

    # ---------------------------------------------------------- invariants

    @invariant()
    def agree_and_hold(self) -> None:
        mine = self.snapshot()
        theirs = self.runner.run(self.peer.router.snapshot())
        assert mine == theirs, _difference(mine, theirs)
        for call, row in mine["tickets"].items():
            if row["stage"] == "reserved":
                self.assigned[call] = row["agent"]
        found = invariants.all_of(
            self.before,
            mine,
            self.profiles,
            self.needs,
            self.closed(),
            self.orphans,
            composite=self.composite,
        )
        self.composite = False
        assert not found, found
        self.before = mine

    @invariant()
    def streams_agree_with_the_model(self) -> None:
        reference = self.model.router.reference
        found = [
            *invariants.one_terminal_event(reference.events),
            *invariants.kpis_match(reference.events, reference.counters(), self.clock()),
        ]
        stream = getattr(self.peer.router, "stream", None) or getattr(
            self.peer.router, "events", None
        )
        if callable(stream):
            events = self.runner.run(stream(0.0))
            found += invariants.one_terminal_event(events)
            found += invariants.kpis_match(events, reference.counters(), self.clock())
        assert not found, found


def _difference(mine: invariants.Snapshot, theirs: invariants.Snapshot) -> str:
    lines = []
    for part in ("agents", "tickets"):
        for key in sorted(set(mine[part]) | set(theirs[part])):
            a, b = mine[part].get(key), theirs[part].get(key)
            if a != b:
                lines.append(f"{part[:-1]} {key}: reference {a}, other {b}")
    return "snapshots differ: " + "; ".join(lines)


def machine_for(other: Factory, *, keep_groups: bool = False) -> type[RoutingMachine]:
    """The state machine with ``other`` as the second router."""
    return type(
        "RoutingMachineFor",
        (RoutingMachine,),
        {"other": staticmethod(other), "keep_groups": keep_groups},
    )


__all__ = ["LEASE", "TERMINAL", "FakeClock", "RoutingMachine", "machine_for", "reference_router"]
