"""What the rules found in one call: an outcome per rule, the evidence, a weighted score; JSON.

An outcome is ``met``, ``violated`` or ``unverifiable`` (recognition too
unsure in the rule's window to say, or the recording lacks what the rule
needs, such as the agent's own leg). The score is the weighted share of met
rules among the rules that could be verified, 0 to 100, or None when none
could.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import TypeAdapter, ValidationError

from speech.qa.errors import TranscriptError
from speech.qa.transcript import Speaker

__all__ = ["CallResult", "Evidence", "Outcome", "RuleResult"]

Outcome = Literal["met", "violated", "unverifiable"]


@dataclass(frozen=True, slots=True)
class Evidence:
    """A moment that decided a rule: matched words, or a silence / an overlap (no words)."""

    start: float
    end: float
    speaker: Speaker
    #: The recognised words matched, as Vosk wrote them.
    words: tuple[str, ...] = ()
    #: The rule's phrase that matched (as the pack wrote it).
    phrase: str | None = None
    #: 1.0 for exact and pattern matches; the jamo similarity for fuzzy ones.
    score: float = 1.0
    #: Vosk's mean confidence over the matched words.
    confidence: float | None = None


@dataclass(frozen=True, slots=True)
class RuleResult:
    """One rule's outcome in one call."""

    id: str | None
    kind: str
    outcome: Outcome
    reason: str
    weight: float = 1.0
    evidence: tuple[Evidence, ...] = ()
    #: What a non-phrase rule measured: the longest silence or overlap (s), a share, a rate.
    measured: float | None = None
    #: The mean recognition confidence in the rule's window (phrase rules).
    confidence: float | None = None
    window: tuple[float, float] | None = None
    members: tuple[RuleResult, ...] = ()


@dataclass(frozen=True, slots=True)
class CallResult:
    """Every rule's outcome for one call, and the call's weighted score."""

    language: str
    pack: str
    duration: float
    score: float | None
    rules: tuple[RuleResult, ...]

    @property
    def violations(self) -> tuple[RuleResult, ...]:
        """The rules the call violated (top-level rules only)."""
        return tuple(r for r in self.rules if r.outcome == "violated")

    def rule(self, rule_id: str) -> RuleResult:
        """The result of the rule named ``rule_id``."""
        for result in self.rules:
            if result.id == rule_id:
                return result
        raise KeyError(rule_id)

    def summary(self) -> str:
        """The result for people: one line per rule (members indented), then the score."""
        marks = {"met": "ok", "violated": "VIOLATED", "unverifiable": "unverifiable"}
        lines: list[str] = []

        def add(result: RuleResult, depth: int) -> None:
            name = result.id or result.kind
            lines.append(f"{'  ' * depth}{name}: {marks[result.outcome]}: {result.reason}")
            for member in result.members:
                add(member, depth + 1)

        for result in self.rules:
            add(result, 0)
        score = "none verifiable" if self.score is None else f"{self.score:g}"
        lines.append(f"score: {score} ({len(self.violations)} violated of {len(self.rules)})")
        return "\n".join(lines)

    def dumps(self, *, indent: int | None = None) -> str:
        """The result as JSON text."""
        return _ADAPTER.dump_json(self, indent=indent).decode()

    @classmethod
    def loads(cls, text: str | bytes) -> CallResult:
        """A result from :meth:`dumps`' JSON; raises TranscriptError if it is not one."""
        try:
            return _ADAPTER.validate_json(text)
        except ValidationError as error:
            first = error.errors()[0]
            where = ".".join(str(part) for part in first["loc"]) or "(top)"
            raise TranscriptError(f"not a QA result: {where}: {first['msg']}") from None


def weighted_score(results: tuple[RuleResult, ...]) -> float | None:
    """100 x the weight of met rules over the weight of met and violated ones."""
    verified = [r for r in results if r.outcome != "unverifiable"]
    total = sum(r.weight for r in verified)
    if not verified or total == 0:
        return None
    return round(100 * sum(r.weight for r in verified if r.outcome == "met") / total, 1)


_ADAPTER: TypeAdapter[CallResult] = TypeAdapter(CallResult)
