"""The FastAGI server: accepts Asterisk's connections and runs a handler per call.

It only moves bytes: the protocol lives in :mod:`ivr.agi.protocol`, command
logic in :class:`~ivr.agi.channel.Channel`. It routes by the script path of
``agi://host/<path>``, bounds concurrency, drains on shutdown, and always
closes the socket when a handler ends (Asterisk holds the channel until it
does). A call it cannot take gets the ``failure`` line, which ends the AGI
with ``AGISTATUS=FAILURE`` so that the dialplan's fallback (a plain queue or
voicemail) takes the caller instead of dropping them. FastAGI has no
authentication: bound beyond loopback, the server admits only the peers of
``IVR_AGI_ALLOW`` and closes any other connection before reading a byte
(:mod:`ivr.peers`).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import cast

import structlog

from ivr.agi.channel import ENGINE_HANGUP, Channel, Transport
from ivr.agi.connection import AgiConnection
from ivr.agi.protocol import Environment
from ivr.errors import AgiError, AgiProtocolError, ChannelHangup, ConfigError
from ivr.log import current_call, debug_enabled
from ivr.peers import Network, PeerFilter

__all__ = ["FastAgiServer", "Handler", "ServerStats"]

log = structlog.get_logger("ivr.agi.server")

Handler = Callable[[Channel], Awaitable[None]]
#: Sent instead of a command, it ends the AGI with AGISTATUS=FAILURE (res_agi.c).
FAILURE_LINE = b"failure\n"
_SWEEP_INTERVAL = 0.1


@dataclass(slots=True)
class ServerStats:
    """Counters since start; read by metrics and the benchmark."""

    accepted: int = 0
    completed: int = 0
    hangups: int = 0
    refused: int = 0
    dropped: int = 0
    errors: int = 0
    refusals: dict[str, int] = field(default_factory=dict)
    #: Connections from peers IVR_AGI_ALLOW does not admit, closed at once.
    peers_refused: int = 0


class FastAgiServer:
    """asyncio FastAGI server. ``async with FastAgiServer(...) as server:`` runs it."""

    def __init__(
        self,
        routes: Mapping[str, Handler] | None = None,
        *,
        default: Handler | None = None,
        host: str = "127.0.0.1",
        port: int = 4573,
        max_calls: int = 5000,
        command_timeout: float = 10.0,
        env_timeout: float = 5.0,
        hangup_grace: float = 5.0,
        allow: str | Sequence[Network] | None = None,
    ) -> None:
        """``allow``: the peers admitted when ``host`` is beyond loopback (CIDRs, as text or
        networks); ``None`` reads ``IVR_AGI_ALLOW`` from the environment."""
        if max_calls < 1:
            raise ConfigError(f"max_calls={max_calls}: must be at least 1")
        if command_timeout < 0 or env_timeout <= 0 or hangup_grace < 0:
            raise ConfigError("timeouts must be positive numbers of seconds")
        self.peers = PeerFilter("FastAGI", host, allow)
        self._routes: dict[str, Handler] = dict(routes or {})
        self._default = default
        self.host = host
        self._port = port
        self.max_calls = max_calls
        self.command_timeout = command_timeout
        self.env_timeout = env_timeout
        self.hangup_grace = hangup_grace
        self.stats = ServerStats()
        self._server: asyncio.Server | None = None
        self._sweeper: asyncio.Future[None] | None = None
        self._waiting: set[AgiConnection] = set()
        self._calls: set[asyncio.Task[None]] = set()
        self._channels: dict[asyncio.Task[None], Channel] = {}
        self._draining = False
        self._loop: asyncio.AbstractEventLoop | None = None

    # ------------------------------------------------------------ lifecycle

    def route(self, path: str, handler: Handler) -> None:
        """Send calls to ``agi://host/<path>`` to ``handler``."""
        self._routes[path.strip("/")] = handler

    @property
    def port(self) -> int:
        """The bound port (useful with ``port=0``)."""
        if self._server and self._server.sockets:
            return int(self._server.sockets[0].getsockname()[1])
        return self._port

    @property
    def active_calls(self) -> int:
        return len(self._channels)

    async def start(self) -> None:
        # Kept: asyncio.get_running_loop() is a getpid() system call (CPython checks
        # for a fork), once per call and command where it is asked for.
        loop = self._loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            self._connection, self.host, self._port, backlog=4096
        )
        self._sweeper = asyncio.ensure_future(self._sweep())
        log.info("agi.listening", host=self.host, port=self.port, max_calls=self.max_calls)

    async def __aenter__(self) -> FastAgiServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.drain(0)

    async def drain(self, timeout: float = 30.0) -> None:
        """Stop taking calls; let running calls finish for ``timeout`` s, then end them."""
        self._draining = True
        if self._server is not None:
            self._server.close()
        pending = set(self._calls)
        if pending and timeout > 0:
            log.info("agi.draining", calls=len(self._calls), timeout=timeout)
            _, pending = await asyncio.wait(pending, timeout=timeout)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending)
        for connection in list(self._waiting):
            connection.refuse()
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    # ---------------------------------------------------------- connections

    def _connection(self) -> asyncio.Protocol:
        if self.peers.open:
            return self._admitted()
        return _PeerGate(self)

    def _admitted(self) -> AgiConnection:
        self.stats.accepted += 1
        connection = AgiConnection(
            self._on_environment, self._on_drop, self.env_timeout, swept=True, loop=self._loop
        )
        if len(self._waiting) >= self.max_calls:
            # Connections that have not sent their environment hold sockets too.
            connection.on_made = connection.refuse
        self._waiting.add(connection)
        return connection

    def _turn_away(self, transport: asyncio.Transport, peername: object) -> None:
        """Close a peer that IVR_AGI_ALLOW does not admit: nothing read, nothing sent."""
        self.stats.peers_refused += 1
        self.peers.refuse(peername)
        transport.abort()

    def _on_drop(self, connection: AgiConnection, why: str) -> None:
        self._waiting.discard(connection)
        self.stats.dropped += 1
        log.warning("agi.dropped", peer=connection.peer, why=why)

    def _on_environment(self, connection: AgiConnection, env: Environment, rest: bytes) -> None:
        self._waiting.discard(connection)
        # A context of its own, empty: nothing of another call's log binding (the
        # structlog variables and ivr.log.current_call start unset; nothing to clear).
        loop = connection._loop or asyncio.get_running_loop()
        task = loop.create_task(self._call(connection, env, rest), context=contextvars.Context())
        self._calls.add(task)
        task.add_done_callback(self._calls.discard)

    async def _sweep(self) -> None:
        """Enforce every call's reply deadline and every new connection's environment
        deadline from one timer, not one per command or per connection."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(_SWEEP_INTERVAL)
            now = loop.time()
            try:
                self._sweep_once(now)
            except Exception:
                # Every deadline of the process hangs on this loop: report, go on.
                log.exception("agi.sweep_failed")

    def _sweep_once(self, now: float) -> None:
        for connection in [c for c in self._waiting if c.env_deadline <= now]:
            connection.env_overdue(now)
        for channel in list(self._channels.values()):
            waiting = channel.waiting_task
            if channel.deadline and now > channel.deadline and waiting and not channel.expired:
                channel.expired = True
                waiting.cancel()  # the task awaiting the reply, wherever it runs

    async def _refuse(self, transport: Transport, why: str, **context: object) -> None:
        self.stats.refused += 1
        self.stats.refusals[why] = self.stats.refusals.get(why, 0) + 1
        log.warning("agi.refused", why=why, **context)
        with contextlib.suppress(ConnectionError, OSError):
            await transport.write(FAILURE_LINE)

    async def _call(self, connection: AgiConnection, env: Environment, initial: bytes) -> None:
        """One call's task, from its environment to the connection's close. The handler
        runs in this frame, not in a coroutine of its own: every command's resumption
        passes through each frame of the chain of awaits."""
        current_call.set(env)  # its lines name the call's uniqueid and flow
        try:
            opened = await self._open(connection, env, initial)
            if opened is None:
                return
            handler, channel = opened
            task = asyncio.current_task(connection._loop)
            assert task is not None
            self._channels[task] = channel
            timers: list[asyncio.TimerHandle] = []
            loop = task.get_loop()
            # A handler that goes on long after its caller hung up is ended.
            channel.on_hangup = lambda: timers.append(
                loop.call_later(self.hangup_grace, task.cancel)
            )
            try:
                await handler(channel)
                # A flow that ends on the caller's hang-up returns normally: still a hang-up.
                if channel.hung_up and channel.hangup_how != ENGINE_HANGUP:
                    self.stats.hangups += 1
                else:
                    self.stats.completed += 1
            except ChannelHangup:
                self.stats.hangups += 1
                if debug_enabled():
                    log.debug("agi.call_ended", how=channel.hangup_how)
            except asyncio.CancelledError:
                if channel.hung_up and not self._draining:
                    # Our own grace timer: the caller is gone and the handler lingered.
                    task.uncancel()
                    self.stats.hangups += 1
                    log.warning("agi.handler_ignored_hangup", grace=self.hangup_grace)
                    return
                await self._fail_over(channel, "the engine stopped this call")
                raise
            except Exception as exc:
                await self._failed(channel, exc)
            finally:
                for timer in timers:
                    timer.cancel()
                del self._channels[task]
        finally:
            connection.close()

    async def _open(
        self, connection: AgiConnection, env: Environment, initial: bytes
    ) -> tuple[Handler, Channel] | None:
        """The call's handler and channel; ``None`` when the call is refused."""
        if self._draining:
            await self._refuse(connection, "shutting down")
            return None
        if len(self._channels) >= self.max_calls:
            await self._refuse(connection, "overloaded", limit=self.max_calls)
            return None
        handler = self._routes.get(env.script, self._default)
        if handler is None:
            await self._refuse(
                connection, "no route", script=env.script, known=sorted(self._routes)[:20]
            )
            return None
        try:
            channel = Channel(
                env,
                connection,
                command_timeout=self.command_timeout,
                initial=initial,
                swept=True,
                loop=connection._loop,
            )
        except AgiProtocolError as exc:
            await self._refuse(connection, "garbage after the environment", error=str(exc))
            return None
        connection.on_idle_hangup = channel._mark_hangup
        if debug_enabled():
            log.debug("agi.call", channel=env.channel, callerid=env.callerid)
        return handler, channel

    async def _failed(self, channel: Channel, exc: Exception) -> None:
        """A handler ended on an error: count it, log it, hand the caller back."""
        self.stats.errors += 1
        if isinstance(exc, AgiError):
            # An AGI failure is an outcome, not a bug: no traceback.
            log.error("agi.call_failed", error=str(exc), command=exc.command)
            await self._fail_over(channel, str(exc))
        else:
            log.exception("agi.handler_crashed")  # called while exc is handled
            await self._fail_over(channel, "handler crashed")

    async def _fail_over(self, channel: Channel, why: str) -> None:
        """Hand a live caller back to the dialplan's fallback with AGISTATUS=FAILURE."""
        if channel.hung_up:
            return
        log.warning("agi.fallback", why=why)
        with contextlib.suppress(ConnectionError, OSError):
            await channel.send_failure()


class _PeerGate(asyncio.Protocol):
    """A new connection's first protocol when the server is bound beyond loopback: it looks
    at the peer once, then either closes the socket or hands it to an
    :class:`AgiConnection` (``set_protocol``), which then gets every byte directly."""

    def __init__(self, server: FastAgiServer) -> None:
        self._server = server

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport, not necessarily an asyncio.Transport subclass (uvloop's
        # TCPTransport is not one): no isinstance check.
        transport = cast(asyncio.Transport, transport)
        peername = transport.get_extra_info("peername")
        if not self._server.peers.admits(peername):
            self._server._turn_away(transport, peername)
            return
        connection = self._server._admitted()
        transport.set_protocol(connection)
        connection.connection_made(transport)
