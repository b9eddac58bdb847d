"""Skill-based routing with its state in Redis, shared by every engine process.

Every decision runs as one Lua script, so it is atomic across processes: an
agent leaves the availability indexes in the same step that reserves them,
and can never hold two reservations. All keys carry one hash tag
(``{rt}:…``) so that a decision's keys share one Redis Cluster slot.

    {rt}:agent:<id>    hash   endpoint, state, idle_since, missed
    {rt}:skills:<id>   hash   skill -> level
    {rt}:avail         zset   available agents by idle_since (longest idle first)
    {rt}:avail:<skill> zset   available agents with that skill, by level
    {rt}:q:<queue>     zset   waiting tickets, by priority, then put-back, then age
    {rt}:queues        set    queues that have waiting tickets
    {rt}:t:<ticket>    hash   call, queue, skills, priority, state, agent, endpoint
    {rt}:events        stream what happened, for KPIs
The engine that enqueued a call learns of its reservation by pub/sub.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterable, Mapping
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from routing.errors import RoutingUnavailable, UnknownTicket
from routing.memory import Agent, Assignment, Ticket

__all__ = ["RedisRouter"]

_MATCH = """
local function match(ns, queue)
  local made = {}
  local qkey = ns .. ':q:' .. queue
  local tickets = redis.call('ZRANGE', qkey, 0, -1)
  for _, tid in ipairs(tickets) do
    if redis.call('ZCARD', ns .. ':avail') == 0 then break end
    local tkey = ns .. ':t:' .. tid
    local skills = cjson.decode(redis.call('HGET', tkey, 'skills') or '{}')
    local best, best_idle = nil, nil
    local pool = nil
    local smallest = nil
    for skill, level in pairs(skills) do
      local size = redis.call('ZCOUNT', ns .. ':avail:' .. skill, level, '+inf')
      if smallest == nil or size < smallest then smallest = size; pool = {skill, level} end
    end
    local candidates
    if pool == nil then
      candidates = redis.call('ZRANGE', ns .. ':avail', 0, 0)
    else
      candidates = redis.call('ZRANGEBYSCORE', ns .. ':avail:' .. pool[1], pool[2], '+inf')
    end
    for _, aid in ipairs(candidates) do
      local fits = true
      for skill, level in pairs(skills) do
        local have = tonumber(redis.call('HGET', ns .. ':skills:' .. aid, skill) or '0')
        if have < level then fits = false; break end
      end
      if fits then
        local idle = tonumber(redis.call('ZSCORE', ns .. ':avail', aid))
        if idle ~= nil and (best_idle == nil or idle < best_idle) then
          best, best_idle = aid, idle
        end
      end
    end
    if best ~= nil then
      local akey = ns .. ':agent:' .. best
      redis.call('HSET', akey, 'state', 'reserved', 'ticket', tid)
      redis.call('ZREM', ns .. ':avail', best)
      local owned = redis.call('HKEYS', ns .. ':skills:' .. best)
      for _, skill in ipairs(owned) do redis.call('ZREM', ns .. ':avail:' .. skill, best) end
      local endpoint = redis.call('HGET', akey, 'endpoint')
      redis.call('HSET', tkey, 'state', 'reserved', 'agent', best, 'endpoint', endpoint)
      redis.call('ZREM', qkey, tid)
      redis.call('XADD', ns .. ':events', 'MAXLEN', '~', 1000000, '*', 'event', 'reserved',
        'ticket', tid, 'queue', queue, 'agent', best,
        'call', redis.call('HGET', tkey, 'call'))
      redis.call('PUBLISH', ns .. ':reserved', tid .. '|' .. best .. '|' .. endpoint)
      table.insert(made, tid)
    end
  end
  if redis.call('ZCARD', qkey) == 0 then redis.call('SREM', ns .. ':queues', queue) end
  return made
end

local function match_all(ns)
  for _, queue in ipairs(redis.call('SMEMBERS', ns .. ':queues')) do
    if redis.call('ZCARD', ns .. ':avail') == 0 then break end
    match(ns, queue)
  end
end

local function free(ns, aid)
  local akey = ns .. ':agent:' .. aid
  local now = redis.call('TIME')
  local idle = tonumber(now[1]) + tonumber(now[2]) / 1e6
  redis.call('HSET', akey, 'state', 'available', 'idle_since', idle, 'ticket', '')
  redis.call('ZADD', ns .. ':avail', idle, aid)
  local skills = redis.call('HGETALL', ns .. ':skills:' .. aid)
  for i = 1, #skills, 2 do redis.call('ZADD', ns .. ':avail:' .. skills[i], skills[i + 1], aid) end
end
"""

_ENQUEUE = (
    _MATCH
    + """
