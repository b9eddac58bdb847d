"""One call on its flow: the call's state, and what a node may ask of it.

A :class:`Run` holds the call's variables, language and trace (nodes
visited, prompts played, events), and renders the flow's texts with them. The
nodes (:mod:`ivr.flows.nodes`, :mod:`ivr.flows.playing`,
:mod:`ivr.flows.queueing`) and the loop that walks them
(:mod:`ivr.flows.interpreter`) all build on this module, which needs none of
them.

What a caller typed or said never outlives the call: a prompt made from the
call's variables is rendered into the call's own folder (removed when the
call ends, however it ends), and values a flow marks sensitive are masked in
its trace, its events and every log line of the call.
"""

from __future__ import annotations

import re
import time
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

import structlog

from ivr.agi.channel import Channel
from ivr.errors import IvrError
from ivr.flows.clock import Clock, LoopClock
from ivr.flows.model import Defaults, Flow, Text
from ivr.flows.ports import Announcements, HttpClient, MemoryAnnouncements, PooledHttp, Prompts
from ivr.log import MASK, mask_keys, sensitive_keys
from routing.config import QueueConfig
from routing.types import Router
from speech.private import CallFolder

if TYPE_CHECKING:
    from ivr.centre.tracker import AnswerTracker
    from ivr.flows.recording import Recorder
    from ivr.speech_input import SpeechInput

__all__ = [
    "HIDDEN_PROMPT",
    "FlowRuntimeError",
    "Rendered",
    "Run",
    "Services",
    "Spoken",
    "Trace",
]

log = structlog.get_logger("ivr.flows")

#: Keys of flow events whose values come from what a caller typed or said (keys,
#: recognised phrases and words, gathered values, the FAQ entry they matched, a
#: survey score): never written to the log, sensitive or not. The call's trace keeps
#: them (flow tests); KPIs that need a value (CSAT) get it through the router.
CALLER_KEYS: Final = frozenset(
    {"digit", "digits", "phrase", "text", "value", "asked", "question", "candidate", "words"}
    | {"score", "answer", "entered"}
    # the hand-over: what the caller chose, said and entered, for the agent
    | {"context"}
)


class _Unwritable:
    """Prompts that could not be written (a full or read-only disk): one log line a
    minute with the cause and how many were skipped, not a traceback per call."""

    every = 60.0

    def __init__(self) -> None:
        self._last = -self.every
        self._count = 0

    def skipped(self, exc: OSError, folder: object = "") -> None:
        self._count += 1
        now = time.monotonic()
        if now - self._last >= self.every:
            log.error(
                "prompts.unwritable",
                folder=str(exc.filename or folder),
                error=exc.strerror or str(exc),
                skipped=self._count,
                hint="free space under the prompts folder or make it writable",
            )
            self._last, self._count = now, 0


UNWRITABLE = _Unwritable()
_TEMPLATE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_.:]*)\}")


class FlowRuntimeError(IvrError):
    """A flow cannot go on (a missing subflow, a forbidden transfer, …)."""


@dataclass(slots=True)
class Trace:
    """What a call did, for flow tests, logs and events."""

    nodes: list[str] = field(default_factory=list)
    prompts: list[str] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    ended: str = ""
    #: The call's variables when it left the flow (``sensitive`` names them).
    variables: dict[str, Any] = field(default_factory=dict)
    sensitive: set[str] = field(default_factory=set)


#: How a prompt that holds a sensitive value shows in traces and on the console.
HIDDEN_PROMPT = "*** (holds a sensitive value)"


class Rendered(str):
    """Text already made from the call's data: said as it is, never rendered again
    (a value from a service that holds ``${...}`` stays words)."""

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class Spoken:
    """Words to say on a call, in its language."""

    text: str
    voice: str | None = None
    #: Made from the call's data (a variable, a recognised answer): rendered for
    #: this call only, into its own folder or straight to AudioSocket, never cached.
    private: bool = False


