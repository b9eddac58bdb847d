"""One FastAGI connection as an ``asyncio.Protocol``: bytes in, bytes out.

The environment block is parsed synchronously as bytes arrive, so a peer
that sends garbage, closes early or never speaks costs no task at all. Once
the block is complete the server starts the call; the call's ``Channel``
then reads through :meth:`AgiConnection.read`. Using a protocol rather than
asyncio streams saves a coroutine and a buffer copy per command.

Each read is a ``recv`` of at most :data:`READ_SIZE` bytes (asyncio's
transport would ask for 256 KiB: until glibc has raised its mmap threshold,
which it does only once some large block is freed, each such read is an
``mmap``, ``mremap``, ``munmap`` and a page fault; 16 KiB comes from the heap in
any state of the allocator). A plain protocol, not a buffered one: reading
into a shared buffer cost two Python calls and a copy per read, about 24,000
instructions per call (callgrind, ``bench/README.md``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import cast

from ivr.agi.protocol import Environment, EnvironmentParser
from ivr.errors import AgiProtocolError

__all__ = ["AgiConnection"]

#: Bytes read from the socket at most at once (replies are far shorter).
#: Bytes asked of the socket per read: a reply line is far shorter; a longer
#: one (a variable's value) arrives in several reads, which the parsers join.
READ_SIZE = 16 * 1024


class AgiConnection(asyncio.Protocol):
    """Collects the environment, then hands bytes to whoever calls :meth:`read`."""

    def __init__(
        self,
        on_environment: Callable[[AgiConnection, Environment, bytes], None],
        on_drop: Callable[[AgiConnection, str], None],
        env_timeout: float,
        *,
        swept: bool = False,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        """``swept``: the server's sweeper ends a connection whose environment is late
        (:meth:`env_overdue`), not a timer of its own (one timer less per call).
        ``loop``: the running loop, when the caller knows it (asking costs a system
        call: CPython's get_running_loop checks the pid)."""
        self._on_environment = on_environment
        self._on_drop = on_drop
        self._env_timeout = env_timeout
        self._swept = swept
        #: When the environment must have arrived (the event loop's clock), if swept.
        self.env_deadline = 0.0
        self._env_parser: EnvironmentParser | None = EnvironmentParser()
        self._timer: asyncio.TimerHandle | None = None
        self._buffer: list[bytes] = []
        self._waiter: asyncio.Future[None] | None = None
        self._drain: asyncio.Future[None] | None = None
        self._closed = False
        #: Called when the call hangs up while nobody reads (the channel is idle),
        #: with how it showed: the ``HANGUP`` notice or the connection closing.
        self.on_idle_hangup: Callable[[str], None] | None = None
        self._tail = b""  # the unfinished last line, to see a HANGUP split across reads
        #: Called once the socket is up (the server refuses past its limit here).
        self.on_made: Callable[[], None] | None = None
        self.transport: asyncio.Transport | None = None
        self._peername: object = None
        self._loop: asyncio.AbstractEventLoop | None = loop

    @property
    def peer(self) -> str:
        """The peer's address, for logs (formatted only when asked for)."""
        return "" if self._peername is None else str(self._peername)

    # ------------------------------------------------------- asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport, not necessarily an asyncio.Transport subclass:
        # uvloop's TCPTransport is not one, so no isinstance check here.
        self.transport = cast(asyncio.Transport, transport)
        self._peername = transport.get_extra_info("peername")
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        if hasattr(transport, "max_size"):  # asyncio's: recv(max_size) per read
            transport.max_size = READ_SIZE
        if self._swept:
            self.env_deadline = loop.time() + self._env_timeout
        else:
            self._timer = loop.call_later(self._env_timeout, self._env_expired)
        if self.on_made is not None:
            self.on_made()

    def data_received(self, data: bytes) -> None:
        if self._env_parser is not None:
            self._take_environment(data)
            return
        self._buffer.append(data)
        tail = self._tail
        if self._waiter is None and self.on_idle_hangup is not None:
            seen = tail + data if tail else data
            if _has_notice(seen):
                # Asterisk announces a hang-up at once, even between commands; a
                # call waiting on something else (a queue) learns of it now.
                self.on_idle_hangup("HANGUP notice")
        # The unfinished last line, kept to see a HANGUP split across reads.
        if data.endswith(b"\n"):
            self._tail = b""
        else:
            self._tail = (tail + data).rpartition(b"\n")[2][-8:]
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def eof_received(self) -> bool:
        self._gone()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._gone()
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)
        # The call's channel holds this connection and this callback holds the
        # channel: let go, so that a call's objects are freed as soon as it ends
        # (by reference counting), not by the cycle collector much later.
        self.on_idle_hangup = None

    def pause_writing(self) -> None:
        self._drain = (self._loop or asyncio.get_running_loop()).create_future()

    def resume_writing(self) -> None:
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)
        self._drain = None

    # ----------------------------------------------------------- environment

    def _take_environment(self, data: bytes) -> None:
        assert self._env_parser is not None
        try:
            env = self._env_parser.feed(data)
        except AgiProtocolError as exc:
            self._drop(str(exc))
            return
        if env is None:
            return
        remainder = self._env_parser.remainder
        self._env_parser = None
        if self._timer is not None:
            self._timer.cancel()
        self._on_environment(self, env, remainder)

    def _env_expired(self) -> None:
        if self._env_parser is not None:
            self._drop(f"no environment within {self._env_timeout:g} s")

    def env_overdue(self, now: float) -> bool:
        """For the sweeper: end the connection if its environment is late (``now`` on the
        event loop's clock); True when it was ended."""
        if self._env_parser is None or not self.env_deadline or now < self.env_deadline:
            return False
        self._env_expired()
        return True

    def _drop(self, why: str) -> None:
        """Give up on this connection; a peer that is Asterisk takes its fallback."""
        self._env_parser = None
        if self._timer is not None:
            self._timer.cancel()
        self._on_drop(self, why)
        self.refuse()

    def refuse(self) -> None:
        """Send ``failure`` (AGISTATUS=FAILURE: the dialplan's fallback runs) and close."""
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(b"failure\n")
        self.close()

    def _gone(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._env_parser is not None:
            self._drop("closed before the environment ended")
        elif self._waiter is None and self.on_idle_hangup is not None:
            self.on_idle_hangup("connection closed")
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    # ------------------------------------------------------- Transport (I/O)

    async def read(self) -> bytes:
        """The bytes received since the last read; ``b""`` once the peer is gone."""
        while True:
            data = self.read_now()
            if isinstance(data, bytes):
                return data
            try:
                await data
            finally:
                self._waiter = None

    def read_now(self) -> bytes | asyncio.Future[None]:
        """:meth:`read` without a coroutine (a channel's every reply comes here): the
        bytes received, ``b""`` once the peer is gone, or, with nothing yet, a future
        to await before asking again. Whoever awaits it sets ``_waiter`` back to
        ``None`` when the wait ends in any way (:meth:`stop_waiting`)."""
        self._waiter = None
        buffer = self._buffer
        if buffer:
            data = b"".join(buffer) if len(buffer) > 1 else buffer[0]
            buffer.clear()
            return data
        if self._closed:
            return b""
        loop = self._loop or asyncio.get_running_loop()
        waiter = self._waiter = loop.create_future()
        return waiter

    def stop_waiting(self) -> None:
        """The wait on :meth:`read_now`'s future ended without data (cancelled): the
        connection is idle again (a hang-up now goes to ``on_idle_hangup``)."""
        self._waiter = None

    async def write(self, data: bytes) -> None:
        drain = self.write_now(data)
        if drain is not None:
            await drain

    def write_now(self, data: bytes) -> asyncio.Future[None] | None:
        """:meth:`write` without a coroutine (a channel's every command comes here):
        ``None`` once ``data`` is handed to the transport, or, while the transport's
        buffer is full, the future to await before writing more."""
        transport = self.transport
        if transport is None or transport.is_closing():
            raise ConnectionResetError("the connection to Asterisk is closed")
        transport.write(data)
        if self._drain is not None:
            # Shielded: one writer's cancellation must not fail the others.
            return asyncio.shield(self._drain)
        return None

    def close(self) -> None:
        """Close once what was written has been sent (Asterisk waits for this)."""
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()


def _has_notice(data: bytes) -> bool:
    """True when ``data`` holds a ``HANGUP`` line (no reply line is exactly that).

    ``data`` starts with the previous read's unfinished line, so a notice
    split across two reads is seen; a reply's tail ending in ``HANGUP`` is
    not a line of its own unless a newline precedes it.
    """
    return data.startswith(b"HANGUP\n") or b"\nHANGUP\n" in data
