"""Calls: enqueue and wait, requalify, the transitions of a ticket, callbacks.

Each transition is one script on the ticket's group (routing/lua/), so it is
atomic across engines and idempotent per ticket: it checks the ticket's
stage and agent first, and a replay (the outbox's, a retry) changes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Mapping
from typing import get_args

from routing.config import QueueConfig
from routing.errors import RoutingError, UnknownTicket
from routing.redis.core import Core, decode, ticket_of
from routing.types import OUTCOME_STAGE, Assignment, Strategy, Ticket, check_callback_number

STRATEGIES = get_args(Strategy)
#: Seconds a callback's context is kept for its worker (a day: callbacks wait hours).
CONTEXT_KEPT = 86400

__all__ = ["Calls"]


def _json(levels: Mapping[str, int] | None) -> str:
    return json.dumps(dict(levels), sort_keys=True) if levels else "{}"


class Calls(Core):
    """What the queue node asks of routing."""

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
        """Queue a call needing every one of ``skills`` and, if given, one of
        ``any_skills``, the caller's ``language`` and (while the queue prefers it)
        an agent of the caller's ``site``; the caller's last agent comes first."""
        if strategy not in STRATEGIES:
            raise ValueError(f"strategy {strategy!r}; allowed: {', '.join(STRATEGIES)}")
        if not 0 <= priority <= 100:
            raise ValueError(f"priority {priority}; allowed: 0 to 100")
        await self.ensure_started()
        group = self.group_of(queue)
        await self.know_group(group)
        config = self.queues.get(queue)
        site_only = 1 if site and config is not None and config.prefer_site else 0
        new_id: int | str = ""  # on a single Redis, the script counts
        # Never an id this engine still holds: after Redis lost its data the counter
        # starts again at 1, and a call may arrive before the engine notices.
        floor = self._top_id
        if self.clients.kind == "cluster":
            new_id = int(await self.read(self.redis.incr(self.names.seq)))
            if new_id <= floor:
                new_id = floor + 1
                await self.read(self._scripts["seqfloor"](keys=[self.names.seq], args=[new_id]))
        raw = await self.run(
            "enqueue",
            group,
            call_id,
            queue,
            _json(skills),
            _json(any_skills),
            language or "",
            site,
            site_only,
            int(priority),
            strategy,
            customer,
            new_id,
            floor,
        )
        raw_id, agent, endpoint, arrival = (decode(v) for v in raw)
        self._top_id = max(self._top_id, int(raw_id))
        ticket = Ticket(
            int(raw_id),
            call_id,
            queue,
            tuple(sorted(skills.items())),
            priority,
            any_skills=tuple(sorted((any_skills or {}).items())),
            language=language,
            site=site,
            group=group,
        )
        key = (group, ticket.id)
        if key in self._waiters:  # the call's live ticket, asked for again: the same
            return self._tickets[key]
        self._tickets[key] = ticket
        self._waiters[key] = asyncio.get_running_loop().create_future()
        self._held[key] = {
            "id": raw_id, "call": call_id, "queue": queue, "skills": dict(skills),
            "any": dict(any_skills or {}), "lang": language or "", "site": site,
            "site_only": site_only, "priority": int(priority), "arrival": arrival,
            "seq": int(raw_id), "strategy": strategy, "prefer": "", "customer": customer,
            "callback": "", "group": group, "connected_at": "", "reserved_at": "",
        }  # fmt: skip
        if not agent and key in self._early:  # reserved before we were listening
            agent, endpoint = self._early.pop(key)
        if agent:
            self.resolve(key, agent, endpoint)
        return ticket

    async def wait(self, ticket: Ticket) -> Assignment:
        future = self._waiters.get((ticket.group, ticket.id))
        if future is None:
            raise UnknownTicket(ticket.id)
        return await asyncio.shield(future)

    async def requalify(
        self,
        ticket: Ticket,
        skills: Mapping[str, int],
        priority: int | None = None,
        any_skills: Mapping[str, int] | None = None,
        site_only: bool | None = None,
    ) -> None:
        """Change a waiting call's requirement (an escalation step); it keeps its place.
        ``None`` keeps the current value (an escalated priority stays)."""
        key = (ticket.group, ticket.id)
        held = self._held.get(key)
        if held is not None:
            held["skills"] = dict(skills)
            if priority is not None:
                held["priority"] = int(priority)
            if any_skills is not None:
                held["any"] = dict(any_skills)
            if site_only is not None:
                held["site_only"] = int(site_only)
        await self.transition(
            "requalify",
            ticket.group,
            ticket.id,
            _json(skills),
            "" if priority is None else int(priority),
            "" if any_skills is None else _json(any_skills),
            "" if site_only is None else int(site_only),
        )
        await self._look(key)

    async def _look(self, key: tuple[str, int]) -> None:
        """After a transition that may have reserved an agent: resolve the waiter now.
        Only a read; when it fails the reservation notice (or the ticker) brings it."""
        try:
            await self.check(key)
        except RoutingError:
            return

    async def abandon(self, ticket: Ticket, reason: str = "caller") -> None:
        """The call leaves (``caller``, ``overflow`` or ``timeout``); a reserved agent is
        freed and chooses. A connected or ended ticket is left as it is."""
        self.forget((ticket.group, ticket.id))
        stage = OUTCOME_STAGE.get(reason, "abandoned")
        await self.transition("abandon", ticket.group, ticket.id, reason, stage)

    async def connected(self, assignment: Assignment, at: float | None = None) -> None:
        """The agent answered (``at``: when, if not now); only from reserved with them."""
        key = (assignment.ticket.group, assignment.ticket.id)
        self._waiters.pop(key, None)
        self._tickets.pop(key, None)
        held = self._held.get(key)
        if held is not None:  # talking: put back as such if Redis loses its data
            held.update(
                stage="connected",
                agent=assignment.agent_id,
                endpoint=assignment.endpoint,
                connected_at=repr(float(self.clock() if at is None else at)),
            )
        await self.transition(
            "connected",
            assignment.ticket.group,
            assignment.ticket.id,
            assignment.agent_id,
            "" if at is None else repr(float(at)),
        )

    async def completed(self, assignment: Assignment, wrap_up: float | None = None) -> None:
        """The call ended: the agent wraps up for ``wrap_up`` (the engine's own figure),
        else the agent's wrap_up, else the queue's; 0: available at once."""
        ticket = assignment.ticket
        self.forget((ticket.group, ticket.id))
        config = self.queues.get(ticket.queue) or QueueConfig()
        await self.transition(
            "completed",
            ticket.group,
            ticket.id,
            assignment.agent_id,
            "" if wrap_up is None else repr(float(wrap_up)),
            repr(float(config.wrap_up)),
        )

    async def missed(self, assignment: Assignment, *, agent_fault: bool = True) -> None:
        """Not answered: the agent is 'missed' (paused at max_misses), or only freed when
        it was not their fault; the call goes back in its place."""
        ticket = assignment.ticket
        key = (ticket.group, ticket.id)
        if not assignment.callback:  # a live caller waits for the next agent here
            self._waiters[key] = asyncio.get_running_loop().create_future()
            self._tickets[key] = ticket
            held = self._held.get(key)
            if held is not None:
                held.update(stage="waiting", agent="", endpoint="")
        await self.transition(
            "missed", ticket.group, ticket.id, assignment.agent_id, "1" if agent_fault else "0"
        )
        if not assignment.callback:
            await self._look(key)

    async def request_callback(self, ticket: Ticket, number: str, context: str = "") -> bool:
        """Keep the call's place without the caller; False when it is not waiting.
        ``context`` (what the caller chose, JSON) goes to the agent with the callback."""
        check_callback_number(number)
        if context:
            # Written first: a worker may claim the callback as soon as it is one.
            key = self.names.group(ticket.group).context(ticket.id)
            await self.read(self.redis.set(key, context, ex=CONTEXT_KEPT))
        done = await self.transition("callback", ticket.group, ticket.id, number)
        if done is None or int(done):  # None: kept in the outbox, done when replayed
            self.forget((ticket.group, ticket.id))
            return True
        return False

    async def claim_callback(self) -> Assignment | None:
        """One look for the best reserved callback nobody claimed, in every group of the
        store (the heads compared first, then claimed where the best is); the worker's
        heartbeat, in every group, as the reference's one worker list."""
        heads = []
        for group in sorted(await self.known_groups()):
            head = await self.run("claim", group, "0")
            if head:
                heads.append((decode(head), group))
        for _, group in sorted(heads):
            raw = await self.run("claim", group, "1")
            if raw:
                record = json.loads(raw)
                ticket = ticket_of(record)
                key = self.names.group(group).context(ticket.id)
                context = await self.read(self.redis.get(key))
                return Assignment(
                    ticket,
                    str(record["agent"]),
                    str(record["endpoint"]),
                    callback=str(record["callback"]),
                    context=decode(context) if context else "",
                )
        return None

    async def next_callback(self, poll: float = 1.0) -> Assignment:
        """The next reserved callback, claimed by this engine alone."""
        await self.ensure_started()
        while True:
            self._callback_due.clear()
            found = await self.claim_callback()
            if found is not None:
                return found
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._callback_due.wait(), poll)

    async def position(self, ticket: Ticket) -> int | None:
        """1 for the next call of its queue to be served; None when not waiting."""
        place = await self.run("position", ticket.group, ticket.id)
        return None if place is None else int(place)

    async def staffed(
        self, skills: Mapping[str, int], any_skills: Mapping[str, int] | None = None
    ) -> int:
        """Agents logged in, not paused and not missed, who meet the requirement."""
        total = 0
        for group in sorted(self.groups()):
            total += int(await self.run("staffed", group, _json(skills), _json(any_skills)))
        return total

    async def handle_time(self, queue: str) -> float | None:
        """Recent average handle time of ``queue`` in seconds, or None before any call."""
        key = self.names.group(self.group_of(queue)).aht
        value = await self.read(self.redis.hget(key, queue))
        return None if value is None else float(value)
