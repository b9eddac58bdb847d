"""Agents: configuration (``add_agents``), state changes and reads.

An agent lives in one routing group (``Agent.group``); the directory hash
``<ns>:agents`` says which, so that ``login("alice")`` finds alice's keys.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Iterable
from typing import Any

from routing.redis.core import Core, decode, ticket_of
from routing.states import InvalidTransition, decide
from routing.types import DEFAULT_GROUP, Agent, Assignment, Change

__all__ = ["Agents"]

#: Agents per upsert script (a reload of 75,000 agents runs in batches).
_BATCH = 500


def profile_of(agent: Agent) -> tuple[str, str]:
    """The agent's profile id and definition: exact skills, languages and site."""
    body = json.dumps(
        {
            "skills": dict(sorted(agent.skills.items())),
            "langs": sorted(agent.languages),
            "site": agent.site,
        },
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha1(body.encode(), usedforsecurity=False).hexdigest()[:16], body


def _row(record: dict[str, Any], skills: bool = True) -> dict[str, Any]:
    """One agent for the API, the CLI and presence."""
    misses = int(record.get("misses") or 0)
    langs = record.get("languages") or []
    row: dict[str, Any] = {
        "id": record["id"],
        "endpoint": record.get("endpoint", ""),
        "state": record.get("state", ""),
        "reason": record.get("reason", ""),
        "missed": str(misses),
        "misses": misses,
        "group": record.get("group", DEFAULT_GROUP),
        "site": record.get("site", ""),
        "languages": list(langs) if isinstance(langs, list) else [],
        "wrap_up": float(record["wrap_up"]) if record.get("wrap_up") else None,
        "pending": record.get("pending") or "",
        "pending_reason": record.get("pending_reason") or "",
        "idle_since": float(record.get("idle_since") or 0),
        "reserved_at": float(record.get("reserved_at") or 0),
        "busy": float(record.get("busy") or 0),
        "login_at": float(record.get("login_at") or 0),
        "wrap_ticket": int(record["wrap_ticket"]) if record.get("wrap_ticket") else None,
        "wrap_until": float(record["wrap_until"]) if record.get("wrap_until") else None,
        "ticket": int(record["ticket"]) if record.get("ticket") else None,
    }
    if skills:
        row["skills"] = {str(k): int(v) for k, v in dict(record.get("skills") or {}).items()}
    return row


class Agents(Core):
    """Agents and their states."""

    async def add_agents(self, agents: Iterable[Agent]) -> None:
        """Create agents (logged out) or apply a reload (endpoint, skills, languages, site,
        wrap-up); no run-time field changes. Available agents re-indexed under a new
        profile choose a call, longest idle first."""
        by_group: dict[str, list[Agent]] = {}
        for agent in agents:
            by_group.setdefault(agent.group or DEFAULT_GROUP, []).append(agent)
        for group, asked in by_group.items():
            await self.know_group(group)
            directory = self.names.directory
            before = await self.read(self.redis.hmget(directory, [a.id for a in asked]))
            for agent, old in zip(asked, before, strict=True):
                if old is not None and decode(old) != group:
                    # Moved between groups: logged out there, afresh here (ROUTING.md).
                    await self.run("remove", decode(old), agent.id)
            members = asked
            mapping = {a.id: group for a in members}
            await self.read(self.redis.hset(directory, mapping=mapping))
            await self.read(self.redis.sadd(self.names.groups, group))
            self._agent_groups.update(mapping)
            for start in range(0, len(members), _BATCH):
                batch = members[start : start + _BATCH]
                args: list[Any] = [len(batch)]
                for agent in batch:
                    pid, body = profile_of(agent)
                    args += [
                        agent.id,
                        agent.endpoint,
                        json.dumps(dict(agent.skills)) if agent.skills else "{}",
                        json.dumps(list(agent.languages)) if agent.languages else "{}",
                        agent.site,
                        "" if agent.wrap_up is None else repr(float(agent.wrap_up)),
                        pid,
                        body,
                    ]
                await self.run("upsert", group, *args)

    async def agent_group(self, agent_id: str) -> str | None:
        group = self._agent_groups.get(agent_id)
        if group is None:
            raw = await self.read(self.redis.hget(self.names.directory, agent_id))
            if raw is None:
                return None
            group = self._agent_groups[agent_id] = decode(raw)
        return group

    async def _act(self, agent_id: str, action: str, reason: str = "") -> Change:
        group = await self.agent_group(agent_id)
        raw = (
            ["unknown", ""]
            if group is None
            else await self.run("act", group, agent_id, action, reason)
        )
        result, released = (decode(v) for v in raw)
        if result == "unknown":
            raise InvalidTransition(f"no agent {agent_id!r}; add it to routing first")
        if result == "refused":
            decide(agent_id, released, action)  # raises, naming what is allowed
            raise InvalidTransition(f"agent {agent_id!r} is {released}; {action} refused")
        assignment = None
        if released:
            record = json.loads(released)
            assignment = Assignment(ticket_of(record), agent_id, str(record.get("endpoint", "")))
            key = (group, int(record["id"]))
            if key in self._tickets:  # our caller waits for the next agent
                self._waiters[key] = asyncio.get_running_loop().create_future()
                await self.check(key)
        return Change(
            "done" if result == "done" else "pending" if result == "pending" else "unchanged",
            assignment,
        )

    async def login(self, agent_id: str) -> Change:
        await self.ensure_started()
        return await self._act(agent_id, "login")

    async def logout(self, agent_id: str) -> Change:
        return await self._act(agent_id, "logout")

    async def pause(self, agent_id: str, reason: str = "") -> Change:
        return await self._act(agent_id, "pause", reason)

    async def resume(self, agent_id: str) -> Change:
        return await self._act(agent_id, "resume")

    async def end_wrap_up(self, agent_id: str) -> Change:
        return await self._act(agent_id, "ready")

    async def agent(self, agent_id: str, *, skills: bool = True) -> dict[str, Any] | None:
        """One agent (id, state, reason, endpoint, missed, skills ...); None when unknown."""
        group = await self.agent_group(agent_id)
        if group is None:
            return None
        raw = await self.read(self.redis.hget(self.names.group(group).agent, agent_id))
        return None if raw is None else _row(json.loads(raw), skills)

    async def agent_state(self, agent_id: str) -> str | None:
        row = await self.agent(agent_id, skills=False)
        return None if row is None else str(row["state"])

    async def agents(self) -> list[dict[str, Any]]:
        """Every agent of every group, by id."""
        rows: list[dict[str, Any]] = []
        for group in sorted(await self.known_groups()):
            key = self.names.group(group).agent
            raw = await self.read(self.redis.hgetall(key))
            rows += [_row(json.loads(v)) for v in raw.values()]
        return sorted(rows, key=lambda row: str(row["id"]))
