"""FAQ answers: match a caller's question to question/answer pairs, offline.

TF-IDF over character n-grams (2 and 3 characters, across word boundaries)
with cosine similarity: it needs no tokenizer, so Korean particles (상담원이,
상담원과) still share most n-grams with the bare word. Pure Python; an FAQ of
a few hundred entries matches in well under a millisecond per question.
Whether the caller asked for a person instead is the flow's decision;
``is_handoff`` tells it.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from speech.grammar import normalise

__all__ = ["DEFAULT_HANDOFF", "FaqEntry", "FaqMatcher"]

DEFAULT_HANDOFF = (
    "상담원",
    "상담사",
    "직원",
    "사람",
    "agent",
    "operator",
    "representative",
    "human",
)


@dataclass(frozen=True, slots=True)
class FaqEntry:
    """One question and its answer; ``key`` names it in logs and flows."""

    question: str
    answer: str
    key: str = ""


def _grams(text: str, sizes: Sequence[int]) -> Counter[str]:
    padded = f" {normalise(text)} "
    return Counter(padded[i : i + n] for n in sizes for i in range(len(padded) - n + 1))


def _is_hangul(text: str) -> bool:
    return any("\uac00" <= c <= "\ud7a3" for c in text)


class FaqMatcher:
    """Finds the FAQ entry closest to a question, or None below ``threshold``."""

    def __init__(
        self,
        entries: Iterable[FaqEntry],
        *,
        threshold: float = 0.35,
        sizes: Sequence[int] = (2, 3),
        handoff: Sequence[str] = DEFAULT_HANDOFF,
    ) -> None:
        self.entries = tuple(entries)
        if not self.entries:
            raise ValueError("an FAQ needs at least one question and answer")
        self.threshold = threshold
        self.sizes = tuple(sizes)
        self.handoff = tuple(normalise(h) for h in handoff)
        counts = [_grams(e.question, self.sizes) for e in self.entries]
        df: Counter[str] = Counter(g for c in counts for g in c)
        total = len(counts)
        self._idf = {g: math.log((1 + total) / (1 + n)) + 1.0 for g, n in df.items()}
        self._vectors = [self._vector(c) for c in counts]

    def _vector(self, counts: Counter[str]) -> dict[str, float]:
        weights = {
            g: (1.0 + math.log(n)) * self._idf[g] for g, n in counts.items() if g in self._idf
        }
        norm = math.sqrt(sum(w * w for w in weights.values())) or 1.0
        return {g: w / norm for g, w in weights.items()}

    def scores(self, text: str) -> list[tuple[FaqEntry, float]]:
        """Every entry with its cosine similarity to ``text``, best first."""
        query = self._vector(_grams(text, self.sizes))
        ranked = [
            (entry, sum(w * vector.get(g, 0.0) for g, w in query.items()))
            for entry, vector in zip(self.entries, self._vectors, strict=True)
        ]
        return sorted(ranked, key=lambda pair: -pair[1])

    def match(self, text: str) -> tuple[FaqEntry, float] | None:
        """The best entry and its score, or None if nothing reaches the threshold."""
        if not normalise(text):
            return None
        entry, best = self.scores(text)[0]
        return (entry, best) if best >= self.threshold else None

    def is_handoff(self, text: str) -> bool:
        """Whether the caller asks for a person (상담원, agent...)."""
        norm = normalise(text)
        words = set(norm.split())
        return any(
            (phrase in norm)
            if _is_hangul(phrase)
            else (phrase in words or f" {phrase} " in f" {norm} ")
            for phrase in self.handoff
        )
