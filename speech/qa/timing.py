"""The rules that read time, not words: silence, talk-over, talk ratio and speaking rate.

Silence, talk-over and talk ratio read the legs' voice activity (the
transcript's ``speech``, from :mod:`speech.qa.vad`), which misses far less
than recognition; a transcript without it falls back on the words' times.
Talk-over and talk ratio need the two legs recorded apart.
"""

from __future__ import annotations

import re
from typing import Final

from speech.qa._scope import Found, Interval, Settings, legs_for, mean, speech_in, total, words_in
from speech.qa.results import Evidence
from speech.qa.rules import Silence, SpeakingRate, TalkOver, TalkRatio
from speech.qa.transcript import Speaker, Transcript

__all__ = ["MIN_RATE_SPEECH", "silence", "speaking_rate", "syllables", "talk_over", "talk_ratio"]

#: Seconds of speech below which talk ratio and speaking rate are unverifiable.
MIN_RATE_SPEECH: Final = 3.0
_VOWELS = re.compile(r"[aeiouyàâäéèêëîïôöùûüœæ]+", re.IGNORECASE)


def silence(transcript: Transcript, rule: Silence, settings: Settings, bounds: Interval) -> Found:
    legs, why = legs_for(transcript, settings.speaker)
    if not legs:
        return Found("silence", "unverifiable", why)
    speech = speech_in(transcript, legs, bounds)
    edges = [bounds[0], *(x for interval in speech for x in interval)]
    if bounds[1] < transcript.duration or not speech:
        edges.append(bounds[1])  # the quiet after the last words, when the call goes on
    gaps = [(edges[i], edges[i + 1]) for i in range(0, len(edges) - 1, 2)]
    longest = max((b - a for a, b in gaps), default=0.0)
    over = [(a, b) for a, b in gaps if b - a > rule.silence.over]
    evidence = tuple(Evidence(round(a, 3), round(b, 3), settings.speaker) for a, b in over)
    if over:
        reason = (
            f"{len(over)} silence(s) over {rule.silence.over:g} s, the longest {longest:.1f} s "
            f"from {max(over, key=lambda g: g[1] - g[0])[0]:.1f} s"
        )
        return Found("silence", "violated", reason, evidence, measured=round(longest, 3))
    reason = f"no silence over {rule.silence.over:g} s (the longest {longest:.1f} s)"
    return Found("silence", "met", reason, measured=round(longest, 3))


def _stereo_missing(transcript: Transcript) -> str:
    if transcript.stereo:
        return ""
    return (
        "needs the agent's and the caller's legs recorded apart (MixMonitor r() and t()); "
        "this recording has " + ", ".join(leg.speaker for leg in transcript.legs)
    )


def talk_over(
    transcript: Transcript, rule: TalkOver, settings: Settings, bounds: Interval
) -> Found:
    if why := _stereo_missing(transcript):
        return Found("talk_over", "unverifiable", why)
    agent = speech_in(transcript, ["agent"], bounds)
    caller = speech_in(transcript, ["caller"], bounds)
    overlaps: list[tuple[float, float, Speaker]] = []
    for a in agent:
        for c in caller:
            start, end = max(a[0], c[0]), min(a[1], c[1])
            if end > start:
                starter: Speaker = "agent" if a[0] > c[0] else "caller"
                overlaps.append((start, end, starter))
    if settings.speaker != "any":
        overlaps = [o for o in overlaps if o[2] == settings.speaker]
    longest = max((b - a for a, b, _ in overlaps), default=0.0)
    over = [o for o in overlaps if o[1] - o[0] > rule.talk_over.over]
    who = "" if settings.speaker == "any" else f" started by the {settings.speaker}"
    if over:
        evidence = tuple(Evidence(round(a, 3), round(b, 3), s) for a, b, s in over)
        reason = (
            f"{len(over)} overlap(s){who} over {rule.talk_over.over:g} s, "
            f"the longest {longest:.1f} s"
        )
        return Found("talk_over", "violated", reason, evidence, measured=round(longest, 3))
    reason = f"no overlap{who} over {rule.talk_over.over:g} s (the longest {longest:.1f} s)"
    return Found("talk_over", "met", reason, measured=round(longest, 3))


def _outside(value: float, low: float | None, high: float | None) -> str:
    if low is not None and value < low:
        return f"under the minimum {low:g}"
    if high is not None and value > high:
        return f"over the maximum {high:g}"
    return ""


def talk_ratio(
    transcript: Transcript, rule: TalkRatio, settings: Settings, bounds: Interval
) -> Found:
    if why := _stereo_missing(transcript):
        return Found("talk_ratio", "unverifiable", why)
    whose: Speaker = "caller" if settings.speaker == "caller" else "agent"
    own = total(speech_in(transcript, [whose], bounds))
    other = total(speech_in(transcript, ["caller" if whose == "agent" else "agent"], bounds))
    if own + other < MIN_RATE_SPEECH:
        return Found(
            "talk_ratio",
            "unverifiable",
            f"only {own + other:.1f} s of speech; the share needs {MIN_RATE_SPEECH:g} s",
        )
    ratio = round(own / (own + other), 3)
    bad = _outside(ratio, rule.talk_ratio.min, rule.talk_ratio.max)
    reason = f"the {whose} spoke {ratio:.0%} of the speaking time" + (f", {bad}" if bad else "")
    return Found("talk_ratio", "violated" if bad else "met", reason, measured=ratio)


def syllables(word: str) -> int:
    """Hangul syllables in ``word``; for other scripts, its groups of vowels (at least 1)."""
    hangul = sum(1 for ch in word if "\uac00" <= ch <= "\ud7a3")
    if hangul:
        return hangul
    return max(1, len(_VOWELS.findall(word))) if any(ch.isalnum() for ch in word) else 0


def speaking_rate(
    transcript: Transcript, rule: SpeakingRate, settings: Settings, bounds: Interval
) -> Found:
    legs, why = legs_for(transcript, settings.speaker)
    if not legs:
        return Found("speaking_rate", "unverifiable", why)
    words = [w for leg in legs for w in words_in(transcript, leg, bounds)]
    spoken = total(speech_in(transcript, legs, bounds))
    if spoken < MIN_RATE_SPEECH or not words:
        return Found(
            "speaking_rate",
            "unverifiable",
            f"only {spoken:.1f} s of speech with {len(words)} words; a rate needs "
            f"{MIN_RATE_SPEECH:g} s",
        )
    confidence = round(mean([w.confidence for w in words]), 3)
    if confidence < settings.min_confidence:
        return Found(
            "speaking_rate",
            "unverifiable",
            f"recognition is unsure (confidence {confidence} under {settings.min_confidence}): "
            "the syllables cannot be counted",
            confidence=confidence,
        )
    rate = round(sum(syllables(w.word) for w in words) / spoken, 2)
    bad = _outside(rate, rule.speaking_rate.min, rule.speaking_rate.max)
    reason = f"{rate:g} syllables per second of speech" + (f", {bad}" if bad else "")
    return Found(
        "speaking_rate", "violated" if bad else "met", reason, measured=rate, confidence=confidence
    )
