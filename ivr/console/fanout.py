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
from dataclasses import dataclass, field
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
    """What changed at once. Each op is (key, record or None when it went, the op's
    JSON as sent, the record as it was before): a user who could see the record
    before and cannot now is sent ``null``, so nothing outside their sight ever
    reaches them, not even its key."""

    seq: int
    now: float
    ops: tuple[tuple[Key, dict[str, Any] | None, str, dict[str, Any] | None], ...]
    #: The delta per user, worked out for the first of their sockets and reused by
    #: the others (a wall of screens on one login).
    texts: dict[User, str] = field(default_factory=dict, compare=False, repr=False)

    def for_user(self, user: User, board: Board) -> str:
        """The delta ``user`` gets ("" when nothing in it is theirs)."""
        text = self.texts.get(user)
        if text is None:
            parts = []
            for key, record, op, was in self.ops:
                if record is not None and visible(user, key, record, board):
                    parts.append(op)
                elif was is not None and visible(user, key, was, board):
                    parts.append(json.dumps([key[0], key[1], None]))
            joined = ",".join(parts)
            text = self.texts[user] = (
                f'{{"type":"delta","seq":{self.seq},"now":{self.now!r},"ops":[{joined}]}}'
                if parts
                else ""
            )
        return text


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
    """One socket: its user, the last batch it was sent, and when it last heard."""

    def __init__(self, socket: WebSocket, user: User, feed: Feed) -> None:
        self.socket = socket
        self.user = user
        self.live = feed
        self.seq = 0
        self.sent = 0.0

    async def write(self, text: str) -> None:
        await self.socket.send_text(text)
        self.sent = time.monotonic()

    async def snapshot(self) -> None:
        body = snapshot(self.live, self.user)
        self.seq = body["seq"]
        await self.write(json.dumps(body, separators=(",", ":")))

    async def send(self, batches: Iterable[Batch]) -> None:
        """What of each batch this user may see, and ``null`` for what left their sight."""
        for batch in batches:
            text = batch.for_user(self.user, self.live.board)
            self.seq = batch.seq
            if text:
                await self.write(text)

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
        client.seq = resume
        await client.send(batches)
    await _follow(socket, client, who, recheck, tick)


async def _follow(
    socket: WebSocket, client: _Client, who: UserOf, recheck: float, tick: float
) -> None:
    """Deltas and ticks until the client goes (its listener then stops this task)."""
    serving = asyncio.current_task()
    assert serving is not None
    listener = asyncio.ensure_future(_until_closed(socket))

    def gone(_: object) -> None:
        serving.cancel("the client went")

    listener.add_done_callback(gone)
    live, checked = client.live, time.monotonic()
    try:
        while True:
            await live.wait(client.seq, tick)
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
    except asyncio.CancelledError:
        if not listener.done():
            raise  # the server is stopping
        serving.uncancel()
    finally:
        listener.remove_done_callback(gone)
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
