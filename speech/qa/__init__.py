"""Quality checks of recorded calls, offline: phrases an agent must or must not say, timing.

The engine (or ``ivr qa``) calls four things, all importable from here:

- :func:`transcribe_legs` (blocking) or :meth:`Transcriber.transcribe` (async, a
  worker pool): the agent's and the caller's WAV files, or one mono mix, to a
  :class:`Transcript` (Vosk free-form, word times, voice activity per leg);
- :func:`load_pack`: a YAML rule pack to a :class:`RulePack`, or a
  :class:`RulePackError` whose lines read ``file:line:col: message``;
- :func:`evaluate`: a transcript and a pack to a :class:`CallResult` (an
  outcome per rule, met / violated / unverifiable, with timestamps and the
  words matched, and a weighted score);
- JSON both ways: :meth:`Transcript.dumps` / :meth:`Transcript.loads` and
  :meth:`CallResult.dumps` / :meth:`CallResult.loads`.

``speech/qa/README.md`` says what accuracy to expect with the Korean model on a
phone line. Imports nothing from ``ivr`` or ``routing``; importing loads no model.
"""

from speech.qa.errors import Problem, QaError, RulePackError, TranscriptError
from speech.qa.evaluate import evaluate
from speech.qa.pack import load_pack, parse_pack
from speech.qa.results import CallResult, Evidence, Outcome, RuleResult
from speech.qa.rules import DEFAULT_MIN_CONFIDENCE, DEFAULT_THRESHOLD, RulePack, json_schema
from speech.qa.transcribe import Transcriber, transcribe_leg, transcribe_legs
from speech.qa.transcript import Leg, Span, Speaker, Transcript, Word

__all__ = [
    "DEFAULT_MIN_CONFIDENCE",
    "DEFAULT_THRESHOLD",
    "CallResult",
    "Evidence",
    "Leg",
    "Outcome",
    "Problem",
    "QaError",
    "RulePack",
    "RulePackError",
    "RuleResult",
    "Span",
    "Speaker",
    "Transcriber",
    "Transcript",
    "TranscriptError",
    "Word",
    "evaluate",
    "json_schema",
    "load_pack",
    "parse_pack",
    "transcribe_leg",
    "transcribe_legs",
]
