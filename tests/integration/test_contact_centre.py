"""The whole contact centre through the emulated Asterisk (AGI + AMI) on a real Redis:
menu → queue → an agent who does not answer → one who does → survey → KPIs; a caller
who hangs up while the agent's phone rings; phones that drop off; a supervisor barge;
a callback placed agent first; AMI lost and resynced mid-call."""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from ivr.agi.server import FastAgiServer
from ivr.ami import AmiClient, AmiConfig, DialBegin
from ivr.api import build_api
from ivr.auth import TokenBook
from ivr.centre.callbacks import CallbackWorker
from ivr.centre.presence import UNREACHABLE, Presence
from ivr.centre.supervise import Supervisors
from ivr.centre.tracker import AnswerTracker
from ivr.cli import main
from ivr.flows.interpreter import Engine, Trace
from ivr.flows.ports import SpeechPrompts
from ivr.flows.registry import FlowRegistry
from ivr.testing import AsteriskEmulator, DialOutcome, Hangup, Keys, Press
from routing.config import QueueConfig
from routing.kpis import compute
from routing.memory import Agent
from routing.redis import RedisRouter

FLOW = """
id: centre
nodes:
  menu:
    type: menu
    prompt: For sales, press 1.
    options:
      - {digit: 1, goto: sales}
      - {digit: 2, goto: sales_or_callback}
    on_failure: bye
  sales: {type: queue, queue: sales, next: survey, on_failure: bye}
  sales_or_callback:
    type: queue
    queue: sales
    callback_digit: "5"
    next: survey
    on_failure: bye
  survey:
    type: survey
    questions:
      - {id: csat, prompt: "Press 1 to 5, 5 is best."}
    next: bye
  bye: {type: hangup, say: Goodbye.}
"""
TOKENS = TokenBook.from_environ({"IVR_API_TOKENS": "lee:supervisor:lee-token-0123456:PJSIP/2001"})


@dataclass
class Centre:
    emulator: AsteriskEmulator
    router: RedisRouter
    ami: AmiClient
    engine: Engine
    server: FastAgiServer
    traces: list[Trace]
    supervisors: Supervisors
    presence: Presence

    async def call(self, **kwargs: Any) -> Any:
        return await asyncio.wait_for(self.emulator.call("centre", **kwargs), 60)

    async def settle(self) -> None:
        await self.ami.ping()  # every AMI event sent before the Pong has been heard
        await asyncio.sleep(0.02)
        await self.presence.settled()


@pytest.fixture
async def centre(redis_url: str, tmp_path: Path) -> AsyncIterator[Centre]:
    (tmp_path / "flows").mkdir()
    (tmp_path / "flows" / "centre.yaml").write_text(FLOW)
    registry = FlowRegistry(tmp_path / "flows")
    assert registry.reload() == []
    router = RedisRouter.connect(redis_url)
    await router.redis.flushall()
    await router.start()
    await router.add_agents(
        [Agent("ann", "PJSIP/1001", {"sales": 5}), Agent("bob", "PJSIP/1002", {"sales": 5})]
    )
    for agent in ("ann", "bob"):
        await router.login(agent)
        await asyncio.sleep(0.01)  # ann has been idle longest: she is rung first
    tracker = AnswerTracker()
    engine = Engine(
        flows=registry.get,
        prompts=SpeechPrompts(tmp_path / "prompts"),
        router=router,
        queues={
            "sales": QueueConfig.model_validate(
                {"announce_every": 20, "ring_timeout": 15, "dial_options": "t"}
            )
        },
        answers=tracker,
        transfer_allow=("555*",),
        callbacks=True,
    )
    traces: list[Trace] = []

    async def handle(channel: Any) -> None:
        flow = registry.get(channel.env.script)
        assert flow is not None
        traces.append(await engine.run(channel, flow))

    server = FastAgiServer(default=handle, port=0)
    await server.start()
    emulator = AsteriskEmulator(port=server.port, sound_dirs=[tmp_path / "prompts"])
    ami_server = await emulator.start_ami()
    for endpoint in ("PJSIP/1001", "PJSIP/1002", "PJSIP/2001"):
        emulator.pbx.add_endpoint(endpoint)
    presence = Presence(router)
    ami = AmiClient(
        AmiConfig(port=ami_server.port, username="ivr", secret="ivr-secret", ping_interval=0),
        on_resync=presence.resync,
    )
    presence.attach(ami)
    tracker.attach(ami)
    await ami.connect()
    try:
        yield Centre(
            emulator, router, ami, engine, server, traces, Supervisors(router, ami), presence
        )
    finally:
        await ami.close()
        await presence.close()
        await server.drain(1)
        await emulator.close()
        await router.close()


