"""The routing calls of one engine written together on one connection (a single Redis).

Every routing decision is one FCALL. Sent one per pooled connection, each
costs the engine a packing of 40-odd arguments and a write, and Redis a read
and a write per client. Here the scripts that the engine's callers start in
the same turn of the event loop go out in one write on one connection, their
group's KEYS packed once, and come back in order (Redis runs them one after
another as it would have anyway: each script is atomic on its own).

Only the routing functions use it, only on a plain or Unix-socket Redis. A
reply that says the library is not loaded, or a connection that could not be
opened, sends the call the ordinary way (redis-py's FCALL, loading the library),
as if this path were not there. A connection lost once the script was written
sends it again that way too: Redis may have run it, and a second run changes
nothing (an enqueue is idempotent per call id, every transition per ticket;
``routing/ROUTING.md``).
"""

from __future__ import annotations

import asyncio
import collections
from typing import Any

from redis.asyncio.connection import Connection, ConnectionPool, UnixDomainSocketConnection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from routing.redis.scripts import missing

__all__ = ["FallbackError", "Pipe", "pipe_for"]


class FallbackError(Exception):
    """This path could not carry the call: send it the ordinary way."""


class _NotSentError(RedisConnectionError):
    """The batch never left: no connection could be opened for it."""


def _bulk(value: bytes) -> bytes:
    return b"$%d\r\n%s\r\n" % (len(value), value)