@dataclass(slots=True)
class Services:
    """The services every call's run shares (the interpreter's ports);
    :class:`ivr.flows.interpreter.Engine` runs calls on them."""

    flows: Callable[[str], Flow | None]
    prompts: Prompts
    router: Router | None = None
    #: Queues from routing.yaml: skills, steps, notices (a flow's own values win).
    queues: Mapping[str, QueueConfig] = field(default_factory=dict)
    #: One pooled client for every call (closed with the engine: ``PooledHttp.aclose``).
    http: HttpClient = field(default_factory=PooledHttp)
    announcements: Announcements = field(default_factory=MemoryAnnouncements)
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    #: What a call on hold waits by (escalation steps, notices); tests move it by hand.
    hold_clock: Clock = field(default_factory=LoopClock)
    environ: Mapping[str, str] = field(default_factory=dict)
    #: Named HTTP services' base URLs (``${service:NAME}`` opens an http node's url).
    services: Mapping[str, str] = field(default_factory=dict)
    transfer_allow: tuple[str, ...] = ()
    #: The AMI answer tracker (agents on_call from the answer); None without AMI.
    answers: AnswerTracker | None = None
    #: True when this engine places callbacks (a callback worker on AMI runs).
    callbacks: bool = False
    #: Speech recognition (Vosk over AudioSocket); None: menus take keys only.
    speech: SpeechInput | None = None
    internal_dial: str = "PJSIP/{to}"
    external_dial: str = "PJSIP/{to}@trunk"
    ring_timeout: int = 20
    spool: str = "/var/spool/asterisk/ivr"
    #: This engine's site (several centres as one pool): queues may prefer it.
    site: str = ""
    #: Where queues with ``record: true`` record agent calls, and who checks them
    #: after (the QA worker); None: no call is recorded.
    recorder: Recorder | None = None
    #: Watchers (``ivr call`` prints what the caller hears and what happens).
    on_prompt: Callable[[str], None] | None = None
    on_event: Callable[[str, dict[str, Any]], None] | None = None
    #: Observers of where calls are (the console's board): (run, flow id, node) at
    #: every step, and the run once when it leaves its flow, however it leaves.
    on_node: Callable[[Run, str, str], None] | None = None
    on_left: Callable[[Run], None] | None = None


