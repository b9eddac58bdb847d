"""The part of the floor a user sees: agents and queues, filtered by role and scope.

Every page and action asks here, so what a supervisor sees and what they may
act on is the same set: their sites, teams and queues (an agent: themselves
and their queues; an admin: everything).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ivr.console.roles import User, agent_queues, agent_team
from routing.config import QueueConfig
from routing.redis import RedisRouter

__all__ = ["Floor", "floor_of", "scope_refusal"]


@dataclass(slots=True)
class Floor:
    agents: list[dict[str, Any]] = field(default_factory=list)
    queues: dict[str, QueueConfig] = field(default_factory=dict)
    waiting: dict[str, int] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        """Agents per state (logged-out ones too)."""
        out: dict[str, int] = {}
        for agent in self.agents:
            out[agent["state"]] = out.get(agent["state"], 0) + 1
        return out


def annotate(agent: dict[str, Any], queues: dict[str, QueueConfig]) -> dict[str, Any]:
    """The agent's row with its team and the queues it serves (for pages)."""
    skills = {k: v for k, v in (agent.get("skills") or {}).items() if not k.startswith("team.")}
    return {
        **agent,
        "team": agent_team(agent),
        "queues": agent_queues(agent, queues),
        "plain_skills": skills,
    }


async def floor_of(router: RedisRouter, user: User) -> Floor:
    """The agents and queues ``user`` sees, with the calls waiting in each queue."""
    queues = await router.load_queues()
    sizes = await router.queue_sizes()
    agents = [annotate(row, queues) for row in await router.agents()]
    seen = [a for a in agents if user.sees(a, a["queues"])]
    if user.role == "agent" and not user.scope.queues:
        # An agent sees their own queues: those their agent serves.
        names = {q for a in seen for q in a["queues"]}
    else:
        names = {q for q in set(queues) | set(sizes) if user.sees_queue(q)}
    return Floor(
        seen,
        {n: queues[n] for n in sorted(names) if n in queues},
        {n: sizes.get(n, 0) for n in sorted(names)},
    )


async def scope_refusal(router: RedisRouter, user: User, agent_id: str) -> str | None:
    """Why ``user`` may not act on ``agent_id`` (None: they may; an unknown agent is
    left to the change itself, which says 404)."""
    row = await router.agent(agent_id)
    if row is None:
        return None
    agent = annotate(row, await router.load_queues())
    if user.sees(agent, agent["queues"]):
        return None
    if user.role == "agent":
        return f"{user.name} may act only on their own agent ({user.agent_id or 'none set'})"
    return f"agent {agent_id!r} is outside {user.name}'s scope ({user.scope.describe()})"
