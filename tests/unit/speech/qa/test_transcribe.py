"""Transcription's checks that need no model: which legs, and unreadable recordings."""

from __future__ import annotations

from pathlib import Path

import pytest

from speech.qa import TranscriptError, transcribe_legs
from speech.qa.phrases import Phrase, Stream
from speech.qa.transcribe import transcribe_leg
from speech.qa.transcript import Word
from speech.recognizer import LoadedModel

NO_MODEL = LoadedModel("ko", Path("/nonexistent"), None, grammars=False)


class TestLegs:
    def test_legs_or_a_mix_not_both(self, tmp_path: Path) -> None:
        """The mix repeats the legs' words with no speaker: giving both is refused."""
        with pytest.raises(TranscriptError, match="not both"):
            transcribe_legs(agent=tmp_path / "a.wav", mono=tmp_path / "m.wav", model=NO_MODEL)

    def test_something_must_be_given(self) -> None:
        """No recording at all says what to pass."""
        with pytest.raises(TranscriptError, match="agent= and caller=, or mono="):
            transcribe_legs(model=NO_MODEL)

    @pytest.mark.parametrize("content", [b"", b"RIFF nonsense", b"plain text"])
    def test_an_unreadable_recording_names_the_file(self, tmp_path: Path, content: bytes) -> None:
        """A file that is not a 16-bit WAV raises TranscriptError with its path."""
        path = tmp_path / "bad.wav"
        path.write_bytes(content)
        with pytest.raises(TranscriptError, match=r"bad\.wav"):
            transcribe_leg(path, "agent", NO_MODEL)

    def test_a_missing_recording_names_the_file(self, tmp_path: Path) -> None:
        """A path that does not exist raises TranscriptError, not a bare OSError."""
        with pytest.raises(TranscriptError, match=r"missing\.wav"):
            transcribe_leg(tmp_path / "missing.wav", "caller", NO_MODEL)


class TestUnknownWords:
    def test_unk_is_no_text(self) -> None:
        """A model's [unk] never matches a phrase, not even the word unk."""
        words = [Word("[unk]", 0.0, 0.5, 1.0), Word("해지", 0.5, 1.0, 1.0)]
        assert Phrase("unk").find(Stream(words)) == []
        assert [h.first for h in Phrase("해지").find(Stream(words))] == [1]
