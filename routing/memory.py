"""Routing kept in the process: an asyncio adapter over the reference model.

:class:`MemoryRouter` implements the ``Router`` protocol of ``routing.types``
by calling :class:`routing.reference.Reference` (the executable form of
ROUTING.md) and turning reservations into the futures ``wait()`` returns; it
adds no rule of its own. It serves flow tests, ``ivr call`` and the engine
without Redis. Agents given to the constructor are logged in (a demo's staff);
wrap-ups end on a timer of the event loop. The value types live in
``routing.types`` and are re-exported here for older imports.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from routing.config import QueueConfig
from routing.errors import UnknownTicket
from routing.reference import AgentRecord, Reference
from routing.types import Agent, Assignment, Change, Ticket, check_callback_number

__all__ = ["Agent", "Assignment", "MemoryRouter", "Ticket", "check_callback_number"]


class _Agents(Mapping[str, AgentRecord]):
    """``router.agents[id]`` is the model's record; ``await router.agents()`` the rows."""

    def __init__(self, reference: Reference) -> None:
        self._reference = reference

    def __getitem__(self, agent_id: str) -> AgentRecord:
        return self._reference.agents[agent_id]

    def __iter__(self) -> Iterator[str]:
        return iter(self._reference.agents)

    def __len__(self) -> int:
        return len(self._reference.agents)

    async def __call__(self) -> list[dict[str, Any]]:
        rows = (self._reference.agent_row(name) for name in sorted(self._reference.agents))
        return [row for row in rows if row is not None]


