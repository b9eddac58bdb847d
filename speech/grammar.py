"""Menu grammars for Vosk and the engine's own confidence for a recognised text.

Vosk's word confidences say little when the caller says something outside the
grammar: the decoder must pick grammar words anyway and is often sure of them.
So a grammar carries garbage words that soak up other speech: Vosk's ``[unk]``
where the model has it, and otherwise (the small Korean model has no ``[unk]``)
a set of short filler syllables from the model's own vocabulary. A result is
scored by the word confidences of the matched phrase times the share of the
utterance that phrase covers, so a phrase heard inside other speech, or two
different phrases at once, scores low and becomes ``nomatch``, never a wrong
option. Without grammar support (static-graph models) the text is compared to
the phrases by edit distance instead.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass

__all__ = ["Grammar", "Scored", "Word", "build_grammar", "normalise", "score", "similarity"]

UNK = "[unk]"
_PUNCT = re.compile(r"[^\w\s]|_")


def _hangul(onset: int, vowel: int) -> str:
    return chr(0xAC00 + (onset * 21 + vowel) * 28)


# Open syllables (consonant + a, eo, o, u, i, eu): short words every Korean
# model knows, enough to imitate any speech. Measured with espeak-ng's Korean
# voice: 80 of them keep in-grammar words intact while out-of-grammar speech
# decodes to fillers; 400 (with final consonants) started to eat real phrases.
_KO_FILLERS = tuple(
    _hangul(onset, vowel)
    for onset in (0, 2, 3, 5, 6, 7, 9, 11, 12, 14, 15, 16, 17, 18)
    for vowel in (0, 4, 8, 13, 20, 18)
)
FILLERS: dict[str, tuple[str, ...]] = {"ko": _KO_FILLERS}


def normalise(text: str) -> str:
    """Lower case, NFC, punctuation removed, single spaces."""
    text = unicodedata.normalize("NFC", text).lower()
    return " ".join(_PUNCT.sub(" ", text).split())


@dataclass(frozen=True, slots=True)
class Word:
    """One recognised word with Vosk's confidence and its times (s, audio time)."""

    word: str
    conf: float
    start: float
    end: float


@dataclass(frozen=True, slots=True)
class Grammar:
    """The phrases a menu listens for, as Vosk will see them."""

    phrases: dict[str, str]  # normalised -> as the flow wrote it
    dropped: tuple[str, ...]  # phrases with a word the model does not know
    unknown_words: tuple[str, ...]
    garbage: frozenset[str]
    constrained: bool  # False: the model cannot take grammars, score by text

    def to_json(self) -> str | None:
        """The Vosk grammar (a JSON list), or None for free-form decoding."""
        if not self.constrained or not self.phrases:
            return None
        return json.dumps([*self.phrases, *sorted(self.garbage)], ensure_ascii=False)


def build_grammar(
    phrases: Sequence[str],
    *,
    language: str,
    knows: Callable[[str], bool],
    constrained: bool = True,
) -> Grammar:
    """Keep the phrases whose words ``knows``; add garbage words the model has."""
    kept: dict[str, str] = {}
    dropped: list[str] = []
    unknown: list[str] = []
    for phrase in phrases:
        norm = normalise(phrase)
        missing = [w for w in norm.split() if not knows(w)]
        if not norm or (constrained and missing):
            dropped.append(phrase)
            unknown.extend(w for w in missing if w not in unknown)
            continue
        kept.setdefault(norm, phrase)
    garbage: set[str] = set()
    if constrained:
        if knows(UNK):
            garbage.add(UNK)
        else:
            used = set("".join(kept).replace(" ", ""))
            garbage.update(
                f for f in FILLERS.get(language.split("-", maxsplit=1)[0], ()) if f not in used
            )
            garbage = {f for f in garbage if knows(f)}
    return Grammar(kept, tuple(dropped), tuple(unknown), frozenset(garbage), constrained)


@dataclass(frozen=True, slots=True)
class Scored:
    """The phrase a result points to (None if none or several) and the confidence 0..1."""

    phrase: str | None
    confidence: float
    content: str  # the recognised text without garbage words


def score(words: Sequence[Word], text: str, grammar: Grammar | None, speech: float = 0.0) -> Scored:
    """Score a Vosk result against a grammar (or against nothing for free-form).

    ``speech`` is how long the VAD heard speech (s): the matched phrase must
    cover most of it, so a phrase inside a longer sentence scores low.
    """
    if grammar is None or not grammar.phrases:
        confs = [w.conf for w in words]
        return Scored(None, sum(confs) / len(confs) if confs else 0.0, normalise(text))
    content = [w for w in words if w.word not in grammar.garbage]
    content_text = " ".join(w.word for w in content)
    if not content:
        return Scored(None, 0.0, "")
    if grammar.constrained:
        return _score_constrained(words, content, content_text, grammar, speech)
    return _score_text(content, content_text, grammar)


def _duration(word: Word) -> float:
    return max(word.end - word.start, 0.01)


def _score_constrained(
    words: Sequence[Word],
    content: Sequence[Word],
    content_text: str,
    grammar: Grammar,
    speech: float,
) -> Scored:
    tokens = [w.word for w in content]
    by_length = sorted(grammar.phrases, key=lambda p: -len(p.split()))
    matched: set[str] = set()
    covered: list[Word] = []
    i = 0
    while i < len(tokens):
        for phrase in by_length:
            size = len(phrase.split())
            if tokens[i : i + size] == phrase.split():
                matched.add(phrase)
                covered.extend(content[i : i + size])
                i += size
                break
        else:
            i += 1
    if len(matched) != 1:
        return Scored(None, 0.0, content_text)  # none, or two different options: ask again
    acoustic = sum(w.conf for w in covered) / len(covered)
    coverage = sum(map(_duration, covered)) / max(sum(map(_duration, words)), speech)
    phrase = grammar.phrases[matched.pop()]
    return Scored(phrase, acoustic * coverage, content_text)


def _score_text(content: Sequence[Word], content_text: str, grammar: Grammar) -> Scored:
    acoustic = sum(w.conf for w in content) / len(content)
    ranked = sorted(((similarity(content_text, p), p) for p in grammar.phrases), reverse=True)
    best, phrase = ranked[0]
    if len(ranked) > 1 and ranked[1][0] > best - 0.1:
        return Scored(None, 0.0, content_text)  # too close to call
    return Scored(grammar.phrases[phrase], acoustic * best, content_text)


def similarity(text: str, phrase: str) -> float:
    """1 - normalised character edit distance (spaces ignored), or the phrase's share
    of the text when the text contains the phrase's words in order."""
    a, b = text.replace(" ", ""), phrase.replace(" ", "")
    if not a or not b:
        return 0.0
    edit = 1.0 - _levenshtein(a, b) / max(len(a), len(b))
    contained = f" {phrase} " in f" {text} "
    return max(edit, len(b) / len(a) if contained else 0.0)


def _levenshtein(a: str, b: str) -> int:
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]
