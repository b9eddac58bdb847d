"""The emulated ``AudioSocket`` application: Asterisk's side of app_audiosocket.

It returns what ``audiosocket_exec`` returns (apps/app_audiosocket.c): -1
for a missing or malformed UUID, a server it cannot reach, a channel that
is not answered (after connecting, before the UUID), a caller who hangs up
(the socket is just closed) or 2,000 ms with no frame either way
(``MAX_WAIT_TIMEOUT_MSEC``: the socket is closed, no hang-up frame, the
channel lives on); 0 when the engine sends a hang-up frame or closes the
socket between frames; -1 for any other frame kind, an empty audio frame or
a close inside a frame; it never answers the channel. Once connected it
sends the UUID frame, then the caller's audio in 20 ms frames on the call's
clock and a DTMF frame per key, and records every frame the engine sends
back with its arrival time. A caller with silence suppression
(``Timeline.dtx``, the default) sends audio only while a scripted
:class:`Talk` sounds, otherwise a frame goes every 20 ms, silence between
talks. In fast mode (``speed=None``) talk frames go as fast as the engine
reads them while the call's clock moves 20 ms per frame; silence with no
frames passes in real time, since only the engine's frames keep the
session alive through it.
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import functools
import math
import re
import sys
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

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

if TYPE_CHECKING:
    from ivr.emulator.agi import AgiSession
    from ivr.emulator.caller import Scheduled, Timeline

__all__ = [
    "AudioSocketApp",
    "AudioSocketClientError",
    "AudioSocketRecord",
    "FrameLog",
    "audiosocket_app",
    "run_audiosocket",
]

FRAME_SECONDS: Final = 0.02
#: ast_audiosocket_connect: MAX_CONNECT_TIMEOUT_MSEC per address.
CONNECT_TIMEOUT: Final = 2.0
#: audiosocket_run: MAX_WAIT_TIMEOUT_MSEC, the poll on the channel and the socket.
INACTIVITY_TIMEOUT: Final = 2.0
# uuid_parse() (libuuid): exactly 36 characters, hyphens at 8, 13, 18, 23.
_UUID = re.compile(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")
_SILENCE: Final = bytes(FRAME_BYTES)


def _split(data: str) -> list[str]:
    from ivr.emulator.apps import split_app_args

    return split_app_args(data)


class AudioSocketClientError(IvrError, ConnectionError):
    """The emulator could not reach the engine's AudioSocket server."""


@dataclass(frozen=True, slots=True)
class FrameLog:
    """One frame on the socket: call time (timeline seconds), monotonic time, kind, payload."""

    at: float
    wall: float
    kind: int
    payload: bytes = b""


@dataclass(slots=True)
class AudioSocketRecord:
    """One run of AudioSocket(): what went each way, when, and how it ended.

    ``ending`` is one of ``bad-uuid``, ``connect-failed``, ``not-answered``,
    ``server-hangup`` (a 0x00 frame), ``server-closed``, ``caller-hangup``,
    ``bad-frame`` (a kind the app refuses, an empty audio frame, a close
    inside a frame), ``send-failed`` or ``timeout`` (2 s with no frame either
    way: "Reached timeout after 2000 ms of no activity").
    """

    data: str
    result: int | None = None
    ending: str = ""
    started: float | None = None
    #: Frames sent to the engine (UUID, DTMF, audio).
    sent: list[FrameLog] = field(default_factory=list)
    #: Frames the engine sent, stamped on arrival.
    received: list[FrameLog] = field(default_factory=list)
    #: When each scripted talk's first frame went out.
    talk_onsets: list[FrameLog] = field(default_factory=list)

    @property
    def prompt(self) -> list[FrameLog]:
        """The engine's audio frames that carry sound (what the caller heard)."""
        return [f for f in self.received if is_audio(f.kind) and not _silent(f.payload)]

    @property
    def silence(self) -> list[FrameLog]:
        """The engine's audio frames of digital silence (its keep-alive)."""
        return [f for f in self.received if is_audio(f.kind) and _silent(f.payload)]

    @property
    def voice(self) -> list[FrameLog]:
        """The audio frames sent to the engine (the caller's)."""
        return [f for f in self.sent if is_audio(f.kind)]


class AudioSocketApp:
    """``AudioSocket()`` for :class:`~ivr.testing.AsteriskEmulator` that keeps its records.

    ``AsteriskEmulator(applications={"AudioSocket": app})``, then read
    ``app.records`` (one per ``EXEC AudioSocket``, in order).
    """

    def __init__(self) -> None:
        self.records: list[AudioSocketRecord] = []

    async def __call__(self, session: AgiSession, data: str) -> int:
        record = AudioSocketRecord(data)
        self.records.append(record)
        return await _run_for(session, data, record)


