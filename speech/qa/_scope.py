"""What a rule reads: the legs its speaker names, the words and the speech in its window.

Shared by the phrase rules (:mod:`speech.qa.evaluate`) and the timing rules
(:mod:`speech.qa.timing`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from speech.qa.phrases import Mode
from speech.qa.results import Evidence, Outcome, RuleResult
from speech.qa.rules import Window
from speech.qa.transcript import Speaker, Transcript, Word

Interval = tuple[float, float]


@dataclass(frozen=True, slots=True)
class Settings:
    """A rule's settings once its group's and the pack's defaults are applied."""

    speaker: Speaker
    window: Window | None
    match: Mode
    threshold: float
    min_confidence: float


@dataclass(frozen=True, slots=True)
class Found:
    """What one rule found, before its id, weight and window are added."""

    kind: str
    outcome: Outcome
    reason: str
    evidence: tuple[Evidence, ...] = ()
    measured: float | None = None
    confidence: float | None = None
    members: tuple[RuleResult, ...] = ()


def legs_for(transcript: Transcript, speaker: Speaker) -> tuple[list[Speaker], str]:
    """The legs to read for ``speaker``, or none and why."""
    if speaker == "any":
        return [leg.speaker for leg in transcript.legs], ""
    if transcript.has(speaker):
        return [speaker], ""
    if transcript.has("any"):
        return [], (
            f"the recording is one mono mix: the {speaker}'s words cannot be told from the "
            "other side's; record the legs apart (MixMonitor r() and t())"
        )
    return [], f"the recording has no {speaker} leg"


def _overlaps(start: float, end: float, bounds: Interval) -> bool:
    return end > bounds[0] and start < bounds[1]


def words_in(transcript: Transcript, speaker: Speaker, bounds: Interval) -> list[Word]:
    return [w for w in transcript.words_of(speaker) if _overlaps(w.start, w.end, bounds)]


def speech_in(
    transcript: Transcript, speakers: Iterable[Speaker], bounds: Interval
) -> list[Interval]:
    """Merged voice activity of ``speakers`` clipped to ``bounds`` (words' times without it)."""
    found: list[Interval] = []
    for speaker in speakers:
        spans = transcript.speech_of(speaker)
        pieces: Iterable[Interval] = (
            ((s.start, s.end) for s in spans)
            if spans
            else ((w.start, w.end) for w in transcript.words_of(speaker))
        )
        low, high = bounds
        found += [(max(a, low), min(b, high)) for a, b in pieces if b > low and a < high]
    return merge(found)


def merge(intervals: Iterable[Interval]) -> list[Interval]:
    merged: list[Interval] = []
    for start, end in sorted(intervals):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def total(intervals: Iterable[Interval]) -> float:
    return sum(b - a for a, b in intervals)


def mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)
