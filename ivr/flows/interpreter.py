"""Runs a flow on a call: walks its nodes, talking to the ``Channel`` and the ports.

One :class:`Run` per call holds the call's variables, language and trace
(nodes visited, prompts played, events). Node behaviour lives in
:mod:`ivr.flows.nodes`; this module is the loop, the context and the
services a node may use. A call keeps the :class:`Flow` object it started
with, so a hot reload never changes a call in progress.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import structlog

from ivr.agi.channel import Channel
from ivr.errors import ChannelHangup, IvrError
from ivr.flows.clock import Clock, LoopClock
from ivr.flows.model import Defaults, Flow, Text
from ivr.flows.ports import Announcements, HttpClient, MemoryAnnouncements, Prompts, UrllibHttp
from routing.config import QueueConfig
from routing.errors import RoutingError
from routing.types import Router

if TYPE_CHECKING:
    from ivr.speech_input import SpeechInput
    from ivr.tracker import AnswerTracker

__all__ = ["Engine", "FlowRuntimeError", "Router", "Run", "Trace"]

log = structlog.get_logger("ivr.flows")
MAX_STEPS = 10_000
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


@dataclass(slots=True)
class Engine:
    """The services every call's run shares (the interpreter's ports)."""

    flows: Callable[[str], Flow | None]
    prompts: Prompts
    router: Router | None = None
    #: Queues from routing.yaml: skills, steps, notices (a flow's own values win).
    queues: Mapping[str, QueueConfig] = field(default_factory=dict)
    http: HttpClient = field(default_factory=UrllibHttp)
    announcements: Announcements = field(default_factory=MemoryAnnouncements)
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    #: What a call on hold waits by (escalation steps, notices); tests move it by hand.
    hold_clock: Clock = field(default_factory=LoopClock)
    environ: Mapping[str, str] = field(default_factory=dict)
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
    #: Watchers (``ivr call`` prints what the caller hears and what happens).
    on_prompt: Callable[[str], None] | None = None
    on_event: Callable[[str, dict[str, Any]], None] | None = None

    async def run(self, channel: Channel, flow: Flow) -> Trace:
        run = Run(self, channel, flow)
        try:
            await run.execute()
        finally:
            await self._ended(run)
        return run.trace

    async def _ended(self, run: Run) -> None:
        """Tell the KPIs how the call left the flow: contained when it never asked
        for a person (no queue, no transfer); a store that is away is logged."""
        if self.router is None:
            return
        asked = bool(run.last_queue) or any(
            e["event"] in ("transferred", "faq_handoff") for e in run.trace.events
        )
        try:
            await self.router.note(
                "ivr_ended",
                call=run.channel.uniqueid,
                flow=run.flow.id,
                contained="0" if asked else "1",
                ended=run.trace.ended or "error",
            )
        except RoutingError as exc:
            log.error("flow.ivr_ended_not_recorded", error=str(exc))  # noqa: TRY400


class Run:
    """One call walking one flow (and its subflows)."""

    def __init__(self, engine: Engine, channel: Channel, flow: Flow) -> None:
        self.engine = engine
        self.channel = channel
        self.flow = flow
        self.language = flow.defaults.language
        self.current = flow
        self._touched_sensitive = False
        self.trace = Trace()
        self.sensitive: set[str] = set()
        #: The queue the call was last in (survey answers count towards it).
        self.last_queue = ""
        env = channel.env
        self.variables: dict[str, Any] = {
            "caller": {"number": env.callerid, "name": env.calleridname},
            "call": {"uniqueid": env.uniqueid, "extension": env.extension, "dnid": env.dnid},
            **dict(env.query),
        }

    # ------------------------------------------------------------ the loop

    @property
    def defaults(self) -> Defaults:
        """The defaults of the flow being walked (a subflow's own, inside it)."""
        return self.current.defaults

    async def execute(self) -> None:
        try:
            await self._walk()
        except ChannelHangup:
            self.trace.ended = "caller_hangup"  # how calls end, not an engine failure
        finally:
            self.trace.variables = dict(self.variables)
            self.trace.sensitive = set(self.sensitive)

    async def _walk(self) -> None:
        from ivr.flows.nodes import HANDLERS

        await self.channel.answer()
        stack: list[tuple[Flow, str]] = []
        flow, name = self.flow, self.flow.start
        for _ in range(MAX_STEPS):
            if self.channel.hung_up:
                # Learnt from a reply a dead channel still gives (a HANGUP notice
                # is not a reply): no node runs for a caller who has gone.
                raise ChannelHangup("the caller hung up", how=self.channel.hangup_how)
            node = flow.nodes[name]
            self.current = flow
            self.trace.nodes.append(name if flow is self.flow else f"{flow.id}.{name}")
            structlog.contextvars.bind_contextvars(flow=flow.id, node=name)
            if node.type == "subflow":
                child = self.engine.flows(node.flow)
                if child is None:
                    raise FlowRuntimeError(f"subflow {node.flow!r} is not loaded")
                stack.append((flow, node.next))
                flow, name = child, child.start
                continue
            if node.type == "return":
                if not stack:
                    self.trace.ended = "return"
                    return
                flow, name = stack.pop()
                continue
            following = await HANDLERS[node.type](self, node)
            if following is None:
                self.trace.ended = self.trace.ended or node.type
                return
            name = following
        raise FlowRuntimeError(f"the call took {MAX_STEPS} steps without ending")

    # ------------------------------------------------------------ services

    def text(self, value: Text | None) -> str:
        """The text in the call's language (falls back to the flow's default, then any)."""
        if value is None:
            return ""
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
            else:
                found = self.lookup(name)
                if name.split(".")[0] in self.sensitive:
                    self._touched_sensitive = True
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

    async def sound(self, text: Text | None, file: str | list[str] | None = None) -> list[str]:
        """The sound names to play for a node's text or files, recording what was said."""
        if file is not None:
            files = [file] if isinstance(file, str) else list(file)
            self.trace.prompts += [f"file:{f}" for f in files]
            return files
        said, voice = self.spoken(text)
        if not said:
            return []
        return [await self.engine.prompts.sound_for(said, self.language, voice)]

    def spoken(self, text: Text | None) -> tuple[str, str | None]:
        """The words to say in the call's language and the voice, recorded as said."""
        self._touched_sensitive = False
        said = self.text(text)
        if not said:
            return "", None
        # A prompt that speaks a sensitive value (a PIN read back) is masked in
        # the trace and logs; only the synthesizer sees the words.
        shown = "*** (holds a sensitive value)" if self._touched_sensitive else said
        self.trace.prompts.append(shown)
        if self.engine.on_prompt is not None:
            self.engine.on_prompt(shown)
        voice = self.defaults.voice if self.language == self.defaults.language else None
        return said, voice

    def uses_sensitive(self, template: str) -> bool:
        """True when rendering ``template`` reads a sensitive variable."""
        self._touched_sensitive = False
        self.render(template)
        return self._touched_sensitive

    def event(self, kind: str, /, **data: Any) -> None:
        masked = {k: ("***" if k in self.sensitive else v) for k, v in data.items()}
        self.trace.events.append({"event": kind, **masked})
        if self.engine.on_event is not None:
            self.engine.on_event(kind, masked)
        log.info(f"flow.{kind}", **masked)

    def set(self, name: str, value: Any, *, sensitive: bool = False) -> None:
        self.variables[name] = value
        if sensitive:
            self.sensitive.add(name)
