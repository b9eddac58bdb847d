"""The quality page's reading of QA results: the query's parameters, the words around a
moment, and the files a result may name (inside the recordings folder only)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ivr.console.quality_data import QaQuery, QaQueryError, call_of, recording_file
from speech.qa import Leg, Transcript, Word


class TestQuery:
    def test_defaults_and_flags(self) -> None:
        """No parameter: seven days, every queue and agent; a checkbox's 'on' is yes."""
        assert QaQuery.parse({}) == QaQuery("7d", "", "", violations=False)
        assert QaQuery.parse({"violations": "on", "period": "1d"}).violations

    @pytest.mark.parametrize(
        ("params", "named"),
        [
            ({"period": "1y"}, "period"),
            ({"queue": "../x"}, "queue"),
            ({"agent": "a" * 200}, "agent"),
            ({"violations": "maybe"}, "violations"),
        ],
    )
    def test_bad_parameters_are_named(self, params: dict[str, str], named: str) -> None:
        """Each bad parameter is named in the error's problems."""
        with pytest.raises(QaQueryError) as caught:
            QaQuery.parse(params)
        assert [p["at"] for p in caught.value.problems] == [named]


def _result(folder: Path, evidence: dict[str, object]) -> dict[str, str]:
    base = folder / "day" / "c1-ann-00001"
    base.parent.mkdir(parents=True)
    words = [("하나", 0.0, 0.4, "agent"), ("둘", 0.5, 0.9, "caller"), ("셋", 1.0, 1.4, "agent"),
             ("넷", 6.0, 6.4, "agent"), ("다섯", 6.5, 6.9, "agent")]  # fmt: skip
    transcript = Transcript(
        "ko",
        (Leg("agent", 7.0), Leg("caller", 7.0)),
        tuple(Word(w, s, e, 0.9, who) for w, s, e, who in words),  # type: ignore[arg-type]
    )
    Path(f"{base}.transcript.json").write_text(transcript.dumps(), encoding="utf-8")
    rules = [{"id": "r", "kind": "k", "outcome": "violated", "reason": "", "evidence": [evidence]}]
    return {
        "call": "c1",
        "queue": "sales",
        "agent": "ann",
        "rules": json.dumps(rules),
        "recording": f"{base}-mix.wav",
        "transcript": f"{base}.transcript.json",
    }


class TestMoments:
    def test_a_phrase_among_its_speakers_words(self, tmp_path: Path) -> None:
        """A phrase of the agent: the agent's words either side (not the caller's)."""
        row = _result(tmp_path, {"start": 1.0, "end": 1.4, "speaker": "agent", "words": ["셋"]})
        [moment] = call_of(tmp_path, 0.0, row).rules[0].moments
        assert (moment.before, moment.within, moment.after) == (("하나",), ("셋",), ("넷", "다섯"))

    def test_a_silence_between_everyones_words(self, tmp_path: Path) -> None:
        """A silence whose edge clips a word's start: nothing within it, all words around."""
        row = _result(tmp_path, {"start": 1.4, "end": 6.1, "speaker": "any", "words": []})
        [moment] = call_of(tmp_path, 0.0, row).rules[0].moments
        assert moment.before == ("하나", "둘", "셋") and moment.within == ()
        assert moment.after == ("넷", "다섯")

    def test_a_transcript_outside_the_folder_is_not_read(self, tmp_path: Path) -> None:
        row = _result(tmp_path / "elsewhere", {"start": 1.0, "end": 1.4, "speaker": "agent"})
        (tmp_path / "recordings").mkdir()
        [moment] = call_of(tmp_path / "recordings", 0.0, row).rules[0].moments
        assert moment.before == moment.after == ()


class TestRecordingFile:
    def test_only_the_recordings_own_mix(self, tmp_path: Path) -> None:
        """The mix when its record names the call and the file; a traversal in the event's
        path, another call's record or a missing file: none."""
        row = _result(tmp_path, {"start": 0.0, "end": 0.0, "speaker": "any"})
        mix = Path(row["recording"])
        mix.write_bytes(b"RIFF")
        record = Path(row["recording"].removesuffix("-mix.wav") + ".json")
        record.write_text(json.dumps({"call": "c1", "mix": str(mix)}))
        assert recording_file(tmp_path, row) == mix.resolve()
        assert (
            recording_file(tmp_path / "day", {**row, "recording": f"{mix}/../../x-mix.wav"}) is None
        )
        assert recording_file(tmp_path, {**row, "call": "c2"}) is None
        mix.unlink()
        assert recording_file(tmp_path, row) is None
