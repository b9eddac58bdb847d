"""Flow tests: a scripted caller and expectations, written in YAML next to the flows.

    flow: main
    tests:
      - name: billing by keys
        caller: "5551234"
        time: "2026-11-25T10:00:00+09:00"
        agents: [{id: alice, endpoint: PJSIP/1001, skills: {billing: 5}}]
        dial: {PJSIP/1001: answer}
        script:
          - press: "1"
          - press: "1234#"
        expect:
          visits: [welcome, menu, billing]
          prompts: ["For billing"]
          variables: {account: "1234"}
          queue: billing
          ended: hangup

Each test runs the real engine (FastAGI server, interpreter, espeak-ng
prompts) against the Asterisk emulator over TCP. Only the world outside the
engine is scripted: the caller, the agents' phones, HTTP services, the clock.
The caller's phone sends no audio frame while its caller is silent (silence
suppression, the worst real case for speech) unless a test says
``phone: continuous``.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ivr.agi.channel import Channel
from ivr.agi.server import FastAgiServer
from ivr.audiosocket.server import AudioSocketServer
from ivr.emulator.caller import Timeline, synthesize
from ivr.flows.interpreter import Engine, Trace
from ivr.flows.model import Flow
from ivr.flows.ports import HttpReply, MemoryAnnouncements, SpeechPrompts
from ivr.flows.problems import read_source, validate_model
from ivr.flows.services import leading, misplaced, unknown
from ivr.speech_input import SpeechInput
from ivr.testing import Action, AsteriskEmulator, DialOutcome, Hangup, Keys
from routing.config import QueueConfig
from routing.memory import Agent, MemoryRouter
from speech.recognizer import ModelRegistry, Recognizer
from speech.tts import Synthesizer

__all__ = ["Outcome", "TestFile", "load_tests", "run_file", "run_test"]

_RECOGNIZER: Recognizer | None = None


@contextlib.asynccontextmanager
async def _ears(prompts_dir: Path) -> AsyncIterator[SpeechInput]:
    """Speech for one test: an AudioSocket server and the process's shared recognizer."""
    global _RECOGNIZER  # noqa: PLW0603 - one model load per process, shared by every test
    if _RECOGNIZER is None:
        _RECOGNIZER = Recognizer(ModelRegistry())
    server = AudioSocketServer(port=0)
    await server.start()
    synthesizer = Synthesizer(prompts_dir)
    try:
        yield SpeechInput(_RECOGNIZER, synthesizer, server=server)
    finally:
        await server.close()
        synthesizer.close()


#: Seconds of wall time a test's call may take (waits are skipped, but over AudioSocket a
#: silent caller's silence passes in real time: only the engine's frames move it on).
CALL_LIMIT = 60.0


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Step(_Strict):
    press: str | None = Field(None, pattern=r"^[0-9*#]+$")
    say: str | None = Field(None, description="words the caller speaks (espeak-ng, then Vosk)")
    language: str | None = Field(None, description="of 'say' (default: the test's, the flow's)")
    hangup: bool | Literal["in_queue"] = Field(
        False, description="true: at the next prompt; in_queue: while on hold"
    )
    after: float = Field(0.3, ge=0, le=60, description="seconds into the prompt")


class HttpAnswer(_Strict):
    url: str = Field(
        description="the URL the engine asks for, as rendered; may open with ${service:NAME}"
    )
    status: int = 200
    body: Any = None
    fail: bool = Field(False, description="the service cannot be reached")

    @field_validator("url")
    @classmethod
    def _service_first(cls, url: str) -> str:
        problem = misplaced(url, url=True)
        if problem is not None:
            raise ValueError(problem)
        return url


class AgentSpec(_Strict):
    id: str
    endpoint: str
    skills: dict[str, int] = Field(default_factory=dict)


class QueueExpect(_Strict):
    name: str
    skills: dict[str, int] | None = None


class Expect(_Strict):
    visits: list[str] = Field(default_factory=list)
    not_visits: list[str] = Field(default_factory=list)
    prompts: list[str] = Field(default_factory=list)
    not_prompts: list[str] = Field(default_factory=list)
    variables: dict[str, Any] = Field(default_factory=dict)
    queue: str | QueueExpect | None = None
    dialled: list[str] | None = None
    ended: str | None = None
    events: list[dict[str, Any]] = Field(default_factory=list)


class FlowTest(_Strict):
    name: str
    caller: str = "5551234"
    time: datetime | None = None
    language: str | None = None
    announcements: list[str] = Field(default_factory=list)
    transfer_allow: list[str] = Field(default_factory=list, description="e.g. ['+1800*']")
    http: list[HttpAnswer] = Field(default_factory=list)
    agents: list[AgentSpec] = Field(default_factory=list)
    queues: dict[str, QueueConfig] = Field(default_factory=dict, description="as routing.yaml")
    dial: dict[str, Literal["answer", "noanswer", "busy", "unavailable"]] = Field(
        default_factory=dict
    )
    script: list[Step] = Field(default_factory=list)
    phone: Literal["dtx", "continuous"] = Field(
        "dtx",
        description="the caller's phone over AudioSocket: dtx sends no audio frame while the "
        "caller is silent (silence suppression); continuous sends one every 20 ms",
    )
    expect: Expect = Field(default_factory=Expect)


