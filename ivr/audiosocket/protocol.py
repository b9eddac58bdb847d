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

__all__ = ["FRAME_BYTES", "Frame", "FrameParser", "Kind", "encode_frame"]

#: 20 ms of signed linear 8 kHz mono.
FRAME_BYTES: Final = 320
_HEADER = struct.Struct(">BH")


class AudioSocketError(IvrError, ValueError):
    """Bytes that are not AudioSocket frames."""


class Kind(enum.IntEnum):
    HANGUP = 0x00
    UUID = 0x01
    DTMF = 0x03
    AUDIO = 0x10
    ERROR = 0xFF


_KNOWN = {int(k) for k in Kind} | set(range(0x11, 0x19))


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
    """Feed bytes, get whole frames."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[Frame]:
        self._buffer += data
        frames: list[Frame] = []
        while len(self._buffer) >= _HEADER.size:
            kind, length = _HEADER.unpack_from(self._buffer)
            if kind not in _KNOWN:
                raise AudioSocketError(f"unknown AudioSocket frame kind 0x{kind:02x}")
            end = _HEADER.size + length
            if len(self._buffer) < end:
                break
            frames.append(Frame(kind, bytes(self._buffer[_HEADER.size : end])))
            del self._buffer[:end]
        return frames
