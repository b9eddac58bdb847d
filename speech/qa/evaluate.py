"""Applying a rule pack to a transcript: an outcome per rule, with evidence, and a score.

Phrase rules search each leg the rule's speaker names, within its window,
in runs of words without a pause over :data:`MAX_GAP` seconds (a phrase is
said in one breath). A rule is **unverifiable** rather than met or violated
when the words that would decide it were recognised with a mean confidence
under ``min_confidence``, when the window holds speech but no recognised
words, or when the recording lacks the leg the rule is about (a mono mix
cannot tell the agent's words from the caller's).

Silence, talk-over and talk ratio read the legs' voice activity (the
transcript's ``speech``), which misses far less than recognition; a
transcript without it falls back on the words' times.

Groups combine their members three-valued: ``all_of`` is violated when one
member is, unverifiable when none is violated but one is unverifiable, and
met otherwise; ``any_of`` is met when one member is, unverifiable when none
is met but one is unverifiable, and violated otherwise.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Final

from speech.qa.phrases import Hit, Mode, Phrase, Stream, find_near
from speech.qa.results import CallResult, Evidence, Outcome, RuleResult, weighted_score
from speech.qa.rules import (
    AllOf,
    AnyOf,
    MustNotSay,
    MustSay,
    Near,
    RulePack,
    Silence,
    SpeakingRate,
    TalkOver,
    TalkRatio,
    Window,
    _Rule,
)
from speech.qa.transcript import Speaker, Transcript, Word

__all__ = ["MAX_GAP", "MIN_RATE_SPEECH", "evaluate"]

#: Seconds of pause that end a run of words: a phrase never spans a longer one.
MAX_GAP: Final = 2.0
#: Seconds of speech below which talk ratio and speaking rate are unverifiable.
MIN_RATE_SPEECH: Final = 3.0
#: Seconds of speech without a recognised word that make a window unverifiable.
_UNHEARD: Final = 1.0
_VOWELS = re.compile(r"[aeiouyàâäéèêëîïôöùûüœæ]+", re.IGNORECASE)

Interval = tuple[float, float]


@dataclass(frozen=True, slots=True)
class _Settings:
    speaker: Speaker
    window: Window | None
    match: Mode
    threshold: float
    min_confidence: float


def evaluate(transcript: Transcript, pack: RulePack, *, name: str | None = None) -> CallResult:
    """Every rule of ``pack`` applied to ``transcript``; ``name`` labels the pack in the result."""
    base = _Settings("any", None, "exact", pack.defaults.threshold, pack.defaults.min_confidence)
    results = tuple(_rule(transcript, rule, base) for rule in pack.rules)
    return CallResult(
        language=pack.language,
        pack=name or pack.name or "",
        duration=round(transcript.duration, 3),
        score=weighted_score(results),
        rules=results,
    )


def _settle(rule: _Rule, outer: _Settings) -> _Settings:
    """The rule's own settings over its group's, over the pack's defaults."""
    match = getattr(rule, "match", None)
    threshold = getattr(rule, "threshold", None)
    confidence = getattr(rule, "min_confidence", None)
    return _Settings(
        rule.speaker or outer.speaker,
        rule.window or outer.window,
        match or outer.match,
        outer.threshold if threshold is None else threshold,
        outer.min_confidence if confidence is None else confidence,
    )


def _rule(transcript: Transcript, rule: _Rule, outer: _Settings) -> RuleResult:
    settings = _settle(rule, outer)
    bounds = (
        settings.window.bounds(transcript.duration)
        if settings.window
        else (
            0.0,
            transcript.duration,
        )
    )
    if isinstance(rule, MustSay | MustNotSay):
        result = _phrases(transcript, rule, settings, bounds)
    elif isinstance(rule, AllOf | AnyOf):
        result = _group(transcript, rule, settings)
    elif isinstance(rule, Silence):
        result = _silence(transcript, rule, settings, bounds)
    elif isinstance(rule, TalkOver):
        result = _talk_over(transcript, rule, settings, bounds)
    elif isinstance(rule, TalkRatio):
        result = _talk_ratio(transcript, rule, settings, bounds)
    elif isinstance(rule, SpeakingRate):
        result = _speaking_rate(transcript, rule, settings, bounds)
    else:  # pragma: no cover - the model has no other kind
        raise TypeError(f"unknown rule {rule!r}")
    return RuleResult(
        id=rule.id,
        kind=result.kind,
        outcome=result.outcome,
        reason=result.reason,
        weight=rule.weight,
        evidence=result.evidence,
        measured=result.measured,
        confidence=result.confidence,
        window=(round(bounds[0], 3), round(bounds[1], 3)) if settings.window else None,
        members=result.members,
    )


# -- whose words ------------------------------------------------------------------


def _legs(transcript: Transcript, speaker: Speaker) -> tuple[list[Speaker], str]:
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


def _in(start: float, end: float, bounds: Interval) -> bool:
    return end > bounds[0] and start < bounds[1]


