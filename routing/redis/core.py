"""The router's state in the process and its one way to run a script.

:class:`Core` holds what every part of :class:`routing.redis.RedisRouter`
shares: the clients, the key names, the clock, the registered scripts, the
waiters of this engine's callers and the outbox. :meth:`Core.run` runs one
operation's script on one group's keys, with the common arguments
(``now`` from the injectable clock, the lease, the engine) in front.
"""

from __future__ import annotations

import asyncio
import collections
import json
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from redis.exceptions import RedisError, ResponseError

from routing.config import QueueConfig
from routing.errors import RoutingUnavailable
from routing.redis.connect import Clients
from routing.redis.keys import Names
from routing.redis.outbox import Outbox
from routing.redis.pipe import FallbackError, pipe_for
from routing.redis.scripts import register
from routing.states import InvalidTransition
from routing.types import DEFAULT_GROUP, Assignment, Ticket

__all__ = ["Core", "Unreachable", "decode", "ticket_of"]

#: Reservation notices kept for tickets this engine has not registered yet.
_EARLY_NOTICES = 4096

TicketKey = tuple[str, int]


class Unreachable(RoutingUnavailable):
    """Redis did not answer (as opposed to refusing): the outbox may keep the transition."""


def decode(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _levels(raw: Any) -> tuple[tuple[str, int], ...]:
    return tuple(sorted((str(k), int(v)) for k, v in dict(raw or {}).items()))


def ticket_of(record: Mapping[str, Any]) -> Ticket:
    """A :class:`Ticket` from a script's ticket record."""
    return Ticket(
        int(record["id"]),
        str(record["call"]),
        str(record["queue"]),
        _levels(record.get("skills")),
        int(record["priority"]),
        any_skills=_levels(record.get("any")),
        language=str(record.get("lang") or "") or None,
        site=str(record.get("site") or ""),
        group=str(record.get("group") or DEFAULT_GROUP),
    )


class Core:
    """Shared state of the router (see the package docstring for the keys)."""

    def __init__(
        self,
        clients: Clients,
        namespace: str = "rt",
        *,
        max_misses: int = 3,
        clock: Callable[[], float] = time.time,
        outbox: Any = None,
        on_reset: Callable[[], Awaitable[None]] | None = None,
        lease: float = 30.0,
    ) -> None:
        self.clients = clients
        self.redis: Any = clients.main
        self.names = Names(namespace)
        self.ns = namespace
        self.clock = clock
        #: Consecutive unanswered reservations before an agent is paused.
        self.max_misses = max_misses
        #: Seconds a lease lasts; the ticker renews this engine's every lease/3 s.
        self.lease = lease
        #: Seconds a callback worker counts as alive after it looked for work;
        #: callbacks take agents only while one is (0: always).
        self.callback_window = 10.0
        #: Seconds an ended ticket is kept, so that a late replay finds it ended.
        self.keep_ended = 3600.0
        #: False: the ticker only keeps the subscription (a test drives tick/renew).
        self.ticking = True
        #: Called when Redis came back without its data (rebuild agents there).
        self.on_reset = on_reset
        self.engine_id = uuid.uuid4().hex
        self.outbox = Outbox(outbox) if outbox is not None else None
        #: Queue settings shared by every engine; updated in place.
        self.queues: dict[str, QueueConfig] = {}
        self._scripts = register(self.redis)
        #: The routing scripts' batched path on a single Redis (None: redis-py's own).
        self._pipe = pipe_for(self.redis) if clients.kind == "plain" else None
        self._gate = asyncio.Semaphore(64)
        self._waiters: dict[TicketKey, asyncio.Future[Assignment]] = {}
        self._tickets: dict[TicketKey, Ticket] = {}
        #: This engine's callers on hold: what re-enqueues them after a reset.
        self._held: dict[TicketKey, dict[str, Any]] = {}
        #: The highest ticket id this engine was given: new ids stay above it, also
        #: after Redis lost its data and its counter (ROUTING.md: ids are never reused).
        self._top_id = 0
        self._early: collections.OrderedDict[TicketKey, tuple[str, str]] = collections.OrderedDict()
        self._agent_groups: dict[str, str] = {}
        self._keys: dict[str, list[str]] = {}
        self._generations: dict[str, str] = {}
        self._closed = False
        self._callback_due = asyncio.Event()
        self._group_lock = asyncio.Lock()

    # Provided by the service part (routing/redis/service.py).

    async def ensure_started(self) -> None:
        raise NotImplementedError

    async def know_group(self, group: str) -> None:
        raise NotImplementedError

    # ------------------------------------------------------------- groups

    def group_of(self, queue: str) -> str:
        config = self.queues.get(queue)
        return config.group if config is not None else DEFAULT_GROUP

    def groups(self) -> set[str]:
        """The routing groups this engine knows of (queues, agents, its tickets)."""
        known = {DEFAULT_GROUP, *self._generations, *self._agent_groups.values()}
        known |= {self.group_of(q) for q in self.queues}
        known |= {group for group, _ in self._tickets}
        return known

    async def known_groups(self) -> set[str]:
        """The groups of this store (every engine's), with this engine's own."""
        raw = await self.read(self.redis.smembers(self.names.groups))
        return {decode(g) for g in raw} | self.groups()

    # ------------------------------------------------------------ scripts

    def keys(self, group: str) -> list[str]:
        """A group script's KEYS: the group's keys, then on a single Redis the store-wide
        ticket counter (a cluster keeps it in another slot: ids come as ARGV there)."""
        keys = self._keys.get(group)
        if keys is None:
            keys = self.names.group(group).all()
            if self.clients.kind != "cluster":
                keys.append(self.names.seq)
            self._keys[group] = keys
        return keys

    def argv(self, group: str, *args: Any, now: float | None = None) -> list[Any]:
        """A script's ARGV: the common arguments (lib.lua), then the operation's."""
        moment = self.clock() if now is None else now
        return [
            repr(float(moment)),
            group,
            repr(float(self.lease)),
            self.engine_id,
            self.max_misses,
            self.ns,
            repr(float(self.callback_window)),
            repr(float(self.keep_ended)),
            *args,
        ]

    async def run(self, op: str, group: str, *args: Any, now: float | None = None) -> Any:
        """Run ``op`` on ``group``'s keys; refusals of agent moves are InvalidTransition."""
        argv = self.argv(group, *args, now=now)
        script = self._scripts[op]
        try:
            async with self._gate:
                if self._pipe is not None:
                    keys = self.keys(group)
                    try:
                        packed = self._pipe.pack(script.name, group, keys, argv)
                        # Every script may run twice (an enqueue is idempotent per
                        # call id, transitions per ticket): a lost reply is resent.
                        return await self._pipe.call(packed)
                    except FallbackError:
                        pass  # not loaded, or never sent: the ordinary way
                return await script(keys=self.keys(group), args=argv)
        except ResponseError as exc:
            text = str(exc)
            if text.startswith("agent "):
                raise InvalidTransition(text.split(" script: ", maxsplit=1)[0]) from None
            raise RoutingUnavailable(f"routing store refused {op}: {exc}") from exc
        except (RedisError, OSError) as exc:
            raise Unreachable(f"routing store unreachable: {exc}") from exc

    async def transition(self, op: str, group: str, *args: Any) -> Any:
        """A transition of a ticket: run now, or kept in the outbox while Redis is away
        (and behind what the outbox already holds, so the order is kept)."""
        now = self.clock()
        if self.outbox is not None and self.outbox:
            self.outbox.add(op, group, [now, *args])
            return None
        try:
            return await self.run(op, group, *args, now=now)
        except Unreachable:
            if self.outbox is None:
                raise
            self.outbox.add(op, group, [now, *args])
            return None

    async def read(self, pending: Awaitable[Any]) -> Any:
        """A plain command (at the gate, like the scripts), with Redis's absence said
        as RoutingUnavailable."""
        try:
            async with self._gate:
                return await pending
        except (RedisError, OSError) as exc:
            raise Unreachable(f"routing store unreachable: {exc}") from exc

    # ------------------------------------------------------------ waiters

    def resolve(self, key: TicketKey, agent: str, endpoint: str) -> None:
        future = self._waiters.get(key)
        ticket = self._tickets.get(key)
        if future is not None and ticket is not None:
            if not future.done():
                future.set_result(Assignment(ticket, agent, endpoint))
                held = self._held.get(key)
                if held is not None:  # ringing: put back as such if Redis loses its data
                    held.update(stage="reserved", agent=agent, endpoint=endpoint)
            return
        # Another engine's script may reserve an agent for this engine's new
        # ticket, and its notice arrive, before this engine read its own enqueue
        # reply: keep recent unknown notices for enqueue to find.
        self._early[key] = (agent, endpoint)
        if len(self._early) > _EARLY_NOTICES:
            self._early.popitem(last=False)

    def forget(self, key: TicketKey) -> None:
        self._waiters.pop(key, None)
        self._tickets.pop(key, None)
        self._held.pop(key, None)

    async def check(self, key: TicketKey) -> None:
        """Look the ticket up: resolve its waiter if an agent is reserved for it."""
        group, ticket_id = key
        raw = await self.read(self.redis.hget(self.names.group(group).ticket, str(ticket_id)))
        if raw is None:
            return
        record = json.loads(raw)
        if record.get("stage") == "reserved" and record.get("agent"):
            self.resolve(key, str(record["agent"]), str(record.get("endpoint") or ""))
