"""AudioSocket framing, sans I/O (``app_audiosocket`` / ``res_audiosocket.c``).

A frame is one type byte, a big-endian 16-bit length and the payload. Kinds:
``0x00`` hang-up, ``0x01`` the call's UUID (16 bytes), ``0x03`` one DTMF
digit (ASCII), ``0x10`` signed linear 8 kHz audio (320 bytes = 20 ms),
``0x11``-``0x18`` higher rates (Asterisk 22.7+), ``0xFF`` error.
"""

from __future__ import annotations

import enum
import struct
import uuid
from dataclasses import dataclass
from typing import Final

from ivr.errors import IvrError

__all__ = [
    "FRAME_BYTES",
    "MAX_PAYLOAD",
    "AudioSocketError",
    "Frame",
    "FrameParser",
    "Kind",
    "encode_frame",
    "is_audio",
]

#: 20 ms of signed linear 8 kHz mono.
FRAME_BYTES: Final = 320
#: What a frame's 16-bit length field allows.
MAX_PAYLOAD: Final = 0xFFFF
_HEADER = struct.Struct(">BH")


class AudioSocketError(IvrError, ValueError):
    """Bytes that are not AudioSocket frames."""


class Kind(enum.IntEnum):
    HANGUP = 0x00
    UUID = 0x01
    DTMF = 0x03
    AUDIO = 0x10
    ERROR = 0xFF


#: 0x11-0x18: signed linear at 12 to 192 kHz (newer res_audiosocket.c).
_HIGHER_RATES = frozenset(range(0x11, 0x19))
_KNOWN = {int(k) for k in Kind} | _HIGHER_RATES


def is_audio(kind: int) -> bool:
    """Whether ``kind`` carries signed linear audio (8 kHz or a higher rate)."""
    return kind == Kind.AUDIO or kind in _HIGHER_RATES


@dataclass(frozen=True, slots=True)
class Frame:
    kind: int
    payload: bytes = b""

    @property
    def uuid(self) -> uuid.UUID:
        return uuid.UUID(bytes=self.payload)

    @property
    def digit(self) -> str:
        return self.payload.decode("ascii")


def encode_frame(kind: int, payload: bytes = b"") -> bytes:
    if len(payload) > 0xFFFF:
        raise AudioSocketError(f"payload of {len(payload)} bytes; a frame holds 65535 at most")
    return _HEADER.pack(kind, len(payload)) + payload


class FrameParser:
    """Feed bytes, get whole frames.

    ``max_payload`` refuses a frame whose header announces more bytes
    (before they are buffered), so a peer cannot make the reader hold
    64 KiB per connection with a forged length.
    """

    def __init__(self, max_payload: int = MAX_PAYLOAD) -> None:
        self._buffer = bytearray()
        self.max_payload = max_payload

    @property
    def pending(self) -> int:
        """Bytes held back: the start of a frame not complete yet."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[Frame]:
        """The whole frames ``data`` completes, in order.

        Bad bytes raise :class:`AudioSocketError`; frames before them in the
        same chunk are returned first, and the error is raised by the next
        call (or :meth:`eof`), as a reader meets them in the stream.
        """
        self._buffer += data
        frames: list[Frame] = []
        while len(self._buffer) >= _HEADER.size:
            kind, length = _HEADER.unpack_from(self._buffer)
            problem = None
            if kind not in _KNOWN:
                problem = f"unknown AudioSocket frame kind 0x{kind:02x}"
            elif length > self.max_payload:
                problem = (
                    f"AudioSocket frame of kind 0x{kind:02x} announces {length} bytes; "
                    f"at most {self.max_payload} are accepted"
                )
            if problem is not None:
                if frames:
                    return frames
                raise AudioSocketError(problem)
            end = _HEADER.size + length
            if len(self._buffer) < end:
                break
            frames.append(Frame(kind, bytes(self._buffer[_HEADER.size : end])))
            del self._buffer[:end]
        return frames

    def eof(self) -> None:
        """The peer closed: raise if it stopped inside a frame or left bad bytes."""
        if len(self._buffer) >= _HEADER.size:
            self.feed(b"")  # raises for a bad header
            raise AudioSocketError(
                f"the connection closed {len(self._buffer)} bytes into a frame; "
                "the peer stopped mid-frame"
            )
