"""From a URL to redis-py clients: plain, TLS, Unix socket, Cluster and Sentinel.

    redis://host:port/db, rediss://host:port/db, unix:///path/redis.sock
    redis+cluster://host:port[,host:port...]     (rediss+cluster:// with TLS)
    redis+sentinel://host:port[,host:port...]/service[/db]

A cluster URL names one or more seed nodes (redis-py's ``RedisCluster``
discovers the rest); a Sentinel URL names the sentinels and the monitored
service (redis-py's ``Sentinel`` finds its master, and again after a
failover). Pub/sub needs no special client: a plain connection to any one
node hears every ``PUBLISH`` of the cluster (they are broadcast), and
Sentinel's master client subscribes like any other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.sentinel import Sentinel

__all__ = ["Clients", "open_clients"]


@dataclass(slots=True)
class Clients:
    """``main`` runs scripts and reads; ``subscriber()`` makes a pub/sub connection."""

    main: Any
    kind: str  # "plain", "cluster" or "sentinel"
    url: str
    #: Other clients to close with it (Sentinel's connections to the sentinels).
    others: tuple[Any, ...] = ()

    async def aclose(self) -> None:
        if self.kind == "plain":
            await self.main.aclose(close_connection_pool=True)
        else:
            await self.main.aclose()
        for other in self.others:
            await other.aclose()

    async def subscriber(self) -> Any:
        """A client whose ``pubsub()`` hears the store's notices."""
        if self.kind == "cluster":
            await self.main.initialize()
            node = self.main.get_random_node()
            return aioredis.Redis(host=node.host, port=node.port, ssl=self.url.startswith("rediss"))
        return self.main


def _hosts(netloc: str, default_port: int) -> list[tuple[str, int]]:
    hosts = []
    for part in netloc.rsplit("@", 1)[-1].split(","):
        host, _, port = part.rpartition(":")
        if not host:
            host, port = port, str(default_port)
        hosts.append((host.strip("[]"), int(port)))
    return hosts


def open_clients(url: str, connections: int) -> Clients:
    """Clients for ``url``; nothing connects until the first command."""
    parts = urlsplit(url)
    scheme = parts.scheme
    if scheme in ("redis+cluster", "rediss+cluster"):
        nodes = [ClusterNode(h, p) for h, p in _hosts(parts.netloc, 6379)]
        cluster = RedisCluster(
            startup_nodes=nodes,
            ssl=scheme.startswith("rediss"),
            password=parts.password,
            username=parts.username,
            max_connections=connections + 64,
        )
        return Clients(cluster, "cluster", url)
    if scheme in ("redis+sentinel", "rediss+sentinel"):
        path = [p for p in parts.path.split("/") if p]
        if not path:
            raise ValueError(f"{url}: a Sentinel URL names the service: .../service[/db]")
        db = int(path[1]) if len(path) > 1 else 0
        sentinel = Sentinel(  # type: ignore[no-untyped-call]
            _hosts(parts.netloc, 26379),
            ssl=scheme.startswith("rediss"),
            password=parts.password,
            db=db,
        )
        return Clients(sentinel.master_for(path[0]), "sentinel", url, tuple(sentinel.sentinels))
    if scheme not in ("redis", "rediss", "unix"):
        raise ValueError(
            f"{url}: use redis://, rediss://, unix://, redis+cluster:// or redis+sentinel://"
        )
    pool = aioredis.ConnectionPool.from_url(url, max_connections=connections + 192)
    return Clients(aioredis.Redis(connection_pool=pool), "plain", url)
