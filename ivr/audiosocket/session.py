"""One AudioSocket session: the caller's events in, paced prompt audio out.

An :class:`AudioSocketSession` is what :meth:`AudioSocketServer.expect
<ivr.audiosocket.server.AudioSocketServer.expect>` returns. Asterisk writes
the audio it receives straight to the channel, with no buffer, so the pace
is ours: one 320-byte frame per 20 ms on a monotonic schedule, stoppable
within one frame period (barge-in). Whenever no prompt is playing the
session sends silence on the same schedule (``keepalive``): a phone with
silence suppression sends nothing while its caller is quiet, and
app_audiosocket ends the session after 2 s with no frame either way. The
caller's audio and keys queue as events, bounded; the session ends with our
hang-up frame, Asterisk closing the socket, or bad bytes.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import enum
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Literal

import structlog

from ivr.audiosocket.protocol import (
    FRAME_BYTES,
    AudioSocketError,
    Frame,
    FrameParser,
    Kind,
    encode_frame,
    is_audio,
)
from ivr.errors import IvrError

__all__ = [
    "FRAME_SECONDS",
    "Audio",
    "AudioSocketClosed",
    "AudioSocketSession",
    "AudioSocketTimeout",
    "Dtmf",
    "EndReason",
    "Event",
    "PlaybackResult",
]

log = structlog.get_logger("ivr.audiosocket.session")

#: 20 ms: the time one 320-byte frame of 8 kHz signed linear lasts.
FRAME_SECONDS: Final = 0.02
#: A playback this late (a stalled loop) restarts its schedule instead of bursting.
_STALL: Final = 0.1
_DIGITS: Final = frozenset("0123456789*#ABCD")
_SILENCE: Final = bytes(FRAME_BYTES)


class AudioSocketTimeout(IvrError, TimeoutError):  # noqa: N818 - reads like TimeoutError
    """Asterisk did not connect for the expected session in time."""


class AudioSocketClosed(IvrError, ConnectionError):  # noqa: N818 - a ConnectionError
    """The session has ended; start a new one for more audio."""


class EndReason(enum.StrEnum):
    """Why a session ended."""

    CALLER = "caller"  # Asterisk closed the socket: the caller hung up or the app ended
    SERVER = "server"  # we sent the hang-up frame
    ERROR = "error"  # Asterisk sent an error frame
    PROTOCOL = "protocol"  # bytes that are not AudioSocket frames
    TIMEOUT = "timeout"  # nobody connected for the session in time
    SHUTDOWN = "shutdown"  # the server closed


@dataclass(frozen=True, slots=True)
class Audio:
    """A frame of the caller's audio (``kind`` 0x10: 8 kHz signed linear, little-endian)."""

    pcm: bytes
    kind: int = Kind.AUDIO


@dataclass(frozen=True, slots=True)
class Dtmf:
    """A key the caller pressed."""

    digit: str


Event = Audio | Dtmf


@dataclass(frozen=True, slots=True)
class PlaybackResult:
    """How far a :meth:`AudioSocketSession.play` got."""

    frames: int  # frames sent
    total: int  # frames the audio holds

    @property
    def completed(self) -> bool:
        return self.frames == self.total


def _frames(pcm: bytes) -> list[bytes]:
    """20 ms frames of ``pcm``, the last one padded with silence."""
    frames = [pcm[i : i + FRAME_BYTES] for i in range(0, len(pcm), FRAME_BYTES)]
    if frames and len(frames[-1]) < FRAME_BYTES:
        frames[-1] = frames[-1].ljust(FRAME_BYTES, b"\0")
    return frames


