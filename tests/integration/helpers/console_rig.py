"""A contact centre for the console's live-data tests: a real Redis, the emulated
Asterisk (FastAGI calls, AMI), the engine running a queue flow (and any others a
test gives) and telling the aggregator where its calls are as ``ivr serve`` does,
and the live WebSocket and /metrics served by a real uvicorn.

Logins are the core's business (``ivr.console.access``); here ``user_of`` is
injected: the ``ivr_session`` cookie names a user of :attr:`Rig.users`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import HTTPConnection
from starlette.routing import Mount
from websockets.asyncio.client import ClientConnection, connect

from ivr.ami import AmiClient, AmiConfig
from ivr.centre.tracker import AnswerTracker
from ivr.console import live, metrics
from ivr.console.access import Scope, User
from ivr.console.engine_calls import follow_calls
from ivr.flows.interpreter import Engine
from ivr.flows.ports import SpeechPrompts
from ivr.testing import AsteriskEmulator, DialOutcome
from routing.config import QueueConfig
from routing.memory import Agent
from routing.redis import RedisRouter
from tests.integration.helpers.engine_rig import flows_in, serving

FLOW = """
id: live
nodes:
  sales: {type: queue, queue: sales, next: bye, on_failure: bye}
  bye: {type: hangup}
"""

ADMIN = User("ada", "admin", Scope())
NORTH = User("nina", "supervisor", Scope(teams=frozenset({"north"})))
ANN = User("ann", "agent", Scope(), agent_id="ann")


@dataclass
class Rig:
    emulator: AsteriskEmulator
    router: RedisRouter
    ami: AmiClient
    aggregator: live.Aggregator
    metrics: metrics.Metrics
    app: Starlette
    port: int = 0
    users: dict[str, User] = field(default_factory=dict)

    async def user_of(self, conn: HTTPConnection) -> User | None:
        return self.users.get(conn.cookies.get("ivr_session", ""))

    def connect(self, who: str | None, query: str = "") -> Any:
        """A WebSocket to /console/ws with ``who``'s session cookie (None: no cookie)."""
        headers = {"Cookie": f"ivr_session={who}"} if who else {}
        url = f"ws://127.0.0.1:{self.port}/console/ws{query}"
        return connect(url, additional_headers=headers, open_timeout=5)

    async def call(self, flow: str = "live", **kwargs: Any) -> Any:
        return await asyncio.wait_for(self.emulator.call(flow, **kwargs), 60)

    def hold(self, endpoint: str, held: bool) -> None:
        """The agent at ``endpoint`` presses hold (or takes the call back): AMI Hold/Unhold
        on their channel, as chan_pjsip's re-INVITE makes Asterisk raise them."""
        channel = next(c for n, c in self.emulator.pbx.channels.items() if n.startswith(endpoint))
        extra = [("MusicClass", "default")] if held else []
        self.emulator.pbx.event("Hold" if held else "Unhold", [*channel.block(), *extra])


class Mirror:
    """What a browser holds: the snapshot, with every delta applied."""

    def __init__(self, socket: ClientConnection) -> None:
        self.socket = socket
        self.data: dict[str, dict[str, Any]] = {
            k: {} for k in ("agents", "queues", "calls", "alerts")
        }
        self.messages: list[dict[str, Any]] = []
        self.seq = 0
        self.epoch = ""
        self.times: list[tuple[float, dict[str, Any]]] = []

    async def next(self, timeout: float = 10.0) -> dict[str, Any]:
        message: dict[str, Any] = json.loads(await asyncio.wait_for(self.socket.recv(), timeout))
        self.messages.append(message)
        self.times.append((time.time(), message))
        self.seq = message["seq"]
        if message["type"] == "snapshot":
            self.epoch = message["epoch"]
            self.data = {k: dict(message[k]) for k in ("agents", "queues", "calls", "alerts")}
        elif message["type"] == "delta":
            for kind, key, record in message["ops"]:
                table = self.data[f"{kind}s"]
                if record is None:
                    table.pop(key, None)
                else:
                    table[key] = record
        return message

    async def until(
        self, check: Callable[[dict[str, dict[str, Any]]], bool], timeout: float = 10.0
    ) -> None:
        """Read messages until ``check(data)`` holds (fails after ``timeout`` seconds)."""
        deadline = time.monotonic() + timeout
        while not check(self.data):
            left = deadline - time.monotonic()
            try:
                await self.next(left) if left > 0 else None
            except TimeoutError:
                left = 0
            assert left > 0, f"not seen in {timeout} s; messages {self._news()}"

    def _news(self) -> list[dict[str, Any]]:
        return [m for m in self.messages if m["type"] != "tick"]

    def agent(self, agent_id: str) -> dict[str, Any]:
        found: dict[str, Any] = self.data["agents"].get(agent_id, {})
        return found


