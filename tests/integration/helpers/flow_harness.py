"""Run a flow (YAML text) on the real engine against the Asterisk emulator; return everything."""

from __future__ import annotations

import asyncio
import tempfile
import textwrap
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ivr.agi.server import FastAgiServer
from ivr.emulator.caller import DialOutcome
from ivr.flows.interpreter import Engine, Run, execute
from ivr.flows.loader import load_flow
from ivr.flows.ports import HttpReply, MemoryAnnouncements, SpeechPrompts
from ivr.testing import AsteriskEmulator
from routing.memory import Agent, MemoryRouter

PROMPTS = Path(tempfile.gettempdir()) / "ivr-test-prompts"


@dataclass
class Result:
    trace: Any = None
    errors: list[BaseException] = field(default_factory=list)
    router: MemoryRouter | None = None
    call: Any = None
    events: list[tuple[str, dict]] = field(default_factory=list)


class Http:
    def __init__(self, answers):
        self.answers, self.seen = answers, []

    async def request(self, method, url, headers, body, timeout):
        self.seen.append((method, url, dict(headers), body))
        if url in self.answers:
            status, body = self.answers[url]
            return HttpReply(status, body)
        raise OSError("unreachable")


def flow_of(text: str, name: str = "f.yaml"):
    return load_flow(name, textwrap.dedent(text))


async def _run(
    flow,
    actions,
    *,
    flows=None,
    agents=(),
    dial=None,
    moment=None,
    http=None,
    allow=(),
    environ=None,
    default_dial=None,
):
    router = MemoryRouter(Agent(*a) if isinstance(a, tuple) else a for a in agents)
    res = Result(router=router)
    flows = dict(flows or {})
    flows.setdefault(flow.id, flow)
    engine = Engine(
        flows=flows.get,
        prompts=SpeechPrompts(PROMPTS),
        router=router,
        http=http or Http({}),
        announcements=MemoryAnnouncements(),
        clock=lambda: moment or datetime(2026, 1, 5, 10, 0, tzinfo=UTC),
        transfer_allow=tuple(allow),
        environ=environ or {},
        on_event=lambda k, d: res.events.append((k, d)),
    )

    async def handler(channel):
        run = Run(engine, channel, flow)
        try:
            await execute(run)
        except BaseException as exc:
            res.errors.append(exc)
            raise
        finally:
            res.trace = run.trace

    server = FastAgiServer(default=handler, port=0, hangup_grace=1.0)
    await server.start()
    emu = AsteriskEmulator(
        port=server.port,
        sound_dirs=[PROMPTS],
        dial=dial or {},
        default_dial=default_dial or DialOutcome("CHANUNAVAIL", ring=0.1),
    )
    try:
        res.call = await asyncio.wait_for(emu.call(flow.id, actions=actions), 40)
        await asyncio.sleep(0.05)
    finally:
        await server.drain(2)
    return res


def run(flow, actions=(), **kw) -> Result:
    if isinstance(flow, str):
        flow = flow_of(flow)
    return asyncio.run(_run(flow, list(actions), **kw))