class MemoryRouter:
    """In-process router: the reference model behind the async ``Router`` protocol."""

    def __init__(
        self,
        agents: Iterable[Agent] = (),
        *,
        max_misses: int = 3,
        clock: Callable[[], float] = time.time,
        lease: float | None = None,
        engine_id: str = "memory",
        timers: bool = True,
        callback_window: float = 10.0,
    ) -> None:
        self.reference = Reference(
            clock,
            max_misses=max_misses,
            lease=lease,
            callback_window=callback_window,
            on_reserved=self._reserved,
        )
        #: This engine's name, the holder of the tickets it enqueues (leases).
        self.engine_id = engine_id
        #: End wrap-ups on the event loop's timers (off when a test drives ``tick``).
        self.timers = timers
        #: Queue settings (``routing.yaml``, then API changes).
        self.queues: dict[str, QueueConfig] = self.reference.queues
        self.agents = _Agents(self.reference)
        self._futures: dict[int, asyncio.Future[Assignment]] = {}
        self._contexts: dict[int, str] = {}
        self._callback_due = asyncio.Event()
        staff = list(agents)
        self.reference.add_agents(staff)
        for agent in staff:
            self.reference.login(agent.id)

    @property
    def max_misses(self) -> int:
        return self.reference.max_misses

    @max_misses.setter
    def max_misses(self, value: int) -> None:
        self.reference.max_misses = value

    @property
    def events(self) -> list[tuple[str, dict[str, Any]]]:
        """Every event as ``(kind, fields)``; an enqueue's ``skills`` as a dict."""
        rows: list[tuple[str, dict[str, Any]]] = []
        for _, fields in self.reference.events:
            data: dict[str, Any] = {k: v for k, v in fields.items() if k != "event"}
            if "skills" in data:
                data["skills"] = json.loads(data["skills"])
            rows.append((fields["event"], data))
        return rows

    @property
    def _waiting(self) -> dict[int, Ticket]:
        """Tickets still in a queue (waiting or ringing)."""
        return {
            t.id: t.value()
            for t in self.reference.tickets.values()
            if t.stage in ("waiting", "reserved")
        }

    async def stream(self, since: float = 0.0) -> list[tuple[float, dict[str, str]]]:
        """Events since ``since`` as ``(seconds, fields)``: what ``routing.kpis`` reads."""
        return [(moment, dict(f)) for moment, f in self.reference.events if moment >= since]

    def _reserved(self, assignment: Assignment) -> None:
        future = self._futures.pop(assignment.ticket.id, None)
        if future is not None and not future.done():
            future.set_result(assignment)
        if assignment.callback:
            self._callback_due.set()

    def _drop(self, ticket_id: int) -> None:
        """The ticket left the queue: whoever still waits on it hears so."""
        future = self._futures.pop(ticket_id, None)
        if future is not None and not future.done():
            future.set_exception(UnknownTicket(ticket_id))
            future.exception()  # retrieved: nobody may be waiting any more

    def _schedule(self, agent_id: str) -> None:
        """A timer for the agent's wrap-up; a stale one ends nothing (``end_wrap_up``)."""
        record = self.reference.agents[agent_id]
        if not self.timers or record.state != "wrap_up" or record.wrap_until is None:
            return
        delay = max(0.0, record.wrap_until - self.reference.clock())
        ticket = record.wrap_ticket
        asyncio.get_running_loop().call_later(delay, self._end_wrap_up_of, agent_id, ticket)

    def _end_wrap_up_of(self, agent_id: str, ticket: int | None) -> None:
        self.reference.end_wrap_up(agent_id, ticket)

    # ---------------------------------------------------------------- calls

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
        language: str | None = None,
        site: str = "",
    ) -> Ticket:
        """Queue a call needing every one of ``skills`` and, if given, one of ``any_skills``."""
        return self.reference.enqueue(
            call_id,
            queue,
            skills,
            priority,
            strategy=strategy,
            customer=customer,
            any_skills=any_skills,
            language=language,
            site=site,
            engine=self.engine_id,
        )

    async def wait(self, ticket: Ticket) -> Assignment:
        """Until an agent is reserved for ``ticket`` (at once if one is)."""
        record = self.reference.tickets.get(ticket.id)
        if record is None or record.stage not in ("waiting", "reserved", "connected"):
            raise UnknownTicket(ticket.id)
        current = self.reference.assignment(ticket.id)
        if current is not None:
            return current
        future = self._futures.get(ticket.id)
        if future is None:
            future = self._futures[ticket.id] = asyncio.get_running_loop().create_future()
        return await asyncio.shield(future)

    async def requalify(
        self,
        ticket: Ticket,
        skills: Mapping[str, int],
        priority: int | None = None,
        any_skills: Mapping[str, int] | None = None,
        site_only: bool | None = None,
    ) -> None:
        """Change a waiting call's requirement (an escalation step); it keeps its place."""
        self.reference.requalify(ticket, skills, priority, any_skills, site_only)

    async def abandon(self, ticket: Ticket, reason: str = "caller") -> None:
        """The call leaves without an agent (``caller``, ``overflow``, ``timeout``,
        ``unanswered``); a reserved agent is freed."""
        self.reference.abandon(ticket, reason)
        self._drop(ticket.id)

    async def connected(self, assignment: Assignment, at: float | None = None) -> None:
        self.reference.connected(assignment, at)

    async def completed(self, assignment: Assignment, wrap_up: float | None = None) -> None:
        """The call ended: wrap-up (``wrap_up``, else the agent's, else the queue's)."""
        if self.reference.completed(assignment, wrap_up):
            self._schedule(assignment.agent_id)

    async def missed(self, assignment: Assignment, *, agent_fault: bool = True) -> None:
        """The agent did not answer (``agent_fault``) or the call could not be placed:
        the call goes back to its place in the queue."""
        self.reference.missed(assignment, agent_fault=agent_fault)

    async def request_callback(self, ticket: Ticket, number: str, context: str = "") -> bool:
        """Keep the call's place without the caller on the line; False when too late.
        ``context`` goes to the agent with the callback (not a routing matter)."""
        check_callback_number(number)
        done = self.reference.request_callback(ticket, number)
        if done:
            self._drop(ticket.id)  # the caller is gone; a callback worker takes it
            if context:
                self._contexts[ticket.id] = context
        return done

    async def next_callback(self, poll: float = 1.0) -> Assignment:
        """The next callback an agent was reserved for, claimed by this engine; looking
        every ``poll`` seconds keeps this engine's callback worker alive."""
        while True:
            self._callback_due.clear()
            claimed = self._with_context(self.reference.claim_callback(self.engine_id))
            if claimed is not None:
                return claimed
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._callback_due.wait(), poll)

    async def claim_callback(self) -> Assignment | None:
        """A reserved callback for this engine to place, if any (``next_callback`` waits)."""
        return self._with_context(self.reference.claim_callback(self.engine_id))

    def _with_context(self, claimed: Assignment | None) -> Assignment | None:
        if claimed is None:
            return None
        context = self._contexts.pop(claimed.ticket.id, "")
        return dataclasses.replace(claimed, context=context) if context else claimed

    async def position(self, ticket: Ticket) -> int | None:
        return self.reference.position(ticket)

    async def staffed(
        self, skills: Mapping[str, int], any_skills: Mapping[str, int] | None = None
    ) -> int:
        return self.reference.staffed(skills, any_skills)

    async def handle_time(self, queue: str) -> float | None:
        """Recent average handle time of ``queue`` in seconds, or None before any call."""
        return self.reference.aht.get(queue)

    async def note(self, event: str, **fields: str) -> None:
        """Record an event that is not a routing decision (a survey answer)."""
        self.reference.note(event, **fields)

    async def renew(self, engine: str | None = None) -> int:
        return self.reference.renew(self.engine_id if engine is None else engine)

    async def tick(self) -> int:
        return self.reference.tick()

    async def snapshot(self) -> dict[str, dict[str, dict[str, Any]]]:
        return self.reference.snapshot()

    # --------------------------------------------------------------- agents

    async def add_agents(self, agents: Iterable[Agent]) -> None:
        """Create agents (logged out until they log in) or reload their configuration."""
        self.reference.add_agents(agents)

    async def login(self, agent_id: str) -> Change:
        return self.reference.login(agent_id)

    async def logout(self, agent_id: str) -> Change:
        return self.reference.logout(agent_id)

    async def pause(self, agent_id: str, reason: str = "") -> Change:
        return self.reference.pause(agent_id, reason)

    async def resume(self, agent_id: str) -> Change:
        return self.reference.resume(agent_id)

    async def end_wrap_up(self, agent_id: str) -> Change:
        return self.reference.end_wrap_up(agent_id)

    async def agent_state(self, agent_id: str) -> str | None:
        agent = self.reference.agents.get(agent_id)
        return agent.state if agent is not None else None

    async def agent(self, agent_id: str, *, skills: bool = True) -> dict[str, Any] | None:
        return self.reference.agent_row(agent_id)

    # --------------------------------------------------------------- queues

    async def replace_queues(self, configs: Mapping[str, QueueConfig]) -> None:
        self.queues.clear()
        self.queues.update(configs)

    async def set_queue(self, name: str, config: QueueConfig) -> None:
        self.queues[name] = config

    async def load_queues(self) -> dict[str, QueueConfig]:
        return dict(self.queues)

    async def queue_sizes(self) -> dict[str, int]:
        """Calls waiting per queue (stage ``waiting``: a ringing call is not waiting)."""
        sizes: dict[str, int] = {}
        for t in self.reference.tickets.values():
            sizes.setdefault(t.queue, 0)
            sizes[t.queue] += t.stage == "waiting"
        return sizes

    async def start(self) -> None:
        """Nothing to start (the protocol's engines listen and tick)."""

    async def close(self) -> None:
        for ticket_id in list(self._futures):
            self._drop(ticket_id)
