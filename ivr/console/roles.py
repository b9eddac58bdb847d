"""Who a console user is: a role and a scope (sites, queues, teams), as plain values.

Roles rank ``viewer < agent < supervisor < admin``; each includes the ones
below it. A scope narrows what a user sees and acts on: an empty set means
every site (queue, team). An agent sees only their own agent; an admin sees
everything whatever their scope. :mod:`ivr.console.access` re-exports these
and adds the checks on requests.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

from routing.config import QueueConfig

__all__ = ["RANK", "Role", "Scope", "User", "agent_queues", "agent_team"]

Role = Literal["viewer", "agent", "supervisor", "admin"]
RANK: Final[Mapping[str, int]] = {"viewer": 0, "agent": 1, "supervisor": 2, "admin": 3}


@dataclass(frozen=True, slots=True)
class Scope:
    sites: frozenset[str] = frozenset()  # empty: every site
    queues: frozenset[str] = frozenset()  # empty: every queue
    teams: frozenset[str] = frozenset()  # empty: every team

    def sees_queue(self, queue: str) -> bool:
        return not self.queues or queue in self.queues

    def sees_agent(self, *, site: str, team: str, queues: Iterable[str]) -> bool:
        """True when the agent is in one of the sites and teams, and serves one of the
        queues (each only when the scope names any)."""
        if self.sites and site not in self.sites:
            return False
        if self.teams and team not in self.teams:
            return False
        return not self.queues or any(q in self.queues for q in queues)

    def describe(self) -> str:
        parts = [
            f"{kind} {', '.join(sorted(names))}"
            for kind, names in (
                ("sites", self.sites),
                ("queues", self.queues),
                ("teams", self.teams),
            )
            if names
        ]
        return "; ".join(parts) or "everything"


@dataclass(frozen=True, slots=True)
class User:
    name: str
    role: Role
    scope: Scope
    agent_id: str | None = None  # for role agent: only this agent
    #: The person's own phones (supervision rings one of them).
    phones: tuple[str, ...] = ()

    def may(self, role: Role) -> bool:
        """True when this user's role includes ``role``."""
        return RANK[self.role] >= RANK[role]

    def sees_queue(self, queue: str) -> bool:
        return self.role == "admin" or self.scope.sees_queue(queue)

    def sees(self, agent: Mapping[str, Any], queues: Iterable[str]) -> bool:
        """True when this user may see (and, with the role, act on) ``agent``: a row of
        the routing store; ``queues`` are the queues the agent serves."""
        if self.role == "admin":
            return True
        if self.role == "agent":
            return self.agent_id is not None and agent.get("id") == self.agent_id
        return self.scope.sees_agent(
            site=str(agent.get("site") or ""), team=agent_team(agent), queues=queues
        )


def agent_team(agent: Mapping[str, Any]) -> str:
    """An agent's team: routing.yaml's ``team: north`` is the skill ``team.north``."""
    teams = sorted(
        k.removeprefix("team.") for k in agent.get("skills") or {} if k.startswith("team.")
    )
    return teams[0] if teams else ""


def agent_queues(agent: Mapping[str, Any], queues: Mapping[str, QueueConfig]) -> list[str]:
    """The queues whose base skills the agent has, in the agent's routing group
    (escalation steps widen a queue for a while; they do not say who belongs to it)."""
    skills = {str(k): int(v) for k, v in dict(agent.get("skills") or {}).items()}
    group = agent.get("group") or "default"
    out = []
    for name, config in sorted(queues.items()):
        if config.group != group:
            continue
        if any(skills.get(skill, 0) < level for skill, level in config.skills.items()):
            continue
        if config.any_skills and not any(
            skills.get(skill, 0) >= level for skill, level in config.any_skills.items()
        ):
            continue
        out.append(name)
    return out
