"""The reference model of routing: ``routing/ROUTING.md`` as plain, synchronous Python.

This is the executable specification every store must match (the model-based
test drives it and the Redis router in lockstep). It favours being obviously
right over being fast: every decision loops over all agents or all tickets and
takes the minimum of the order ROUTING.md defines; there are no indexes to
keep in step. Time comes only from the ``clock`` given to the constructor
(wall-clock seconds), so a test can move it; nothing here sleeps or schedules.
Each public method is one atomic operation: it applies the change, then the
decisions it triggers, and appends its events to :attr:`Reference.events`
(``(moment, fields)`` with string fields, as the Redis stream has them).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, get_args

from routing.config import QueueConfig
from routing.states import BUSY, InvalidTransition, decide
from routing.types import (
    DEFAULT_GROUP,
    OUTCOME_STAGE,
    TERMINAL,
    Agent,
    Assignment,
    Change,
    Strategy,
    Ticket,
    check_callback_number,
)

__all__ = ["AgentRecord", "Reference", "TicketRecord", "agent_order", "call_order", "eligible"]

STRATEGIES = get_args(Strategy)
_DEFAULT_QUEUE = QueueConfig()
#: Weight of the newest call in a queue's handle time (an exponential average).
_AHT_WEIGHT = 0.2


@dataclass(slots=True)
class AgentRecord:
    """An agent as the model holds it: configuration plus run-time fields."""

    config: Agent
    state: str = "logged_out"
    reason: str = ""
    idle_since: float = 0.0
    reserved_at: float = 0.0
    busy: float = 0.0
    busy_since: float = 0.0
    login_at: float = 0.0
    misses: int = 0
    #: ("pause", reason) or ("logout", ""): takes effect instead of becoming available.
    pending: tuple[str, str] | None = None
    #: The ticket reserved for, or connected to, this agent.
    ticket: int | None = None
    wrap_ticket: int | None = None
    wrap_until: float | None = None

    @property
    def id(self) -> str:
        return self.config.id


@dataclass(slots=True)
class TicketRecord:
    """One call in routing, from enqueue to its terminal stage."""

    id: int
    call_id: str
    queue: str
    group: str
    skills: tuple[tuple[str, int], ...]
    any_skills: tuple[tuple[str, int], ...]
    language: str | None
    site: str
    site_only: bool
    priority: int
    arrival: float
    seq: int
    strategy: str
    prefer: str
    customer: str
    engine: str
    callback: str = ""
    stage: str = "waiting"
    agent: str | None = None
    #: The agent who answered (kept after the ticket ends).
    served_by: str | None = None
    lease_until: float | None = None
    claimed_by: str = ""
    connected_at: float | None = None

    def value(self) -> Ticket:
        return Ticket(
            self.id,
            self.call_id,
            self.queue,
            self.skills,
            self.priority,
            self.any_skills,
            self.language,
            self.site,
            self.group,
        )


def eligible(agent: Agent, state: str, ticket: TicketRecord) -> bool:
    """ROUTING.md's five conditions of eligibility."""
    return (
        state == "available"
        and agent.group == ticket.group
        and all(agent.skills.get(s, 0) >= n for s, n in ticket.skills)
        and (
            not ticket.any_skills or any(agent.skills.get(s, 0) >= n for s, n in ticket.any_skills)
        )
        and (ticket.language is None or not agent.languages or ticket.language in agent.languages)
        and (not ticket.site_only or agent.site == ticket.site)
    )


def call_order(ticket: TicketRecord) -> tuple[int, float, int]:
    """Best call first: higher priority, then earlier arrival, then smaller seq."""
    return (-ticket.priority, ticket.arrival, ticket.seq)


def primary_skill(ticket: TicketRecord) -> str | None:
    """The skill of the ticket's all-of requirement with the highest level (ties: the
    smaller name); None without skills."""
    if not ticket.skills:
        return None
    return min(ticket.skills, key=lambda item: (-item[1], item[0]))[0]


