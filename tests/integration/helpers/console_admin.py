"""What the console's flows, announcements and abandoned-calls tests share: a real Redis
with a small floor, users of every role and scope, a folder of flows, and a browser-like
HTTP client that logs in and carries the session's CSRF token.

Fixtures are imported by the test modules that use them.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ivr.agi.server import FastAgiServer
from ivr.api import build_api
from ivr.auth import TokenBook
from ivr.centre.supervise import Supervisors
from ivr.config import Settings
from ivr.console.roles import Scope
from ivr.console.users import UserRecord, UserStore, hash_password
from ivr.flows.announcements import FileAnnouncements
from ivr.flows.interpreter import Engine, Trace
from ivr.flows.ports import SpeechPrompts
from ivr.flows.registry import FlowRegistry
from ivr.testing import AsteriskEmulator, SessionResult
from routing.config import QueueConfig
from routing.memory import Agent
from routing.redis import RedisRouter

PASSWORD = "a long enough secret"
HTML = {"Accept": "text/html"}

MAIN = """\
id: main
version: 3
description: The front door
nodes:
  outage:
    type: announcement
    name: outage
    say: We are aware of a service outage.
    next: menu
  menu:
    type: menu
    prompt: For billing, press 1.
    options:
      - {digit: 1, goto: billing}
    on_failure: bye
  billing: {type: subflow, flow: billing, next: bye}
  bye: {type: hangup, say: Goodbye.}
"""

BILLING = """\
id: billing
version: 1
nodes:
  storm:
    type: announcement
    name: storm
    say: Storms delay our engineers.
    next: agent
  agent: {type: queue, queue: sales, next: done, on_failure: done}
  done: {type: return}
"""

SUPPORT = """\
id: support
version: 7
nodes:
  outage:
    type: announcement
    name: outage
    say: The outage touches support too.
    next: bye
  bye: {type: hangup}
"""


def write_flows(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in (("main", MAIN), ("billing", BILLING), ("support", SUPPORT)):
        (folder / f"{name}.yaml").write_text(text)
    return folder


@pytest.fixture
async def router(redis_url: str) -> AsyncIterator[RedisRouter]:
    router = RedisRouter.connect(redis_url)
    await router.redis.flushall()
    await router.start()
    await router.replace_queues(
        {
            "sales": QueueConfig.model_validate({"skills": {"sales": 1}}),
            "tv": QueueConfig.model_validate({"skills": {"tv": 1}}),
        }
    )
    await router.add_agents(
        [
            Agent("ann", "PJSIP/1001", {"sales": 5, "team.north": 1}, site="seoul"),
            Agent("cy", "PJSIP/1003", {"tv": 5, "team.north": 1}, site="seoul"),
        ]
    )
    try:
        yield router
    finally:
        await router.close()


@pytest.fixture(scope="module")
def hashed() -> str:
    return hash_password(PASSWORD)


def floor_users(hashed: str) -> list[UserRecord]:
    """An admin, a supervisor of the whole floor, one of queue tv, an agent, a wall."""
    return [
        UserRecord("ada", "admin", hashed),
        UserRecord("pat", "supervisor", hashed),  # no scope: the whole floor
        UserRecord("tia", "supervisor", hashed, Scope(queues=frozenset({"tv"}))),
        UserRecord("ann", "agent", hashed, agent_id="ann"),
        UserRecord("wall", "viewer", hashed),
    ]


@pytest.fixture
def users(tmp_path: Path, hashed: str) -> UserStore:
    store = UserStore(tmp_path / "users.json")
    for record in floor_users(hashed):
        store.put(record)
    return store


@pytest.fixture
def settings(tmp_path: Path, users: UserStore) -> Settings:
    """Flows, prompts, switches and history in the test's folder (var/ under it)."""
    return Settings(
        users_file=users.path,
        flows_dir=write_flows(tmp_path / "flows"),
        prompts_dir=tmp_path / "var" / "prompts",
        announcements_file=tmp_path / "var" / "announcements.json",
        redis_dir=tmp_path / "var" / "redis",
        transfer_allow="555*,+8210*",
        demo_api_port=0,
    )


def app_for(router: RedisRouter, settings: Settings, supervisors: Supervisors | None = None) -> Any:
    return build_api(router, TokenBook(), supervisors, settings)


def browser(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1:8090", timeout=30
    )


async def log_in(http: httpx.AsyncClient, name: str) -> str:
    """Log ``name`` in; the session's CSRF token (from the page's meta tag)."""
    reply = await http.post("/console/login", data={"name": name, "password": PASSWORD})
    assert reply.status_code == 303, reply.text
    page = await http.get("/console/", headers=HTML)
    found = re.search(r'<meta name="csrf-token" content="([^"]+)">', page.text)
    assert found is not None, page.text
    return found[1]


async def audit(router: RedisRouter, action: str) -> list[dict[str, str]]:
    return [a for a in await router.audit_log(1000) if a["action"] == action]


class Line:
    """The engine's FastAGI side on the flows and switches of ``settings``, and an
    emulated Asterisk that places calls to it: what a call played, and its trace."""

    def __init__(self, settings: Settings, clock: Any = None) -> None:
        self.registry = FlowRegistry(settings.flows_dir)
        assert self.registry.reload() == []
        self.switches = FileAnnouncements(settings.announcements_file, clock=clock or time.time)
        self.prompts = SpeechPrompts(settings.prompts_dir)
        self.engine = Engine(
            flows=self.registry.get, prompts=self.prompts, announcements=self.switches
        )
        self.traces: list[Trace] = []
        self.settings = settings
        self.server: FastAgiServer | None = None

    async def __aenter__(self) -> Line:
        async def handle(channel: Any) -> None:
            flow = self.registry.get(channel.env.script)
            assert flow is not None, channel.env.script
            self.traces.append(await self.engine.run(channel, flow))

        self.server = FastAgiServer(default=handle, port=0)
        await self.server.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        await self.server.drain(1)
        await self.engine.aclose()
        self.prompts.synthesizer.close()

    async def call(self, flow: str) -> tuple[SessionResult, Trace]:
        """A call to ``flow`` from 5551234 that presses nothing."""
        assert self.server is not None
        emulator = AsteriskEmulator(port=self.server.port, sound_dirs=[self.settings.prompts_dir])
        result = await asyncio.wait_for(emulator.call(flow, callerid="5551234"), 60)
        return result, self.traces[-1]


def heard(trace: Trace) -> list[str]:
    """The announcements a call took."""
    return [e["name"] for e in trace.events if e["event"] == "announcement"]
