"""The call-flow language: a frozen pydantic model, one class per node type.

A flow is an id, a version, defaults and named nodes; each node names the
nodes it can go to. Text a caller hears is either one string or one string
per language (``{en: "...", ko: "..."}``). Unknown keys are errors, so a typo
is caught at load time with its line. The JSON Schema of :class:`Flow` is
what ``ivr schema`` prints for editors.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

__all__ = ["NODE_TYPES", "Flow", "Node", "Text", "targets_of"]

NAME = r"^[A-Za-z_][A-Za-z0-9_\-]*$"
Target = Annotated[str, Field(pattern=NAME, description="the name of a node in this flow")]
Text = str | dict[str, str]
Digit = Annotated[str, Field(pattern=r"^[0-9*#]$", description="one keypad key: 0-9, * or #")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Defaults(_Strict):
    language: str = Field("en", description="language of prompts and recognition")
    voice: str | None = Field(None, description="TTS voice; defaults to the language's")
    timeout: float = Field(5.0, gt=0, le=120, description="seconds to wait for the caller")
    retries: int = Field(2, ge=0, le=10, description="repeats after no input or no match")
    digit_timeout: float = Field(3.0, gt=0, le=60, description="seconds between keys")
    speech: Literal["optional", "required"] = Field(
        "optional",
        description="required: the engine does not start without a speech model for each "
        "language of the flow; optional: menus take keys only where there is none",
    )


class _Node(_Strict):
    description: str | None = None


class Play(_Node):
    type: Literal["play"]
    say: Text | None = Field(None, description="text to speak (TTS)")
    file: str | list[str] | None = Field(None, description="Asterisk sound file(s)")
    interruptible: bool = Field(False, description="a key stops the prompt")
    next: Target

    @model_validator(mode="after")
    def _one_source(self) -> Play:
        if (self.say is None) == (self.file is None):
            raise ValueError("give exactly one of 'say' (text) or 'file' (sound files)")
        return self


_VARIABLE = re.compile(r"\$\{[^}]*\}")


class Say(_Node):
    """A value said the way Asterisk says it: ``digits`` with SAY DIGITS (one by one,
    any language), ``number`` with SAY NUMBER where Asterisk knows the language's
    number words (else spoken by TTS for this call only), and ``date``, ``time``,
    ``currency`` by TTS. A value from a variable is never cached as a prompt."""

    type: Literal["say"]
    value: str = Field(
        description="what to say: a literal or a ${variable} template (a PIN, a balance)"
    )
    as_: Literal["digits", "number", "date", "time", "currency"] = Field(
        alias="as",
        description="digits: SAY DIGITS (0-9, * and #, one by one); number: SAY NUMBER "
        "(a whole number; other values are spoken by TTS); date, time, currency: TTS",
    )
    currency: str = "USD"
    next: Target

    @model_validator(mode="after")
    def _sayable(self) -> Say:
        literal = _VARIABLE.sub("", self.value).strip()
        if self.as_ == "digits" and not re.fullmatch(r"[0-9*#\s-]*", literal):
            raise ValueError(
                f"'as: digits' says keypad digits; {self.value!r} holds other characters "
                "(give digits or a ${variable})"
            )
        if self.as_ == "number" and not re.fullmatch(r"-?[0-9]*(\.[0-9]+)?", literal):
            raise ValueError(
                f"'as: number' says a number; {self.value!r} is not one (give a number "
                "or a ${variable})"
            )
        return self


class Prompted(_Node):
    prompt: Text | None = None
    file: str | None = Field(None, description="a sound file instead of text")
    timeout: float | None = Field(None, gt=0, le=120)
    retries: int | None = Field(None, ge=0, le=10)


class Retry(_Strict):
    prompt: Text | None = Field(None, description="said before asking again")
    goto: Target | None = Field(None, description="leave the node instead of retrying")


class Option(_Strict):
    digit: Digit | None = None
    phrases: list[str] = Field(default_factory=list, description="words that choose it")
    goto: Target

    @field_validator("digit", mode="before")
    @classmethod
    def _digit_text(cls, value: object) -> object:
        return str(value) if isinstance(value, int) else value

    @model_validator(mode="after")
    def _reachable(self) -> Option:
        if self.digit is None and not self.phrases:
            raise ValueError("an option needs a 'digit', 'phrases', or both")
        return self


class Menu(Prompted):
    type: Literal["menu"]
    options: list[Option] = Field(min_length=1)
    no_input: Retry | None = None
    no_match: Retry | None = None
    on_failure: Target = Field(description="where to go when the retries are used up")


_NESTED = re.compile(r"\([^()]*[*+}][^()]*\)\s*[*+{]")


class Validation(_Strict):
    regex: str | None = None
    luhn: bool = False

    @field_validator("regex")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"regex does not compile: {exc}") from None
            if len(value) > 200 or _NESTED.search(value):
                raise ValueError(
                    "regex repeats a repetition, e.g. (1+)+: that can take exponential time "
                    "on a caller's digits; write it without nesting"
                )
        return value


class Gather(Prompted):
    type: Literal["gather"]
    variable: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    min_length: int = Field(1, ge=0, le=64)
    max_length: int = Field(16, ge=1, le=64)
    terminator: Literal["#", "*", ""] = "#"
    validate_: Validation | None = Field(None, alias="validate")
    sensitive: bool = Field(False, description="never logged; masked in events")
    invalid: Retry | None = None
    next: Target
    on_failure: Target

    @model_validator(mode="after")
    def _lengths(self) -> Gather:
        if self.min_length > self.max_length:
            raise ValueError("min_length is larger than max_length")
        return self


_SENSITIVE_SPEECH = (
    "what the caller says is never logged and masked in events and traces (as "
    "'sensitive' digits are); the variable is sensitive too"
)


class Speech(Prompted):
    type: Literal["speech"]
    variable: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    grammar: list[str] | None = Field(None, description="allowed phrases; none: free-form")
    confidence: float = Field(0.6, ge=0, le=1)
    confirm: bool = False
    sensitive: bool = Field(False, description=_SENSITIVE_SPEECH)
    end_silence: float = Field(0.8, gt=0, le=10)
    max_utterance: float = Field(10.0, gt=0, le=60)
    next: Target
    on_failure: Target


class FaqItem(_Strict):
    question: str = Field(min_length=2, description="how callers ask it, in the call's language")
    answer: Text = Field(description="what the engine says back")


class Faq(Prompted):
    """Questions answered by speech; a caller asking for a person, or not helped, is
    handed over (usually to a queue node)."""

    type: Literal["faq"]
    entries: list[FaqItem] = Field(min_length=1)
    threshold: float = Field(0.35, gt=0, lt=1, description="how close a question must be")
    handoff: Target = Field(description="where a caller goes who asks for a person")
    handoff_phrases: list[str] = Field(
        default_factory=lambda: ["agent", "operator", "person", "상담원", "사람", "직원"],
        description="words that ask for a person",
    )
    end_silence: float = Field(0.8, gt=0, le=10)
    max_utterance: float = Field(10.0, gt=0, le=60)
    sensitive: bool = Field(
        False,
        description="what the caller asks is never logged and masked in events and "
        "traces (the question it matched too)",
    )
    next: Target = Field(description="after an answer")


class Condition(_Strict):
    if_: str = Field(alias="if", description='a condition, e.g. tier == "gold"')
    goto: Target


class Branch(_Node):
    type: Literal["branch"]
    conditions: list[Condition] = Field(min_length=1)
    else_: Target = Field(alias="else")


class Set(_Node):
    type: Literal["set"]
    variables: dict[str, str | int | float | bool] = Field(min_length=1)
    next: Target


DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
SPAN = re.compile(r"^([01]\d|2[0-3]):[0-5]\d-(([01]\d|2[0-3]):[0-5]\d|24:00)$")


def _span(value: str) -> str:
    if not SPAN.match(value):
        raise ValueError(
            f"{value!r} is not a span like 09:00-17:30 (24:00 ends a day; "
            "22:00-02:00 runs past midnight)"
        )
    start, end = value.split("-")
    if start == end:
        raise ValueError(f"{value!r} opens and closes at the same time")
    return value


Span = Annotated[str, AfterValidator(_span)]


class Hours(_Node):
    type: Literal["hours"]
    timezone: str = "UTC"
    schedule: dict[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"], list[Span]]
    holidays: list[date] = Field(default_factory=list)
    open: Target
    closed: Target

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            message = f"unknown timezone {value!r}; use an IANA name like Asia/Seoul"
            raise ValueError(message) from None
        return value


class LanguageOption(_Strict):
    digit: Digit
    language: str
    phrases: list[str] = Field(default_factory=list)

    @field_validator("digit", mode="before")
    @classmethod
    def _digit_text(cls, value: object) -> object:
        return str(value) if isinstance(value, int) else value


class Language(Prompted):
    type: Literal["language"]
    options: list[LanguageOption] = Field(min_length=1)
    next: Target


class Http(_Node):
    type: Literal["http"]
    method: Literal["GET", "POST", "PUT"] = "GET"
    url: str = Field(description="URL template; ${variables} are URL-encoded")
    headers: dict[str, str] = Field(default_factory=dict, description="values may use ${env:NAME}")
    body: dict[str, str | int | float | bool] | None = None
    timeout: float = Field(3.0, gt=0, le=30)
    map: dict[str, str] = Field(default_factory=dict, description="variable: path.in.json")
    next: Target
    on_error: Target


class Goto(_Node):
    type: Literal["goto"]
    target: Target


class Subflow(_Node):
    type: Literal["subflow"]
    flow: str
    next: Target


class Return(_Node):
    type: Literal["return"]


class Announcement(_Node):
    type: Literal["announcement"]
    name: str = Field(pattern=NAME, description="the switch an admin turns on")
    say: Text | None = None
    file: str | None = None
    next: Target


class QueueNode(_Node):
    type: Literal["queue"]
    queue: str
    skills: dict[str, int] = Field(default_factory=dict, description="skill: minimum level 1-10")
    priority: int = Field(0, ge=0, le=100)
    callback_digit: Digit | None = Field(
        None,
        description="on hold, this key asks for a callback: the call keeps its place, the "
        "engine hangs up and calls back when an agent is reserved (callers with a number)",
    )
    next: Target | None = Field(None, description="after the agent hangs up (survey)")
    on_failure: Target = Field(description="routing unavailable or the queue overflows")


class Transfer(_Node):
    type: Literal["transfer"]
    to: str = Field(description="an extension, or an outside number on the allow-list")
    timeout: int = Field(30, ge=5, le=300)
    on_failure: Target


class Voicemail(_Node):
    type: Literal["voicemail"]
    mailbox: str
    on_failure: Target | None = Field(
        None,
        description="where a caller goes when VoiceMail fails (none: the dialplan's fallback)",
    )


class Record(Prompted):
    type: Literal["record"]
    variable: str = Field("recording", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    max_seconds: int = Field(120, ge=1, le=3600)
    silence_seconds: int = Field(3, ge=1, le=60)
    beep: bool = True
    next: Target


class Question(_Strict):
    id: str = Field(pattern=NAME)
    prompt: Text


class Survey(_Node):
    type: Literal["survey"]
    questions: list[Question] = Field(min_length=1)
    next: Target


class HangupNode(_Node):
    type: Literal["hangup"]
    say: Text | None = None


Node = Annotated[
    Play
    | Say
    | Menu
    | Gather
    | Speech
    | Faq
    | Branch
    | Set
    | Hours
    | Language
    | Http
    | Goto
    | Subflow
    | Return
    | Announcement
    | QueueNode
    | Transfer
    | Voicemail
    | Record
    | Survey
    | HangupNode,
    Field(discriminator="type"),
]

NODE_TYPES = [
    "play",
    "say",
    "menu",
    "gather",
    "speech",
    "faq",
    "branch",
    "set",
    "hours",
    "language",
    "http",
    "goto",
    "subflow",
    "return",
    "announcement",
    "queue",
    "transfer",
    "voicemail",
    "record",
    "survey",
    "hangup",
]


class Flow(_Strict):
    id: str = Field(pattern=NAME)
    version: int | str = 1
    description: str | None = None
    entry: Target | None = Field(None, description="the first node; default: the first listed")
    defaults: Defaults = Field(default_factory=Defaults)
    sensitive: list[Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]] = Field(
        default_factory=list,
        description="variables never logged, shown or handed to an agent (a balance an http "
        "node maps, say); prompts that use them are masked in traces",
    )
    nodes: dict[Annotated[str, Field(pattern=NAME)], Node] = Field(min_length=1)

    @property
    def start(self) -> str:
        return self.entry or next(iter(self.nodes))


def targets_of(node: BaseModel) -> list[tuple[tuple[str | int, ...], str]]:
    """Every (field path, node name) a node can go to."""
    found: list[tuple[tuple[str | int, ...], str]] = []
    for field, alias in (
        ("next", "next"),
        ("on_failure", "on_failure"),
        ("on_error", "on_error"),
        ("else_", "else"),
        ("open", "open"),
        ("closed", "closed"),
        ("target", "target"),
        ("handoff", "handoff"),
    ):
        value = getattr(node, field, None)
        if isinstance(value, str):
            found.append(((alias,), value))
    for index, option in enumerate(getattr(node, "options", None) or []):
        if isinstance(option, Option):
            found.append((("options", index, "goto"), option.goto))
    for index, condition in enumerate(getattr(node, "conditions", None) or []):
        found.append((("conditions", index, "goto"), condition.goto))
    for key in ("no_input", "no_match", "invalid"):
        retry = getattr(node, key, None)
        if isinstance(retry, Retry) and retry.goto:
            found.append(((key, "goto"), retry.goto))
    return found
