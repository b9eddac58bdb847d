"""``routing.redis_router.RedisRouter``: the Redis router as the engine (``ivr/``)
imports it today. The router itself is :class:`routing.redis.RedisRouter`;
this subclass only keeps the agent actions' old answers (a plain ``bool``:
true when the change took effect) until ``ivr/`` reads :class:`Change`, and
accepts the old ``completed(assignment, wrap_up=...)``.
"""

from __future__ import annotations

from routing.redis import RedisRouter as _Router
from routing.types import Assignment

__all__ = ["RedisRouter"]


class RedisRouter(_Router):
    """The Redis router with ``bool`` answers to login, logout, pause and resume."""

    async def login(self, agent_id: str) -> bool:  # type: ignore[override]
        return bool(await super().login(agent_id))

    async def logout(self, agent_id: str) -> bool:  # type: ignore[override]
        return bool(await super().logout(agent_id))

    async def pause(self, agent_id: str, reason: str = "") -> bool:  # type: ignore[override]
        return bool(await super().pause(agent_id, reason))

    async def resume(self, agent_id: str) -> bool:  # type: ignore[override]
        return bool(await super().resume(agent_id))

    async def completed(self, assignment: Assignment) -> None:
        await super().completed(assignment)