class TestFile(_Strict):
    flow: str
    tests: list[FlowTest] = Field(min_length=1)


@dataclass(slots=True)
class Outcome:
    name: str
    failures: list[str] = field(default_factory=list)
    trace: Trace | None = None

    @property
    def passed(self) -> bool:
        return not self.failures


class CannedHttp:
    """The HTTP services a test scripts: answers by the URL the engine renders (a
    scripted URL's ``${service:NAME}`` is the engine's base URL for it), unknown URLs
    unreachable. ValueError when a scripted URL names a service the engine lacks."""

    def __init__(
        self, answers: list[HttpAnswer], services: Mapping[str, str] | None = None
    ) -> None:
        self.answers = [(_rendered(a.url, services or {}), a) for a in answers]
        self.requests: list[str] = []

    async def request(
        self, method: str, url: str, headers: Mapping[str, str], body: Any, timeout: float
    ) -> HttpReply:
        self.requests.append(url)
        for scripted, answer in self.answers:
            if scripted == url:
                if answer.fail:
                    raise OSError(f"{url} is unreachable (as the test scripts)")
                return HttpReply(answer.status, answer.body)
        raise OSError(f"no answer scripted for {method} {url}")


def _rendered(url: str, services: Mapping[str, str]) -> str:
    found = leading(url)
    if found is None:
        return url
    name, rest = found
    if name not in services:
        raise ValueError(unknown(name, services))
    return services[name] + rest


def load_tests(path: Path) -> TestFile:
    """Load one test file; problems come as :class:`FlowError` with file:line:col."""
    return validate_model(read_source(path), TestFile)


_DIAL = {
    "answer": DialOutcome("ANSWER", ring=1.0, talk=5.0),
    "noanswer": DialOutcome("NOANSWER"),
    "busy": DialOutcome("BUSY", ring=0.5),
    "unavailable": DialOutcome("CHANUNAVAIL", ring=0.1),
}


async def run_test(
    test: FlowTest,
    flow: Flow,
    flows: Mapping[str, Flow],
    prompts_dir: Path,
    *,
    services: Mapping[str, str] | None = None,
) -> Outcome:
    """Run one flow test through the real engine and the Asterisk emulator (``services``:
    the engine's HTTP services, base URLs by name)."""
    outcome = Outcome(test.name)
    try:
        http = CannedHttp(test.http, services)
    except ValueError as exc:
        outcome.failures.append(f"http: {exc}")
        return outcome
    speaks = any(step.say is not None for step in test.script)
    router = MemoryRouter(Agent(a.id, a.endpoint, dict(a.skills)) for a in test.agents)
    moment = test.time or datetime(2026, 1, 5, 10, 0, tzinfo=UTC)  # a Monday morning
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)  # not the host's zone: results must not vary
    prompts = SpeechPrompts(prompts_dir)
    engine = Engine(
        flows=flows.get,
        prompts=prompts,
        router=router,
        http=http,
        services=dict(services or {}),
        announcements=MemoryAnnouncements(dict.fromkeys(test.announcements, True)),
        clock=lambda: moment,
        transfer_allow=tuple(test.transfer_allow),
        queues=test.queues,
    )
    language = test.language or flow.defaults.language
    spoken = {s.language or language for s in test.script if s.say is not None}
    async with contextlib.AsyncExitStack() as stack:
        # Each test's engine is closed as `ivr serve` closes its own: no per-call folder,
        # lock or TTS worker outlives the test.
        stack.callback(prompts.synthesizer.close)
        stack.push_async_callback(engine.aclose)
        if speaks:  # the caller talks: the engine listens over AudioSocket, with Vosk
            engine.speech = await stack.enter_async_context(_ears(prompts_dir))
            for missing in sorted(lang for lang in spoken if not engine.speech.speaks(lang)):
                outcome.failures.append(
                    f"'say' steps need a speech model for {missing!r}: "
                    f"ivr speech models install URL-or-path --language {missing}"
                )
            if outcome.failures:
                return outcome
        return await _run(test, flow, engine, router, prompts_dir, outcome, language)


