"""Queue settings shared by every engine, the audit stream, notes, and the
reads of the API and the KPIs: events (the per-group streams merged), one
group's stream followed from an id (the console), queue sizes and a snapshot
of the whole store (for tests and tools).
"""

from __future__ import annotations

import heapq
import json
import time
from collections.abc import Mapping
from typing import Any

from redis.exceptions import RedisError

from routing.config import QueueConfig
from routing.redis.agents import Agents
from routing.redis.core import Unreachable, decode
from routing.types import DEFAULT_GROUP

__all__ = ["Reads", "unfold"]


def unfold(row: dict[str, str]) -> list[dict[str, str]]:
    """A stored event as the events it stands for. A reservation is stored as one
    entry (``reserved`` with the agent's ``before`` and ``agent_site``) and read as
    the two it was written as before: ``state`` (the agent, ``before`` ->
    ``reserved``), then ``reserved``. Any other entry is itself."""
    if row.get("event") != "reserved" or "before" not in row:
        return [row]
    reserved = dict(row)
    before, site = reserved.pop("before"), reserved.pop("agent_site", "")
    state = {
        "event": "state",
        "at": row.get("at", ""),
        "group": row.get("group", ""),
        "agent": row.get("agent", ""),
        "before": before,
        "after": "reserved",
        "reason": "",
        "site": site,
    }
    return [state, reserved]


def _stream_id(key: Any) -> tuple[int, int]:
    ms, _, seq = decode(key).partition("-")
    return int(ms), int(seq or 0)


class Reads(Agents):
    """Settings, audit and reads."""

    async def replace_queues(self, configs: Mapping[str, QueueConfig]) -> None:
        """Make ``configs`` every engine's queue settings (``routing.yaml`` at start)."""
        key = self.names.queues
        mapping = {name: config.model_dump_json() for name, config in configs.items()}

        async def write() -> None:
            await self.redis.delete(key)
            if mapping:
                await self.redis.hset(key, mapping=mapping)
            await self.redis.publish(self.names.channel("config"), "*")

        await self.read(write())
        self.queues.clear()
        self.queues.update(configs)

    async def set_queue(self, name: str, config: QueueConfig) -> None:
        """Change one queue for every engine at once; calls enqueued after it use it."""
        await self.read(self.redis.hset(self.names.queues, name, config.model_dump_json()))
        await self.read(self.redis.publish(self.names.channel("config"), name))
        self.queues[name] = config

    async def load_queues(self) -> dict[str, QueueConfig]:
        """Read the shared queue settings into :attr:`queues` (kept in place)."""
        raw = await self.read(self.redis.hgetall(self.names.queues))
        fresh: dict[str, QueueConfig] = {}
        for name, body in raw.items():
            try:
                fresh[decode(name)] = QueueConfig.model_validate_json(body)
            except ValueError:
                continue  # written by a newer engine with fields this one lacks
        self.queues.clear()
        self.queues.update(fresh)
        return fresh

    async def note(self, event: str, **fields: str) -> None:
        """Append an event that is not a routing decision (a survey answer) to the
        stream of the queue's group."""
        group = self.group_of(fields["queue"]) if "queue" in fields else DEFAULT_GROUP
        entry = {"event": event, "at": repr(self.clock()), "group": group, **fields}
        key = self.names.group(group).events
        await self.read(self.redis.xadd(key, entry, maxlen=1_000_000, approximate=True))

    async def audit(self, actor: str, action: str, **fields: str) -> None:
        """Append who did what to the audit stream (API changes, supervisors)."""
        entry = {"actor": actor, "action": action, **fields}
        await self.read(self.redis.xadd(self.names.audit, entry, maxlen=100_000, approximate=True))

    async def audit_log(self, count: int = 100) -> list[dict[str, str]]:
        """The newest ``count`` audit entries, oldest first."""
        raw = await self.read(self.redis.xrevrange(self.names.audit, count=count))
        return [
            {"at": decode(key), **{decode(k): decode(v) for k, v in fields.items()}}
            for key, fields in reversed(raw)
        ]

    async def events(self, since: float) -> list[tuple[float, dict[str, str]]]:
        """Events since ``since`` (the router's clock), every group's stream merged in
        the order Redis wrote them, as (seconds, fields)."""
        streams = []
        # Stream ids are Redis's wall clock; with the default clock they bound the read.
        start = f"{max(0, int((since - 5) * 1000))}-0" if self.clock is time.time else "-"
        for group in sorted(await self.known_groups()):
            key = self.names.group(group).events
            raw = await self.read(self.redis.xrange(key, min=start))
            streams.append([(_stream_id(k), f) for k, f in raw])
        out = []
        for _, fields in heapq.merge(*streams, key=lambda item: item[0]):
            row = {decode(k): decode(v) for k, v in fields.items()}
            at = float(row.get("at", 0))
            if at >= since:
                out += [(at, one) for one in unfold(row)]
        return out

    async def tail(
        self, group: str, after: str, *, block: float | None = None, count: int = 1000
    ) -> list[tuple[str, dict[str, str]]]:
        """The group's events written after stream id ``after`` (``"0-0"``: every one
        kept), at most ``count``, as (stream id, fields): a follower (the console) reads
        on from the last id it got. With ``block`` it waits up to that many seconds for
        the first (XREAD BLOCK, on one connection of its own and outside the decisions'
        gate); without, it answers at once."""
        key = self.names.group(group).events
        wait = None if block is None else max(1, int(block * 1000))  # BLOCK 0 is for ever
        try:
            raw = await self.redis.xread({key: after}, count=count, block=wait)
        except (RedisError, OSError) as exc:
            raise Unreachable(f"routing store unreachable: {exc}") from exc
        out = []
        for _, entries in raw or ():
            for stream_id, fields in entries:
                row = {decode(k): decode(v) for k, v in fields.items()}
                out += [(decode(stream_id), one) for one in unfold(row)]
        return out

    async def queue_sizes(self) -> dict[str, int]:
        """Calls waiting (stage waiting: a ringing call is not) per queue."""
        sizes: dict[str, int] = {}
        for group in sorted(await self.known_groups()):
            key = self.names.group(group).qcount
            for name, count in (await self.read(self.redis.hgetall(key))).items():
                if int(count) > 0:
                    sizes[decode(name)] = sizes.get(decode(name), 0) + int(count)
        return sizes

    async def snapshot(self) -> dict[str, dict[str, dict[str, Any]]]:
        """What the lockstep test compares with the reference's ``snapshot()``: every
        agent's state and pending request, every ticket's stage and agent (reserved,
        connected or completed), by call id."""
        agents: dict[str, dict[str, Any]] = {}
        tickets: dict[str, dict[str, Any]] = {}
        for group in sorted(await self.known_groups()):
            keys = self.names.group(group)
            for raw in (await self.read(self.redis.hgetall(keys.agent))).values():
                record = json.loads(raw)
                pending = record.get("pending") or None
                agents[record["id"]] = {"state": record["state"], "pending": pending}
            for raw in (await self.read(self.redis.hgetall(keys.ticket))).values():
                record = json.loads(raw)
                stage = record["stage"]
                held = stage in ("reserved", "connected", "completed")
                tickets[record["call"]] = {
                    "stage": stage,
                    "agent": (record.get("agent") or None) if held else None,
                }
        return {"agents": agents, "tickets": tickets}