@contextlib.asynccontextmanager
async def console_rig(
    redis_url: str, folder: Path, *, recheck: float = 5.0, flows: dict[str, str] | None = None
) -> AsyncIterator[Rig]:
    """The rig, every part stopped at the end (also when a later one failed to start);
    ``flows`` (id -> YAML) are served next to ``live``."""
    async with contextlib.AsyncExitStack() as stack:
        registry = flows_in(folder / "flows", {"live": FLOW, **(flows or {})})
        router = RedisRouter.connect(redis_url)
        stack.push_async_callback(router.close)
        await router.redis.flushall()
        await router.start()
        sales = QueueConfig.model_validate({"skills": {"sales": 1}, "ring_timeout": 15})
        await router.replace_queues({"sales": sales})
        await router.add_agents(
            [
                Agent("ann", "PJSIP/1001", {"sales": 5, "team.north": 1}),
                Agent("bob", "PJSIP/1002", {"sales": 5, "team.south": 1}),
            ]
        )
        for agent in ("ann", "bob"):
            await router.login(agent)
        tracker = AnswerTracker()
        engine = Engine(
            flows=registry.get,
            prompts=SpeechPrompts(folder / "prompts"),
            router=router,
            queues={"sales": sales},
            answers=tracker,
        )
        stack.push_async_callback(engine.aclose)
        server, _ = await serving(registry, engine)
        stack.push_async_callback(server.drain, 1)
        # In real time: the console must see the phone ring, the call connect and end.
        emulator = AsteriskEmulator(port=server.port, sound_dirs=[folder / "prompts"], speed=1.0)
        stack.push_async_callback(emulator.close)
        ami_server = await emulator.start_ami()
        for endpoint in ("PJSIP/1001", "PJSIP/1002"):
            emulator.pbx.add_endpoint(endpoint)
        ami = AmiClient(
            AmiConfig(port=ami_server.port, username="ivr", secret="ivr-secret", ping_interval=0)
        )
        stack.push_async_callback(ami.close)
        tracker.attach(ami)
        await ami.connect()
        board_metrics = metrics.Metrics(process=False)
        aggregator = live.Aggregator(router, ami, metrics=board_metrics)
        stack.push_async_callback(aggregator.close)
        follow_calls(engine, aggregator)
        rig = Rig(emulator, router, ami, aggregator, board_metrics, Starlette())
        rig.users = {"ada": ADMIN, "nina": NORTH, "ann": ANN}
        ws = live.routes(router, ami, user_of=rig.user_of, aggregator=aggregator, recheck=recheck)
        rig.app = Starlette(routes=[Mount("/console", routes=ws), *metrics.routes(board_metrics)])
        web = uvicorn.Server(
            uvicorn.Config(rig.app, host="127.0.0.1", port=0, log_config=None, lifespan="off")
        )
        task = asyncio.ensure_future(web.serve())

        async def stop_web() -> None:
            web.should_exit = True
            await task

        stack.push_async_callback(stop_web)
        while not web.started and not task.done():
            await asyncio.sleep(0.01)
        rig.port = web.servers[0].sockets[0].getsockname()[1]
        yield rig


def dial(ring: float = 0.3, talk: float = 3.0) -> dict[str, DialOutcome]:
    """Either agent answers after ``ring`` s and talks ``talk`` s."""
    outcome = DialOutcome("ANSWER", ring=ring, talk=talk)
    return {"PJSIP/1001": outcome, "PJSIP/1002": outcome}
