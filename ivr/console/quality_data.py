"""What the quality page shows of each checked call, read from the QA worker's output.

A call's QA result is its ``qa_result`` event (:func:`ivr.qa_worker.result_fields`):
the score and, per rule, the outcome and the moments that decided it. The
words around each moment come from the transcript stored next to the
recording (``<base>.transcript.json``). Both files are found from the event,
which only the engine writes, and only inside the recordings folder
(``IVR_RECORDINGS_DIR``); the mix is served only when the recording's record
(``<base>.json``) names the same call and the same file. A user's request
names a result by its id (the recording's stem), a key looked up among the
events, never a path.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from ivr.console.roles import User
from speech.qa import Speaker, Transcript, TranscriptError, Word
from speech.qa.transcript import SPEAKERS

__all__ = [
    "AROUND",
    "PERIODS",
    "Moment",
    "QaCall",
    "QaQuery",
    "QaQueryError",
    "RuleOutcome",
    "call_of",
    "qa_rows",
    "recording_file",
    "visible",
]

#: The periods a page or the API may ask for, in days.
PERIODS: Final = {"1d": 1, "7d": 7, "30d": 30}
#: Words shown either side of a moment.
AROUND: Final = 4
#: A result's id: the recording's stem (ivr.flows.recording writes only these characters).
ID: Final = re.compile(r"^[A-Za-z0-9_.\-]{1,200}$")
#: A queue or agent name (routing.config's Name).
_NAME: Final = re.compile(r"^[A-Za-z0-9_.\-]{1,128}$")
_YES: Final = {"1": True, "true": True, "on": True, "yes": True}
_NO: Final = {"": False, "0": False, "false": False, "off": False, "no": False}


class QaQueryError(ValueError):
    """A query parameter that does not validate; ``problems`` names each one."""

    def __init__(self, problems: list[dict[str, str]]) -> None:
        super().__init__("; ".join(f"{p['at']}: {p['message']}" for p in problems))
        self.problems = problems


@dataclass(frozen=True, slots=True)
class QaQuery:
    period: str = "7d"
    queue: str = ""
    agent: str = ""
    violations: bool = False

    @classmethod
    def parse(cls, params: Mapping[str, str]) -> QaQuery:
        """The query of ``?period=&queue=&agent=&violations=``; QaQueryError naming each
        bad parameter."""
        problems = []
        period = params.get("period") or "7d"
        if period not in PERIODS:
            problems.append(_problem("period", f"one of {', '.join(PERIODS)}", period))
        names = {}
        for key in ("queue", "agent"):
            value = params.get(key) or ""
            if value and not _NAME.match(value):
                problems.append(_problem(key, "a name of letters, digits, '_', '-', '.'", value))
            names[key] = value
        raw = (params.get("violations") or "").lower()
        violations = _YES.get(raw, _NO.get(raw))
        if violations is None:
            problems.append(_problem("violations", "1 or 0 (on, true; off, false)", raw))
        if problems:
            raise QaQueryError(problems)
        return cls(period, names["queue"], names["agent"], bool(violations))

    def keeps(self, row: Mapping[str, str]) -> bool:
        """Whether the filters keep a ``qa_result`` row."""
        return (
            (not self.queue or row.get("queue") == self.queue)
            and (not self.agent or row.get("agent") == self.agent)
            and (not self.violations or bool(row.get("violations")))
        )


def _problem(at: str, allowed: str, given: str) -> dict[str, str]:
    return {"at": at, "message": f"{allowed}, not {given[:40]!r}"}


@dataclass(frozen=True, slots=True)
class Moment:
    """A moment that decided a rule, with the words said around it."""

    start: float
    end: float
    speaker: str
    phrase: str | None
    #: The words the rule matched, as recognised (none for a silence or an overlap).
    words: tuple[str, ...]
    before: tuple[str, ...] = ()
    #: The transcript's words within the moment.
    within: tuple[str, ...] = ()
    after: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class RuleOutcome:
    id: str
    kind: str
    outcome: str  # met, violated, unverifiable
    reason: str
    weight: float
    moments: tuple[Moment, ...]


@dataclass(frozen=True, slots=True)
class QaCall:
    """One checked call as the page and the API show it."""

    id: str
    call: str
    queue: str
    agent: str
    at: float
    score: float | None
    violations: tuple[str, ...]
    duration: float
    language: str
    pack: str
    rules: tuple[RuleOutcome, ...]
    #: The recording can be played (its files are still kept).
    playable: bool = False

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "call": self.call,
            "queue": self.queue,
            "agent": self.agent,
            "at": self.at,
            "score": self.score,
            "violations": list(self.violations),
            "duration": self.duration,
            "language": self.language,
            "pack": self.pack,
            "recording": f"/console/quality/{self.id}/recording" if self.playable else None,
            "rules": [
                {
                    "id": r.id,
                    "kind": r.kind,
                    "outcome": r.outcome,
                    "reason": r.reason,
                    "weight": r.weight,
                    "matches": [
                        {
                            "start": m.start,
                            "end": m.end,
                            "speaker": m.speaker,
                            "phrase": m.phrase,
                            "words": list(m.words),
                            "before": list(m.before),
                            "within": list(m.within),
                            "after": list(m.after),
                        }
                        for m in r.moments
                    ],
                }
                for r in self.rules
            ],
        }


def result_id(row: Mapping[str, str]) -> str:
    """A result's id: its recording's stem (``<uniqueid>-<agent>-<nnnnn>``)."""
    return Path(row.get("recording", "")).name.removesuffix("-mix.wav")


def qa_rows(events: Sequence[tuple[float, dict[str, str]]]) -> list[tuple[float, dict[str, str]]]:
    """The ``qa_result`` events of ``events`` (oldest first), newest first."""
    found = [
        (at, row)
        for at, row in events
        if row.get("event") == "qa_result" and ID.match(result_id(row))
    ]
    return found[::-1]


def visible(user: User, row: Mapping[str, str], agents: Mapping[str, Mapping[str, Any]]) -> bool:
    """Whether ``user`` may see a result and hear its recording: an admin every one, an
    agent their own calls, a supervisor the calls of their queues whose agent is in
    their sites and teams (``agents``: the store's rows, with their team)."""
    agent = agents.get(row.get("agent", "")) or {"id": row.get("agent", "")}
    return user.sees(agent, [row.get("queue", "")])


def _inside(folder: Path, raw: str, suffix: str) -> Path | None:
    """``raw`` (an event's path) resolved, when it ends in ``suffix`` and lies inside
    ``folder`` (links followed first: a link out of the folder is refused)."""
    if not raw.endswith(suffix) or "\x00" in raw:
        return None
    try:
        path = Path(raw).resolve()
        root = folder.resolve()
    except (OSError, RuntimeError):
        return None
    return path if path.is_relative_to(root) and path.name.endswith(suffix) else None


def recording_file(folder: Path, row: Mapping[str, str]) -> Path | None:
    """The mix of a result, when it is still kept and its record names the same call and
    file (blocking: reads the record)."""
    mix = _inside(folder, row.get("recording", ""), "-mix.wav")
    if mix is None:
        return None
    record_path = Path(f"{str(mix).removesuffix('-mix.wav')}.json")
    try:
        record = json.loads(record_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("call") != row.get("call"):
        return None
    if _inside(folder, str(record.get("mix", "")), "-mix.wav") != mix or not mix.is_file():
        return None
    return mix


def _transcript(folder: Path, row: Mapping[str, str]) -> Transcript | None:
    path = _inside(folder, row.get("transcript", ""), ".transcript.json")
    if path is None:
        return None
    try:
        return Transcript.loads(path.read_bytes())
    except (OSError, TranscriptError):
        return None


def _around(words: Sequence[Word], start: float, end: float) -> tuple[int, int]:
    """The index range of the words within [start, end] (their middle in it: a voice
    detector's silence may clip a word's edge); for a silence, the empty range where it
    falls."""
    inside = [i for i, w in enumerate(words) if start <= (w.start + w.end) / 2 <= end]
    if inside:
        return inside[0], inside[-1] + 1
    at = sum(1 for w in words if (w.start + w.end) / 2 < start)
    return at, at


def _moment(raw: Mapping[str, Any], transcript: Transcript | None) -> Moment:
    start, end = float(raw.get("start") or 0), float(raw.get("end") or 0)
    speaker: Speaker = next((s for s in SPEAKERS if s == raw.get("speaker")), "any")
    phrase = raw.get("phrase")
    moment = Moment(
        start=start,
        end=max(start, end),
        speaker=speaker,
        phrase=str(phrase) if phrase else None,
        words=tuple(str(w) for w in raw.get("words") or ()),
    )
    if transcript is None:
        return moment
    # A phrase is said by one speaker: their words; a silence or overlap: everyone's.
    one = speaker != "any" and bool(moment.words) and transcript.has(speaker)
    words = transcript.words_of(speaker) if one else transcript.words
    first, last = _around(words, moment.start, moment.end)
    return Moment(
        start=moment.start,
        end=moment.end,
        speaker=speaker,
        phrase=moment.phrase,
        words=moment.words,
        before=tuple(w.word for w in words[max(0, first - AROUND) : first]),
        within=tuple(w.word for w in words[first:last]),
        after=tuple(w.word for w in words[last : last + AROUND]),
    )


def _float(raw: str | None) -> float | None:
    try:
        return float(raw) if raw else None
    except ValueError:
        return None


def call_of(folder: Path, at: float, row: Mapping[str, str]) -> QaCall:
    """A result as shown, with the words around each moment (blocking: reads files)."""
    transcript = _transcript(folder, row)
    try:
        rules_raw = json.loads(row.get("rules") or "[]")
    except ValueError:
        rules_raw = []
    rules = tuple(
        RuleOutcome(
            id=str(r.get("id") or r.get("kind") or ""),
            kind=str(r.get("kind") or ""),
            outcome=str(r.get("outcome") or ""),
            reason=str(r.get("reason") or ""),
            weight=float(r.get("weight") or 1.0),
            moments=tuple(
                _moment(e, transcript) for e in r.get("evidence") or () if isinstance(e, dict)
            ),
        )
        for r in rules_raw
        if isinstance(r, dict)
    )
    return QaCall(
        id=result_id(row),
        call=row.get("call", ""),
        queue=row.get("queue", ""),
        agent=row.get("agent", ""),
        at=at,
        score=_float(row.get("score")),
        violations=tuple(v for v in (row.get("violations") or "").split(",") if v),
        duration=_float(row.get("duration")) or 0.0,
        language=row.get("language", ""),
        pack=row.get("pack", ""),
        rules=rules,
        playable=recording_file(folder, row) is not None,
    )