local ns, queue, call, skills, priority = ARGV[1], ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5])
local tid = redis.call('INCR', ns .. ':seq')
redis.call('HSET', ns .. ':t:' .. tid, 'call', call, 'queue', queue, 'skills', skills,
  'priority', priority, 'state', 'waiting')
redis.call('ZADD', ns .. ':q:' .. queue, (100 - priority) * 1e13 + 1e12 + tid, tid)
redis.call('SADD', ns .. ':queues', queue)
redis.call('XADD', ns .. ':events', 'MAXLEN', '~', 1000000, '*', 'event', 'enqueued',
  'ticket', tid, 'queue', queue, 'call', call, 'skills', skills)
match(ns, queue)
return tid
"""
)

_AVAILABLE = (
    _MATCH
    + """
local ns, aid = ARGV[1], ARGV[2]
if redis.call('EXISTS', ns .. ':agent:' .. aid) == 0 then return redis.error_reply('no agent') end
if redis.call('HGET', ns .. ':agent:' .. aid, 'state') == 'available' then return 0 end
free(ns, aid)
redis.call('XADD', ns .. ':events', '*', 'event', 'available', 'agent', aid)
match_all(ns)
return 1
"""
)

_ABANDON = (
    _MATCH
    + """
local ns, tid = ARGV[1], ARGV[2]
local tkey = ns .. ':t:' .. tid
local state = redis.call('HGET', tkey, 'state')
if state == false or state == 'abandoned' or state == 'completed' then return 0 end
local queue = redis.call('HGET', tkey, 'queue')
redis.call('ZREM', ns .. ':q:' .. queue, tid)
redis.call('HSET', tkey, 'state', 'abandoned')
redis.call('XADD', ns .. ':events', '*', 'event', 'abandoned', 'ticket', tid, 'queue', queue,
  'call', redis.call('HGET', tkey, 'call'))
if state == 'reserved' then
  free(ns, redis.call('HGET', tkey, 'agent'))
  match_all(ns)
end
return 1
"""
)

_MISSED = (
    _MATCH
    + """
local ns, tid = ARGV[1], ARGV[2]
local tkey = ns .. ':t:' .. tid
if redis.call('HGET', tkey, 'state') ~= 'reserved' then return 0 end
local aid = redis.call('HGET', tkey, 'agent')
local queue = redis.call('HGET', tkey, 'queue')
local priority = tonumber(redis.call('HGET', tkey, 'priority'))
redis.call('HINCRBY', ns .. ':agent:' .. aid, 'missed', 1)
redis.call('HSET', ns .. ':agent:' .. aid, 'state', 'missed', 'ticket', '')
redis.call('HSET', tkey, 'state', 'waiting', 'agent', '', 'endpoint', '')
redis.call('ZADD', ns .. ':q:' .. queue, (100 - priority) * 1e13 + tonumber(tid), tid)
redis.call('SADD', ns .. ':queues', queue)
redis.call('XADD', ns .. ':events', '*', 'event', 'missed', 'ticket', tid, 'queue', queue,
  'agent', aid)
match(ns, queue)
return 1
"""
)

_SETTLE = """
local ns, tid, state = ARGV[1], ARGV[2], ARGV[3]
local tkey = ns .. ':t:' .. tid
local aid = redis.call('HGET', tkey, 'agent')
if aid == false or aid == '' then return 0 end
if redis.call('HGET', tkey, 'state') == state then return 0 end
redis.call('HSET', tkey, 'state', state)
redis.call('XADD', ns .. ':events', '*', 'event', state, 'ticket', tid, 'agent', aid,
  'queue', redis.call('HGET', tkey, 'queue'), 'call', redis.call('HGET', tkey, 'call'))
if state == 'connected' then
  redis.call('HSET', ns .. ':agent:' .. aid, 'state', 'on_call')
  return 1
