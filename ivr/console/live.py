"""Live data for the console: one aggregator per engine, fanned out over WebSocket.

:class:`Aggregator` follows every routing group's event stream
(:meth:`routing.redis.RedisRouter.tail`, XREAD BLOCK from the last id it got;
at start, the day's events from midnight) and the AMI events routing cannot
see (``Hold`` / ``Unhold``, ``Hangup``, ``DialBegin`` for the caller's number)
into a :class:`~ivr.console.board.Board`. Changed records become one *batch*
with the next sequence number at most every ``flush_every`` seconds; the last
``history`` batches are kept so a client that lost its link resumes.

The WebSocket (``/ws``, mounted as ``/console/ws``)::

    GET /console/ws?epoch=E&since=N     (both optional: resume after batch N)
    <- {"type": "snapshot", "epoch": E, "seq": N, "now": T, "user": {"name", "role"},
        "agents": {id: {...}}, "queues": {...}, "calls": {...}, "alerts": {...}}
    <- {"type": "delta", "seq": N, "now": T, "ops": [[kind, key, record | null], ...]}
    <- {"type": "tick", "seq": N, "now": T}          (every second without news)

``now`` is the server's clock (seconds since the epoch), so a view shows the
age of its data and times in state without trusting the browser's clock. A
resume from a batch still kept sends the batches after it; an older one, or
one from another process (``epoch``), gets a new snapshot. Every record sent,
in a snapshot or a delta, goes through :func:`~ivr.console.fanout.visible` for
the user *at that moment*: the session is looked up again every ``recheck``
seconds, so a logout, a disabled user or a changed scope takes effect on a live
socket, and a record that leaves the user's sight is sent as ``null``
(:mod:`ivr.console.fanout` runs each socket). No session: the socket is
accepted and closed with 4401.

Calls in the IVR (by flow node) come from the engine itself: the flow
interpreter's steps go to :meth:`Aggregator.ivr_step` and the end of each
call's walk to :meth:`Aggregator.ivr_left` (:mod:`ivr.console.engine_calls`
wires them); from routing's stream the board knows calls from the moment they
enter a queue, on any engine.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import itertools
import json
import secrets
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any, Final

import structlog
from starlette.routing import BaseRoute, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from ivr.ami import AmiClient, AmiEvent, ChannelSnapshot, DialBegin, Hangup
from ivr.backoff import Backoff
from ivr.console import access, fanout
from ivr.console.board import Board, Key, Thresholds
from ivr.console.fanout import Batch, UserOf, visible
from ivr.console.metrics import Metrics, default
from ivr.console.roles import User
from routing.errors import RoutingError
from routing.redis import RedisRouter

__all__ = ["Aggregator", "Batch", "routes", "visible"]

log = structlog.get_logger("ivr.console.live")

#: Seconds the engine keeps asking Redis again after a failed read (at most).
_RETRY_MAX: Final = 5.0
#: Seconds between looks for new routing groups and changed agents.
_ROSTER_EVERY: Final = 15.0


class Aggregator:
    """The engine's live state for the console, and its recent changes."""

    def __init__(
        self,
        router: RedisRouter,
        ami: AmiClient | None = None,
        *,
        metrics: Metrics | None = None,
        thresholds: Thresholds | None = None,
        flush_every: float = 0.05,
        history: int = 4096,
        block: float = 1.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.router = router
        self.ami = ami
        self.metrics = metrics or default()
        self.clock = clock
        self.flush_every = flush_every
        self.block = block
        self.board = Board(thresholds=thresholds, on_wait=self._waited)
        #: Names this process's numbering of batches: a resume from another's is refused.
        self.epoch = secrets.token_hex(4)
        self.seq = 0
        self.history: deque[Batch] = deque(maxlen=history)
        self._bell = asyncio.Event()
        self._wake = asyncio.Event()
        self._stranger = asyncio.Event()
        #: The last record sent per key: a batch says what each one was before.
        self._sent: dict[Key, dict[str, Any]] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._undo: list[Callable[[], None]] = []
        self._started: asyncio.Future[None] | None = None
        self._day = dt.date.today()
        self._ami_up = False
        self.metrics.watch(self, ami)

    # ------------------------------------------------------------- life

    async def ensure_started(self) -> None:
        """Start once (the first client or scrape does it); a start that failed is
        tried again by the next caller."""
        started = self._started
        if started is None or (
            started.done() and (started.cancelled() or started.exception() is not None)
        ):
            started = self._started = asyncio.ensure_future(self.start())
        await asyncio.shield(started)

    async def start(self) -> None:
        """Read the roster, the queues and the day's events, then follow them; a start
        that fails leaves nothing behind (the next one reads the day again)."""
        try:
            await self._start()
        except BaseException:
            await self.close()
            self.board = Board(thresholds=self.board.thresholds, on_wait=self._waited)
            self._sent.clear()
            raise

    async def _start(self) -> None:
        router = self.router
        if not router.queues:
            await router.load_queues()
        self.board.set_queues(router.queues)
        self.board.set_agents(await router.agents())
        midnight = dt.datetime.combine(self._day, dt.time()).timestamp()
        start = f"{int(midnight * 1000)}-0"
        for group in sorted(await router.known_groups()):
            last = await self._catch_up(group, start)
            self._follow(group, last)
        self.board.settle(self.clock())
        self.board.changes()  # all of it is in the first snapshot
        for key in self.board.all_keys():
            record = self.board.record(key)
            if record is not None:
                self._sent[key] = record
        if self.ami is not None:  # each named, so the AMI permission test sees them
            ami, on = self.ami, self._on_ami
            self._undo += [ami.on("Hold", on), ami.on("Unhold", on), ami.on("Hangup", on)]
            self._undo.append(ami.on("DialBegin", on))
        self._tasks["_flush"] = asyncio.ensure_future(self._flusher())
        self._tasks["_roster"] = asyncio.ensure_future(self._roster(start))
        log.info("console.live_started", agents=len(self.board.agents), groups=len(self._tasks) - 2)

    async def close(self) -> None:
        """Stop following (a start still reading the day is stopped too)."""
        starting = self._started
        if starting is not None and not starting.done() and starting is not asyncio.current_task():
            starting.cancel()
        for undo in self._undo:
            undo()
        self._undo.clear()
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        if tasks:  # bounded: a Redis call in flight may take a moment to give up
            await asyncio.wait(tasks, timeout=2.0)
        self._tasks.clear()
        self._bell.set()

    async def _catch_up(self, group: str, after: str) -> str:
        """Every event of ``group`` after ``after``, at once; the last id read."""
        while True:
            rows = await self.router.tail(group, after, count=5000)
            for stream_id, fields in rows:
                self._take(stream_id, fields)
            if not rows:
                return after
            after = rows[-1][0]

    def _follow(self, group: str, after: str) -> None:
        if group not in self._tasks:
            self._tasks[group] = asyncio.ensure_future(self._follower(group, after))

    async def _follower(self, group: str, after: str) -> None:
        backoff = Backoff(0.1, _RETRY_MAX, jitter=0.2)
        failing = False
        while True:
            try:
                rows = await self.router.tail(group, after, block=self.block)
            except RoutingError as exc:
                self.metrics.redis_errors.labels("console").inc()
                if not failing:
                    log.warning("console.redis_unreachable", group=group, error=str(exc))
                failing = True
                await asyncio.sleep(backoff.delay())
                continue
            if failing:
                failing = False
                backoff.reset()
                self.metrics.redis_reconnects.labels("console").inc()
                log.info("console.redis_back", group=group)
            for stream_id, fields in rows:
                self._take(stream_id, fields)
            if rows:
                after = rows[-1][0]
                self._wake.set()

    def _take(self, stream_id: str, fields: Mapping[str, str]) -> None:
        """One event; its time is its ``at`` (the router's clock), else the stream id's."""
        written = fields.get("at")
        try:
            at = float(written) if written else int(stream_id.partition("-")[0]) / 1000
        except ValueError:
            at = self.clock()
        agent = fields.get("agent")
        if agent and agent not in self.board.agents:
            self._stranger.set()  # an agent added since the roster was read
        self.board.take(at, fields)

    async def _roster(self, start: str) -> None:
        """New routing groups, and agents added or changed (their team, site, skills):
        every ``_ROSTER_EVERY`` s, or at once when an event names an unknown agent."""
        while True:
            await _until(self._stranger, _ROSTER_EVERY)
            self._stranger.clear()
            try:
                for group in await self.router.known_groups():
                    if group not in self._tasks:
                        self._follow(group, await self._catch_up(group, start))
                self.board.set_agents(await self.router.agents(), states=False)
            except RoutingError:
                self.metrics.redis_errors.labels("console").inc()
                continue
            self._wake.set()

    # ------------------------------------------------------------- inputs

    def ivr_step(
        self, call: str, flow: str, node: str, *, caller: str = "", language: str = ""
    ) -> None:
        """The engine's hook: ``call`` (its channel's uniqueid) reached ``node``."""
        self.board.ivr_step(call, flow, node, self.clock(), caller=caller, language=language)
        self._wake.set()

    def ivr_left(self, call: str) -> None:
        """The engine's hook: the call left its flow."""
        self.board.ivr_left(call)
        if "_flush" not in self._tasks:
            # Not following yet (Redis away at start, no client so far): nobody reads
            # the changes, and a start sends everything, so they are not kept.
            self.board.changes()
        self._wake.set()

    def _on_ami(self, event: AmiEvent) -> None:
        now = self.clock()
        if isinstance(event, DialBegin):
            if event.caller is not None:
                self.board.caller_seen(event.caller.uniqueid, event.caller.caller_id_num)
        else:
            channel = (
                event.channel
                if isinstance(event, Hangup)
                else (ChannelSnapshot.from_message(event.raw))
            )
            if channel is None:
                return
            held = event.name.lower() == "hold"
            self.board.hold(channel.channel, channel.uniqueid, channel.endpoint, held, now)
        self._wake.set()

    def _waited(self, queue: str, seconds: float, outcome: str) -> None:
        self.metrics.queue_wait.labels(queue, outcome).observe(seconds)

    # ------------------------------------------------------------- batches

    async def _flusher(self) -> None:
        last = 0.0
        while True:
            await _until(self._wake, 0.5)
            pause = last + self.flush_every - time.monotonic()
            if pause > 0:  # a burst: gather what comes during the pause into one batch
                await asyncio.sleep(pause)
            self._wake.clear()
            last = time.monotonic()
            self.flush()

    def flush(self) -> Batch | None:
        """Turn what changed into the next batch (None: nothing did)."""
        now = self.clock()
        today = dt.date.fromtimestamp(now)
        if today != self._day:
            self._day = today
            self.board.new_day()
        self.board.set_queues(self.router.queues)
        self.board.settle(now)
        self._watch_ami()
        keys = self.board.changes()
        if not keys:
            return None
        ops = []
        for key in keys:
            record = self.board.record(key)
            was = self._sent.pop(key, None) if record is None else self._sent.get(key)
            if record is not None:
                self._sent[key] = record
            text = json.dumps([key[0], key[1], record], separators=(",", ":"))
            ops.append((key, record, text, was))
        self.seq += 1
        batch = Batch(self.seq, now, tuple(ops))
        self.history.append(batch)
        bell, self._bell = self._bell, asyncio.Event()
        bell.set()
        return batch

    def _watch_ami(self) -> None:
        up = self.ami is not None and self.ami.connected
        if self._ami_up and not up:
            self.metrics.ami_disconnects.inc()
        self._ami_up = up

    def after(self, seq: int) -> list[Batch] | None:
        """The batches after ``seq``; None when some of them are no longer kept."""
        if seq > self.seq:
            return None
        if seq == self.seq:
            return []
        if not self.history or self.history[0].seq > seq + 1:
            return None
        # The history's sequence numbers follow one another: the first wanted is at
        # a known place (from the end: the newest batches are the ones asked for).
        return list(itertools.islice(self.history, seq + 1 - self.history[0].seq, None))

    async def wait(self, seq: int, timeout: float) -> None:
        """Until a batch after ``seq`` exists, or ``timeout`` seconds."""
        if self.seq > seq:
            return
        await _until(self._bell, timeout)

    def snapshot(self, user: User) -> dict[str, Any]:
        """Everything ``user`` may see now, with the sequence number it is current at."""
        return fanout.snapshot(self, user)


async def _until(event: asyncio.Event, timeout: float) -> None:
    """Until ``event`` is set or ``timeout`` seconds pass. (Not ``asyncio.wait_for``:
    before Python 3.12 it can swallow a cancellation that comes as its wait ends,
    and a task that must stop would loop on.)"""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout):
            await event.wait()


