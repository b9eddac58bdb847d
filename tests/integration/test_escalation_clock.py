"""Escalation over a caller's wait, on a clock the test moves: 30 s, 60 s, 120 s in no time."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from ivr.agi.channel import Channel
from ivr.agi.server import FastAgiServer
from ivr.flows.clock import ManualClock
from ivr.flows.interpreter import Engine, Trace
from ivr.flows.loader import load_flow
from ivr.flows.ports import SpeechPrompts
from ivr.testing import AsteriskEmulator, DialOutcome, Hangup, Press
from routing.config import QueueConfig
from routing.memory import Agent, Assignment, MemoryRouter

FLOW = """
id: hold
nodes:
  q: {type: queue, queue: billing, next: bye, on_failure: sorry}
  bye: {type: hangup, say: Goodbye.}
  sorry: {type: hangup, say: "Sorry, nobody is free."}
"""
BILLING = QueueConfig.model_validate(
    {
        "skills": {"billing": 5},
        "announce_every": 45,
        "steps": [
            {"after": 30, "skills": {"billing": 3}},
            {"after": 60, "skills": {"billing": 1}},
            {"after": 120, "overflow": True},
        ],
    }
)


async def call_on_hold(tmp_path: Path, agents: list[Agent], script: Any) -> Trace:
    clock = ManualClock()
    router = MemoryRouter(agents)
    engine = Engine(
        flows={}.get,
        prompts=SpeechPrompts(tmp_path),
        router=router,
        queues={"billing": BILLING},
        hold_clock=clock,
    )
    flow = load_flow("hold.yaml", FLOW)
    traces: list[Trace] = []

    async def handler(channel: Channel) -> None:
        traces.append(await engine.run(channel, flow))

    server = FastAgiServer(default=handler, port=0)
    await server.start()
    emulator = AsteriskEmulator(
        port=server.port, sound_dirs=[tmp_path], dial={"PJSIP/3001": DialOutcome("ANSWER")}
    )
    try:
        call = asyncio.ensure_future(emulator.call("hold"))
        while not any(kind == "enqueued" for kind, _ in router.events):
            await asyncio.sleep(0.01)
        await script(clock, router)
        await asyncio.wait_for(call, 10)
    finally:
        await server.drain(1)
    return traces[0]


def events(trace: Trace) -> list[tuple[str, Any]]:
    return [(e["event"], e.get("after") or e.get("agent") or e.get("place")) for e in trace.events]


async def on_a_call(router: MemoryRouter, agent_id: str) -> Assignment:
    """Put ``agent_id`` on a call of its own (another queue), through the router."""
    ticket = await router.enqueue(f"busy-{agent_id}", f"busy-{agent_id}", {})
    assignment = await router.wait(ticket)
    assert assignment.agent_id == agent_id
    await router.connected(assignment)
    return assignment


async def test_steps_widen_the_skills_until_someone_can_help(tmp_path: Path) -> None:
    """Level 5 at first, 3 after 30 s, 1 after 60 s: the level-2 agent is rung at 60 s."""
    seen: list[str] = []

    async def script(clock: ManualClock, router: MemoryRouter) -> None:
        await clock.advance(29)
        seen.append(router.agents["junior"].state)  # still too junior
        await clock.advance(2)  # 31 s: level 3, still too junior
        seen.append(router.agents["junior"].state)
        await clock.advance(29)  # 60 s: level 1

    trace = await call_on_hold(tmp_path, [Agent("junior", "PJSIP/3001", {"billing": 2})], script)
    assert seen == ["available", "available"]
    assert events(trace)[:4] == [
        ("queued", None),
        ("escalated", 30),
        ("position", 1),  # the notice at 45 s
        ("escalated", 60),
    ]
    assert ("dialled", "junior") in events(trace)
    assert trace.nodes == ["q", "bye"]


async def test_nobody_for_two_minutes_overflows(tmp_path: Path) -> None:
    """With no agent at all, the call leaves by on_failure after 120 s, and not before."""
    left: list[bool] = []

    async def script(clock: ManualClock, router: MemoryRouter) -> None:
        for _ in range(11):
            await clock.advance(10)
        left.append(any(kind == "abandoned" for kind, _ in router.events))  # 110 s: still there
        await clock.advance(15)

    trace = await call_on_hold(tmp_path, [], script)
    assert left == [False]
    assert trace.nodes == ["q", "sorry"]
    assert ("overflow", None) in [(kind, None) for kind, _ in events(trace)]


async def test_wait_estimate_shares_the_calls_ahead_among_the_agents(tmp_path: Path) -> None:
    """Place 1, AHT 180 s: one busy agent able to serve makes 3 minutes, three make 1."""
    config = QueueConfig.model_validate(
        {
            "skills": {"billing": 5},
            "aht": 180,
            "announce_every": 10,
            "steps": [{"after": 12, "overflow": True}],
        }
    )
    estimates: dict[int, Any] = {}
    for count in (1, 3):
        agents = [Agent(f"a{i}", f"PJSIP/30{i}", {"billing": 7}) for i in range(count)]
        clock = ManualClock()
        router = MemoryRouter(agents)
        for agent in agents:
            await on_a_call(router, agent.id)  # all busy: the call waits
        engine = Engine(
            flows={}.get,
            prompts=SpeechPrompts(tmp_path),
            router=router,
            queues={"billing": config},
            hold_clock=clock,
        )
        traces: list[Trace] = []

        async def handler(
            channel: Channel, engine: Engine = engine, traces: list[Trace] = traces
        ) -> None:
            traces.append(await engine.run(channel, load_flow("hold.yaml", FLOW)))

        server = FastAgiServer(default=handler, port=0)
        await server.start()
        emulator = AsteriskEmulator(port=server.port, sound_dirs=[tmp_path])
        try:
            call = asyncio.ensure_future(emulator.call("hold"))
            while not any(
                kind == "enqueued" and data.get("queue") == "billing"
                for kind, data in router.events
            ):
                await asyncio.sleep(0.01)
            await clock.advance(11)
            await clock.advance(2)  # the step at 12 s: overflow
            await asyncio.wait_for(call, 10)
        finally:
            await server.drain(1)
        notices = [e for e in traces[0].events if e["event"] == "position"]
        estimates[count] = (notices[0]["minutes"], notices[0]["agents"])
    assert estimates == {1: (3, 1), 3: (1, 3)}


CALLBACK_FLOW = """
id: hold
nodes:
  q: {type: queue, queue: billing, callback_digit: "5", next: bye, on_failure: sorry}
  bye: {type: hangup, say: Goodbye.}
  sorry: {type: hangup, say: "Sorry, nobody is free."}