def _words(transcript: Transcript, speaker: Speaker, bounds: Interval) -> list[Word]:
    return [w for w in transcript.words_of(speaker) if _in(w.start, w.end, bounds)]


def _runs(words: Sequence[Word]) -> list[list[Word]]:
    """Split words where the pause between two is over MAX_GAP."""
    runs: list[list[Word]] = []
    for word in words:
        if runs and word.start - runs[-1][-1].end <= MAX_GAP:
            runs[-1].append(word)
        else:
            runs.append([word])
    return runs


def _speech(
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
    return _merge(found)


def _merge(intervals: Iterable[Interval]) -> list[Interval]:
    merged: list[Interval] = []
    for start, end in sorted(intervals):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _total(intervals: Iterable[Interval]) -> float:
    return sum(b - a for a, b in intervals)


# -- phrase rules -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Found:
    kind: str
    outcome: Outcome
    reason: str
    evidence: tuple[Evidence, ...] = ()
    measured: float | None = None
    confidence: float | None = None
    members: tuple[RuleResult, ...] = ()


@lru_cache(maxsize=4096)
def _compiled(text: str, mode: Mode, threshold: float) -> Phrase:
    return Phrase(text, mode, threshold if mode == "fuzzy" else 1.0)


def _label(item: str | Near) -> str:
    return item if isinstance(item, str) else f"{item.near[0]} ~{item.within}~ {item.near[1]}"


def _search(item: str | Near, settings: _Settings, stream: Stream) -> list[Hit]:
    if isinstance(item, str):
        return _compiled(item, settings.match, settings.threshold).find(stream)
    a, b = (_compiled(text, settings.match, settings.threshold) for text in item.near)
    return find_near(a, b, item.within, stream)


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)


def _where(bounds: Interval, settings: _Settings, speaker: Speaker) -> str:
    who = "anyone" if speaker == "any" else f"the {speaker}"
    window = settings.window
    if window is None:
        span = "the call"
    elif window.first is not None:
        span = f"the first {window.first:g} s"
    else:
        span = f"the last {window.last:g} s"
    return f"by {who} in {span}"


def _phrases(
    transcript: Transcript, rule: MustSay | MustNotSay, settings: _Settings, bounds: Interval
) -> _Found:
    kind = rule.kind
    legs, why = _legs(transcript, settings.speaker)
    if not legs:
        return _Found(kind, "unverifiable", why)
    evidence: list[Evidence] = []
    heard: list[float] = []
    for leg in legs:
        words = _words(transcript, leg, bounds)
        heard += [w.confidence for w in words]
        for run in _runs(words):
            stream = Stream(run)
            for item in rule.phrases:
                for hit in _search(item, settings, stream):
                    matched = run[hit.first : hit.last + 1]
                    evidence.append(
                        Evidence(
                            start=matched[0].start,
                            end=matched[-1].end,
                            speaker=leg,
                            words=tuple(w.word for w in matched),
                            phrase=_label(item),
                            score=hit.score,
                            confidence=round(_mean([w.confidence for w in matched]), 3),
                        )
                    )
    evidence.sort(key=lambda e: e.start)
    spoken = _total(_speech(transcript, legs, bounds))
    confidence = round(_mean(heard), 3) if heard else (0.0 if spoken >= _UNHEARD else None)
    where = _where(bounds, settings, settings.speaker)
    floor = settings.min_confidence
    sure = [e for e in evidence if (e.confidence or 0.0) >= floor]
    phrases = " / ".join(repr(_label(p)) for p in rule.phrases)
    if sure:
        first = sure[0]
        said = f"said {first.phrase!r} as {' '.join(first.words)!r} at {first.start:.1f} s"
        more = f" (and {len(sure) - 1} more)" if len(sure) > 1 else ""
        outcome: Outcome = "met" if kind == "must_say" else "violated"
        return _Found(kind, outcome, said + more, tuple(sure), confidence=confidence)
    if evidence:
        unsure = evidence[0]
        return _Found(
            kind,
            "unverifiable",
            f"heard {unsure.phrase!r} as {' '.join(unsure.words)!r} at {unsure.start:.1f} s, "
            f"but with confidence {unsure.confidence} under {floor}",
            tuple(evidence),
            confidence=confidence,
        )
    if confidence is not None and confidence < floor:
        reason = (
            f"{phrases} not heard {where}, but recognition there is unsure "
            f"(confidence {confidence} under {floor})"
        )
        return _Found(kind, "unverifiable", reason, confidence=confidence)
    outcome = "violated" if kind == "must_say" else "met"
    nothing = " (nothing was said there)" if confidence is None else ""
    return _Found(kind, outcome, f"{phrases} not said {where}{nothing}", confidence=confidence)


# -- groups -----------------------------------------------------------------------