def routes(
    router: RedisRouter,
    ami: AmiClient | None = None,
    *,
    user_of: UserOf | None = None,
    aggregator: Aggregator | None = None,
    metrics: Metrics | None = None,
    path: str = "/ws",
    recheck: float = 5.0,
    tick: float = 1.0,
) -> list[BaseRoute]:
    """The live-data WebSocket; one aggregator for the engine (made here unless given),
    started by the first client."""
    live = aggregator or Aggregator(router, ami, metrics=metrics)
    who = user_of or access.user_of

    async def endpoint(socket: WebSocket) -> None:
        try:
            user = await who(socket)
        except RoutingError:  # the sessions live in the routing store's Redis
            await socket.accept()
            await socket.close(1013, "the routing store does not answer; retrying")
            return
        await socket.accept()
        if user is None:
            await socket.close(4401, "log in first: /console/login")
            return
        try:
            await live.ensure_started()
        except RoutingError:
            await socket.close(1013, "the routing store does not answer; retrying")
            return
        live.metrics.websocket_clients.inc()
        try:
            await fanout.serve(socket, live, user, who, recheck=recheck, tick=tick)
        except WebSocketDisconnect:
            pass
        finally:
            live.metrics.websocket_clients.dec()

    return [WebSocketRoute(path, endpoint)]
