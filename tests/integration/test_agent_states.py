"""What supervisors and agents expect of states, in real time through the emulated
Asterisk (AGI + AMI), a real Redis and the HTTP API: a pause asked during a call
waits for the call to end; a forced logout of a ringing agent stops the ring and
puts the caller back at the head of the queue; wrap-up can be ended early."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from ivr.ami import AmiClient, AmiConfig
from ivr.api import build_api
from ivr.auth import TokenBook
from ivr.centre.supervise import Supervisors
from ivr.centre.tracker import AnswerTracker
from ivr.flows.interpreter import Engine
from ivr.flows.ports import SpeechPrompts
from ivr.testing import AsteriskEmulator, DialOutcome, Keys, SessionResult
from routing.config import QueueConfig
from routing.memory import Agent
from routing.redis import RedisRouter
from tests.integration.helpers.engine_rig import flows_in, serving

FLOW = """
id: centre
nodes:
  menu:
    type: menu
    prompt: For sales, press 1.
    options:
      - {digit: 1, goto: sales}
    on_failure: bye
  sales: {type: queue, queue: sales, next: bye, on_failure: bye}
  bye: {type: hangup}
"""
TOKENS = TokenBook.from_environ({"IVR_API_TOKENS": "lee:supervisor:lee-token-0123456"})
LEE = {"Authorization": "Bearer lee-token-0123456"}


@dataclass
class Floor:
    emulator: AsteriskEmulator
    router: RedisRouter
    api: httpx.AsyncClient

    def call(self, dial: dict[str, DialOutcome]) -> asyncio.Future[SessionResult]:
        return asyncio.ensure_future(
            asyncio.wait_for(self.emulator.call("centre", actions=[Keys("1")], dial=dial), 60)
        )

    async def state(self, agent: str) -> dict[str, Any]:
        row = await self.router.agent(agent, skills=False)
        assert row is not None
        return row


async def until(check: Callable[[], Awaitable[bool]], deadline: float = 10.0) -> None:
    """Wait for ``check`` to hold, at most ``deadline`` seconds."""
    end = time.monotonic() + deadline
    while not await check():
        assert time.monotonic() < end, "the expected state never came"
        await asyncio.sleep(0.02)


@pytest.fixture
async def floor(redis_url: str, tmp_path: Path) -> AsyncIterator[Floor]:
    registry = flows_in(tmp_path / "flows", {"centre": FLOW})
    router = RedisRouter.connect(redis_url)
    await router.redis.flushall()
    await router.start()
    await router.replace_queues({"sales": QueueConfig.model_validate({"ring_timeout": 15})})
    await router.add_agents(
        [Agent("ann", "PJSIP/1001", {"sales": 5}), Agent("bob", "PJSIP/1002", {"sales": 5})]
    )
    await router.login("ann")
    await router.login("bob")
    await router.pause("bob", "briefing")
    tracker = AnswerTracker()
    engine = Engine(
        flows=registry.get,
        prompts=SpeechPrompts(tmp_path / "prompts"),
        router=router,
        queues=router.queues,
        answers=tracker,
    )
    server, _ = await serving(registry, engine)
    emulator = AsteriskEmulator(port=server.port, sound_dirs=[tmp_path / "prompts"], speed=1.0)
    ami_server = await emulator.start_ami()
    for endpoint in ("PJSIP/1001", "PJSIP/1002"):
        emulator.pbx.add_endpoint(endpoint)
    ami = AmiClient(
        AmiConfig(port=ami_server.port, username="ivr", secret="ivr-secret", ping_interval=0)
    )
    tracker.attach(ami)
    await ami.connect()
    app = build_api(router, TOKENS, Supervisors(router, ami))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://engine"
    ) as api:
        try:
            yield Floor(emulator, router, api)
        finally:
            await ami.close()
            await server.drain(1)
            await emulator.close()
            await router.close()


async def test_forced_logout_stops_the_ring_and_requeues_the_caller(floor: Floor) -> None:
    """ann rings; a supervisor logs her out: her phone stops at once, she is logged out
    (not blamed with a miss), and the caller goes to the next agent free."""
    call = floor.call(
        {
            "PJSIP/1001": DialOutcome("ANSWER", ring=12, talk=1),
            "PJSIP/1002": DialOutcome("ANSWER", ring=0.5, talk=0.5),
        }
    )

    async def ann_rings() -> bool:
        return (await floor.state("ann"))["state"] == "reserved" and any(
            name.startswith("PJSIP/1001-") for name in floor.emulator.pbx.channels
        )

    await until(ann_rings)
    started = time.monotonic()
    reply = await floor.api.post("/api/agents/ann/logout", headers=LEE)
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["state"] == "logged_out" and body["result"] == "done"
    assert body["ring_cancelled"].startswith("PJSIP/1001-")
    await floor.api.post("/api/agents/bob/resume", headers=LEE)
    result = await call
    assert time.monotonic() - started < 8  # not the 12 s ann's phone would have rung
    assert result.dialled == ["PJSIP/1001", "PJSIP/1002"]
    events = [f for _, f in await floor.router.events(time.time() - 60)]
    assert not [f for f in events if f["event"] == "missed" and f.get("fault") == "1"]
    assert (await floor.state("ann"))["misses"] == 0
    assert ("completed", "bob") in [(f["event"], f.get("agent")) for f in events]


async def test_pause_during_a_call_waits_for_its_end(floor: Floor) -> None:
    """Paused while on a call: 202 pending, still on the call; paused when it ends, and
    not offered the next caller meanwhile."""
    await floor.api.post("/api/agents/ann/logout", headers=LEE)  # bob alone takes calls
    await floor.api.post("/api/agents/bob/resume", headers=LEE)
    call = floor.call({"PJSIP/1002": DialOutcome("ANSWER", ring=0.3, talk=2.5)})

    async def bob_talks() -> bool:
        return (await floor.state("bob"))["state"] == "on_call"

    await until(bob_talks)
    reply = await floor.api.post("/api/agents/bob/pause", json={"reason": "lunch"}, headers=LEE)
    assert reply.status_code == 202, reply.text
    assert reply.json()["result"] == "pending" and reply.json()["state"] == "on_call"
    await call
    row = await floor.state("bob")
    assert (row["state"], row["reason"]) == ("paused", "lunch")


async def test_wrap_up_per_queue_and_ended_early(floor: Floor) -> None:
    """The queue's wrap-up keeps the agent from the next call; 'ready' ends it at once."""
    await floor.router.set_queue(
        "sales", QueueConfig.model_validate({"ring_timeout": 15, "wrap_up": 60})
    )
    await floor.api.post("/api/agents/bob/logout", headers=LEE)
    await floor.call({"PJSIP/1001": DialOutcome("ANSWER", ring=0.3, talk=0.5)})

    async def wrapping() -> bool:
        return (await floor.state("ann"))["state"] == "wrap_up"

    await until(wrapping)
    reply = await floor.api.post("/api/agents/ann/ready", headers=LEE)
    assert reply.status_code == 200 and reply.json()["state"] == "available"