"""


async def run_callback_call(
    tmp_path: Path,
    router: MemoryRouter,
    actions: list[Any],
    callerid: str,
    *,
    callbacks: bool = True,
) -> tuple[Trace, Any]:
    config = QueueConfig.model_validate({"announce_every": 30})
    engine = Engine(
        flows={}.get,
        prompts=SpeechPrompts(tmp_path),
        router=router,
        queues={"billing": config},
        callbacks=callbacks,
        transfer_allow=("555*",),
    )
    traces: list[Trace] = []

    async def handler(channel: Channel) -> None:
        traces.append(await engine.run(channel, load_flow("hold.yaml", CALLBACK_FLOW)))

    server = FastAgiServer(default=handler, port=0)
    await server.start()
    emulator = AsteriskEmulator(port=server.port, sound_dirs=[tmp_path])
    try:
        result = await asyncio.wait_for(
            emulator.call("hold", actions=actions, callerid=callerid), 20
        )
    finally:
        await server.drain(1)
    return traces[0], result


async def test_callback_key_keeps_the_place_and_hangs_up(tmp_path: Path) -> None:
    """On hold, the caller presses 5: the engine confirms the number, hangs up, and the
    call keeps its place; the agent freed later is handed over with the number."""
    router = MemoryRouter([Agent("a", "PJSIP/3001", {})])
    busy = await on_a_call(router, "a")
    trace, result = await run_callback_call(
        tmp_path, router, [Press("5", on="WAIT FOR DIGIT", nth=3)], "5551234"
    )
    behind = await router.enqueue("other", "billing", {})
    assert [e["event"] for e in trace.events][-1] == "callback_requested"
    assert any("5 5 5 1 2 3 4" in p for p in trace.prompts)
    assert result.commands[-1] == "HANGUP"
    assert not any(kind == "abandoned" for kind, _ in router.events)
    # A callback worker is looking (callbacks are offered only while one is alive)...
    worker = asyncio.ensure_future(router.next_callback())
    assert await router.claim_callback() is None
    await router.completed(busy)  # ...the agent is free: the callback goes first, not 'other'
    due = await asyncio.wait_for(worker, 2)
    assert (due.agent_id, due.callback, due.ticket.queue) == ("a", "5551234", "billing")
    assert await router.position(behind) == 1


async def test_no_callback_offer_without_a_callable_number(tmp_path: Path) -> None:
    """An anonymous caller is not offered a callback: the key does nothing."""
    router = MemoryRouter([Agent("a", "PJSIP/3001", {})])
    await on_a_call(router, "a")
    trace, result = await run_callback_call(
        tmp_path, router, [Press("5", at=1.0), Hangup(at=3.0)], "anonymous"
    )
    assert "callback_requested" not in [e["event"] for e in trace.events]
    assert not any(c.startswith("WAIT FOR DIGIT") for c in result.commands)
    assert ("abandoned", "billing") in [(k, d.get("queue")) for k, d in router.events]


@pytest.mark.parametrize(
    ("callerid", "callbacks"), [("6661234", True), ("5551234", False)], ids=["off-list", "no-ami"]
)
async def test_no_callback_promise_that_cannot_be_kept(
    tmp_path: Path, callerid: str, callbacks: bool
) -> None:
    """A number off the allow-list, or an engine that cannot place callbacks (no AMI):
    the key is not offered and does nothing; the caller is never told 'we will call'."""
    router = MemoryRouter([Agent("a", "PJSIP/3001", {})])
    await on_a_call(router, "a")
    trace, _ = await run_callback_call(
        tmp_path, router, [Press("5", at=1.0), Hangup(at=3.0)], callerid, callbacks=callbacks
    )
    assert "callback_requested" not in [e["event"] for e in trace.events]
    assert not any("call you back" in p for p in trace.prompts)
