"""The emulated ``AudioSocket`` application: Asterisk's side of app_audiosocket.

It connects to the engine, sends the UUID frame, then the caller's audio
(20 ms signed-linear frames) and keys, until the engine sends a hang-up frame
or the caller hangs up.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from typing import TYPE_CHECKING

from ivr.audiosocket.protocol import FRAME_BYTES, FrameParser, Kind, encode_frame
from ivr.errors import IvrError

if TYPE_CHECKING:
    from ivr.emulator.agi import AgiSession

__all__ = ["AudioSocketClientError", "audiosocket_app"]


def _split(data: str) -> list[str]:
    from ivr.emulator.apps import split_app_args

    return split_app_args(data)


class AudioSocketClientError(IvrError, ConnectionError):
    """The emulator could not reach the engine's AudioSocket server."""


async def audiosocket_app(session: AgiSession, data: str) -> int:
    """Connect, send the UUID, stream the caller's audio and keys until a hang-up frame."""
    args = _split(data)
    if len(args) < 2 or ":" not in args[1]:
        return -1
    try:
        call_id = uuid.UUID(args[0])
    except ValueError:
        return -1
    host, _, port = args[1].rpartition(":")
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, int(port)), 2.0)
    except (OSError, TimeoutError, ValueError):
        return -1
    writer.write(encode_frame(Kind.UUID, call_id.bytes))
    parser = FrameParser()
    silence = bytes(FRAME_BYTES)
    result = 0
    try:
        while True:
            try:
                chunk = await asyncio.wait_for(reader.read(4096), 0.02)
            except TimeoutError:
                chunk = None
            if chunk == b"":
                break
            if chunk:
                kinds = {f.kind for f in parser.feed(chunk)}
                if kinds - {Kind.AUDIO, Kind.HANGUP}:
                    result = -1  # only audio and hang-up frames are allowed from the server
                    break
                if Kind.HANGUP in kinds:
                    break
            event = await session.timeline.wait(0.0)
            if event is not None and event.kind == "hangup":
                session._go_dead()
                result = -1
                break
            if event is not None:
                writer.write(encode_frame(Kind.DTMF, event.digit.encode()))
            writer.write(encode_frame(Kind.AUDIO, silence))
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(ConnectionError, OSError):
            writer.close()
            await writer.wait_closed()
    return result