class AudioSocketSession:
    """One call's AudioSocket stream, from :meth:`AudioSocketServer.expect`.

    Iterate it (``async for event in session``) for the caller's
    :class:`Audio` and :class:`Dtmf`; the iteration ends when the session
    does (:attr:`end_reason` says why). At most ``max_queued`` events wait
    for the consumer: beyond that the session stops reading the socket
    (``overflow="block"``, TCP pushes back to Asterisk; the frames of the
    last 4 KiB read still queue, so the bound is ``max_queued`` plus one
    read) or drops the oldest audio frame (``overflow="drop"``, counted in
    :attr:`dropped`; keys are kept).
    """

    def __init__(
        self,
        call_id: uuid.UUID,
        *,
        max_queued: int,
        overflow: Literal["block", "drop"],
        close_grace: float,
        forget: Callable[[AudioSocketSession], None],
        keepalive: bool = True,
    ) -> None:
        self.uuid = call_id
        #: Send silence while no prompt plays, so Asterisk never times the session out.
        self.keepalive = keepalive
        self.max_queued = max_queued
        self.overflow = overflow
        self.close_grace = close_grace
        self.end_reason: EndReason | None = None
        #: Audio frames dropped because the consumer fell behind (``overflow="drop"``).
        self.dropped = 0
        #: Prompt frames written to Asterisk.
        self.frames_sent = 0
        #: Silence frames written to Asterisk between prompts (``keepalive``).
        self.silence_sent = 0
        #: Loop time of the caller's last audio frame (None before the first).
        self.last_audio: float | None = None
        self._forget = forget
        self._events: collections.deque[Event] = collections.deque()
        self._readable = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self._connected = asyncio.Event()
        self._ended = asyncio.Event()
        self._peer_gone = asyncio.Event()
        self._writer: asyncio.StreamWriter | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._playing: asyncio.Event | None = None  # set = stop requested
        self._idle = asyncio.Event()  # set = no prompt playing
        self._idle.set()
        self._wake: asyncio.Future[None] | None = None
        self._next_slot = 0.0
        self._filler: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        state = self.end_reason or ("connected" if self.connected else "expected")
        return f"<AudioSocketSession {self.uuid} {state}>"

    # ------------------------------------------------------------ state

    @property
    def connected(self) -> bool:
        return self._connected.is_set() and self.end_reason is None

    @property
    def ended(self) -> bool:
        return self.end_reason is not None

    @property
    def playing(self) -> bool:
        return self._playing is not None and not self._playing.is_set()

    async def wait_connected(self, timeout: float | None = None) -> None:
        """Wait until Asterisk has connected; raise if the session ended first."""
        waiters = {
            asyncio.ensure_future(self._connected.wait()),
            asyncio.ensure_future(self._ended.wait()),
        }
        try:
            done, _ = await asyncio.wait(
                waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            for waiter in waiters:
                waiter.cancel()
        if self._connected.is_set():
            return
        if self.end_reason is EndReason.TIMEOUT or not done:
            raise AudioSocketTimeout(
                f"Asterisk did not connect for AudioSocket session {self.uuid}; check that "
                "app_audiosocket is loaded and the channel is answered before EXEC AudioSocket"
            )
        raise AudioSocketClosed(f"AudioSocket session {self.uuid} ended ({self.end_reason})")

    async def wait_closed(self) -> EndReason:
        """Wait for the session to end; return why."""
        await self._ended.wait()
        assert self.end_reason is not None
        return self.end_reason

    # ------------------------------------------------------------ events

    def __aiter__(self) -> AudioSocketSession:
        return self

    async def __anext__(self) -> Event:
        while not self._events:
            if self.ended:
                raise StopAsyncIteration
            self._readable.clear()
            await self._readable.wait()
        event = self._events.popleft()
        if len(self._events) < self.max_queued:
            self._room.set()
        return event

    def _push(self, event: Event) -> None:
        if self.overflow == "drop" and len(self._events) >= self.max_queued:
            victim = next((e for e in self._events if isinstance(e, Audio)), None)
            if victim is not None:
                self._events.remove(victim)
            else:
                self._events.popleft()
            self.dropped += 1
        self._events.append(event)
        self._readable.set()
        if self.overflow == "block" and len(self._events) >= self.max_queued:
            self._room.clear()

    # ------------------------------------------------------------ playback

    async def play(self, pcm: bytes) -> PlaybackResult:
        """Stream ``pcm`` (8 kHz signed linear) to the caller, one frame per 20 ms.

        Frames go out on a fixed monotonic schedule (frame ``n`` at
        ``start + n * 20 ms``), so sleeping late on one frame does not delay
        the rest. Returns when the audio is sent, :meth:`stop_playback` is
        called, another ``play`` starts, or the session ends.
        """
        await self.wait_connected()
        self.stop_playback()
        frames = _frames(pcm)
        stop = asyncio.Event()
        self._playing = stop
        self._idle.clear()
        loop = asyncio.get_running_loop()
        # Never faster than real time, also across prompts: a new prompt's
        # first frame waits for the slot after the last frame written.
        start = max(loop.time(), self._next_slot)
        sent = 0
        try:
            for index, frame in enumerate(frames):
                deadline = start + index * FRAME_SECONDS
                late = loop.time() - deadline
                if late > _STALL:
                    # Catching up would burst frames Asterisk plays at once.
                    log.warning("audiosocket.playback_stalled", uuid=str(self.uuid), late=late)
                    start += late
                    deadline += late
                elif late < 0:
                    await self._sleep_until(deadline, stop)
                if stop.is_set() or not self.connected or self._writer is None:
                    break
                self._next_slot = deadline + FRAME_SECONDS
                if not await self._write(frame):
                    break
                sent += 1
                self.frames_sent += 1
        finally:
            stop.set()
            if self._playing is stop:
                self._playing = None
                self._idle.set()
        return PlaybackResult(sent, len(frames))

    async def _write(self, frame: bytes) -> bool:
        """Write one audio frame; False when the connection is gone."""
        if self._writer is None:
            return False
        try:
            self._writer.write(encode_frame(Kind.AUDIO, frame))
            await self._writer.drain()
        except (ConnectionError, OSError):
            self._end(EndReason.CALLER)
            return False
        return True

    async def _fill(self) -> None:
        """Silence on the prompt's schedule whenever no prompt plays (``keepalive``).

        One frame per 20 ms slot, never two in one slot: a prompt that starts
        takes the next free slot, and the silence resumes after its last
        frame. A late wake-up (a stalled loop) sends one frame, not a burst.
        """
        loop = asyncio.get_running_loop()
        while self.connected:
            if not self._idle.is_set():
                await self._idle.wait()
                continue
            slot = max(self._next_slot, loop.time())
            delay = slot - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            if not self._idle.is_set() or not self.connected:
                continue  # a prompt took this slot, or the session ended
            self._next_slot = max(slot, loop.time() - _STALL) + FRAME_SECONDS
            if not await self._write(_SILENCE):
                return
            self.silence_sent += 1

    async def _sleep_until(self, deadline: float, stop: asyncio.Event) -> None:
        # A future woken by the timer or by stop_playback: no task per frame.
        loop = asyncio.get_running_loop()
        wake: asyncio.Future[None] = loop.create_future()
        self._wake = wake
        handle = loop.call_at(deadline, _resolve, wake)
        try:
            if not stop.is_set():
                await wake
        finally:
            handle.cancel()
            self._wake = None

    def stop_playback(self) -> None:
        """Stop the prompt now (barge-in): no frame is written after this call."""
        if self._playing is not None:
            self._playing.set()
        if self._wake is not None:
            _resolve(self._wake)

    # ------------------------------------------------------------ ending

    async def hangup(self) -> None:
        """Send the hang-up frame and close; AudioSocket() then returns 0.

        The socket is half-closed and read until Asterisk closes its end (at
        most ``close_grace`` seconds): closing with unread voice frames would
        reset the connection, and a reset during a write makes the app
        return -1.
        """
        self.stop_playback()
        writer = self._writer
        if writer is None or self.ended:
            self._end(EndReason.SERVER)
            return
        self._end(EndReason.SERVER)
        with contextlib.suppress(ConnectionError, OSError):
            writer.write(encode_frame(Kind.HANGUP))
            if writer.can_write_eof():
                writer.write_eof()
            await writer.drain()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._peer_gone.wait(), self.close_grace)
        writer.close()

    def _end(self, reason: EndReason) -> None:
        if self.end_reason is not None:
            return
        self.end_reason = reason
        self.stop_playback()
        if self._filler is not None:
            self._filler.cancel()
        if self._timer is not None:
            self._timer.cancel()
        self._ended.set()
        self._readable.set()
        self._room.set()
        self._forget(self)
        if reason is not EndReason.SERVER and self._writer is not None:
            self._writer.close()

    # ------------------------------------------------------------ connection

    def _attach(self, writer: asyncio.StreamWriter) -> None:
        self._writer = writer
        if self._timer is not None:
            self._timer.cancel()
        # Keep little in user space: what is written is what Asterisk plays next.
        writer.transport.set_write_buffer_limits(high=4 * (FRAME_BYTES + 3))
        self._connected.set()
        if self.keepalive:
            self._filler = asyncio.ensure_future(self._fill())

    async def _pump(
        self, reader: asyncio.StreamReader, parser: FrameParser, first: list[Frame]
    ) -> None:
        """Read frames until the socket closes; queue the caller's audio and keys."""
        try:
            self._take(first)
            if parser.pending >= 3:
                self._take(parser.feed(b""))  # raises for bad bytes after good frames
            while not self._peer_gone.is_set():
                await self._room.wait()
                data = await reader.read(4096)
                if not data:
                    parser.eof()
                    break
                self._take(parser.feed(data))
                if parser.pending >= 3:
                    self._take(parser.feed(b""))  # raises for bad bytes after good frames
        except AudioSocketError as error:
            log.warning("audiosocket.bad_frames", uuid=str(self.uuid), error=str(error))
            self._end(EndReason.PROTOCOL)
        except (ConnectionError, OSError):
            pass
        finally:
            self._peer_gone.set()
            self._end(EndReason.CALLER)

    def _take(self, frames: list[Frame]) -> None:
        for frame in frames:
            if self.ended:
                return  # after our hang-up frame: Asterisk's last frames are moot
            if is_audio(frame.kind):
                if frame.payload:
                    self.last_audio = asyncio.get_running_loop().time()
                    self._push(Audio(frame.payload, frame.kind))
            elif frame.kind == Kind.DTMF:
                digit = frame.payload[:1].decode("ascii", "replace")
                if len(frame.payload) == 1 and digit in _DIGITS:
                    self._push(Dtmf(digit))
                else:
                    log.warning(
                        "audiosocket.bad_dtmf",
                        uuid=str(self.uuid),
                        payload=frame.payload[:16].hex(),
                    )
            elif frame.kind == Kind.HANGUP:
                self._end(EndReason.CALLER)
            elif frame.kind == Kind.ERROR:
                log.warning(
                    "audiosocket.error_frame", uuid=str(self.uuid), payload=frame.payload[:16].hex()
                )
                self._end(EndReason.ERROR)
            else:  # a second UUID
                raise AudioSocketError(f"unexpected frame of kind 0x{frame.kind:02x} mid-session")


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
