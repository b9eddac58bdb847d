"""The engine's side of the store: reservation notices, the ticker, resets.

One pub/sub subscription per engine hears reservation notices (``<ns>:reserved``:
``group|ticket|agent|endpoint``), queue-setting changes and callback work.
The ticker, about four times a second, ends due wrap-ups and passed leases
(``tick``), renews this engine's leases every ``lease/3`` s (``renew``),
replays the outbox, and checks each group's generation key: a key that is
gone means Redis lost its data, and then ``on_reset`` runs (the engine
rebuilds agents there) and this engine's callers on hold are put back with
their place (``restore``).

Engines also beat: each keeps ``<ns>:alive:<engine>`` alive (``dead_after``
seconds of expiry, set every ``dead_after/5`` s) and is listed in
``<ns>:engines``. A listed engine whose key expired died (``kill -9``, a crashed
host): the others end its tickets then, as its leases would end them, without
waiting out the lease (30 s, longer when its agents are handed its own waiting
callers one lease after another). Its waiting tickets go first, so no freed agent
is reserved for a caller who is gone. An engine reaps only after beating for
``dead_after`` itself: after a Redis outage every engine beats again before
any is judged, and an engine that never beat (an older version) is left to
its leases.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import uuid
from typing import Any

from redis.exceptions import RedisError

from routing.errors import RoutingError, RoutingUnavailable
from routing.redis.core import Core, Unreachable, decode

__all__ = ["Service"]

log = logging.getLogger("routing.redis")

#: The store-wide ticket counter never goes below the ids put back.
_FLOOR = (
    "if tonumber(redis.call('GET', KEYS[1]) or '0') < tonumber(ARGV[1]) then "
    "redis.call('SET', KEYS[1], ARGV[1]) end return 1"
)


class Service(Core):
    """Listening, ticking, renewing, replaying and rebuilding."""

    _listener: asyncio.Task[None] | None = None
    _ticker: asyncio.Task[None] | None = None
    _ready: asyncio.Event | None = None
    _renewed_at: float = 0.0
    #: Seconds without a heartbeat after which an engine's tickets are ended.
    dead_after: float = 5.0
    #: Seconds between two looks for dead engines.
    reap_every: float = 1.0
    _beaten_at: float = -math.inf
    _reaped_at: float = -math.inf
    #: When this engine's current run of heartbeats began (None: Redis was away).
    _beating_since: float | None = None
    #: The subscription was made again: reservation notices may have been missed.
    _recheck: bool = False

    async def start(self) -> None:
        """Listen for notices and run the ticker."""
        await self.ensure_started()

    async def ensure_started(self) -> None:
        if self._closed:
            raise RoutingUnavailable("this router is closed")
        if self._listener is None or self._listener.done():
            # Whoever subscribes again (the ticker, or an enqueue that came first),
            # the ticker then looks up every waiting call: a notice published while
            # nobody listened (agents the outbox replay freed) is lost for good.
            self._recheck = self._recheck or self._listener is not None
            self._ready = ready = asyncio.Event()
            self._listener = asyncio.ensure_future(self._listen(ready))
            waiting = asyncio.ensure_future(ready.wait())
            await asyncio.wait(
                {waiting, self._listener}, timeout=5, return_when=asyncio.FIRST_COMPLETED
            )
            if not ready.is_set():
                waiting.cancel()
                raise Unreachable("routing store unreachable: cannot subscribe")
        if self._ticker is None or self._ticker.done():
            self._ticker = asyncio.ensure_future(self._tick_loop())

    async def know_group(self, group: str) -> None:
        """Note the group's generation the first time this engine uses it."""
        if group not in self._generations:
            async with self._group_lock:
                if group not in self._generations:
                    self._generations[group] = await self._generation(group)

    async def _generation(self, group: str) -> str:
        key = self.names.group(group).gen
        await self.read(self.redis.set(key, uuid.uuid4().hex, nx=True))
        # In the store's list of groups, so that every engine's callback worker looks
        # (and beats) there too, also for a group no agent of this engine is in.
        await self.read(self.redis.sadd(self.names.groups, group))
        return decode(await self.read(self.redis.get(key)))

    async def _listen(self, ready: asyncio.Event) -> None:
        channels = [self.names.channel(n) for n in ("reserved", "config", "callback")]
        try:
            pubsub = (await self.clients.subscriber()).pubsub()
        except (RedisError, OSError):
            return
        try:
            await pubsub.subscribe(*channels)
            await self.load_queues()  # changes made while unsubscribed
        except (RedisError, OSError, RoutingError):
            await pubsub.aclose()
            return  # Redis is away; the ticker listens again when it returns
        ready.set()
        config, callback = (c.encode() for c in channels[1:])
        try:
            async for message in pubsub.listen():
                if message.get("type") != "message":
                    continue
                if message["channel"] == config:
                    await self.load_queues()
                elif message["channel"] == callback:
                    self._callback_due.set()
                else:
                    group, ticket, agent, endpoint = decode(message["data"]).split("|", 3)
                    self.resolve((group, int(ticket)), agent, endpoint)
        except (RedisError, OSError, RoutingError) as exc:
            log.info("routing.listener_lost %s", exc)  # the ticker listens again
        finally:
            closing = asyncio.ensure_future(pubsub.aclose())
            await asyncio.wait({closing}, timeout=2.0)

    async def _tick_loop(self, interval: float = 0.25) -> None:
        while not self._closed:
            await asyncio.sleep(interval)
            try:
                await self._service()
            except RoutingUnavailable as exc:  # resumes when Redis returns
                self._beating_since = None  # peers may have missed beats meanwhile too
                log.debug("routing.tick_unavailable %s", exc)
            except Exception:  # an on_reset that failed, a bug: said, and ticking goes on
                log.exception("routing.tick_failed")

    async def _service(self) -> None:
        if not self.ticking:
            if self._listener is None or self._listener.done():
                await self.ensure_started()
            return
        await self._check_generations()
        await self._beat()
        if self.outbox is not None and self.outbox:
            await self.replay()
        moment = self.clock()
        if moment - self._reaped_at >= self.reap_every:
            self._reaped_at = moment
            if self._beating_since is not None and moment - self._beating_since >= self.dead_after:
                await self.reap(moment)
        await self.tick()
        if self.clock() - self._renewed_at >= self.lease / 3:
            await self.renew()
        if self._listener is None or self._listener.done():
            # The subscription was lost (Redis restarted): listen again, and look
            # up every waiting call in case its notice was missed.
            await self.ensure_started()
        if self._recheck:
            self._recheck = False
            try:
                for key, future in list(self._waiters.items()):
                    if not future.done():
                        await self.check(key)
            except BaseException:
                self._recheck = True
                raise

    async def tick(self, now: float | None = None) -> int:
        """End the wrap-ups that are due and the tickets whose lease passed, in every
        group this engine knows."""
        done = 0
        for group in sorted(self.groups()):
            done += int(await self.run("tick", group, now=now))
        return done

    def _alive_key(self, engine: str) -> str:
        return f"{self.ns}:alive:{engine}"

    @property
    def _engines_key(self) -> str:
        return f"{self.ns}:engines"

    async def _beat(self) -> None:
        """Keep this engine's heartbeat key alive (and the engine listed)."""
        moment = self.clock()
        if moment - self._beaten_at < self.dead_after / 5:
            return
        expiry = max(1, int(self.dead_after * 1000))
        await self.read(self.redis.set(self._alive_key(self.engine_id), "1", px=expiry))
        await self.read(self.redis.sadd(self._engines_key, self.engine_id))
        self._beaten_at = moment
        if self._beating_since is None:
            self._beating_since = moment

    async def dead_engines(self) -> list[str]:
        """Listed engines (other than this one) whose heartbeat expired."""
        listed = sorted(
            {decode(e) for e in await self.read(self.redis.smembers(self._engines_key))}
            - {self.engine_id}
        )
        beats = await asyncio.gather(
            *(self.read(self.redis.exists(self._alive_key(e))) for e in listed)
        )
        return [engine for engine, beating in zip(listed, beats, strict=True) if not beating]

    async def reap(self, now: float | None = None) -> int:
        """End every ticket held by a dead engine (see the module docstring): its waiting
        tickets first, then its reserved and connected ones, in one ``tick`` per group."""
        dead = await self.dead_engines()
        if not dead:
            return 0
        moment = self.clock() if now is None else now
        groups = {decode(g) for g in await self.read(self.redis.smembers(self.names.groups))}
        ended = 0
        for group in sorted(groups | self.groups()):
            keys = self.names.group(group)
            deadlines: dict[str, float] = {}
            for engine in dead:
                low, high = f"[{engine}|".encode(), f"[{engine}|".encode() + b"\xff"
                members = await self.read(self.redis.zrangebylex(keys.holder, low, high))
                ids = [decode(m).split("|", 1)[1] for m in members]
                if not ids:
                    continue
                records = await self.read(self.redis.hmget(keys.ticket, ids))
                for ticket, raw in zip(ids, records, strict=True):
                    stage = json.loads(raw).get("stage") if raw is not None else None
                    # Waiting callers go before the reserved and connected calls end,
                    # so the agents these free choose among live callers only.
                    deadlines[ticket] = moment - (1.0 if stage == "waiting" else 0.5)
            if not deadlines:
                continue
            await self.read(self.redis.zadd(keys.lease, deadlines, xx=True))
            done = int(await self.run("tick", group, now=moment))
            ended += done
            log.warning(
                "routing.dead_engine_reaped group=%s engines=%s tickets=%d", group, dead, done
            )
        for engine in dead:
            if not await self._holds_any(engine, groups | self.groups()):
                await self.read(self.redis.srem(self._engines_key, engine))
        return ended

    async def _holds_any(self, engine: str, groups: set[str]) -> bool:
        low, high = f"[{engine}|".encode(), f"[{engine}|".encode() + b"\xff"
        for group in groups:
            holder = self.names.group(group).holder
            if await self.read(self.redis.zrangebylex(holder, low, high, start=0, num=1)):
                return True
        return False

    async def renew(self, engine: str | None = None, now: float | None = None) -> int:
        """Renew every lease ``engine`` (this one by default) holds."""
        moment = self.clock() if now is None else now
        renewed = 0
        for group in sorted(self.groups()):
            renewed += int(await self.run("renew", group, engine or self.engine_id, now=moment))
        if engine is None or engine == self.engine_id:
            self._renewed_at = moment
        return renewed

    async def replay(self) -> int:
        """Replay the outbox in order; stops at the first entry Redis does not take."""
        assert self.outbox is not None
        entries = self.outbox.pending()
        done = 0
        try:
            for entry in entries:
                now, *args = entry["args"]
                try:
                    await self.run(entry["op"], entry["group"], *args, now=float(now))
                except Unreachable:
                    raise
                except RoutingError as exc:  # refused: said, and not retried for ever
                    log.error(  # noqa: TRY400 - refused, not crashed
                        "routing.outbox_refused %s %s", entry, exc
                    )
                done += 1
        finally:
            # Transitions queued while a replay awaited Redis were appended behind the
            # entries read above: keep them too. Read again, with nothing awaited in
            # between, so no append can fall between the read and the rewrite (a
            # rewrite from the first read alone lost them: an agent held for good).
            self.outbox.keep(self.outbox.pending()[done:])
        return done

    async def _check_generations(self) -> None:
        lost = []
        for group, known in list(self._generations.items()):
            key = self.names.group(group).gen
            now = await self.read(self.redis.get(key))
            if now is None or decode(now) != known:
                lost.append(group)
                self._generations[group] = await self._generation(group)
        if lost:
            await self._rebuild(lost)

    async def _rebuild(self, groups: list[str]) -> None:
        """Redis came back without the data of ``groups``: agents and queue settings
        come back through ``on_reset``, and this engine's callers on hold are put back
        in their place (their ids, seq, arrival and priority)."""
        log.warning("routing.reset groups=%s", groups)
        self._agent_groups.clear()
        if self.queues:
            await self.replace_queues(dict(self.queues))
        # The calls this engine's agents ring or talk to come back first, their agents
        # with them (busy), so that the reload cannot offer those agents a caller.
        for group in groups:
            busy = [
                r
                for (g, _), r in self._held.items()
                if g == group and r.get("stage") in ("reserved", "connected")
            ]
            if busy:
                await self._restore(group, busy)
        if self.on_reset is not None:
            await self.on_reset()
        for group in groups:
            mine = [record for (g, _), record in self._held.items() if g == group]
            # Then the callers on hold, in call order.
            waiting = [
                r
                for r in mine
                if r.get("stage", "waiting") == "waiting"
                and self._still_waiting((group, int(r["id"])))
            ]
            waiting.sort(key=lambda r: (-int(r["priority"]), float(r["arrival"]), int(r["seq"])))
            if waiting:
                await self._restore(group, waiting)

    async def _restore(self, group: str, held: list[dict[str, Any]]) -> None:
        floor = max(int(r["id"]) for r in held)
        await self.read(self._scripts["seqfloor"](keys=[self.names.seq], args=[floor]))
        raw = await self.run("restore", group, json.dumps(held))
        for ticket, agent, endpoint in raw or []:
            self.resolve((group, int(decode(ticket))), decode(agent), decode(endpoint))

    def _still_waiting(self, key: tuple[str, int]) -> bool:
        waiter = self._waiters.get(key)
        return waiter is not None and not waiter.done()

    async def close(self) -> None:
        """Stop listening and ticking, and close every connection."""
        self._closed = True
        for task in (self._ticker, self._listener):
            if task is not None:
                task.cancel()
                # Bounded, and without waiting on the cancellation itself (a Redis
                # call in flight can turn it into an error the loop goes on from).
                await asyncio.wait({task}, timeout=2.0)
        if self._beating_since is not None:
            # Stopped: whatever this engine still holds is for its peers to end now.
            forget = asyncio.ensure_future(self.redis.delete(self._alive_key(self.engine_id)))
            await asyncio.wait({forget}, timeout=1.0)
            if forget.done() and not forget.cancelled():
                forget.exception()  # retrieved: Redis may be away, nothing to do then
            else:
                forget.cancel()
        if self._pipe is not None:
            await self._pipe.aclose()
        closing = asyncio.ensure_future(self.clients.aclose())
        await asyncio.wait({closing}, timeout=5.0)
        if not closing.done():
            closing.cancel()

    async def load_queues(self) -> Any:
        raise NotImplementedError

    async def replace_queues(self, configs: Any) -> None:
        raise NotImplementedError