async def test_menu_queue_missed_answered_survey_kpis(centre: Centre) -> None:
    result = await centre.call(
        callerid="5551234",
        actions=[Keys("1"), Keys("5")],
        dial={
            "PJSIP/1001": DialOutcome("NOANSWER"),
            "PJSIP/1002": DialOutcome("ANSWER", ring=2, talk=30),
        },
    )
    await centre.settle()
    trace = centre.traces[0]
    assert trace.nodes == ["menu", "sales", "survey", "bye"]
    assert result.dialled == ["PJSIP/1001", "PJSIP/1002"]
    assert "EXEC Dial PJSIP/1002,15,gt" in result.commands  # the queue's ring time, options
    assert trace.variables["survey_csat"] == 5
    # ann did not answer: missed (the call went back to the head and bob got it).
    assert await centre.router.agent_state("ann") == "missed"
    assert await centre.router.agent_state("bob") == "available"
    events = [f for _, f in await centre.router.events(time.time() - 60)]
    kinds = [(f["event"], f.get("agent", "")) for f in events if f["event"] != "state"]
    assert kinds == [
        ("enqueued", ""),
        ("reserved", "ann"),
        ("handoff", "ann"),  # the caller's context, for the agent's screen
        ("missed", "ann"),
        ("reserved", "bob"),
        ("handoff", "bob"),
        ("connected", "bob"),
        ("completed", "bob"),
        ("survey", ""),
        ("ivr_ended", ""),  # for containment: this call reached an agent
    ]
    # bob was on_call from the answer (AMI DialEnd), before AGI's Dial returned.
    states = [(f["agent"], f["after"]) for f in events if f["event"] == "state"]
    assert ("bob", "on_call") in states
    queues, _ = compute(await centre.router.events(time.time() - 60), now=time.time())
    sales = queues["sales"]
    assert (sales.offered, sales.answered, sales.abandoned) == (1, 1, 0)
    assert (sales.surveys, sales.csat, sales.csat_mean) == (1, 1.0, 5.0)
    app = build_api(
        centre.router, TokenBook.from_environ({"IVR_API_TOKENS": "v:viewer:v-token-0123456"})
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://engine"
    ) as http:
        stats = await http.get(
            "/api/queues/sales/stats", headers={"Authorization": "Bearer v-token-0123456"}
        )
    assert stats.status_code == 200, stats.text
    assert stats.json()["answered"] == 1 and stats.json()["csat"] == 1.0
    # What the caller chose reached the agent's channel (inherited by the agent leg).
    assert result.variables["__IVR_QUEUE"] == "sales"
    assert '"number":"5551234"' in result.variables["__IVR_CONTEXT"]
    handoff = next(f for f in events if f["event"] == "handoff" and f["agent"] == "bob")
    assert handoff["queue"] == "sales" and '"number":"5551234"' in handoff["context"]


async def test_caller_hangs_up_while_the_agent_rings(centre: Centre) -> None:
    await centre.call(
        callerid="5551234",
        actions=[Keys("1"), Hangup(on="EXEC Dial", after=1.0)],
        dial={"PJSIP/1001": DialOutcome("ANSWER", ring=5)},
    )
    await centre.settle()
    assert await centre.router.agent_state("ann") == "available"  # freed at once
    events = [f["event"] for _, f in await centre.router.events(time.time() - 60)]
    assert "abandoned" in events and "missed" not in events