class Pipe:
    """One connection, written in batches and read in order by one reader."""

    def __init__(self, pool: ConnectionPool) -> None:
        self._pool = pool
        encoder = pool.get_encoder()  # type: ignore[no-untyped-call]
        self._encoding = encoder.encoding
        self._errors = encoder.encoding_errors
        self._encode = encoder.encode
        self._conn: Any = None
        self._buffer: list[bytes] = []
        self._queued: list[asyncio.Future[Any]] = []
        self._inflight: collections.deque[asyncio.Future[Any]] = collections.deque()
        self._flushing = False
        self._reader: asyncio.Task[None] | None = None
        self._more: asyncio.Event | None = None
        self._heads: dict[tuple[str, str], tuple[int, bytes]] = {}
        self._closed = False
        self._flusher: asyncio.Task[None] | None = None
        self._closing: set[asyncio.Future[Any]] = set()

    def head(self, function: str, group: str, keys: list[str]) -> tuple[int, bytes]:
        """FCALL, the function, the number of keys and the keys: packed once per group."""
        head = self._heads.get((function, group))
        if head is None:
            parts = [b"FCALL", function.encode(), str(len(keys)).encode()]
            parts += [self._encode(k) for k in keys]
            head = (len(parts), b"".join(_bulk(p) for p in parts))
            self._heads[(function, group)] = head
        return head

    def pack(self, function: str, group: str, keys: list[str], args: list[Any]) -> bytes:
        count, head = self.head(function, group, keys)
        encoding, errors = self._encoding, self._errors
        out = [b"*%d\r\n" % (count + len(args)), head]
        for value in args:
            if isinstance(value, str):
                data = value.encode(encoding, errors)
            elif isinstance(value, bytes):
                data = value
            else:
                data = self._encode(value)  # numbers as redis-py writes them; else DataError
            out.append(b"$%d\r\n" % len(data))
            out.append(data)
            out.append(b"\r\n")
        return b"".join(out)

    async def call(self, packed: bytes) -> Any:
        """Send one packed command with the others of this turn; its reply.

        A connection lost after the write means Redis may have run it: it is sent
        again the ordinary way, which is safe because a second run of any routing
        script changes nothing.
        """
        if self._closed:
            raise FallbackError
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._buffer.append(packed)
        self._queued.append(future)
        if not self._flushing:
            # A task of its own writes on the next turn: the callers ready in this
            # one join the write, and a caller cancelled meanwhile strands nobody.
            self._flushing = True
            self._flusher = asyncio.ensure_future(self._flush())
        try:
            return await future
        except (RedisConnectionError, OSError) as exc:
            raise FallbackError from exc
        except ResponseError as exc:
            if missing(exc):
                raise FallbackError from exc
            raise

    async def _flush(self) -> None:
        try:
            while self._buffer:
                data, futures = b"".join(self._buffer), self._queued
                self._buffer, self._queued = [], []
                try:
                    conn = await self._connection()
                except BaseException as exc:
                    for future in futures:
                        if not future.done():
                            future.set_exception(_NotSentError(f"pipe: {exc!r}"))
                    self._drop(exc)
                    if not isinstance(exc, Exception):
                        raise
                    continue
                try:
                    self._inflight.extend(futures)
                    assert self._more is not None
                    self._more.set()
                    # Written before its first pause: batches stay in order.
                    await conn.send_packed_command(data, check_health=False)
                except BaseException as exc:
                    for future in futures:
                        if not future.done():
                            future.set_exception(RedisConnectionError(f"pipe: {exc!r}"))
                    self._drop(exc)
                    if not isinstance(exc, Exception):
                        raise
        finally:
            self._flushing = False
            for future in self._queued:  # only when cancelled (closing): never sent
                if not future.done():
                    future.set_exception(_NotSentError("pipe: closed"))
            self._buffer, self._queued = [], []

    async def _connection(self) -> Any:
        if self._conn is None or not self._conn.is_connected:
            if self._conn is not None:
                self._drop(RedisConnectionError("pipe: connection lost"))
            conn = self._pool.connection_class(**self._pool.connection_kwargs)
            await conn.connect()  # type: ignore[no-untyped-call]
            self._conn = conn
            self._more = asyncio.Event()
            self._reader = asyncio.ensure_future(self._read(conn, self._more))
        return self._conn

    async def _read(self, conn: Any, more: asyncio.Event) -> None:
        inflight = self._inflight
        try:
            while True:
                # Always reading, also with nothing in flight: a Redis that restarts
                # while the pipe is idle is seen at once (EOF), so the next script goes
                # out on a new connection instead of into a dead one.
                try:
                    reply: Any = await conn.read_response(disconnect_on_error=False)
                except ResponseError as exc:
                    reply = exc
                if not inflight:  # RESP2 sends nothing unasked: out of step
                    if self._conn is conn:
                        self._drop(RedisConnectionError("pipe: a reply nobody asked for"))
                    return
                future = inflight.popleft()
                if future.done():
                    continue  # its caller went away
                if isinstance(reply, ResponseError):
                    future.set_exception(reply)
                else:
                    future.set_result(reply)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            if self._conn is conn:
                self._drop(exc)

    def _drop(self, exc: BaseException) -> None:
        """The connection is unusable: every reply still awaited is lost."""
        conn, self._conn = self._conn, None
        while self._inflight:
            future = self._inflight.popleft()
            if not future.done():
                future.set_exception(RedisConnectionError(f"pipe: {exc!r}"))
        reader, self._reader = self._reader, None
        if reader is not None and reader is not asyncio.current_task():
            reader.cancel()
        if conn is not None:
            closing = asyncio.ensure_future(conn.disconnect(nowait=True))
            self._closing.add(closing)
            closing.add_done_callback(self._closing.discard)

    async def aclose(self) -> None:
        self._closed = True
        if self._flusher is not None and not self._flusher.done():
            self._flusher.cancel()
        self._drop(RedisConnectionError("pipe: closed"))
        if self._closing:
            await asyncio.wait(self._closing, timeout=2.0)


def pipe_for(client: Any) -> Pipe | None:
    """A pipe for a plain redis-py asyncio client on TCP or a Unix socket, else None."""
    pool = getattr(client, "connection_pool", None)
    if type(pool) is not ConnectionPool:
        return None
    if pool.connection_class not in (Connection, UnixDomainSocketConnection):
        return None
    if pool.connection_kwargs.get("protocol") not in (None, 2, "2"):
        return None
    kwargs = pool.connection_kwargs
    if kwargs.get("socket_timeout") or kwargs.get("decode_responses"):
        return None
    return Pipe(pool)
