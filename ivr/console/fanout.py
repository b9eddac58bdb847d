"""The live data's WebSocket side: what each user may see, and one socket's loop.

:func:`visible` is the rule every record passes, in a snapshot and in each
delta, for the user as they are at that moment; :func:`serve` runs one socket
(a snapshot or a resume, then deltas and ticks, the session looked up again
every ``recheck`` seconds). The protocol is in :mod:`ivr.console.live`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Protocol

from starlette.requests import HTTPConnection
from starlette.websockets import WebSocket, WebSocketDisconnect

from ivr.console.board import Board, Key, Kind
from ivr.console.roles import User
from routing.errors import RoutingError

__all__ = ["Batch", "Feed", "UserOf", "serve", "snapshot", "visible"]

UserOf = Callable[[HTTPConnection], Awaitable[User | None]]
_KINDS: Final[tuple[Kind, ...]] = ("agent", "queue", "call", "alert")


@dataclass(frozen=True, slots=True)
class Batch:
    """What changed at once: ``ops`` are (key, record or None, its JSON as sent)."""

    seq: int
    now: float
    ops: tuple[tuple[Key, dict[str, Any] | None, str], ...]


def visible(user: User, key: Key, record: Mapping[str, Any], board: Board) -> bool:
    """May ``user`` see this record? The rules of :mod:`ivr.console.roles`: an admin
    sees all; an agent their own agent, the queues they serve (within their scope)
    and those queues' waiting calls and their own call; others what their scope
    holds (a call or alert with an agent only when that agent is theirs too)."""
    kind = key[0]
    if kind == "agent":
        row: dict[str, Any] = {"id": record["id"], "site": record["site"]}
        if record["team"]:
            row["skills"] = {f"team.{record['team']}": 1}
        return user.sees(row, record["queues"])
    if kind == "queue":
        name = record["name"]
        return name in _mine(user, board) if user.role == "agent" else user.sees_queue(name)
    return _sees_call(user, record.get("agent", ""), record.get("queue", ""), board)


def _sees_call(user: User, agent: str, queue: str, board: Board) -> bool:
    """A call's or an alert's record: by its queue and its agent."""
    if user.role == "admin":
        return True
    if user.role == "agent":
        mine = agent == user.agent_id and user.agent_id is not None
        return mine or (not agent and queue in _mine(user, board))
    if not queue:  # in the IVR, no queue yet: only for a scope of everything
        return not (user.scope.queues or user.scope.sites)
    if not user.sees_queue(queue):
        return False
    return not agent or visible(user, ("agent", agent), _agent(board, agent), board)


def _mine(user: User, board: Board) -> set[str]:
    return {q for q in board.queues_of(user.agent_id) if user.sees_queue(q)}


def _agent(board: Board, agent_id: str) -> dict[str, Any]:
    return board.record(("agent", agent_id)) or {
        "id": agent_id,
        "site": "",
        "team": "",
        "queues": [],
    }


class Feed(Protocol):
    """What a socket reads from (the aggregator)."""

    board: Board
    epoch: str
    seq: int

    def clock(self) -> float: ...
    def after(self, seq: int) -> list[Batch] | None: ...
    async def wait(self, seq: int, timeout: float) -> None: ...


def snapshot(feed: Feed, user: User) -> dict[str, Any]:
    """Everything ``user`` may see now, with the sequence number it is current at."""
    out: dict[str, Any] = {
        "type": "snapshot",
        "epoch": feed.epoch,
        "seq": feed.seq,
        "now": feed.clock(),
        "user": {"name": user.name, "role": user.role, "agent": user.agent_id},
        **{f"{kind}s": {} for kind in _KINDS},
    }
    for key in feed.board.all_keys():
        record = feed.board.record(key)
        if record is not None and visible(user, key, record, feed.board):
            out[f"{key[0]}s"][key[1]] = record
    return out


class _Client:
    """One socket: what it was sent (to say when a record leaves its sight), and when."""

    def __init__(self, socket: WebSocket, user: User, feed: Feed) -> None:
        self.socket = socket
        self.user = user
        self.live = feed
        self.seen: set[Key] = set()
        self.seq = 0
        self.sent = 0.0

    async def write(self, text: str) -> None:
        await self.socket.send_text(text)
        self.sent = time.monotonic()

    async def snapshot(self) -> None:
        body = snapshot(self.live, self.user)
        self.seq = body["seq"]
        self.seen = {(kind, name) for kind in _KINDS for name in body[f"{kind}s"]}
        await self.write(json.dumps(body, separators=(",", ":")))

    async def send(self, batches: Iterable[Batch]) -> None:
        """The batches' records this user may see, and ``null`` for those that left."""
        for batch in batches:
            parts = []
            for key, record, text in batch.ops:
                if record is not None and visible(self.user, key, record, self.live.board):
                    self.seen.add(key)
                    parts.append(text)
                elif key in self.seen:
                    self.seen.discard(key)
                    parts.append(json.dumps([key[0], key[1], None]))
            self.seq = batch.seq
            if parts:
                head = f'{{"type":"delta","seq":{batch.seq},"now":{batch.now!r},"ops":['
                await self.write(head + ",".join(parts) + "]}")

    async def tick(self) -> None:
        now = self.live.clock()
        await self.write(f'{{"type":"tick","seq":{self.seq},"now":{now!r}}}')


