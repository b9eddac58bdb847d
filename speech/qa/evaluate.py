"""Applying a rule pack to a transcript: an outcome per rule, with evidence, and a score.

Phrase rules search each leg the rule's speaker names, within its window,
in runs of words without a pause over :data:`MAX_GAP` seconds (a phrase is
said in one breath). A rule is **unverifiable** rather than met or violated
when the words that would decide it were recognised with a mean confidence
under ``min_confidence``, when the window holds speech but no recognised
words, or when the recording lacks the leg the rule is about (a mono mix
cannot tell the agent's words from the caller's).

Silence, talk-over, talk ratio and speaking rate are in :mod:`speech.qa.timing`.

Groups combine their members three-valued: ``all_of`` is violated when one
member is, unverifiable when none is violated but one is unverifiable, and
met otherwise; ``any_of`` is met when one member is, unverifiable when none
is met but one is unverifiable, and violated otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Final

from speech.qa import timing
from speech.qa._scope import Found, Interval, Settings, legs_for, mean, speech_in, total, words_in
from speech.qa.phrases import Hit, Mode, Phrase, Stream, find_near
from speech.qa.results import CallResult, Evidence, Outcome, RuleResult, weighted_score
from speech.qa.rules import (
    AllOf,
    AnyOf,
    BaseRule,
    MustNotSay,
    MustSay,
    Near,
    RulePack,
    Silence,
    SpeakingRate,
    TalkOver,
    TalkRatio,
)
from speech.qa.transcript import Speaker, Transcript, Word

__all__ = ["MAX_GAP", "evaluate"]

#: Seconds of pause that end a run of words: a phrase never spans a longer one.
MAX_GAP: Final = 2.0
#: Seconds of speech without a recognised word that make a window unverifiable.
_UNHEARD: Final = 1.0


def evaluate(transcript: Transcript, pack: RulePack, *, name: str | None = None) -> CallResult:
    """Every rule of ``pack`` applied to ``transcript``; ``name`` labels the pack in the result."""
    base = Settings("any", None, "exact", pack.defaults.threshold, pack.defaults.min_confidence)
    results = tuple(_rule(transcript, rule, base) for rule in pack.rules)
    return CallResult(
        language=pack.language,
        pack=name or pack.name or "",
        duration=round(transcript.duration, 3),
        score=weighted_score(results),
        rules=results,
    )


def _settle(rule: BaseRule, outer: Settings) -> Settings:
    """The rule's own settings over its group's, over the pack's defaults."""
    match = getattr(rule, "match", None)
    threshold = getattr(rule, "threshold", None)
    confidence = getattr(rule, "min_confidence", None)
    return Settings(
        rule.speaker or outer.speaker,
        rule.window or outer.window,
        match or outer.match,
        outer.threshold if threshold is None else threshold,
        outer.min_confidence if confidence is None else confidence,
    )


def _rule(transcript: Transcript, rule: BaseRule, outer: Settings) -> RuleResult:
    settings = _settle(rule, outer)
    whole = (0.0, transcript.duration)
    bounds = settings.window.bounds(transcript.duration) if settings.window else whole
    if isinstance(rule, MustSay | MustNotSay):
        result = _phrases(transcript, rule, settings, bounds)
    elif isinstance(rule, AllOf | AnyOf):
        result = _group(transcript, rule, settings)
    elif isinstance(rule, Silence):
        result = timing.silence(transcript, rule, settings, bounds)
    elif isinstance(rule, TalkOver):
        result = timing.talk_over(transcript, rule, settings, bounds)
    elif isinstance(rule, TalkRatio):
        result = timing.talk_ratio(transcript, rule, settings, bounds)
    elif isinstance(rule, SpeakingRate):
        result = timing.speaking_rate(transcript, rule, settings, bounds)
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


# -- phrase rules -----------------------------------------------------------------


def _runs(words: Sequence[Word]) -> list[list[Word]]:
    """Split words where the pause between two is over MAX_GAP."""
    runs: list[list[Word]] = []
    for word in words:
        if runs and word.start - runs[-1][-1].end <= MAX_GAP:
            runs[-1].append(word)
        else:
            runs.append([word])
    return runs


@lru_cache(maxsize=4096)
def _compiled(text: str, mode: Mode, threshold: float) -> Phrase:
    return Phrase(text, mode, threshold if mode == "fuzzy" else 1.0)


def _label(item: str | Near) -> str:
    return item if isinstance(item, str) else f"{item.near[0]} ~{item.within}~ {item.near[1]}"


def _search(item: str | Near, settings: Settings, stream: Stream) -> list[Hit]:
    if isinstance(item, str):
        return _compiled(item, settings.match, settings.threshold).find(stream)
    a, b = (_compiled(text, settings.match, settings.threshold) for text in item.near)
    return find_near(a, b, item.within, stream)


def _where(bounds: Interval, settings: Settings, speaker: Speaker) -> str:
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
    transcript: Transcript, rule: MustSay | MustNotSay, settings: Settings, bounds: Interval
) -> Found:
    kind = rule.kind
    legs, why = legs_for(transcript, settings.speaker)
    if not legs:
        return Found(kind, "unverifiable", why)
    evidence: list[Evidence] = []
    heard: list[float] = []
    for leg in legs:
        words = words_in(transcript, leg, bounds)
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
                            confidence=round(mean([w.confidence for w in matched]), 3),
                        )
                    )
    evidence.sort(key=lambda e: e.start)
    spoken = total(speech_in(transcript, legs, bounds))
    confidence = round(mean(heard), 3) if heard else (0.0 if spoken >= _UNHEARD else None)
    where = _where(bounds, settings, settings.speaker)
    floor = settings.min_confidence
    sure = [e for e in evidence if (e.confidence or 0.0) >= floor]
    phrases = " / ".join(repr(_label(p)) for p in rule.phrases)
    if sure:
        first = sure[0]
        said = f"said {first.phrase!r} as {' '.join(first.words)!r} at {first.start:.1f} s"
        more = f" (and {len(sure) - 1} more)" if len(sure) > 1 else ""
        outcome: Outcome = "met" if kind == "must_say" else "violated"
        return Found(kind, outcome, said + more, tuple(sure), confidence=confidence)
    if evidence:
        unsure = evidence[0]
        return Found(
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
        return Found(kind, "unverifiable", reason, confidence=confidence)
    outcome = "violated" if kind == "must_say" else "met"
    nothing = " (nothing was said there)" if confidence is None else ""
    return Found(kind, outcome, f"{phrases} not said {where}{nothing}", confidence=confidence)


# -- groups -----------------------------------------------------------------------


def _group(transcript: Transcript, rule: AllOf | AnyOf, settings: Settings) -> Found:
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
    return Found("all_of" if everyone else "any_of", outcome, reason, members=results)
