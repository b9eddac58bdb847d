"""Transcripts of recorded calls: recognised words and voice activity, per speaker, as JSON.

A transcript holds every leg of one call: the agent's and the caller's when
the recording has them apart (MixMonitor's ``r()``/``t()`` files), or one mono
mix whose words belong to speaker ``any``. Each word carries its start and
end (seconds from the start of the recording), Vosk's confidence and its
speaker; ``speech`` holds the stretches where each leg's voice activity
detector heard speech, which the silence, talk-over and talk-ratio rules read
(recognition misses words; the VAD misses little). Stored with the call as
JSON (:meth:`Transcript.dumps` / :meth:`Transcript.loads`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import TypeAdapter, ValidationError

from speech.qa.errors import TranscriptError

__all__ = ["SPEAKERS", "Leg", "Span", "Speaker", "Transcript", "Word"]

Speaker = Literal["agent", "caller", "any"]
SPEAKERS: tuple[Speaker, ...] = ("agent", "caller", "any")
VERSION = 1


def _check_times(what: str, start: float, end: float) -> None:
    if not 0 <= start <= end:
        raise ValueError(f"{what}: start {start} and end {end} must satisfy 0 <= start <= end")


@dataclass(frozen=True, slots=True)
class Word:
    """One recognised word: its text, times (s), Vosk's confidence (0..1) and speaker."""

    word: str
    start: float
    end: float
    confidence: float
    speaker: Speaker = "any"

    def __post_init__(self) -> None:
        _check_times(f"word {self.word!r}", self.start, self.end)
        if not 0 <= self.confidence <= 1:
            raise ValueError(f"word {self.word!r}: confidence {self.confidence} is not in 0..1")


@dataclass(frozen=True, slots=True)
class Span:
    """A stretch of time (s) in which ``speaker`` was speaking (voice activity)."""

    start: float
    end: float
    speaker: Speaker = "any"

    def __post_init__(self) -> None:
        _check_times("speech span", self.start, self.end)

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass(frozen=True, slots=True)
class Leg:
    """One recorded leg: whose voice, the file it came from, its length and decoding time."""

    speaker: Speaker
    duration: float
    file: str | None = None
    #: Wall-clock seconds spent decoding it (the real-time factor is this over ``duration``).
    decode_seconds: float = 0.0

    @property
    def real_time_factor(self) -> float:
        return self.decode_seconds / self.duration if self.duration > 0 else 0.0


@dataclass(frozen=True, slots=True)
class Transcript:
    """Every leg of one call: words sorted by start time, and voice activity."""

    language: str
    legs: tuple[Leg, ...]
    words: tuple[Word, ...] = ()
    speech: tuple[Span, ...] = ()
    model: str = ""
    version: int = VERSION

    def __post_init__(self) -> None:
        if self.version != VERSION:
            raise ValueError(f"transcript version {self.version} is not supported (only {VERSION})")
        speakers = [leg.speaker for leg in self.legs]
        if len(set(speakers)) != len(speakers):
            raise ValueError(f"a transcript has at most one leg per speaker, not {speakers}")
        stray = {w.speaker for w in self.words} | {s.speaker for s in self.speech}
        if not stray <= set(speakers):
            raise ValueError(
                f"words or speech of {sorted(stray - set(speakers))} but legs only of {speakers}"
            )
        object.__setattr__(self, "words", tuple(sorted(self.words, key=lambda w: w.start)))
        object.__setattr__(self, "speech", tuple(sorted(self.speech, key=lambda s: s.start)))

    @property
    def duration(self) -> float:
        """The call's length: its longest leg."""
        return max((leg.duration for leg in self.legs), default=0.0)

    @property
    def stereo(self) -> bool:
        """Whether the agent and the caller were recorded apart."""
        return self.has("agent") and self.has("caller")

    def has(self, speaker: Speaker) -> bool:
        """Whether the call has a leg of ``speaker``."""
        return any(leg.speaker == speaker for leg in self.legs)

    def words_of(self, speaker: Speaker) -> tuple[Word, ...]:
        """The words of one leg, in order."""
        return tuple(w for w in self.words if w.speaker == speaker)

    def speech_of(self, speaker: Speaker) -> tuple[Span, ...]:
        """The voice activity of one leg, in order."""
        return tuple(s for s in self.speech if s.speaker == speaker)

    @property
    def text(self) -> str:
        """Every word, in order of time (for people reading a transcript)."""
        return " ".join(w.word for w in self.words)

    def dumps(self, *, indent: int | None = None) -> str:
        """The transcript as JSON text (UTF-8 words kept as they are)."""
        return _ADAPTER.dump_json(self, indent=indent).decode()

    @classmethod
    def loads(cls, text: str | bytes) -> Transcript:
        """A transcript from :meth:`dumps`' JSON; raises TranscriptError if it is not one."""
        try:
            return _ADAPTER.validate_json(text)
        except ValidationError as error:
            first = error.errors()[0]
            where = ".".join(str(part) for part in first["loc"]) or "(top)"
            raise TranscriptError(
                f"not a transcript: {where}: {first['msg']} ({error.error_count()} problem(s))"
            ) from None


_ADAPTER: TypeAdapter[Transcript] = TypeAdapter(Transcript)