end
return 2
"""


class RedisRouter:
    """The routing port on Redis; same contract as :class:`routing.memory.MemoryRouter`."""

    def __init__(self, client: aioredis.Redis, namespace: str = "{rt}") -> None:
        self.redis = client
        self.ns = namespace
        self._waiters: dict[int, asyncio.Future[Assignment]] = {}
        self._tickets: dict[int, Ticket] = {}
        self._listener: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        self._scripts = {
            name: client.register_script(body)
            for name, body in (
                ("enqueue", _ENQUEUE),
                ("available", _AVAILABLE),
                ("abandon", _ABANDON),
                ("missed", _MISSED),
                ("settle", _SETTLE),
            )
        }

    @classmethod
    def connect(cls, url: str, namespace: str = "{rt}", connections: int = 64) -> RedisRouter:
        """A router on ``url`` whose bursts wait for a connection instead of failing."""
        pool = aioredis.BlockingConnectionPool.from_url(url, max_connections=connections, timeout=5)
        return cls(aioredis.Redis(connection_pool=pool), namespace)

    async def _run(self, name: str, *args: Any) -> Any:
        try:
            return await self._scripts[name](args=[self.ns, *args])
        except (RedisError, OSError) as exc:
            raise RoutingUnavailable(f"routing store unreachable: {exc}") from exc

    # --------------------------------------------------------------- agents

    async def add_agents(self, agents: Iterable[Agent]) -> None:
        """Create or update agents (logged out until :meth:`set_available`)."""
        try:
            async with self.redis.pipeline(transaction=True) as pipe:
                for agent in agents:
                    key = f"{self.ns}:agent:{agent.id}"
                    pipe.hset(key, mapping={"endpoint": agent.endpoint, "missed": 0})
                    pipe.hsetnx(key, "state", "logged_out")
                    pipe.delete(f"{self.ns}:skills:{agent.id}")
                    if agent.skills:
                        levels: dict[str | bytes, int] = dict(agent.skills.items())
                        pipe.hset(f"{self.ns}:skills:{agent.id}", mapping=levels)  # type: ignore[arg-type]
                await pipe.execute()
        except (RedisError, OSError) as exc:
            raise RoutingUnavailable(f"routing store unreachable: {exc}") from exc

    async def set_available(self, agent_id: str) -> None:
        await self._run("available", agent_id)

    async def agent_state(self, agent_id: str) -> str | None:
        state = await self.redis.hget(f"{self.ns}:agent:{agent_id}", "state")
        return state.decode() if isinstance(state, bytes) else state

    # ---------------------------------------------------------------- calls

    async def _listen(self) -> None:
        pubsub = self.redis.pubsub()
        await pubsub.subscribe(f"{self.ns}:reserved")
        self._ready.set()
        try:
            async for message in pubsub.listen():
                if message.get("type") != "message":
                    continue
                ticket, agent, endpoint = message["data"].decode().split("|", 2)
                self._resolve(int(ticket), agent, endpoint)
        finally:
            with contextlib.suppress(Exception):
                await pubsub.aclose()  # type: ignore[no-untyped-call]

    def _resolve(self, ticket_id: int, agent: str, endpoint: str) -> None:
        future = self._waiters.get(ticket_id)
        ticket = self._tickets.get(ticket_id)
        if future is not None and ticket is not None and not future.done():
            future.set_result(Assignment(ticket, agent, endpoint))

    async def _ensure_listener(self) -> None:
        if self._listener is None or self._listener.done():
            self._ready.clear()
            self._listener = asyncio.ensure_future(self._listen())
            await asyncio.wait_for(self._ready.wait(), 5)

    async def enqueue(
        self, call_id: str, queue: str, skills: Mapping[str, int], priority: int = 0
    ) -> Ticket:
        await self._ensure_listener()
        encoded = json.dumps(dict(skills)) if skills else "{}"
        ticket_id = int(await self._run("enqueue", queue, call_id, encoded, int(priority)))
        ticket = Ticket(ticket_id, call_id, queue, tuple(sorted(skills.items())), priority)
        self._tickets[ticket_id] = ticket
        self._waiters[ticket_id] = asyncio.get_running_loop().create_future()
        await self._check(ticket_id)  # reserved inside the same script, before we listened
        return ticket

    async def _check(self, ticket_id: int) -> None:
        fields = await self.redis.hmget(f"{self.ns}:t:{ticket_id}", ["state", "agent", "endpoint"])
        state, agent, endpoint = (f.decode() if isinstance(f, bytes) else f for f in fields)
        if state == "reserved" and agent:
            self._resolve(ticket_id, agent, endpoint or "")

    async def wait(self, ticket: Ticket) -> Assignment:
        future = self._waiters.get(ticket.id)
        if future is None:
            raise UnknownTicket(ticket.id)
        return await asyncio.shield(future)

    async def abandon(self, ticket: Ticket) -> None:
        self._forget(ticket.id)
        await self._run("abandon", ticket.id)

    async def connected(self, assignment: Assignment) -> None:
        self._forget(assignment.ticket.id)
        await self._run("settle", assignment.ticket.id, "connected")

    async def completed(self, assignment: Assignment) -> None:
        await self._run("settle", assignment.ticket.id, "completed")
        await self._run("available", assignment.agent_id)

    async def missed(self, assignment: Assignment) -> None:
        ticket = assignment.ticket
        self._waiters[ticket.id] = asyncio.get_running_loop().create_future()
        self._tickets[ticket.id] = ticket
        await self._run("missed", ticket.id)
        await self._check(ticket.id)

    def _forget(self, ticket_id: int) -> None:
        self._waiters.pop(ticket_id, None)
        self._tickets.pop(ticket_id, None)

    async def close(self) -> None:
        """Stop listening and close every connection (the pool's too)."""
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._listener
        await self.redis.aclose(close_connection_pool=True)
