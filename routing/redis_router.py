"""``routing.redis_router.RedisRouter``: the older import path of the Redis router,
kept for code that still uses it. The router is :class:`routing.redis.RedisRouter`
(``routing/redis/``, its scripts in ``routing/lua/``)."""

from __future__ import annotations

from routing.redis import RedisRouter

__all__ = ["RedisRouter"]
