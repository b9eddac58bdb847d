"""Finding phrases in recognised words: exact, pattern, fuzzy (on Hangul jamo) and proximity.

Recognisers split Korean into words their own way (감사합니다, 감사 합니다)
and words carry particles and endings (해지를, 해지해), so a phrase is looked
for in a leg's words joined without spaces: it must start where a recognised
word starts and may end inside one. Case, NFC form and punctuation do not
matter.

Patterns add three wildcards to plain text: ``*`` any text (up to
:data:`MAX_STAR` characters), ``?`` exactly one character (a Hangul syllable
is one), and ``[num]`` a number, in digits (Vosk's Korean model writes them
``[5]``) or in words (일, 이, 삼, 하나, 둘 …). ``[`` and ``]`` are otherwise
not allowed.

Fuzzy matching tolerates recognition errors: the phrase and the words are
decomposed into Hangul jamo (감 → ㄱㅏㅁ, so 해지 and 헤지 differ by one
letter, not one whole syllable) and compared by Levenshtein similarity
(``1 - distance / longer length``, rapidfuzz); a match needs at least the
rule's threshold. Other scripts are compared letter by letter.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Final, Literal

import hangul_jamo  # type: ignore[import-untyped]
from rapidfuzz.distance import Levenshtein

from speech.qa.transcript import Word

__all__ = [
    "MAX_STAR",
    "Hit",
    "Mode",
    "PatternError",
    "Phrase",
    "Stream",
    "Token",
    "find_near",
    "jamo",
    "normalise",
    "parse_pattern",
]

Mode = Literal["exact", "pattern", "fuzzy"]

#: The most characters one ``*`` stands for: a wildcard must not join two far-apart words.
MAX_STAR = 20

_DROP = re.compile(r"[^\w]|_")
_WILDCARDS = re.compile(r"\[num\]|[*?]")
_SINO = "영공일이삼사오육륙칠팔구십백천만억"
_NATIVE = ("하나", "둘", "셋", "넷", "다섯", "여섯", "일곱", "여덟", "아홉", "열", "스물", "서른")
_NUMBER = rf"(?:[0-9{_SINO}]|{'|'.join(_NATIVE)})+"


class PatternError(ValueError):
    """A phrase or pattern that cannot be matched; the message says what is allowed."""


def normalise(text: str) -> str:
    """Lower case, NFC, without spaces or punctuation: the form phrases are compared in."""
    return _DROP.sub("", unicodedata.normalize("NFC", text).lower())


#: Vowels Korean speakers (and so recognisers) no longer tell apart: ㅐ/ㅔ, ㅒ/ㅖ, ㅙ/ㅚ/ㅞ.
_MERGED: Final = str.maketrans({"ㅐ": "ㅔ", "ㅒ": "ㅖ", "ㅙ": "ㅞ", "ㅚ": "ㅞ"})


def jamo(text: str) -> str:
    """``text`` as the letters it is heard as: each Hangul syllable decomposed (감 -> ㄱㅏㅁ),
    the silent initial ㅇ dropped (아 -> ㅏ) and merged vowels written one way (해 -> ㅎㅔ)."""
    out = []
    for char in text:
        if hangul_jamo.is_syllable(char):
            lead, vowel, tail = hangul_jamo.decompose_syllable(char)
            out.append(("" if lead == "ㅇ" else lead) + vowel + (tail or ""))
        else:
            out.append(char)
    return "".join(out).translate(_MERGED)


@dataclass(frozen=True, slots=True)
class Token:
    """One piece of a pattern: literal text, ``*``, ``?`` or ``[num]``."""

    kind: Literal["text", "star", "one", "num"]
    text: str = ""


def parse_pattern(pattern: str, *, wildcards: bool = True) -> tuple[Token, ...]:
    """Split a pattern into tokens; raises PatternError for what cannot be matched."""
    tokens: list[Token] = []
    position = 0
    for found in _WILDCARDS.finditer(pattern):
        _literal(tokens, pattern[position : found.start()])
        if not wildcards:
            raise PatternError(
                f"{found.group()!r} is a pattern wildcard; write the phrase as plain words, "
                "or set `match: pattern` to use *, ? and [num]"
            )
        kind = {"*": "star", "?": "one", "[num]": "num"}[found.group()]
        if not (kind == "star" and tokens and tokens[-1].kind == "star"):  # ** is *
            tokens.append(Token(kind))  # type: ignore[arg-type]
        position = found.end()
    _literal(tokens, pattern[position:])
    if not any(t.kind in ("text", "num") for t in tokens):
        raise PatternError(
            f"{pattern!r} has no words to look for; a phrase needs letters, digits or [num]"
        )
    if tokens[0].kind == "star" or tokens[-1].kind == "star":
        # A leading * would let a match start anywhere; a trailing one adds nothing.
        ends = (0, len(tokens) - 1)
        tokens = [t for i, t in enumerate(tokens) if not (t.kind == "star" and i in ends)]
    return tuple(tokens)


def _literal(tokens: list[Token], text: str) -> None:
    if "[" in text or "]" in text:
        raise PatternError(
            f"{text.strip()!r}: brackets are only allowed as [num] (a number in digits or words)"
        )
    text = normalise(text)
    if text:
        tokens.append(Token("text", text))


def _regex(tokens: Sequence[Token]) -> re.Pattern[str]:
    parts = []
    for token in tokens:
        if token.kind == "text":
            parts.append(re.escape(token.text))
        elif token.kind == "star":
            parts.append(f".{{0,{MAX_STAR}}}?")
        elif token.kind == "one":
            parts.append(".")
        else:
            parts.append(_NUMBER)
    return re.compile("".join(parts))


@dataclass(frozen=True, slots=True)
class Hit:
    """Where a phrase was found: words ``first..last`` (inclusive) of a stream."""

    first: int
    last: int
    score: float = 1.0  # 1.0 for exact and pattern matches, the similarity for fuzzy ones


class Stream:
    """Consecutive words of one leg, joined for searching (plain and as jamo)."""

    def __init__(self, words: Sequence[Word]) -> None:
        self.words = tuple(words)
        # [unk] (models that have it) stands for words the model does not know: no text.
        forms = [normalise(w.word) if w.word != "[unk]" else "" for w in self.words]
        self.text, self.starts, self._owner = _join(forms)
        self.jamo, self.jamo_starts, self._jamo_owner = _join([jamo(f) for f in forms])

    def word_at(self, offset: int, *, in_jamo: bool = False) -> int:
        """The index of the word that character ``offset`` of the joined text belongs to."""
        return (self._jamo_owner if in_jamo else self._owner)[offset]


def _join(forms: Sequence[str]) -> tuple[str, tuple[int, ...], tuple[int, ...]]:
    starts: list[int] = []
    owner: list[int] = []
    for index, form in enumerate(forms):
        starts.append(len(owner) if form else -1)
        owner.extend([index] * len(form))
    return "".join(forms), tuple(starts), tuple(owner)


@dataclass(frozen=True)
class Phrase:
    """A phrase of a rule, compiled for one matching mode."""

    text: str
    mode: Mode = "exact"
    threshold: float = 1.0  # fuzzy only: the least similarity that counts

    def __post_init__(self) -> None:
        if not 0 < self.threshold <= 1:
            raise PatternError(f"threshold {self.threshold} must be above 0 and at most 1")
        self.tokens  # noqa: B018 -- parse now: a bad phrase fails where it is written

    @cached_property
    def tokens(self) -> tuple[Token, ...]:
        return parse_pattern(self.text, wildcards=self.mode == "pattern")

    @cached_property
    def _pattern(self) -> re.Pattern[str]:
        return _regex(self.tokens)

    @cached_property
    def _jamo(self) -> str:
        return jamo(normalise(self.text))

    def find(self, stream: Stream) -> list[Hit]:
        """Every place in ``stream`` the phrase starts at, best first where two overlap."""
        if self.mode == "fuzzy":
            return self._fuzzy(stream)
        hits = []
        for start in stream.starts:
            if start < 0:
                continue
            found = self._pattern.match(stream.text, start)
            if found is not None and found.end() > start:
                hits.append(Hit(stream.word_at(start), stream.word_at(found.end() - 1)))
        return _disjoint(hits)

    def _fuzzy(self, stream: Stream) -> list[Hit]:
        target = self._jamo
        size = len(target)
        # The most edits a match can have: similarity = 1 - edits / max(len) >= threshold.
        slack = int((1 - self.threshold) * size / self.threshold) + 1
        hits = []
        for start in stream.jamo_starts:
            if start < 0:
                continue
            best, best_end = 0.0, start
            for length in range(max(1, size - slack), size + slack + 1):
                if start + length > len(stream.jamo):
                    break
                similarity = Levenshtein.normalized_similarity(
                    target, stream.jamo[start : start + length], score_cutoff=self.threshold
                )
                if similarity > best:
                    best, best_end = similarity, start + length
            if best >= self.threshold:
                first = stream.word_at(start, in_jamo=True)
                last = stream.word_at(best_end - 1, in_jamo=True)
                hits.append(Hit(first, last, round(best, 3)))
        return _disjoint(hits)


def _disjoint(hits: list[Hit]) -> list[Hit]:
    """Overlapping hits are one finding: keep the best score (the earliest among equals)."""
    kept: list[Hit] = []
    for hit in sorted(hits, key=lambda h: (-h.score, h.first)):
        if all(hit.last < k.first or hit.first > k.last for k in kept):
            kept.append(hit)
    return sorted(kept, key=lambda h: h.first)


def find_near(a: Phrase, b: Phrase, within: int, stream: Stream) -> list[Hit]:
    """Places where ``a`` and ``b`` occur, in either order, with at most ``within`` words
    between them; each hit spans both and scores the lower of the two."""
    found = []
    for x in a.find(stream):
        for y in b.find(stream):
            if x.last < y.first:
                gap = y.first - x.last - 1
            elif y.last < x.first:
                gap = x.first - y.last - 1
            else:
                continue  # the same words cannot be both phrases
            if gap <= within:
                found.append(Hit(min(x.first, y.first), max(x.last, y.last), min(x.score, y.score)))
    return _disjoint(found)