def agent_order(ticket: TicketRecord, agent: AgentRecord) -> tuple[Any, ...]:
    """Best agent first for ``ticket``: the preferred agent, then by its strategy."""
    first = 0 if agent.id == ticket.prefer else 1
    if ticket.strategy == "round_robin":
        return (first, agent.reserved_at, agent.id)
    if ticket.strategy == "least_occupied":
        return (first, agent.busy, agent.id)
    if ticket.strategy == "most_skilled":
        skill = primary_skill(ticket)
        level = agent.config.skills.get(skill, 0) if skill is not None else 0
        return (first, -level, agent.idle_since, agent.id)
    return (first, agent.idle_since, agent.id)


class Reference:
    """Agents, tickets and every decision of ROUTING.md, in memory."""

    def __init__(
        self,
        clock: Callable[[], float],
        *,
        max_misses: int = 3,
        lease: float | None = 30.0,
        callback_window: float = 0.0,
        on_reserved: Callable[[Assignment], None] | None = None,
    ) -> None:
        self.clock = clock
        #: Consecutive unanswered reservations before an agent is paused.
        self.max_misses = max_misses
        #: Seconds a ticket's holder has to renew it; None: no leases.
        self.lease = lease
        #: Seconds a callback worker counts as alive after it looked for work
        #: (``claim_callback``); callbacks take agents only while one is (0: always).
        self.callback_window = callback_window
        #: engine -> when its callback worker last looked for work.
        self.workers: dict[str, float] = {}
        #: Told of every reservation (the async adapter resolves ``wait()`` with it).
        self.on_reserved = on_reserved
        self.agents: dict[str, AgentRecord] = {}
        self.tickets: dict[int, TicketRecord] = {}
        #: (group, call id) -> the call's latest ticket: an enqueue is idempotent
        #: while that ticket is not in a terminal stage.
        self._live: dict[tuple[str, str], int] = {}
        self.queues: dict[str, QueueConfig] = {}
        self.events: list[tuple[float, dict[str, str]]] = []
        #: (routing group, customer) -> the agent who last answered them there.
        self.last_agent: dict[tuple[str, str], str] = {}
        self.aht: dict[str, float] = {}
        self._ids = itertools.count(1)
        self._seq = itertools.count(1)

    # ------------------------------------------------------------- plumbing

    def _emit(self, kind: str, **fields: object) -> None:
        row = {"event": kind}
        row.update({k: "" if v is None else str(v) for k, v in fields.items()})
        self.events.append((self.clock(), row))

    def _ticket_event(self, kind: str, t: TicketRecord, **fields: object) -> None:
        self._emit(kind, ticket=t.id, call=t.call_id, queue=t.queue, site=t.site, **fields)

    def _queue(self, name: str) -> QueueConfig:
        return self.queues.get(name, _DEFAULT_QUEUE)

    def _known(self, agent_id: str) -> AgentRecord:
        agent = self.agents.get(agent_id)
        if agent is None:
            raise InvalidTransition(f"no agent {agent_id!r}; add it to routing first")
        return agent

    def _set_state(self, agent: AgentRecord, target: str, reason: str = "") -> None:
        now, before = self.clock(), agent.state
        if before in BUSY and target not in BUSY:
            agent.busy += now - agent.busy_since
        elif before not in BUSY and target in BUSY:
            agent.busy_since = now
        agent.state, agent.reason = target, reason
        if target in ("paused", "logged_out"):
            agent.pending = None
        if target != "wrap_up":
            agent.wrap_ticket = agent.wrap_until = None
        self._emit(
            "state", agent=agent.id, before=before, after=target, reason=reason,
            site=agent.config.site, group=agent.config.group,
        )  # fmt: skip

    def _lease(self) -> float | None:
        return None if self.lease is None else self.clock() + self.lease

    # ------------------------------------------------------------ decisions

    def _reserve(self, t: TicketRecord, agent: AgentRecord) -> None:
        t.stage, t.agent, agent.ticket = "reserved", agent.id, t.id
        t.claimed_by = ""
        if t.callback:
            t.engine = ""  # a callback worker claims it
        t.lease_until = self._lease()
        self._set_state(agent, "reserved")
        agent.reserved_at = self.clock()
        self._ticket_event("reserved", t, agent=agent.id)
        if self.on_reserved is not None:
            self.on_reserved(self._assignment(t))

    def _assignment(self, t: TicketRecord) -> Assignment:
        agent = self.agents[t.agent or ""]
        return Assignment(t.value(), agent.id, agent.config.endpoint, callback=t.callback)

    def placeable(self) -> bool:
        """Whether a callback worker is alive (callbacks take agents only then)."""
        if self.callback_window <= 0:
            return True
        since = self.clock() - self.callback_window
        return any(moment >= since for moment in self.workers.values())

    def _open(self, t: TicketRecord) -> bool:
        """A waiting ticket that may take an agent now."""
        return t.stage == "waiting" and (not t.callback or self.placeable())

    def _agent_chooses(self, agent: AgentRecord) -> None:
        """Agent -> call: the best waiting ticket this agent is eligible for."""
        calls = [
            t
            for t in self.tickets.values()
            if self._open(t) and eligible(agent.config, agent.state, t)
        ]
        if calls:
            self._reserve(min(calls, key=call_order), agent)

    def _ticket_chooses(self, t: TicketRecord) -> None:
        """Call -> agent: the best eligible agent for this ticket, by its strategy."""
        if not self._open(t):
            return
        free = [a for a in self.agents.values() if eligible(a.config, a.state, t)]
        if free:
            self._reserve(t, min(free, key=lambda a: agent_order(t, a)))

    def _settle(self) -> None:
        """Every available agent chooses, in the order idle_since, then id."""
        for agent in sorted(self.agents.values(), key=lambda a: (a.idle_since, a.id)):
            if agent.state == "available":
                self._agent_chooses(agent)

    def _become_available(self, agent: AgentRecord, action: str, reason: str = "") -> None:
        """The agent would become available: a pending request applies instead."""
        pending = agent.pending
        if pending is not None and pending[0] == "logout":
            self._set_state(agent, "logged_out", "pending logout")
        elif pending is not None:
            self._set_state(agent, "paused", pending[1])
        else:
            self._set_state(agent, "available", reason or action)
            agent.idle_since = self.clock()
            self._agent_chooses(agent)

    def _release(self, t: TicketRecord) -> AgentRecord | None:
        """Detach the ticket's agent (without changing the agent's state)."""
        agent = self.agents.get(t.agent or "")
        t.agent = None
        if agent is not None and agent.ticket == t.id:
            agent.ticket = None
            return agent
        return None

    def _held(self, assignment: Assignment, stage: str) -> TicketRecord | None:
        t = self.tickets.get(assignment.ticket.id)
        if t is None or t.stage != stage or t.agent != assignment.agent_id:
            return None
        return t

    # --------------------------------------------------------------- agents

    def add_agents(self, agents: Iterable[Agent]) -> None:
        """Create agents (logged out) or reload their configuration; run-time fields stay."""
        for config in agents:
            fresh = Agent(**_fields(config))
            known = self.agents.get(config.id)
            if known is not None and known.config.group != fresh.group:
                self._leave_group(known)
                known = None
            if known is None:
                self.agents[config.id] = AgentRecord(fresh)
            else:
                known.config = fresh
        self._settle()

    def _leave_group(self, agent: AgentRecord) -> None:
        """An agent moved to another routing group leaves this one logged out (a ringing
        call goes back to waiting; a call in progress ends without them) and starts
        afresh in the new group, as a new agent there."""
        t = self.tickets.get(agent.ticket) if agent.ticket is not None else None
        if t is not None:
            self._release(t)
            t.agent = agent.id if t.stage == "connected" else None
        if agent.state != "logged_out":
            self._set_state(agent, "logged_out", "moved")
        if t is not None and t.stage == "reserved":
            self._put_back(t, None, "0", "moved")

    def login(self, agent_id: str) -> Change:
        agent = self._known(agent_id)
        result, _target = decide(agent_id, agent.state, "login")
        if result != "done":
            return Change(result)
        agent.login_at, agent.busy, agent.misses = self.clock(), 0.0, 0
        self._become_available(agent, "login")
        return Change("done")

    def logout(self, agent_id: str) -> Change:
        agent = self._known(agent_id)
        result, _ = decide(agent_id, agent.state, "logout")
        if result == "pending":
            if agent.pending == ("logout", ""):
                return Change("unchanged")
            agent.pending = ("logout", "")
            return Change("pending")
        if result == "unchanged":
            return Change(result)
        released = None
        t = self.tickets.get(agent.ticket) if agent.ticket is not None else None
        if agent.state == "reserved" and t is not None:
            released = self._assignment(t)
            self._release(t)
            self._set_state(agent, "logged_out", "forced")
            self._put_back(t, agent, fault="0", reason="logout")
        else:
            self._set_state(agent, "logged_out")
        return Change("done", released)

    def pause(self, agent_id: str, reason: str = "") -> Change:
        agent = self._known(agent_id)
        result, _ = decide(agent_id, agent.state, "pause")
        if result == "pending":
            if agent.pending == ("pause", reason):
                return Change("unchanged")
            agent.pending = ("pause", reason)
            return Change("pending")
        if result == "done":
            self._set_state(agent, "paused", reason)
        return Change(result)

    def resume(self, agent_id: str) -> Change:
        """Back to available; while on a call, it cancels a pending pause or logout."""
        agent = self._known(agent_id)
        if agent.state in BUSY and agent.pending is not None:
            agent.pending = None
            return Change("done")
        result, _ = decide(agent_id, agent.state, "resume")
        if result == "done":
            self._become_available(agent, "resume")
        return Change(result)

    def end_wrap_up(self, agent_id: str, ticket: int | None = None) -> Change:
        """End a wrap-up now; with ``ticket``, only the wrap-up of that ticket (a timer)."""
        agent = self._known(agent_id)
        if ticket is not None and (agent.state != "wrap_up" or agent.wrap_ticket != ticket):
            return Change("unchanged")  # a stale timer
        result, _ = decide(agent_id, agent.state, "ready")
        if result == "done":
            self._become_available(agent, "ready")
        return Change(result)

    # ---------------------------------------------------------------- calls

    def enqueue(
        self,
        call_id: str,
        queue: str,
        skills: Mapping[str, int],
        priority: int = 0,
        *,
        strategy: str = "longest_idle",
        customer: str = "",
        any_skills: Mapping[str, int] | None = None,
        language: str | None = None,
        site: str = "",
        engine: str = "",
    ) -> Ticket:
        if strategy not in STRATEGIES:
            raise ValueError(f"strategy {strategy!r}; allowed: {', '.join(STRATEGIES)}")
        if not 0 <= priority <= 100:
            raise ValueError(f"priority {priority}; allowed: 0 to 100")
        config = self._queue(queue)
        live = self.tickets.get(self._live.get((config.group, call_id), 0))
        if live is not None and live.stage not in TERMINAL:
            return live.value()  # the same request again (a retry): the same ticket
        t = TicketRecord(
            id=next(self._ids),
            call_id=call_id,
            queue=queue,
            group=config.group,
            skills=tuple(sorted(skills.items())),
            any_skills=tuple(sorted((any_skills or {}).items())),
            language=language or None,
            site=site,
            site_only=config.prefer_site and bool(site),
            priority=priority,
            arrival=self.clock(),
            seq=next(self._seq),
            strategy=strategy,
            prefer=self.last_agent.get((config.group, customer), "") if customer else "",
            customer=customer,
            engine=engine,
            lease_until=self._lease(),
        )
        self.tickets[t.id] = t
        self._live[(t.group, call_id)] = t.id
        self._ticket_event(
            "enqueued", t, priority=priority, language=language, caller=customer,
            group=t.group, skills=json.dumps(dict(t.skills), sort_keys=True),
        )  # fmt: skip
        self._ticket_chooses(t)
        return t.value()

    def assignment(self, ticket_id: int) -> Assignment | None:
        """The agent reserved for (or connected to) the ticket, if any."""
        t = self.tickets.get(ticket_id)
        if t is None or t.stage not in ("reserved", "connected"):
            return None
        return self._assignment(t)

    def requalify(
        self,
        ticket: Ticket,
        skills: Mapping[str, int],
        priority: int | None = None,
        any_skills: Mapping[str, int] | None = None,
        site_only: bool | None = None,
    ) -> bool:
        """Change a waiting (or ringing) ticket's requirement; None keeps a value."""
        t = self.tickets.get(ticket.id)
        if t is None or t.stage not in ("waiting", "reserved"):
            return False
        t.skills = tuple(sorted(skills.items()))
        if priority is not None:
            t.priority = priority
        if any_skills is not None:
            t.any_skills = tuple(sorted(any_skills.items()))
        if site_only is not None:
            t.site_only = site_only and bool(t.site)
        self._ticket_event(
            "requalified", t, skills=json.dumps(dict(t.skills), sort_keys=True),
            priority=t.priority, site_only=int(t.site_only),
        )  # fmt: skip
        self._ticket_chooses(t)
        return True

    def _connect(self, t: TicketRecord, agent: AgentRecord, at: float) -> None:
        t.stage, t.connected_at, t.served_by = "connected", at, agent.id
        t.lease_until = self._lease()
        agent.misses = 0
        if t.customer:
            self.last_agent[(t.group, t.customer)] = agent.id
        self._set_state(agent, "on_call")
        self._ticket_event("connected", t, agent=agent.id, at=at)

    def connected(self, assignment: Assignment, at: float | None = None) -> bool:
        t = self._held(assignment, "reserved")
        if t is None:
            return False  # a replay, or not this agent's
        self._connect(t, self.agents[assignment.agent_id], self.clock() if at is None else at)
        return True

    def completed(self, assignment: Assignment, wrap_up: float | None = None) -> bool:
        """The call ended; ``wrap_up`` (the engine's own figure) wins over the agent's
        and the queue's."""
        t = self._held(assignment, "reserved")
        if t is not None:  # the answer was never recorded: connected since the reservation
            agent = self.agents[assignment.agent_id]
            self._connect(t, agent, agent.reserved_at)
        t = self._held(assignment, "connected")
        if t is None:
            return False
        agent = self.agents[assignment.agent_id]
        now = self.clock()
        t.stage, t.lease_until = "completed", None
        held = self._release(t) is not None
        t.agent = agent.id
        handle = now - (t.connected_at if t.connected_at is not None else now)
        old = self.aht.get(t.queue)
        self.aht[t.queue] = (
            handle if old is None else (1 - _AHT_WEIGHT) * old + _AHT_WEIGHT * handle
        )
        self._ticket_event("completed", t, agent=agent.id)
        if not held:
            return True  # the agent moved to another group meanwhile
        wrap = wrap_up if wrap_up is not None else agent.config.wrap_up
        if wrap is None:
            wrap = self._queue(t.queue).wrap_up
        self._set_state(agent, "wrap_up")
        agent.wrap_ticket, agent.wrap_until = t.id, now + wrap
        if wrap <= 0:
            self._become_available(agent, "ready")
        return True

    def _put_back(
        self, t: TicketRecord, freed: AgentRecord | None, fault: str, reason: str
    ) -> None:
        """The ticket waits again at its place; the freed agent chooses, then the ticket."""
        t.stage = "waiting"
        t.claimed_by = ""
        if t.callback:
            t.engine, t.lease_until = "", None
        self._ticket_event("missed", t, agent=freed.id if freed else "", fault=fault, reason=reason)
        if freed is not None and freed.state == "reserved":
            self._become_available(freed, "release")
        self._ticket_chooses(t)

    def missed(self, assignment: Assignment, *, agent_fault: bool = True) -> bool:
        t = self._held(assignment, "reserved")
        if t is None:
            return False
        agent = self.agents[assignment.agent_id]
        self._release(t)
        if agent_fault:
            self._set_state(agent, "missed", "no answer")
            agent.misses += 1
            if agent.misses >= self.max_misses:
                self._set_state(agent, "paused", f"missed {agent.misses} calls")
            self._put_back(t, None, "1", "no answer")
        else:
            self._put_back(t, agent, "0", "the call could not be placed")
        return True

    def abandon(self, ticket: Ticket, reason: str = "caller") -> bool:
        """The call leaves without an agent: abandoned, overflowed, timed_out or unanswered
        (any other reason: abandoned, with the reason in the event)."""
        t = self.tickets.get(ticket.id)
        if t is None or t.stage not in ("waiting", "reserved"):
            return False
        self._end(t, OUTCOME_STAGE.get(reason, "abandoned"), reason=reason)
        return True

    def _end(self, t: TicketRecord, stage: str, **fields: object) -> None:
        """A waiting, reserved or connected ticket ends without completing."""
        before = t.stage
        agent = self._release(t)
        t.stage, t.lease_until = stage, None
        self._ticket_event(stage, t, **fields)
        if agent is None:
            return
        if before == "connected":
            self._set_state(agent, "wrap_up")
        self._become_available(agent, "release" if before == "reserved" else "ready")

    def request_callback(self, ticket: Ticket, number: str) -> bool:
        """The ticket keeps its place without the caller; False when it is not waiting."""
        check_callback_number(number)
        t = self.tickets.get(ticket.id)
        if t is None or t.stage != "waiting":
            return False
        if t.callback != number:
            t.callback, t.engine, t.lease_until = number, "", None
            self._ticket_event("callback_requested", t)
        return True

    def claim_callback(self, engine: str) -> Assignment | None:
        """``engine``'s callback worker looks for work (its heartbeat): the best reserved
        callback no worker has claimed yet becomes its own. A worker coming alive lets
        the waiting callbacks take agents first, in call order."""
        alive = self.placeable()
        self.workers[engine] = self.clock()
        if not alive:
            for t in sorted(self.tickets.values(), key=call_order):
                if t.callback:
                    self._ticket_chooses(t)
        due = [
            t
            for t in self.tickets.values()
            if t.stage == "reserved" and t.callback and not t.claimed_by
        ]
        if not due:
            return None
        t = min(due, key=call_order)
        t.claimed_by, t.engine, t.lease_until = engine, engine, self._lease()
        return self._assignment(t)

    # --------------------------------------------------------------- leases

    def renew(self, engine: str) -> int:
        """Extend the leases of every ticket ``engine`` holds; how many."""
        count = 0
        for t in self.tickets.values():
            if t.engine == engine and t.lease_until is not None:
                t.lease_until = self._lease()
                count += 1
        return count

    def tick(self) -> int:
        """End the leases that passed (in order of due time, then ticket), then the due
        wrap-ups (by due time, then agent); how many things ended."""
        now = self.clock()
        due = sorted(
            (
                t
                for t in self.tickets.values()
                if t.lease_until is not None and t.lease_until <= now
            ),
            key=lambda t: (t.lease_until, t.id),
        )
        ended = 0
        for t in due:
            if t.lease_until is None or t.lease_until > now:
                continue  # changed by an earlier expiry in this tick
            ended += 1
            if t.callback and t.stage == "reserved":
                self._put_back(t, self._release(t), "0", "lease")  # another worker will
            else:
                self._end(t, "lease_expired")
        wraps = sorted(
            (
                a
                for a in self.agents.values()
                if a.state == "wrap_up" and a.wrap_until is not None and a.wrap_until <= now
            ),
            key=lambda a: (a.wrap_until or 0.0, a.id),
        )
        for agent in wraps:
            self.end_wrap_up(agent.id, agent.wrap_ticket)
        return ended + len(wraps)

    def forget_ended(self) -> int:
        """Drop the ended tickets, and every event but those of tickets still in routing
        (a long run's memory); :meth:`counters` and the stream stay consistent."""
        ended = [t.id for t in self.tickets.values() if t.stage in TERMINAL]
        for ticket_id in ended:
            del self.tickets[ticket_id]
        self._live = {k: v for k, v in self._live.items() if v in self.tickets}
        live = {str(ticket_id) for ticket_id in self.tickets}
        self.events = [(m, e) for m, e in self.events if e.get("ticket") in live]
        return len(ended)

    def note(self, event: str, **fields: str) -> None:
        """An event that is not a routing decision (survey, handoff, ivr_ended)."""
        self._emit(event, **fields)

    # ---------------------------------------------------------------- reads

    def position(self, ticket: Ticket) -> int | None:
        """1 for the next call to be served in its queue; None when not waiting."""
        t = self.tickets.get(ticket.id)
        if t is None or t.stage != "waiting":
            return None
        mine = call_order(t)
        return 1 + sum(
            1
            for o in self.tickets.values()
            if o.stage == "waiting" and o.queue == t.queue and call_order(o) < mine
        )

    def staffed(
        self, skills: Mapping[str, int], any_skills: Mapping[str, int] | None = None
    ) -> int:
        """Agents logged in, not paused and not missed, who meet the requirement."""
        either = dict(any_skills or {})
        return sum(
            1
            for a in self.agents.values()
            if a.state not in ("logged_out", "paused", "missed")
            and all(a.config.skills.get(s, 0) >= n for s, n in skills.items())
            and (not either or any(a.config.skills.get(s, 0) >= n for s, n in either.items()))
        )

    def agent_row(self, agent_id: str) -> dict[str, Any] | None:
        agent = self.agents.get(agent_id)
        if agent is None:
            return None
        c = agent.config
        return {
            "id": c.id,
            "endpoint": c.endpoint,
            "skills": dict(c.skills),
            "languages": list(c.languages),
            "site": c.site,
            "group": c.group,
            "state": agent.state,
            "reason": agent.reason,
            "pending": agent.pending[0] if agent.pending else "",
            "missed": str(agent.misses),
        }

    def snapshot(self) -> dict[str, dict[str, dict[str, Any]]]:
        """What the lockstep test compares: every agent's state and pending request,
        every ticket's stage and agent (reserved, connected or completed), by call id."""
        return {
            "agents": {
                a.id: {"state": a.state, "pending": a.pending[0] if a.pending else None}
                for a in self.agents.values()
            },
            "tickets": {
                t.call_id: {
                    "stage": t.stage,
                    "agent": t.agent if t.stage in ("reserved", "connected", "completed") else None,
                }
                for t in self.tickets.values()
            },
        }

    def counters(self) -> dict[str, dict[str, int]]:
        """Per queue: tickets offered, answered, in each terminal stage, and now waiting."""
        out: dict[str, dict[str, int]] = {}
        for t in self.tickets.values():
            row = out.setdefault(
                t.queue, {"offered": 0, "answered": 0, "waiting": 0, **dict.fromkeys(TERMINAL, 0)}
            )
            row["offered"] += 1
            row["answered"] += t.served_by is not None
            if t.stage in TERMINAL or t.stage == "waiting":
                row[t.stage] += 1
        return out


def _fields(agent: Agent) -> dict[str, Any]:
    """A copy of an agent's configuration with plain, immutable collections."""
    return {
        "id": agent.id,
        "endpoint": agent.endpoint,
        "skills": dict(agent.skills),
        "languages": tuple(agent.languages),
        "site": agent.site,
        "group": agent.group or DEFAULT_GROUP,
        "wrap_up": agent.wrap_up,
    }