async def serve(
    socket: WebSocket, feed: Feed, user: User, who: UserOf, *, recheck: float, tick: float
) -> None:
    """One accepted socket until it closes: a snapshot (or the batches after the
    client's ``?epoch=&since=``), then deltas, a tick each ``tick`` seconds without
    one, and the user looked up again every ``recheck`` seconds (gone: 4401)."""
    live, client = feed, _Client(socket, user, feed)
    resume = _resume_point(socket, live)
    batches = live.after(resume) if resume is not None else None
    if resume is None or batches is None:
        await client.snapshot()
    else:
        client.seen = set(live.board.all_keys())  # all it may hold: say what left its sight
        client.seq = resume
        await client.send(batches)
    listener = asyncio.ensure_future(_until_closed(socket))
    checked = time.monotonic()
    try:
        while True:
            waiter = asyncio.ensure_future(live.wait(client.seq, tick))
            await asyncio.wait({listener, waiter}, return_when=asyncio.FIRST_COMPLETED)
            if listener.done():
                waiter.cancel()
                return
            if time.monotonic() - checked >= recheck:
                checked = time.monotonic()
                try:
                    now = await _again(socket, who)
                except RoutingError:
                    continue  # the session cannot be checked now: keep the last answer
                if now is None:
                    await socket.close(4401, "the session ended: log in again")
                    return
                if now != client.user:  # another role or scope: start afresh
                    client.user = now
                    await client.snapshot()
                    continue
            batches = live.after(client.seq)
            if batches is None:  # fell behind what is kept
                await client.snapshot()
            elif batches:
                await client.send(batches)
            if time.monotonic() - client.sent >= tick:
                await client.tick()
    finally:
        listener.cancel()


def _resume_point(socket: WebSocket, live: Feed) -> int | None:
    params = socket.query_params
    since = params.get("since", "")
    if params.get("epoch") != live.epoch or not since.isdigit():
        return None
    return int(since)


async def _again(socket: WebSocket, who: UserOf) -> User | None:
    """The socket's user looked up again (``user_of`` keeps its answer on the connection
    for one request; a socket lives longer)."""
    with contextlib.suppress(AttributeError, KeyError):
        del socket.state.user
    return await who(socket)


async def _until_closed(socket: WebSocket) -> None:
    """Read (and ignore) what the client sends, until it goes."""
    with contextlib.suppress(WebSocketDisconnect):
        while True:
            message = await socket.receive()
            if message["type"] == "websocket.disconnect":
                return