def _group(transcript: Transcript, rule: AllOf | AnyOf, settings: _Settings) -> _Found:
    everyone = isinstance(rule, AllOf)
    members = rule.all_of if isinstance(rule, AllOf) else rule.any_of
    results = tuple(_rule(transcript, member, settings) for member in members)
    outcomes = {r.outcome for r in results}
    decisive: Outcome = "violated" if everyone else "met"
    if decisive in outcomes:
        outcome = decisive
    elif "unverifiable" in outcomes:
        outcome = "unverifiable"
    else:
        outcome = "met" if everyone else "violated"
    met = sum(r.outcome == "met" for r in results)
    reason = f"{met} of {len(results)} met ({'all' if everyone else 'one'} needed)"
    return _Found("all_of" if everyone else "any_of", outcome, reason, members=results)


# -- timing rules -----------------------------------------------------------------


def _silence(
    transcript: Transcript, rule: Silence, settings: _Settings, bounds: Interval
) -> _Found:
    legs, why = _legs(transcript, settings.speaker)
    if not legs:
        return _Found("silence", "unverifiable", why)
    speech = _speech(transcript, legs, bounds)
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
        return _Found("silence", "violated", reason, evidence, measured=round(longest, 3))
    reason = f"no silence over {rule.silence.over:g} s (the longest {longest:.1f} s)"
    return _Found("silence", "met", reason, measured=round(longest, 3))


def _stereo_missing(transcript: Transcript) -> str:
    if transcript.stereo:
        return ""
    return (
        "needs the agent's and the caller's legs recorded apart (MixMonitor r() and t()); "
        "this recording has " + ", ".join(leg.speaker for leg in transcript.legs)
    )


def _talk_over(
    transcript: Transcript, rule: TalkOver, settings: _Settings, bounds: Interval
) -> _Found:
    if why := _stereo_missing(transcript):
        return _Found("talk_over", "unverifiable", why)
    agent = _speech(transcript, ["agent"], bounds)
    caller = _speech(transcript, ["caller"], bounds)
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
        return _Found("talk_over", "violated", reason, evidence, measured=round(longest, 3))
    reason = f"no overlap{who} over {rule.talk_over.over:g} s (the longest {longest:.1f} s)"
    return _Found("talk_over", "met", reason, measured=round(longest, 3))


def _outside(value: float, low: float | None, high: float | None) -> str:
    if low is not None and value < low:
        return f"under the minimum {low:g}"
    if high is not None and value > high:
        return f"over the maximum {high:g}"
    return ""


def _talk_ratio(
    transcript: Transcript, rule: TalkRatio, settings: _Settings, bounds: Interval
) -> _Found:
    if why := _stereo_missing(transcript):
        return _Found("talk_ratio", "unverifiable", why)
    whose: Speaker = "caller" if settings.speaker == "caller" else "agent"
    own = _total(_speech(transcript, [whose], bounds))
    other = _total(_speech(transcript, ["caller" if whose == "agent" else "agent"], bounds))
    if own + other < MIN_RATE_SPEECH:
        return _Found(
            "talk_ratio",
            "unverifiable",
            f"only {own + other:.1f} s of speech; the share needs {MIN_RATE_SPEECH:g} s",
        )
    ratio = round(own / (own + other), 3)
    bad = _outside(ratio, rule.talk_ratio.min, rule.talk_ratio.max)
    reason = f"the {whose} spoke {ratio:.0%} of the speaking time" + (f", {bad}" if bad else "")
    return _Found("talk_ratio", "violated" if bad else "met", reason, measured=ratio)


def syllables(word: str) -> int:
    """Hangul syllables in ``word``; for other scripts, its groups of vowels (at least 1)."""
    hangul = sum(1 for ch in word if "\uac00" <= ch <= "\ud7a3")
    if hangul:
        return hangul
    return max(1, len(_VOWELS.findall(word))) if any(ch.isalnum() for ch in word) else 0


def _speaking_rate(
    transcript: Transcript, rule: SpeakingRate, settings: _Settings, bounds: Interval
) -> _Found:
    legs, why = _legs(transcript, settings.speaker)
    if not legs:
        return _Found("speaking_rate", "unverifiable", why)
    words = [w for leg in legs for w in _words(transcript, leg, bounds)]
    spoken = _total(_speech(transcript, legs, bounds))
    if spoken < MIN_RATE_SPEECH or not words:
        return _Found(
            "speaking_rate",
            "unverifiable",
            f"only {spoken:.1f} s of speech with {len(words)} words; a rate needs "
            f"{MIN_RATE_SPEECH:g} s",
        )
    confidence = round(_mean([w.confidence for w in words]), 3)
    if confidence < settings.min_confidence:
        return _Found(
            "speaking_rate",
            "unverifiable",
            f"recognition is unsure (confidence {confidence} under {settings.min_confidence}): "
            "the syllables cannot be counted",
            confidence=confidence,
        )
    rate = round(sum(syllables(w.word) for w in words) / spoken, 2)
    bad = _outside(rate, rule.speaking_rate.min, rule.speaking_rate.max)
    reason = f"{rate:g} syllables per second of speech" + (f", {bad}" if bad else "")
    return _Found(
        "speaking_rate", "violated" if bad else "met", reason, measured=rate, confidence=confidence
    )
