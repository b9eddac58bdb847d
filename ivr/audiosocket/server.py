"""The engine's AudioSocket server: one session per ``EXEC AudioSocket``.

The engine registers a session (:meth:`AudioSocketServer.expect`) before it
sends ``EXEC AudioSocket <uuid>,<host:port>`` over AGI; the connection whose
first frame carries that UUID is attached to it. A session streams prompt
audio to the caller in real time (Asterisk writes what it receives straight
to the channel, so the pace is ours) and silence between prompts (Asterisk
ends a session after 2 s with no frame either way, and a phone with silence
suppression sends none while its caller is quiet), yields the caller's audio
and keys as events, and ends with a hang-up frame (the AGI ``EXEC`` then
returns 0). Transport only: what the audio means is the consumer's business.
Bound beyond loopback, it admits only the peers of ``IVR_AGI_ALLOW``
(:mod:`ivr.peers`): anyone else could speak into a caller's recognition.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Sequence
from typing import Final, Literal

import structlog

from ivr.audiosocket.protocol import AudioSocketError, Frame, FrameParser, Kind
from ivr.audiosocket.session import (
    Audio,
    AudioSocketClosed,
    AudioSocketSession,
    AudioSocketTimeout,
    Dtmf,
    EndReason,
    Event,
    PlaybackResult,
)
from ivr.errors import ConfigError
from ivr.peers import Network, PeerFilter

__all__ = [
    "Audio",
    "AudioSocketClosed",
    "AudioSocketServer",
    "AudioSocketSession",
    "AudioSocketTimeout",
    "Dtmf",
    "EndReason",
    "Event",
    "PlaybackResult",
]

log = structlog.get_logger("ivr.audiosocket.server")

#: Largest frame Asterisk sends: 20 ms of slin192 is 7680 bytes.
_MAX_PAYLOAD: Final = 8192


class AudioSocketServer:
    """Accepts Asterisk's AudioSocket connections and hands them to expected sessions.

    ``async with AudioSocketServer(port=0) as server:`` runs it;
    :attr:`address` is what goes into ``EXEC AudioSocket <uuid>,<address>``.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 9092,
        *,
        connect_timeout: float = 5.0,
        uuid_timeout: float = 2.0,
        max_queued: int = 250,
        overflow: Literal["block", "drop"] = "block",
        close_grace: float = 1.0,
        keepalive: bool = True,
        allow: str | Sequence[Network] | None = None,
    ) -> None:
        """``allow``: the peers admitted when ``host`` is beyond loopback (CIDRs, as text or
        networks); ``None`` reads ``IVR_AGI_ALLOW`` from the environment."""
        if max_queued < 1:
            raise ConfigError(f"max_queued={max_queued}: must be at least 1 event")
        if overflow not in ("block", "drop"):
            raise ConfigError(f"overflow={overflow!r}: use 'block' or 'drop'")
        if connect_timeout <= 0 or uuid_timeout <= 0 or close_grace < 0:
            raise ConfigError("AudioSocket timeouts must be positive numbers of seconds")
        self.peers = PeerFilter("AudioSocket", host, allow)
        self.host = host
        self._port = port
        self.connect_timeout = connect_timeout
        self.uuid_timeout = uuid_timeout
        self.max_queued = max_queued
        self.overflow: Literal["block", "drop"] = overflow
        self.close_grace = close_grace
        #: Sessions send silence whenever no prompt plays (app_audiosocket's 2 s timeout).
        self.keepalive = keepalive
        self._server: asyncio.Server | None = None
        self._expected: dict[uuid.UUID, AudioSocketSession] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def port(self) -> int:
        """The bound port (useful with ``port=0``)."""
        if self._server and self._server.sockets:
            return int(self._server.sockets[0].getsockname()[1])
        return self._port

    @property
    def address(self) -> str:
        """``host:port`` as AudioSocket() takes it (IPv6 in brackets)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._on_connect, self.host, self._port)
        log.info("audiosocket.listening", host=self.host, port=self.port)

    async def __aenter__(self) -> AudioSocketServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Stop listening and end every session."""
        if self._server is not None:
            self._server.close()
        for session in list(self._expected.values()):
            session._end(EndReason.SHUTDOWN)
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    def expect(
        self, call_id: uuid.UUID | str, *, timeout: float | None = None
    ) -> AudioSocketSession:
        """Register the session Asterisk will connect for; it times out unconnected.

        Call it before sending ``EXEC AudioSocket``, so the connection
        always finds its session.
        """
        key = call_id if isinstance(call_id, uuid.UUID) else uuid.UUID(call_id)
        if key in self._expected:
            raise ConfigError(f"AudioSocket session {key} is already expected; use a fresh UUID")
        session = AudioSocketSession(
            key,
            max_queued=self.max_queued,
            overflow=self.overflow,
            close_grace=self.close_grace,
            forget=self._forget,
            keepalive=self.keepalive,
        )
        self._expected[key] = session
        loop = asyncio.get_running_loop()
        session._timer = loop.call_later(
            self.connect_timeout if timeout is None else timeout,
            self._time_out,
            session,
        )
        return session

    def _time_out(self, session: AudioSocketSession) -> None:
        if not session._connected.is_set():
            log.warning("audiosocket.no_connection", uuid=str(session.uuid))
            session._end(EndReason.TIMEOUT)

    def _forget(self, session: AudioSocketSession) -> None:
        if self._expected.get(session.uuid) is session:
            del self._expected[session.uuid]

    @property
    def sessions(self) -> int:
        """Sessions expected or running."""
        return len(self._expected)

    async def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peername = writer.get_extra_info("peername")
        if not self.peers.admits(peername):
            self.peers.refuse(peername)
            writer.transport.abort()  # nothing read, nothing sent
            return
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        peer = writer.get_extra_info("peername")
        try:
            await self._serve(reader, writer, str(peer))
        except asyncio.CancelledError:
            pass
        finally:
            self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(ConnectionError, OSError, asyncio.CancelledError):
                await writer.wait_closed()

    async def _serve(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: str
    ) -> None:
        parser = FrameParser(max_payload=_MAX_PAYLOAD)
        try:
            first, rest = await asyncio.wait_for(_first_frame(reader, parser), self.uuid_timeout)
        except TimeoutError:
            log.warning("audiosocket.no_uuid", peer=peer, waited=self.uuid_timeout)
            return
        except AudioSocketError as error:
            log.warning("audiosocket.bad_start", peer=peer, error=str(error))
            return
        if first is None:
            return  # closed before saying anything (Asterisk: channel not answered)
        if first.kind != Kind.UUID or len(first.payload) != 16:
            log.warning(
                "audiosocket.bad_start", peer=peer, kind=first.kind, length=len(first.payload)
            )
            return
        session = self._expected.get(first.uuid)
        if session is None or session._connected.is_set():
            log.warning("audiosocket.unknown_uuid", peer=peer, uuid=str(first.uuid))
            return
        session._attach(writer)
        log.info("audiosocket.connected", peer=peer, uuid=str(session.uuid))
        await session._pump(reader, parser, rest)
        log.info("audiosocket.ended", uuid=str(session.uuid), reason=str(session.end_reason))


async def _first_frame(
    reader: asyncio.StreamReader, parser: FrameParser
) -> tuple[Frame | None, list[Frame]]:
    """The connection's first frame and any that came with it; ``None`` on EOF."""
    while True:
        data = await reader.read(4096)
        if not data:
            return None, []
        frames = parser.feed(data)
        if frames:
            return frames[0], frames[1:]