async def _run(  # noqa: PLR0917 - one test's parts, in one place
    test: FlowTest,
    flow: Flow,
    engine: Engine,
    router: MemoryRouter,
    prompts_dir: Path,
    outcome: Outcome,
    language: str,
) -> Outcome:
    traces: list[Trace] = []
    errors: list[BaseException] = []

    async def handler(channel: Channel) -> None:
        run_flow = flow.model_copy()
        if test.language:
            run_flow = flow.model_copy(
                update={"defaults": flow.defaults.model_copy(update={"language": test.language})}
            )
        try:
            traces.append(await engine.run(channel, run_flow))
        except Exception as exc:
            errors.append(exc)
            raise

    server = FastAgiServer(default=handler, port=0, hangup_grace=1.0)
    await server.start()
    actions: list[Action] = [
        Hangup(on="SET MUSIC on", after=s.after)
        if s.hangup == "in_queue"
        else Keys(
            s.press or "",
            after=s.after,
            hangup=bool(s.hangup),
            audio=(
                await asyncio.to_thread(synthesize, s.say, s.language or language) if s.say else b""
            ),
        )
        for s in test.script
    ]
    emulator = AsteriskEmulator(
        port=server.port,
        sound_dirs=[prompts_dir],
        dial={endpoint: _DIAL[kind] for endpoint, kind in test.dial.items()},
        default_dial=DialOutcome("CHANUNAVAIL", ring=0.1),
    )
    timeline = Timeline(actions, dtx=test.phone == "dtx")
    try:
        call = await asyncio.wait_for(
            emulator.call(flow.id, timeline=timeline, callerid=test.caller), CALL_LIMIT
        )
        await asyncio.sleep(0)
    except TimeoutError:
        outcome.failures.append(
            f"the call did not end within {CALL_LIMIT:g} s (a queue without agents waits "
            "for ever: add a step 'hangup: in_queue')"
        )
        return outcome
    finally:
        await server.drain(2)
    if errors:
        outcome.failures.append(f"the engine failed: {errors[0]}")
    if not traces:
        outcome.failures.append("the call did not finish its flow")
        return outcome
    outcome.trace = traces[0]
    outcome.failures += _check(test.expect, traces[0], router, call.dialled)
    if timeline.keys_left:
        outcome.failures.append(
            f"the call never asked for {timeline.keys_left} scripted step(s); "
            "the flow ended sooner than the script thinks"
        )
    return outcome


def _in_order(wanted: list[str], seen: list[str], match: Any) -> str | None:
    position = 0
    for item in wanted:
        while position < len(seen) and not match(item, seen[position]):
            position += 1
        if position == len(seen):
            return item
        position += 1
    return None


def _check(expect: Expect, trace: Trace, router: MemoryRouter, dialled: list[str]) -> list[str]:
    failures: list[str] = []
    missing = _in_order(expect.visits, trace.nodes, lambda a, b: a == b)
    if missing is not None:
        failures.append(f"did not visit {missing!r} in order; visited {trace.nodes}")
    for name in expect.not_visits:
        if name in trace.nodes:
            failures.append(f"visited {name!r}, which it should not; visited {trace.nodes}")
    missing = _in_order(expect.prompts, trace.prompts, lambda a, b: a.lower() in b.lower())
    if missing is not None:
        failures.append(f"no prompt containing {missing!r} in order; heard {trace.prompts}")
    for text in expect.not_prompts:
        heard = [p for p in trace.prompts if text.lower() in p.lower()]
        if heard:
            failures.append(f"heard {heard[0]!r}, which it should not")
    for event in expect.events:
        if not any(all(e.get(k) == v for k, v in event.items()) for e in trace.events):
            failures.append(f"no event matching {event}; events {trace.events}")
    if expect.ended is not None and trace.ended != expect.ended:
        failures.append(f"ended by {trace.ended!r}, expected {expect.ended!r}")
    if expect.dialled is not None and dialled != expect.dialled:
        failures.append(f"dialled {dialled}, expected {expect.dialled}")
    if expect.queue is not None:
        wanted = (
            expect.queue
            if isinstance(expect.queue, QueueExpect)
            else QueueExpect(name=expect.queue)
        )
        queued = [d for kind, d in router.events if kind == "enqueued"]
        if not any(
            q["queue"] == wanted.name and (wanted.skills is None or q["skills"] == wanted.skills)
            for q in queued
        ):
            failures.append(f"not queued to {wanted.name!r} ({wanted.skills}); queued {queued}")
    return failures + _variables(expect, trace)


def _variables(expect: Expect, trace: Trace) -> list[str]:
    failures = []
    for name, value in expect.variables.items():
        got = trace.variables.get(name)
        if str(got) != str(value):
            shown = "***" if name in trace.sensitive else repr(got)
            failures.append(f"variable {name!r} is {shown}, expected {value!r}")
    return failures


async def run_file(
    path: Path,
    flows: Mapping[str, Flow],
    prompts_dir: Path | None = None,
    *,
    services: Mapping[str, str] | None = None,
) -> list[Outcome]:
    """Every test of one file; ``services``: the engine's HTTP services, base URLs by name
    (``ivr test`` gives the settings' own, resolved as ``ivr serve`` does)."""
    spec = load_tests(path)
    flow = flows.get(spec.flow)
    if flow is None:
        return [Outcome(t.name, [f"no flow named {spec.flow!r} is loaded"]) for t in spec.tests]
    folder = prompts_dir or Path(tempfile.gettempdir()) / "ivr-prompts"
    return [await run_test(test, flow, flows, folder, services=services) for test in spec.tests]