async def test_phone_reachability_drives_availability(centre: Centre) -> None:
    centre.emulator.pbx.set_registered("PJSIP/1001", False)
    await centre.settle()
    ann = await centre.router.agent("ann")
    assert ann is not None and (ann["state"], ann["reason"]) == ("paused", UNREACHABLE)
    centre.emulator.pbx.set_registered("PJSIP/1001", True)
    await centre.settle()
    assert await centre.router.agent_state("ann") == "available"
    await centre.router.pause("bob", "lunch")  # the agent's own pause is not lifted
    centre.emulator.pbx.set_registered("PJSIP/1002", True)
    await centre.settle()
    assert await centre.router.agent_state("bob") == "paused"


async def test_ami_drop_mid_call_resyncs_within_five_seconds(centre: Centre) -> None:
    """The AMI goes away during a call; meanwhile ann's phone drops off. When the AMI
    returns, the resync pauses her; the call itself is not disturbed."""
    assert centre.emulator.ami is not None
    call = asyncio.ensure_future(
        centre.emulator.call(
            "centre",
            callerid="5551234",
            actions=[Keys("1"), Keys("4")],
            dial={"PJSIP/1001": DialOutcome("ANSWER", ring=0.2, talk=1.5)},
        )
    )
    await asyncio.sleep(0.3)
    await centre.emulator.ami.drop_connections()
    centre.emulator.pbx.endpoints["PJSIP/1002"].registered = False  # no event: AMI is down
    dropped = time.monotonic()
    while True:
        bob = await centre.router.agent("bob")
        if bob is not None and bob["state"] == "paused":
            break
        assert time.monotonic() - dropped < 5, "agent state stale for more than 5 s"
        await asyncio.sleep(0.05)
    assert bob["reason"] == UNREACHABLE
    result = await asyncio.wait_for(call, 30)
    assert centre.ami.reconnects >= 1
    assert result.dialled == ["PJSIP/1001"]
    assert centre.traces[0].nodes == ["menu", "sales", "survey", "bye"]