async def audiosocket_app(session: AgiSession, data: str) -> int:
    """The default ``AudioSocket()``: records into ``session.result.audiosockets`` if present."""
    return await _run_for(session, data, AudioSocketRecord(data))


async def _run_for(session: AgiSession, data: str, record: AudioSocketRecord) -> int:
    records = getattr(session.result, "audiosockets", None)
    if isinstance(records, list):
        records.append(record)
    # AudioSocket() does not answer: audiosocket_run() refuses a channel that is not up.
    result = await run_audiosocket(session.timeline, data, record, answered=session.state == 6)
    if record.ending == "caller-hangup":
        session._go_dead()
    return result


async def run_audiosocket(
    timeline: Timeline, data: str, record: AudioSocketRecord, *, answered: bool = True
) -> int:
    """Run AudioSocket(``data``) against the engine on ``timeline``; return its result."""
    args = _split(data)
    if not args[0] or not _UUID.fullmatch(args[0]):
        record.ending = "bad-uuid"
        record.result = -1
        return -1
    target = _host_port(args[1] if len(args) > 1 else "")
    try:
        if target is None:
            raise AudioSocketClientError(f"no host:port in {data!r}")
        reader, writer = await asyncio.wait_for(asyncio.open_connection(*target), CONNECT_TIMEOUT)
    except (OSError, TimeoutError, ValueError):
        record.ending = "connect-failed"
        record.result = -1
        return -1
    try:
        if not answered:
            # The connection is open by now: the server sees it close, no UUID.
            record.ending = "not-answered"
            result = -1
        else:
            result = await _Stream(timeline, reader, writer, record, args[0]).run()
    finally:
        with contextlib.suppress(ConnectionError, OSError):
            writer.close()
            await writer.wait_closed()
    record.result = result
    return result


def _host_port(server: str) -> tuple[str, int] | None:
    """``host:port`` or ``[v6]:port``; the port is required (PARSE_PORT_REQUIRE)."""
    match = re.fullmatch(r"\[([^\]]+)\]:(\d+)|([^:\[\]]+):(\d+)", server.strip())
    if match is None:
        return None
    host = match.group(1) or match.group(3)
    port = int(match.group(2) or match.group(4))
    return (host, port) if 0 < port < 65536 else None


