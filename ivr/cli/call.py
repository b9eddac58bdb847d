"""``ivr call``: one call in the terminal, through the real FastAGI protocol.

The engine (in-process, or a running one with ``--engine``) runs the flow;
the Asterisk emulator plays the caller. Prompts print as text as they are
played, keys typed at the terminal become DTMF on the call, and ``say
WORDS`` (or ``say:WORDS`` with ``--press``) is spoken by espeak-ng from a
phone with silence suppression: audio frames only while the words sound, as
the worst real phones send them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from ivr import log
from ivr.agi.channel import Channel
from ivr.agi.server import FastAgiServer
from ivr.app import DEMO_AGENTS, flow_environ
from ivr.audiosocket.server import AudioSocketServer
from ivr.config import Settings, load_settings, service_urls
from ivr.demo_api import start_demo_api
from ivr.emulator.caller import Timeline, synthesize
from ivr.flows.interpreter import Engine, Trace
from ivr.flows.model import Flow, Hours
from ivr.flows.ports import FileAnnouncements, SpeechPrompts
from ivr.flows.problems import FlowError
from ivr.flows.registry import FlowRegistry
from ivr.routing_config import agent_of, load_routing_file
from ivr.speech_input import SpeechInput
from ivr.testing import AsteriskEmulator, DialOutcome, Exchange, Keys, SessionResult
from routing.config import RoutingConfig
from routing.memory import MemoryRouter
from speech.recognizer import ModelRegistry, Recognizer
from speech.tts import Synthesizer

__all__ = ["place_call"]


def _say(text: str) -> None:
    print(text, flush=True)


async def _keyboard(timeline: Timeline, done: asyncio.Event, language: str) -> None:
    loop = asyncio.get_running_loop()
    while not done.is_set():
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line:
            return
        if line.lower().startswith("say "):
            audio = await asyncio.to_thread(synthesize, line[4:].strip(), language)
            timeline.inject_talk(audio)
            continue
        keys = [c for c in line.strip() if c in "0123456789*#"]
        for index, char in enumerate(keys):
            # A phone sends keys apart (a key lasts ~100 ms); keys typed at
            # once are pressed a quarter second apart, as a caller would.
            timeline.inject("dtmf", char, delay=index * 0.25)
        if "h" in line.lower():
            timeline.inject("hangup", delay=len(keys) * 0.25)
            return


def _demo_routing() -> RoutingConfig:
    """routing.yaml when there is one (every agent available at once), else nothing."""
    try:
        return load_routing_file(Path("routing.yaml"))
    except FlowError as exc:
        _say(f"! routing.yaml: {exc}")
        return RoutingConfig()


def _at(moment: datetime, flow: Flow | None) -> datetime:
    """``--at``: a time without an offset is in the flow's business-hours timezone (the
    one its schedule is written in), else UTC."""
    if moment.tzinfo is not None:
        return moment
    zone = next(
        (n.timezone for n in (flow.nodes.values() if flow else ()) if isinstance(n, Hours)),
        "UTC",
    )
    return moment.replace(tzinfo=ZoneInfo(zone))


async def _call_engine(
    args: argparse.Namespace, timeline: Timeline, speed: float | None, interactive: bool
) -> int:
    """``--engine HOST:PORT``: the call goes to a running engine, shown as it goes."""
    host, _, port = args.engine.rpartition(":")
    emulator = AsteriskEmulator(
        host or "127.0.0.1", int(port), speed=speed, on_exchange=_show_exchange
    )
    if args.at is not None:
        _say("   (--at applies to local calls; the running engine keeps its own clock)")
    return await _dial(emulator, args, timeline, None, interactive)


async def place_call(args: argparse.Namespace) -> int:
    log.configure(json=False, level="warning")
    language = args.language or "ko"
    steps = [
        Keys("", after=0.5, audio=synthesize(k[4:], language))
        if k.startswith("say:")
        else Keys(k, after=0.5)
        for k in (args.press or [])
    ]
    interactive = args.press is None and sys.stdin.isatty()
    speed = None if args.fast or not interactive else 1.0
    timeline = Timeline(list(steps), speed=speed, dtx=True)
    if args.engine:
        return await _call_engine(args, timeline, speed, interactive)
    return await _call_here(args, timeline, speed, interactive)


async def _call_here(
    args: argparse.Namespace, timeline: Timeline, speed: float | None, interactive: bool
) -> int:
    """The call on an engine in this process, on the settings ``ivr serve`` reads (its
    services, prompts folder, demo service and announcement switches)."""
    settings = load_settings()
    services = service_urls(settings)
    registry = FlowRegistry(args.flows, services=services)
    for problem in registry.reload():
        _say(f"! {problem}")
    if registry.get(args.flow) is None:
        _say(f"ivr: no flow {args.flow!r} in {args.flows}; flows: {', '.join(registry.ids)}")
        return 2
    async with contextlib.AsyncExitStack() as stack:
        engine = await _engine(args, settings, registry, stack)
        traces: list[Trace] = []

        async def handler(channel: Channel) -> None:
            flow = registry.get(args.flow)
            assert flow is not None
            if args.language:
                defaults = flow.defaults.model_copy(update={"language": args.language})
                flow = flow.model_copy(update={"defaults": defaults})
            traces.append(await engine.run(channel, flow))

        server = FastAgiServer(default=handler, port=0)
        await server.start()
        stack.push_async_callback(server.drain, 1)
        if settings.demo_api_port:
            try:
                stack.callback((await start_demo_api(settings.demo_api_port)).close)
            except OSError as exc:  # a running engine serves it, most likely: say so
                print(
                    f"(demo account service: port {settings.demo_api_port} is taken"
                    f" ({exc.strerror}); using whatever serves it)",
                    file=sys.stderr,
                )
        emulator = AsteriskEmulator(
            port=server.port,
            speed=speed,
            sound_dirs=[settings.prompts_dir],
            default_dial=DialOutcome("ANSWER", ring=2.0, talk=3.0),
        )
        return await _dial(emulator, args, timeline, traces, interactive)


async def _engine(
    args: argparse.Namespace,
    settings: Settings,
    registry: FlowRegistry,
    stack: contextlib.AsyncExitStack,
) -> Engine:
    """The engine for one call, closed by ``stack`` as ``ivr serve`` closes its own."""
    config = _demo_routing()
    router = MemoryRouter([agent_of(a) for a in config.agents] or list(DEMO_AGENTS))
    synthesizer = Synthesizer(settings.prompts_dir)
    stack.callback(synthesizer.close)
    sockets = AudioSocketServer(port=0)
    await sockets.start()
    stack.push_async_callback(sockets.close)
    engine = Engine(
        flows=registry.get,
        prompts=SpeechPrompts(settings.prompts_dir, synthesizer),
        router=router,
        queues=config.queues,
        services=service_urls(settings),
        environ=flow_environ(os.environ),
        # The switches `ivr announcement on NAME` sets: the same file the engine reads.
        announcements=FileAnnouncements(settings.announcements_file),
        speech=SpeechInput(Recognizer(ModelRegistry()), synthesizer, server=sockets),
    )
    # Once the call has ended: no pooled HTTP connection, per-call folder or lock left.
    stack.push_async_callback(engine.aclose)
    if args.at is not None:
        moment = _at(args.at, registry.get(args.flow))
        _say(f"   (the call happens at {moment:%Y-%m-%d %H:%M %Z})")
        engine.clock = lambda: moment
    engine.on_prompt = lambda text: _say(f"🔊 {text}")
    engine.on_event = lambda kind, data: _say(f"   · {kind} {data}" if data else f"   · {kind}")
    return engine


async def _dial(
    emulator: AsteriskEmulator,
    args: argparse.Namespace,
    timeline: Timeline,
    traces: list[Trace] | None,
    interactive: bool,
) -> int:
    done = asyncio.Event()
    keyboard: asyncio.Future[Any] | None = None
    if interactive:
        _say(
            "Type the keys the caller presses, then Enter ('h' hangs up); "
            "'say WORDS' speaks them (espeak-ng, heard by Vosk)."
        )
        keyboard = asyncio.ensure_future(_keyboard(timeline, done, args.language or "ko"))
    try:
        result = await emulator.call(args.flow, timeline=timeline, callerid=args.callerid)
    finally:
        done.set()
        if keyboard is not None:
            keyboard.cancel()
    if traces:
        _say(f"visited: {' > '.join(traces[0].nodes)}")
    if result.dialled:
        _say(f"dialled: {', '.join(result.dialled)}")
    _say(f"AGISTATUS={result.agistatus}")
    if result.agistatus == "FAILURE":
        _say(_why_failed(result, args))
    return 1 if result.agistatus == "FAILURE" else 0


def _why_failed(result: SessionResult, args: argparse.Namespace) -> str:
    """What AGISTATUS=FAILURE means here, as Asterisk's dialplan would take it."""
    where = args.engine or "the engine"
    if not result.connected:
        return (
            f"! nothing answered at {where}: is `ivr serve` running there? "
            "(Asterisk would send this caller to the entry's fallback)"
        )
    if not result.exchanges:
        return (
            f"! {where} refused the call at once: it has no flow {args.flow!r} "
            "(see `ivr validate` and the engine's log for the flows it serves)"
        )
    return (
        f"! {where} gave the call up after {len(result.exchanges)} commands "
        "(an engine error: its log says which, with this call's uniqueid)"
    )


def _show_exchange(exchange: Exchange) -> None:
    """A running engine's side of the call: what it plays, asks and does."""
    command = exchange.sent.decode("utf-8", "replace").rstrip("\n")
    reply = exchange.received.decode("utf-8", "replace").strip().splitlines()
    verb = " ".join(command.split()[:2])
    if verb in ("STREAM FILE", "GET OPTION", "GET DATA"):
        name = command.split()[2].strip('"').rsplit("/", 1)[-1]
        _say(f"🔊 (prompt {name})   ← {reply[-1] if reply else ''}")
    elif verb.startswith(("WAIT FOR", "EXEC", "RECORD FILE", "SAY ")):
        _say(f"   {command}   ← {reply[-1] if reply else ''}")
