"""AudioSocket framing, sans I/O: any chunking, the capture's frames, bad bytes."""

from __future__ import annotations

import itertools
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ivr.audiosocket.protocol import (
    FRAME_BYTES,
    AudioSocketError,
    Frame,
    FrameParser,
    Kind,
    encode_frame,
    is_audio,
)

from ...conftest import TRANSCRIPTS

KINDS = st.sampled_from([0x00, 0x01, 0x03, 0x10, 0x11, 0x18, 0xFF])
FRAMES = st.lists(st.builds(Frame, KINDS, st.binary(max_size=700)), max_size=20)


def chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    edges = [0, *points, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(edges)]


def capture() -> list[Frame]:
    """The frames of audiosocket-frames.jsonl (audio payloads: the logged head, padded)."""
    record = json.loads((TRANSCRIPTS / "audiosocket-frames.jsonl").read_text().splitlines()[0])
    return [
        Frame(int(f["kind"], 16), bytes.fromhex(f["head"]).ljust(f["len"], b"\0"))
        for f in record["frames"]
    ]


class TestFrameParser:
    @given(FRAMES, st.lists(st.integers(min_value=0), max_size=30))
    def test_any_chunking_gives_the_same_frames(self, frames: list[Frame], cuts: list[int]) -> None:
        """However TCP splits the stream, the parser returns exactly the frames sent."""
        stream = b"".join(encode_frame(f.kind, f.payload) for f in frames)
        parser = FrameParser()
        out: list[Frame] = []
        for chunk in chunked(stream, cuts):
            out += parser.feed(chunk)
        assert out == frames
        assert parser.pending == 0
        parser.eof()

    @given(st.binary(min_size=1, max_size=64), st.lists(st.integers(min_value=0), max_size=8))
    def test_garbage_raises_or_waits_but_never_invents_frames(
        self, garbage: bytes, cuts: list[int]
    ) -> None:
        """Random bytes either parse as valid frames or raise AudioSocketError."""
        parser = FrameParser(max_payload=FRAME_BYTES)
        try:
            for chunk in chunked(garbage, cuts):
                for frame in parser.feed(chunk):
                    assert len(frame.payload) <= FRAME_BYTES
                    assert frame.kind in {0, 1, 3, 0xFF} or is_audio(frame.kind)
        except AudioSocketError:
            pass

    def test_capture_frames_round_trip(self) -> None:
        """The captured stream: UUID first, then the DTMF '5', then 320-byte audio."""
        frames = capture()
        parser = FrameParser()
        stream = b"".join(encode_frame(f.kind, f.payload) for f in frames)
        parsed = [f for byte in stream for f in parser.feed(bytes([byte]))]
        assert parsed == frames
        assert parsed[0].kind == Kind.UUID
        assert str(parsed[0].uuid) == "40325ec2-5efd-4bd3-805f-53576e581d13"
        assert (parsed[1].kind, parsed[1].digit) == (Kind.DTMF, "5")
        assert {len(f.payload) for f in parsed[2:]} == {FRAME_BYTES}

    def test_unknown_kind_raises_after_the_good_frames(self) -> None:
        """Frames before bad bytes are returned; the next call raises, naming the kind."""
        parser = FrameParser()
        good = encode_frame(Kind.DTMF, b"1")
        assert parser.feed(good + b"\x42\x00\x01x") == [Frame(Kind.DTMF, b"1")]
        with pytest.raises(AudioSocketError, match="0x42"):
            parser.feed(b"")

    def test_oversized_frame_is_refused_from_its_header(self) -> None:
        """A header announcing more than max_payload raises before the payload arrives."""
        parser = FrameParser(max_payload=1000)
        with pytest.raises(AudioSocketError, match="60000 bytes"):
            parser.feed(b"\x10\xea\x60")

    def test_eof_inside_a_frame_raises(self) -> None:
        """A close after a header but before its payload is reported; inside a header is not."""
        parser = FrameParser()
        parser.feed(b"\x10\x01")
        parser.eof()
        parser.feed(b"\x40abc")
        with pytest.raises(AudioSocketError, match="mid-frame"):
            parser.eof()

    def test_encode_refuses_a_payload_the_length_cannot_hold(self) -> None:
        """65536 bytes do not fit the 16-bit length."""
        with pytest.raises(AudioSocketError, match="65535"):
            encode_frame(Kind.AUDIO, bytes(65536))
        assert encode_frame(Kind.HANGUP) == b"\x00\x00\x00"