class _Stream:
    """The audiosocket_run() loop: caller frames out, engine frames in."""

    def __init__(
        self,
        timeline: Timeline,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        record: AudioSocketRecord,
        call_id: str,
    ) -> None:
        self.timeline = timeline
        self.reader = reader
        self.writer = writer
        self.record = record
        self.call_id = call_id
        self.start = timeline.now()
        #: Call time of the last frame either way: the poll's 2 s starts again on each.
        self.active = self.start
        self._talks_started: set[int] = set()

    def _send(self, kind: int, payload: bytes, at: float) -> None:
        self.writer.write(encode_frame(kind, payload))
        self.record.sent.append(FrameLog(at, time.monotonic(), kind, payload))
        self.active = max(self.active, at)

    async def run(self) -> int:
        self.record.started = self.start
        self._send(Kind.UUID, uuid.UUID(self.call_id).bytes, self.start)
        receiving = asyncio.ensure_future(self._receive())
        try:
            return await self._transmit(receiving)
        finally:
            if not receiving.done():
                receiving.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await receiving

    async def _transmit(self, receiving: asyncio.Future[tuple[int, str]]) -> int:
        frame = 0
        while True:
            moment = self.start + frame * FRAME_SECONDS
            talk = self._talk_at(frame)
            sounding = talk is not None or not self.timeline.dtx
            if not await self._wait_for(moment, sounding, receiving):
                # ast_waitfor_nandfds() timed out: "Reached timeout after 2000 ms
                # of no activity"; -1, and close(s) without a hang-up frame.
                self.record.ending = "timeout"
                return -1
            if receiving.done():
                return self._finish(receiving)
            try:
                while (event := self.timeline.pop_due(moment)) is not None:
                    if event.kind == "hangup":
                        # ast_read() returns NULL: the app returns -1 and
                        # close(s) ends the connection, no hang-up frame.
                        self.record.ending = "caller-hangup"
                        return -1
                    if event.kind == "dtmf":
                        self._send(Kind.DTMF, event.digit.encode("ascii"), moment)
                if sounding:
                    self._send(Kind.AUDIO, self._caller_audio(frame, moment, talk), moment)
                await self.writer.drain()
            except (ConnectionError, OSError):
                # A reset after the engine closed: its close is what counts.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(receiving), 0.1)
                if receiving.done():
                    return self._finish(receiving)
                self.record.ending = "send-failed"
                return -1
            frame += 1

    async def _wait_for(
        self, moment: float, sounding: bool, receiving: asyncio.Future[tuple[int, str]]
    ) -> bool:
        """Let the call's clock reach ``moment``; False when the session times out first.

        A frame the caller sends is read at once in fast mode (the clock
        jumps); otherwise the wait runs on the clock, and ends early when
        the engine's frames stop for ``INACTIVITY_TIMEOUT``.
        """
        timeline = self.timeline
        if timeline.speed is None and sounding:
            timeline.advance_to(moment)
            await asyncio.sleep(0)  # let the engine and the reader run
            return True
        scale = timeline.speed or 1.0
        while not receiving.done():
            now = timeline.now()
            deadline = self.active + INACTIVITY_TIMEOUT
            if now >= deadline:
                return False
            if now >= moment:
                return True
            await asyncio.wait({receiving}, timeout=(min(moment, deadline) - now) / scale)
        return True

    def _finish(self, receiving: asyncio.Future[tuple[int, str]]) -> int:
        result, ending = receiving.result()
        self.record.ending = ending
        return result

    def _talk_at(self, frame: int) -> tuple[Scheduled, int] | None:
        """The talk sounding at frame ``frame`` and its first frame, or None."""
        current: Scheduled | None = None
        first = 0
        for talk in self.timeline.talks:
            begins = math.ceil(round((talk.at - self.start) / FRAME_SECONDS, 6))
            length = max(1, math.ceil(round(talk.seconds / FRAME_SECONDS, 6)))
            if begins <= frame < begins + length and (current is None or begins >= first):
                current, first = talk, begins
        return None if current is None else (current, first)

    def _caller_audio(self, frame: int, moment: float, talk: tuple[Scheduled, int] | None) -> bytes:
        """Frame ``frame`` of what the caller says: the talk under way, or silence."""
        if talk is None:
            return _SILENCE
        current, first = talk
        index = frame - first
        if id(current) not in self._talks_started:
            self._talks_started.add(id(current))
            self.record.talk_onsets.append(FrameLog(moment, time.monotonic(), Kind.AUDIO))
        if not current.audio:
            return _voice(index)
        chunk = current.audio[index * FRAME_BYTES : (index + 1) * FRAME_BYTES]
        return chunk.ljust(FRAME_BYTES, b"\0")

    async def _receive(self) -> tuple[int, str]:
        """Read the engine's frames until one ends the app: (result, ending)."""
        parser = FrameParser()
        while True:
            data = await self.reader.read(4096)
            at, wall = self.timeline.now(), time.monotonic()
            self.active = max(self.active, at)
            if not data:
                # EOF between frames (or inside a header) is a graceful end;
                # inside a payload it is "Insufficient payload read".
                if parser.pending >= 3:
                    return -1, "bad-frame"
                return 0, "server-closed"
            try:
                frames = parser.feed(data)
                outcome = self._accept(frames, at, wall)
                if outcome is None and frames:
                    outcome = self._accept(parser.feed(b""), at, wall)
            except AudioSocketError:
                # An unknown kind: the header alone ends the app.
                return -1, "bad-frame"
            if outcome is not None:
                return outcome

    def _accept(self, frames: list[Frame], at: float, wall: float) -> tuple[int, str] | None:
        for frame in frames:
            self.record.received.append(FrameLog(at, wall, frame.kind, frame.payload))
            if frame.kind == Kind.HANGUP:
                return 0, "server-hangup"
            if not is_audio(frame.kind) or not frame.payload:
                # "Received AudioSocket message other than hangup or audio" /
                # "Invalid message length": UUID, DTMF, error, empty audio.
                return -1, "bad-frame"
        return None


def _silent(payload: bytes) -> bool:
    return payload == bytes(len(payload))


def _voice(index: int) -> bytes:
    """20 ms of a voiced sound (120 Hz with harmonics) for a talk with no audio."""
    return _voice_frame(index % 5)  # 120 Hz repeats every 5 frames (12 cycles)


@functools.cache
def _voice_frame(index: int) -> bytes:
    samples = array.array("h")
    base = index * FRAME_BYTES // 2
    for n in range(base, base + FRAME_BYTES // 2):
        t = n / 8000
        value = sum(math.sin(2 * math.pi * 120 * h * t) / h for h in (1, 2, 3, 4))
        samples.append(int(3000 * value))
    if sys.byteorder == "big":
        samples.byteswap()
    return samples.tobytes()
