"""Skill-based routing kept in the process: the reference the Redis store must match.

A waiting call asks for skills with minimum levels; the longest-idle
available agent who has them all is reserved for it. Higher priority goes
first, then calls put back at the head (their agent did not answer), then
the longest waiting. One agent never holds two reservations.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from routing.errors import UnknownTicket
from routing.states import InvalidTransition, next_state

__all__ = ["Agent", "Assignment", "MemoryRouter", "Ticket", "check_callback_number"]

_NUMBER = re.compile(r"^\+?[0-9]{3,20}$")


def check_callback_number(number: str) -> None:
    """Refuse anything but 3 to 20 digits with an optional '+' (every store uses this)."""
    if not _NUMBER.match(number):
        raise ValueError(f"a callback number is 3 to 20 digits with an optional '+': {number!r}")


@dataclass(slots=True)
class Agent:
    id: str
    endpoint: str
    skills: dict[str, int] = field(default_factory=dict)
    state: str = "available"
    idle_since: float = field(default_factory=time.monotonic)
    missed: int = 0
    reserved_at: float = 0.0
    busy: float = 0.0
    login_at: float = 0.0
    state_at: float = field(default_factory=time.monotonic)

    def qualifies(self, skills: Mapping[str, int]) -> bool:
        return all(self.skills.get(name, 0) >= level for name, level in skills.items())


@dataclass(frozen=True, slots=True)
class Ticket:
    id: int
    call_id: str
    queue: str
    skills: tuple[tuple[str, int], ...]
    priority: int


@dataclass(frozen=True, slots=True)
class Assignment:
    ticket: Ticket
    agent_id: str
    endpoint: str
    #: The number to call back, when the caller asked for a callback.
    callback: str = ""


@dataclass(slots=True)
class _Waiting:
    ticket: Ticket
    order: tuple[int, int, int]
    future: asyncio.Future[Assignment]


class MemoryRouter:
    """In-process router: queues, agents, reservations."""

    def __init__(self, agents: Iterable[Agent] = (), *, max_misses: int = 3) -> None:
        self.agents = {agent.id: agent for agent in agents}
        #: Consecutive unanswered reservations before an agent is paused.
        self.max_misses = max_misses
        self._how: dict[int, tuple[str, str]] = {}  # ticket -> (strategy, preferred agent)
        self._customer: dict[int, str] = {}
        self._any: dict[int, dict[str, int]] = {}  # ticket -> one of these skills
        self._last: dict[str, str] = {}  # customer -> the agent who last served them
        self._connected_at: dict[int, float] = {}
        self._aht: dict[str, float] = {}  # queue -> recent handle time
        self._waiting: dict[int, _Waiting] = {}
        self._ids = itertools.count(1)
        self._seq = itertools.count()
        self.events: list[tuple[str, dict[str, object]]] = []
        self._callbacks: dict[int, str] = {}  # ticket -> number to call back
        self._due: asyncio.Queue[Assignment] = asyncio.Queue()

    def _emit(self, kind: str, **data: object) -> None:
        self.events.append((kind, data))

    async def enqueue(
        self,
        call_id: str,
        queue: str,
        skills: Mapping[str, int],
        priority: int = 0,
        *,
        strategy: str = "longest_idle",
        customer: str = "",
        any_skills: Mapping[str, int] | None = None,
    ) -> Ticket:
        """Queue a call needing every one of ``skills`` and, if given, one of ``any_skills``.
        ``customer`` (the caller's number) rings their last agent first, when free and
        able; ``strategy`` is longest_idle or most_skilled."""
        ticket = Ticket(next(self._ids), call_id, queue, tuple(sorted(skills.items())), priority)
        future = asyncio.get_running_loop().create_future()
        self._waiting[ticket.id] = _Waiting(ticket, (-priority, 1, next(self._seq)), future)
        self._how[ticket.id] = (strategy, self._last.get(customer, "") if customer else "")
        self._customer[ticket.id] = customer
        self._any[ticket.id] = dict(any_skills or {})
        self._emit("enqueued", call=call_id, queue=queue, skills=dict(skills))
        self._match()
        return ticket

    async def wait(self, ticket: Ticket) -> Assignment:
        """Until an agent is reserved for ``ticket``."""
        entry = self._waiting.get(ticket.id)
        if entry is None:
            raise UnknownTicket(ticket.id)
        return await asyncio.shield(entry.future)

    async def abandon(self, ticket: Ticket, reason: str = "caller") -> None:
        entry = self._waiting.pop(ticket.id, None)
        self._callbacks.pop(ticket.id, None)
        if entry is not None and entry.future.done() and not entry.future.cancelled():
            self._move(entry.future.result().agent_id, "release")  # reserved, caller left
        if entry is not None:
            self._emit("abandoned", call=ticket.call_id, queue=ticket.queue, reason=reason)

    async def note(self, event: str, **fields: str) -> None:
        """Record an event that is not a routing decision (a survey answer)."""
        self._emit(event, **fields)

    async def request_callback(self, ticket: Ticket, number: str) -> bool:
        """Keep the call's place without the caller on the line; False when too late."""
        check_callback_number(number)
        entry = self._waiting.get(ticket.id)
        if entry is None or entry.future.done():
            return False
        self._callbacks[ticket.id] = number
        self._emit("callback_requested", call=ticket.call_id, queue=ticket.queue)
        return True

    async def next_callback(self) -> Assignment:
        """The next callback an agent was reserved for."""
        return await self._due.get()

    async def requalify(
        self,
        ticket: Ticket,
        skills: Mapping[str, int],
        priority: int | None = None,
        any_skills: Mapping[str, int] | None = None,
    ) -> None:
        """Change a waiting call's requirement (an escalation step); it keeps its place."""
        if any_skills is not None:
            self._any[ticket.id] = dict(any_skills)
        entry = self._waiting.get(ticket.id)
        if entry is None or entry.future.done():
            return
        new = Ticket(
            ticket.id,
            ticket.call_id,
            ticket.queue,
            tuple(sorted(skills.items())),
            ticket.priority if priority is None else priority,
        )
        order = (-new.priority, *entry.order[1:])
        self._waiting[ticket.id] = _Waiting(new, order, entry.future)
        self._match()

    async def handle_time(self, queue: str) -> float | None:
        """Recent average handle time of ``queue`` in seconds, or None before any call."""
        return self._aht.get(queue)

    async def staffed(
        self, skills: Mapping[str, int], any_skills: Mapping[str, int] | None = None
    ) -> int:
        """Agents logged in, not paused and not missed, who meet the requirement."""
        either = dict(any_skills or {})
        return sum(
            1
            for agent in self.agents.values()
            if agent.state not in ("logged_out", "paused", "missed")
            and agent.qualifies(skills)
            and (not either or any(agent.skills.get(s, 0) >= v for s, v in either.items()))
        )

    async def position(self, ticket: Ticket) -> int | None:
        """1 for the next call to be served in its queue; None when not waiting."""
        entry = self._waiting.get(ticket.id)
        if entry is None or entry.future.done():
            return None
        ahead = [
            w
            for w in self._waiting.values()
            if w.ticket.queue == ticket.queue and not w.future.done() and w.order < entry.order
        ]
        return len(ahead) + 1

    async def connected(self, assignment: Assignment) -> None:
        self._waiting.pop(assignment.ticket.id, None)
        customer = self._customer.get(assignment.ticket.id, "")
        if customer:
            self._last[customer] = assignment.agent_id
        self._connected_at[assignment.ticket.id] = time.monotonic()
        self._move(assignment.agent_id, "connect")
        self._emit("connected", call=assignment.ticket.call_id, agent=assignment.agent_id)

    async def completed(self, assignment: Assignment, wrap_up: float = 0.0) -> None:
        """The call ended: wrap-up for ``wrap_up`` seconds, then available again."""
        if self.agents[assignment.agent_id].state == "reserved":
            await self.connected(assignment)  # its answer was never recorded
        started = self._connected_at.pop(assignment.ticket.id, None)
        if started is not None:
            handle, queue = time.monotonic() - started, assignment.ticket.queue
            old = self._aht.get(queue)
            self._aht[queue] = handle if old is None else 0.8 * old + 0.2 * handle
        if self._move(assignment.agent_id, "complete"):
            self._emit("completed", call=assignment.ticket.call_id, agent=assignment.agent_id)
            if wrap_up > 0:
                loop = asyncio.get_running_loop()
                loop.call_later(wrap_up, self._ready, assignment.agent_id)
            else:
                self._ready(assignment.agent_id)

    def _ready(self, agent_id: str) -> None:
        if self.agents[agent_id].state == "wrap_up":
            self._move(agent_id, "ready")

    async def missed(self, assignment: Assignment, *, agent_fault: bool = True) -> None:
        """The agent did not answer: they go to 'missed', the call back to the head.
        With ``agent_fault`` false (the call could not be placed) the agent is only freed."""
        agent = self.agents[assignment.agent_id]
        if not agent_fault:
            if not self._move(agent.id, "release", reason="the call could not be placed"):
                return
        else:
            if not self._move(agent.id, "miss"):
                return
            agent.missed += 1
            if agent.missed >= self.max_misses:
                self._move(agent.id, "pause", reason=f"missed {agent.missed} calls")
        ticket = assignment.ticket
        future = asyncio.get_running_loop().create_future()
        self._waiting[ticket.id] = _Waiting(ticket, (-ticket.priority, 0, next(self._seq)), future)
        self._emit("missed", call=ticket.call_id, agent=agent.id)
        self._match()

    async def add_agents(self, agents: Iterable[Agent]) -> None:
        """Create or update agents (logged out until they log in)."""
        for agent in agents:
            known = self.agents.get(agent.id)
            state = known.state if known is not None else "logged_out"
            self.agents[agent.id] = Agent(agent.id, agent.endpoint, dict(agent.skills), state)
            if known is not None:
                self.agents[agent.id].idle_since = known.idle_since
        self._match()

    async def login(self, agent_id: str) -> bool:
        return self._move(self._known(agent_id), "login")

    async def logout(self, agent_id: str) -> bool:
        return self._move(self._known(agent_id), "logout")

    async def pause(self, agent_id: str, reason: str = "") -> bool:
        return self._move(self._known(agent_id), "pause", reason=reason)

    async def resume(self, agent_id: str) -> bool:
        return self._move(self._known(agent_id), "resume")

    async def agent_state(self, agent_id: str) -> str | None:
        agent = self.agents.get(agent_id)
        return agent.state if agent is not None else None

    def _known(self, agent_id: str) -> str:
        if agent_id not in self.agents:
            raise InvalidTransition(f"no agent {agent_id!r}; add it to routing first")
        return agent_id

    def _move(self, agent_id: str, action: str, reason: str = "") -> bool:
        """Apply ``action``; False when it had already taken effect."""
        agent = self.agents[agent_id]
        target = next_state(agent_id, agent.state, action)
        if target is None:
            return False
        before, agent.state = agent.state, target
        now = time.monotonic()
        if before in ("reserved", "on_call", "wrap_up"):
            agent.busy += now - agent.state_at
        if action == "login":
            agent.login_at, agent.busy = now, 0.0
        agent.state_at = now
        if action in ("connect", "login"):
            agent.missed = 0  # misses count in a row: an answered call starts over
        self._emit("state", agent=agent_id, before=before, after=target, reason=reason)
        if target == "available":
            agent.idle_since = time.monotonic()
            self._match()
        return True

    @staticmethod
    def _pick(free: list[Agent], skills: Mapping[str, int], strategy: str, prefer: str) -> Agent:
        preferred = [a for a in free if a.id == prefer]
        if preferred:
            return preferred[0]
        if strategy == "most_skilled" and skills:
            # The same rule as the Redis store: the skill with the fewest agents free.
            pool = min(
                skills, key=lambda s: sum(1 for a in free if a.skills.get(s, 0) >= skills[s])
            )
            return min(free, key=lambda a: (-a.skills.get(pool, 0), a.idle_since))
        if strategy == "round_robin":
            return min(free, key=lambda a: (a.reserved_at, a.idle_since))
        if strategy == "least_occupied":
            now = time.monotonic()
            return min(free, key=lambda a: (a.busy / max(1.0, now - a.login_at), a.idle_since))
        return min(free, key=lambda a: a.idle_since)

    def _match(self) -> None:
        for entry in sorted(self._waiting.values(), key=lambda w: w.order):
            if entry.future.done():
                continue
            skills = dict(entry.ticket.skills)
            either = self._any.get(entry.ticket.id, {})
            free = [
                a
                for a in self.agents.values()
                if a.state == "available"
                and a.qualifies(skills)
                and (not either or any(a.skills.get(s, 0) >= n for s, n in either.items()))
            ]
            if not free:
                continue
            strategy, prefer = self._how.get(entry.ticket.id, ("longest_idle", ""))
            agent = self._pick(free, skills, strategy, prefer)
            agent.state = next_state(agent.id, agent.state, "reserve") or agent.state
            agent.reserved_at = agent.state_at = time.monotonic()
            number = self._callbacks.get(entry.ticket.id, "")
            assignment = Assignment(entry.ticket, agent.id, agent.endpoint, callback=number)
            entry.future.set_result(assignment)
            if number:
                self._due.put_nowait(assignment)
            self._emit("reserved", call=entry.ticket.call_id, agent=agent.id)
