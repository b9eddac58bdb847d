"""``RedisRouter``: the routing port on Redis, one class from its parts."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Self

from routing.redis.calls import Calls
from routing.redis.connect import Clients, open_clients
from routing.redis.reads import Reads
from routing.redis.service import Service

__all__ = ["RedisRouter"]


class RedisRouter(Calls, Reads, Service):
    """Skill-based routing with its state in Redis, shared by every engine process;
    the answers of ``routing/ROUTING.md`` (see :mod:`routing.redis`)."""

    @classmethod
    def connect(
        cls,
        url: str,
        namespace: str = "rt",
        connections: int = 64,
        *,
        clock: Callable[[], float] = time.time,
        outbox: Path | None = None,
        on_reset: Callable[[], Awaitable[None]] | None = None,
        lease: float = 30.0,
        max_misses: int = 3,
    ) -> Self:
        """A router on ``url`` (redis://, rediss://, unix://, redis+cluster://,
        redis+sentinel://; see :mod:`routing.redis.connect`). Decisions wait at a
        semaphore of ``connections`` permits; the pool has room beyond it for reads
        and the subscription."""
        router = cls(
            open_clients(url, connections),
            namespace,
            clock=clock,
            outbox=outbox,
            on_reset=on_reset,
            lease=lease,
            max_misses=max_misses,
        )
        router._gate = asyncio.Semaphore(connections)
        return router

    @classmethod
    def on_client(cls, client: object, namespace: str = "rt") -> Self:
        """A router on an existing redis-py asyncio client."""
        return cls(Clients(client, "plain", ""), namespace)
