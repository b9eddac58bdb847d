"""Resampling, PCM helpers, VAD and endpointing (pure Python, no model)."""

from __future__ import annotations

import array
import itertools
import math
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from speech.audio import (
    FRAME_SAMPLES,
    SAMPLE_RATE,
    Endpointer,
    Vad,
    from_pcm,
    read_wav,
    resample,
    to_pcm,
    write_wav,
)


def tone(freq: float, rate: int, seconds: float, amplitude: int = 10000) -> array.array[int]:
    count = int(rate * seconds)
    return array.array(
        "h", (int(amplitude * math.sin(2 * math.pi * freq * i / rate)) for i in range(count))
    )


def crossings(samples: array.array[int]) -> int:
    return sum(1 for a, b in itertools.pairwise(samples) if (a < 0) != (b < 0))


class TestResample:
    @settings(max_examples=40, deadline=None)
    @given(
        st.lists(st.integers(-32768, 32767), max_size=400),
        st.sampled_from([8000, 11025, 16000, 22050, 44100, 48000]),
    )
    def test_length_and_range(self, values: list[int], rate: int) -> None:
        """Output has len*target/rate samples, all valid 16-bit values."""
        out = resample(array.array("h", values), rate)
        assert len(out) == len(values) * SAMPLE_RATE // rate
        assert all(-32768 <= v <= 32767 for v in out)

    @settings(max_examples=20, deadline=None)
    @given(st.integers(-20000, 20000), st.sampled_from([11025, 16000, 22050, 48000]))
    def test_constant_level_is_kept(self, level: int, rate: int) -> None:
        """A DC level comes out unchanged (the kernel's gain is one) away from the edges."""
        out = resample(array.array("h", [level] * rate), rate)
        middle = out[100:-100]
        assert max(abs(v - level) for v in middle) <= 1

    def test_tone_keeps_its_frequency(self) -> None:
        """A 440 Hz tone at 22.05 kHz is still 440 Hz at 8 kHz."""
        out = resample(tone(440, 22050, 1.0), 22050)
        assert abs(crossings(out) - 880) <= 2

    def test_no_aliasing(self) -> None:
        """A 6 kHz tone (above the 4 kHz Nyquist of 8 kHz) is filtered out, not folded to 2 kHz."""
        out = resample(tone(6000, 22050, 0.5), 22050)
        assert max(abs(v) for v in out[100:-100]) < 200

    def test_same_rate_is_a_copy(self) -> None:
        """Resampling to the same rate returns equal samples."""
        samples = tone(300, 8000, 0.1)
        assert resample(samples, 8000) == samples


class TestPcm:
    @given(st.lists(st.integers(-32768, 32767), max_size=200))
    def test_round_trip(self, values: list[int]) -> None:
        """Samples survive to_pcm / from_pcm; the bytes are little-endian."""
        samples = array.array("h", values)
        pcm = to_pcm(samples)
        assert from_pcm(pcm) == samples
        if values:
            assert int.from_bytes(pcm[:2], "little", signed=True) == values[0]

    def test_odd_byte_is_dropped(self) -> None:
        """A trailing half sample is ignored."""
        assert from_pcm(b"\x01\x00\x02") == array.array("h", [1])

    def test_wav_round_trip_at_another_rate(self, tmp_path: Path) -> None:
        """read_wav resamples a 16 kHz file to 8 kHz."""
        path = tmp_path / "a.wav"
        write_wav(path, tone(500, 16000, 0.5), 16000)
        out = read_wav(path)
        assert len(out) == 4000
        assert abs(crossings(out) - 500) <= 2


class TestVad:
    def test_silence_and_tone(self) -> None:
        """Digital silence is not speech; a loud tone after it is."""
        vad = Vad()
        assert vad.frames(array.array("h", bytes(2 * 800))) == [False] * 10
        assert all(vad.frames(tone(300, 8000, 0.1)))

    def test_remainder_waits_for_the_next_frame(self) -> None:
        """Partial frames are kept until complete."""
        vad = Vad()
        assert vad.frames(array.array("h", bytes(2 * (FRAME_SAMPLES - 1)))) == []
        assert vad.frames(array.array("h", [0])) == [False]


class TestEndpointer:
    def test_onset_is_reported_at_the_first_speech_frame(self) -> None:
        """speech_started names the first frame of the voiced run, after 3 frames."""
        point = Endpointer()
        events = point.push(array.array("h", bytes(2 * 4000)) + tone(300, 8000, 0.05))
        assert [e.kind for e in events] == ["speech_started"]
        assert events[0].sample == 4000

    def test_noinput_end_silence_and_max(self) -> None:
        """The three ends come at exact sample counts."""
        quiet = array.array("h", bytes(2 * 16000))
        assert Endpointer(no_input=1.0).push(quiet)[-1].sample == 8000
        point = Endpointer(end_silence=0.5)
        events = point.push(tone(300, 8000, 0.2) + quiet)
        assert (events[-1].reason, events[-1].sample) == ("end_silence", 1600 + 4000)
        point = Endpointer(max_utterance=0.3)
        events = point.push(tone(300, 8000, 1.0))
        assert (events[-1].reason, events[-1].sample) == ("max_utterance", 2400)
        assert point.push(tone(300, 8000, 1.0)) == []