async def test_supervisor_barges_into_exactly_that_call(centre: Centre) -> None:
    centre.emulator.speed = 1.0  # the call lasts while the supervisor joins
    call = asyncio.ensure_future(
        centre.call(
            callerid="5551234",
            actions=[Press("1", on="STREAM FILE", after=0.1), Hangup(at=6)],
            dial={"PJSIP/1001": DialOutcome("ANSWER", ring=0.3, talk=10)},
        )
    )
    found = None
    for _ in range(100):
        found = await centre.supervisors.agent_channel("PJSIP/1001")
        if found:
            break
        await asyncio.sleep(0.05)
    assert found is not None
    app = build_api(centre.router, TOKENS, centre.supervisors)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://engine"
    ) as http:
        headers = {"Authorization": "Bearer lee-token-0123456"}
        reply = await http.post(
            "/api/supervise",
            json={"agent": "ann", "mode": "barge", "from": "PJSIP/2001"},
            headers=headers,
        )
        assert reply.status_code == 200, reply.text
        assert reply.json()["channel"] == found[0] and reply.json()["answered"] is True
        idle = await http.post(
            "/api/supervise",
            json={"agent": "bob", "mode": "listen", "from": "PJSIP/2001"},
            headers=headers,
        )
        assert idle.status_code == 409 and "not on a call" in idle.json()["error"]
        bad = await http.post(
            "/api/supervise",
            json={"agent": "ann", "mode": "listen", "from": "PJSIP/2001,,b(x)"},
            headers=headers,
        )
        assert bad.status_code == 422
    # The command line does the same through the engine's API over real HTTP.
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None, lifespan="off")
    )
    serving = asyncio.ensure_future(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    os.environ["IVR_API_TOKEN"] = "lee-token-0123456"
    try:
        argv = ["supervise", "whisper", "ann", "--from", "PJSIP/2001"]
        code = await asyncio.to_thread(main, [*argv, "--api", f"http://127.0.0.1:{port}"])
    finally:
        del os.environ["IVR_API_TOKEN"]
        server.should_exit = True
        await serving
    assert code == 0
    await asyncio.sleep(0.2)
    assert [s.options[-1] for s in centre.emulator.pbx.spies] == ["B", "w"]
    spy = centre.emulator.pbx.spies[0]
    assert spy.spied == found[0] and spy.target == found[1]
    assert set(spy.options) >= {"u", "q", "E", "B"}
    audit = [a for a in await centre.router.audit_log() if a["action"].startswith("supervise")]
    assert [(a["actor"], a["action"], a["agent"]) for a in audit] == [
        ("lee", "supervise.barge", "ann"),
        ("lee", "supervise.whisper", "ann"),
    ]
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call


async def test_callback_rings_the_agent_then_the_customer(centre: Centre) -> None:
    await centre.router.pause("ann", "lunch")
    await centre.router.pause("bob", "lunch")
    centre.emulator.pbx.add_endpoint("PJSIP/5551234@trunk", outcome="answer", talk=0.5)
    result = await centre.call(
        callerid="5551234", actions=[Keys("2"), Press("5", on="WAIT FOR DIGIT", nth=2)]
    )
    assert centre.traces[0].events[-1]["event"] == "callback_requested"
    assert result.commands[-1] == "HANGUP"
    worker = CallbackWorker(
        centre.router, centre.ami, allow=("555*",), ring_timeout=5, customer_timeout=5
    )
    await centre.router.resume("bob")
    assignment = await asyncio.wait_for(centre.router.next_callback(), 5)
    assert (assignment.agent_id, assignment.callback) == ("bob", "5551234")
    outcome = await asyncio.wait_for(worker.place(assignment), 20)
    assert outcome == "completed"
    assert await centre.router.agent_state("bob") == "available"
    # The agent's leg got what a live call's agent gets: the flow, the queue and what
    # the caller chose, JSON intact through AMI's Variable header (commas, quotes).
    ((_, variables),) = centre.emulator.pbx.originated
    assert (variables["__IVR_FLOW"], variables["__IVR_QUEUE"]) == ("centre", "sales")
    context = json.loads(variables["__IVR_CONTEXT"])
    assert context["caller"] == {"number": "5551234", "name": "unknown"}
    kinds = [f["event"] for _, f in await centre.router.events(time.time() - 60)]
    assert "callback_requested" in kinds and "completed" in kinds
    assert "abandoned" not in kinds


async def test_a_callback_the_customer_does_not_answer_is_unanswered(centre: Centre) -> None:
    """The agent answers, the customer's line is busy: the ticket ends unanswered (its
    own outcome), never connected, so it never counts as answered; the agent is free.
    The agent's phone shows the customer's number, the customer the centre's."""
    await centre.router.pause("ann", "lunch")
    await centre.router.pause("bob", "lunch")
    centre.emulator.pbx.add_endpoint("PJSIP/5551234@trunk", outcome="busy")
    await centre.call(
        callerid="5551234", actions=[Keys("2"), Press("5", on="WAIT FOR DIGIT", nth=2)]
    )
    worker = CallbackWorker(
        centre.router, centre.ami, allow=("555*",), ring_timeout=5, customer_timeout=5,
        caller_id="+8225550100",
    )  # fmt: skip
    assert centre.emulator.ami is not None
    async with centre.ami.events("DialBegin") as begins:
        await centre.router.resume("bob")
        assignment = await asyncio.wait_for(centre.router.next_callback(), 5)
        outcome = await asyncio.wait_for(worker.place(assignment), 20)
        await centre.ami.ping()
        dials = [e for e in begins.pending() if isinstance(e, DialBegin)]
    assert outcome == "customer_unanswered"
    assert await centre.router.agent_state("bob") == "available"
    events = [f for _, f in await centre.router.events(time.time() - 60)]
    kinds = [f["event"] for f in events]
    assert "unanswered" in kinds and "connected" not in kinds and "abandoned" not in kinds
    queues, _ = compute(await centre.router.events(time.time() - 60), now=time.time())
    assert queues["sales"].answered == 0
    (customer,) = [d for d in dials if d.dest.channel.startswith("PJSIP/5551234@trunk")]
    assert customer.dest.connected_line_num == "+8225550100"  # the centre, not themselves
    assert customer.caller is not None and customer.caller.caller_id_num == "5551234"


async def test_callback_to_a_number_off_the_allow_list_is_refused(centre: Centre) -> None:
    worker = CallbackWorker(centre.router, centre.ami, allow=("+8210*", "10??"))
    assert worker.dial_string("5551234") is None
    assert worker.dial_string("+821012345678") == "PJSIP/+821012345678@trunk"
    assert worker.dial_string("1002") == "PJSIP/1002"  # an allowed internal extension
    assert worker.dial_string("2002") is None  # caller IDs can be spoofed: list them
    assert worker.dial_string("555;1234") is None


async def test_a_lost_hang_up_does_not_leave_the_agent_on_a_call(centre: Centre) -> None:
    """The AMI drops while the agent talks to the called-back customer, so the Hangup
    event is never heard: the worker finds the channel gone and ends the call."""
    assert centre.emulator.ami is not None
    await centre.router.pause("ann", "lunch")
    await centre.router.pause("bob", "lunch")
    centre.emulator.pbx.add_endpoint("PJSIP/5551234@trunk", outcome="answer", talk=1.5)
    await centre.call(
        callerid="5551234", actions=[Keys("2"), Press("5", on="WAIT FOR DIGIT", nth=2)]
    )
    worker = CallbackWorker(centre.router, centre.ami, allow=("555*",), customer_timeout=5)
    worker.check_every = 0.5
    looking = asyncio.ensure_future(centre.router.next_callback())
    await centre.router.resume("bob")
    assignment = await asyncio.wait_for(looking, 5)
    centre.emulator.ami.speed = 1.0  # real time: the customer talks 1.5 s
    placing = asyncio.ensure_future(worker.place(assignment))
    for _ in range(200):
        if await centre.router.agent_state("bob") == "on_call":
            break
        await asyncio.sleep(0.02)
    await asyncio.sleep(1.2)
    await centre.emulator.ami.drop_connections()  # the Hangup happens while AMI is away
    assert await asyncio.wait_for(placing, 10) == "completed"
    assert await centre.router.agent_state("bob") in ("wrap_up", "available")


async def test_a_refused_originate_blames_no_agent(centre: Centre) -> None:
    """Asterisk refuses Originate (the AMI user lacks 'originate'): no agent is marked
    missed, the callback stays at the head of the queue."""
    from ivr.emulator.ami import AmiUser

    assert centre.emulator.ami is not None
    centre.emulator.ami.users["weak"] = AmiUser(
        "weak-secret", write=frozenset({"call", "reporting"})
    )
    weak = AmiClient(
        AmiConfig(
            port=centre.emulator.ami.port, username="weak", secret="weak-secret", ping_interval=0
        )
    )
    await weak.connect()
    await centre.router.pause("ann", "lunch")
    await centre.router.pause("bob", "lunch")
    await centre.call(
        callerid="5551234", actions=[Keys("2"), Press("5", on="WAIT FOR DIGIT", nth=2)]
    )
    worker = CallbackWorker(centre.router, weak, allow=("555*",))
    worker.retry_after = 0.1
    running = asyncio.ensure_future(worker.run())
    try:
        await centre.router.resume("ann")
        await centre.router.resume("bob")
        await asyncio.sleep(1.5)
    finally:
        running.cancel()
        await worker.close()
        await weak.close()
    events = [f for _, f in await centre.router.events(time.time() - 60)]
    # The call went back to its place each time, never with the agent at fault.
    assert not [f for f in events if f["event"] == "missed" and f.get("fault") != "0"]
    for agent in ("ann", "bob"):
        state = await centre.router.agent(agent)
        assert state is not None and state["missed"] == "0"


async def test_presence_follows_agents_added_at_run_time(centre: Centre) -> None:
    """An agent created through the API after AMI connected: their phone still counts."""
    await centre.router.add_agents([Agent("cat", "PJSIP/1003", {"sales": 5})])
    await centre.router.login("cat")
    centre.emulator.pbx.add_endpoint("PJSIP/1003")
    centre.emulator.pbx.set_registered("PJSIP/1003", False)
    for _ in range(50):  # presence looks the agents up again within a few seconds
        await centre.settle()
        cat = await centre.router.agent("cat")
        if cat is not None and cat["state"] == "paused":
            break
        await asyncio.sleep(0.1)
    assert cat is not None and (cat["state"], cat["reason"]) == ("paused", UNREACHABLE)