class Run:
    """One call walking one flow (and its subflows)."""

    def __init__(self, engine: Services, channel: Channel, flow: Flow) -> None:
        self.engine = engine
        self.channel = channel
        self.flow = flow
        self.language = flow.defaults.language
        self.current = flow
        self._touched_sensitive = False
        self._touched_variable = False
        #: The node being run (its name in the flow being walked).
        self.node = ""
        self._folder: CallFolder | None = None
        self.trace = Trace()
        self.sensitive: set[str] = set()
        self.mark_sensitive(*flow.sensitive)
        #: The queue the call was last in (survey answers count towards it).
        self.last_queue = ""
        env = channel.env
        self.variables: dict[str, Any] = {
            "caller": {"number": env.callerid, "name": env.calleridname},
            "call": {"uniqueid": env.uniqueid, "extension": env.extension, "dnid": env.dnid},
            **dict(env.query),
        }

    @property
    def defaults(self) -> Defaults:
        """The defaults of the flow being walked (a subflow's own, inside it)."""
        return self.current.defaults

    # ------------------------------------------------------------ services

    def text(self, value: Text | None) -> str:
        """The text in the call's language (falls back to the flow's default, then any)."""
        if value is None:
            return ""
        if isinstance(value, Rendered):
            return str(value)
        if isinstance(value, str):
            return self.render(value)
        chosen = value.get(self.language) or value.get(self.defaults.language)
        return self.render(chosen if chosen is not None else next(iter(value.values())))

    def render(self, template: str, *, url: bool = False, env: bool = False) -> str:
        """Replace ``${name}`` with variables; ``${env:IVR_NAME}`` only where ``env`` allows
        (HTTP headers), and only environment variables named ``IVR_*``."""

        def value(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("env:"):
                key = name[4:]
                found: Any = (
                    self.engine.environ.get(key, "") if env and key.startswith("IVR_") else ""
                )
            elif name.startswith("service:"):
                found = ""  # only the http node opens its url with one (ivr.flows.services)
            else:
                found = self.lookup(name)
                if name.split(".")[0] in self.sensitive:
                    self._touched_sensitive = True
            self._touched_variable = True
            text = "" if found is None else str(found)
            return urllib.parse.quote(text, safe="") if url else text

        return _TEMPLATE.sub(value, template)

    def lookup(self, name: str) -> Any:
        value: Any = self.variables
        if name in self.variables:
            return self.variables[name]
        for part in name.split("."):
            if not isinstance(value, Mapping) or part not in value:
                return None
            value = value[part]
        return value

    async def sound(
        self,
        text: Text | None,
        file: str | list[str] | None = None,
        *,
        private: bool = False,
        sensitive: bool = False,
    ) -> list[str]:
        """The sound names to play for a node's text or files, recording what was said.

        Text made from the call's variables (or ``private``: built from what the
        caller said) is rendered for this call only; fixed text is cached.
        """
        if file is not None:
            files = [file] if isinstance(file, str) else list(file)
            self.trace.prompts += [f"file:{f}" for f in files]
            return files
        spoken = self.spoken(text, private=private, sensitive=sensitive)
        if not spoken.text:
            return []
        prompts = self.engine.prompts
        try:
            if spoken.private:
                return [
                    await prompts.private_sound(
                        spoken.text, self.language, spoken.voice, self.call_folder()
                    )
                ]
            return [await prompts.sound_for(spoken.text, self.language, spoken.voice)]
        except OSError as exc:
            # The prompts folder is full or read-only: the call goes on without this
            # prompt (cached ones still play), and the cause is said once a minute.
            UNWRITABLE.skipped(exc, getattr(prompts, "folder", ""))
            return []

    def spoken(self, *texts: Text | None, private: bool = False, sensitive: bool = False) -> Spoken:
        """The words to say (``texts`` one after the other) in the call's language and
        the voice, recorded as said; private when a variable went into them."""
        self._touched_sensitive = self._touched_variable = False
        said = " ".join(filter(None, (self.text(text) for text in texts)))
        if not said:
            return Spoken("")
        # A prompt that speaks a sensitive value (a PIN read back) is masked in
        # the trace and logs; only the synthesizer sees the words.
        shown = HIDDEN_PROMPT if sensitive or self._touched_sensitive else said
        self.trace.prompts.append(shown)
        if self.engine.on_prompt is not None:
            self.engine.on_prompt(shown)
        voice = self.defaults.voice if self.language == self.defaults.language else None
        return Spoken(said, voice, private or self._touched_variable)

    def call_folder(self) -> CallFolder:
        """This call's folder for its own prompts (made on first use, removed at the end)."""
        if self._folder is None:
            self._folder = self.engine.prompts.call_folder()
        return self._folder

    def close(self) -> None:
        """Remove every file made for this call (the call has ended)."""
        folder, self._folder = self._folder, None
        if folder is not None:
            folder.remove()

    def uses_sensitive(self, template: str) -> bool:
        """True when rendering ``template`` reads a sensitive variable."""
        self._touched_sensitive = False
        self.render(template)
        return self._touched_sensitive

    def event(self, kind: str, /, **data: Any) -> None:
        """A step of the call: into its trace (flow tests read it) and the engine's
        hook with sensitive values masked, and into the log with every value a caller
        typed or said masked too (:data:`CALLER_KEYS`): the log shows the path."""
        hidden = self.sensitive | sensitive_keys.get()
        masked = {k: (MASK if k in hidden else v) for k, v in data.items()}
        self.trace.events.append({"event": kind, **masked})
        if self.engine.on_event is not None:
            self.engine.on_event(kind, masked)
        logged = {
            k: (MASK if k in CALLER_KEYS and v not in (None, "") else v) for k, v in masked.items()
        }
        log.info(f"flow.{kind}", **logged)

    def set(self, name: str, value: Any, *, sensitive: bool = False) -> None:
        self.variables[name] = value
        if sensitive:
            self.mark_sensitive(name)

    def mark_sensitive(self, *names: str) -> None:
        """Never log, show or hand over these variables (their values are masked)."""
        self.sensitive.update(names)
        mask_keys(*names)
