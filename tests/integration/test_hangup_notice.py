"""A HANGUP notice is not a reply (PROTOCOL.md §8.1), over TCP through the emulator.

Real Asterisk 22.9 writes the notice about 40 ms after the reply of the command
the hang-up ended, in a write of its own (with the engine's next command when
that comes first), and then still answers that command. These tests hold the
emulator to that (and to two other orders, the notice only with the next
command or at once), and the engine to using the reply: an agent whose caller
hangs up first is never left on_call, and nothing a dead channel refuses is
sent after a -1.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ivr.agi.channel import Channel
from ivr.agi.server import FastAgiServer
from ivr.ami import AmiClient, AmiConfig
from ivr.centre.tracker import AnswerTracker
from ivr.errors import ChannelHangup
from ivr.flows.interpreter import Engine, Trace
from ivr.flows.ports import SpeechPrompts
from ivr.testing import AsteriskEmulator, DialOutcome, Hangup, Keys, SessionResult
from routing.config import QueueConfig
from routing.kpis import compute
from routing.memory import Agent
from routing.redis import RedisRouter
from tests.integration.helpers.engine_rig import flows_in, serving

DEAD = b"511 Command Not Permitted on a dead channel or intercept routine\n"


def refused(result: SessionResult) -> list[str]:
    """Commands the emulated Asterisk answered with 511 (sent to a dead channel)."""
    return [e.sent.decode().rstrip("\n") for e in result.exchanges if e.received.endswith(DEAD)]


class TestTheWire:
    """What the emulated Asterisk sends, byte for byte and write for write."""

    async def test_notice_comes_about_40_ms_after_the_reply_unasked(self) -> None:
        """As a 22.9.0 build did: ``200 result=-1``, then HANGUP 40 ms later with no command
        sent; a command sent after it is answered in dead mode (511 for STREAM FILE)."""
        seen: dict[str, Any] = {}
        done = asyncio.Event()

        async def engine(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            while (await reader.readline()) != b"\n":
                pass
            writer.write(b'STREAM FILE demo-congrats ""\n')
            seen["stream"] = await reader.readline()
            replied = time.monotonic()
            seen["notice"] = await asyncio.wait_for(reader.readline(), 2)
            seen["gap"] = time.monotonic() - replied
            writer.write(b'STREAM FILE beep ""\n')
            seen["next"] = await reader.readline()
            writer.close()
            done.set()

        server = await asyncio.start_server(engine, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            emulator = AsteriskEmulator(port=port)  # the default: timed, as Asterisk
            await asyncio.wait_for(
                emulator.call("t", actions=[Hangup(on="STREAM FILE", after=1.0)]), 20
            )
            await asyncio.wait_for(done.wait(), 5)
        finally:
            server.close()
        assert seen["stream"] == b"200 result=-1 endpos=8000\n"
        assert seen["notice"] == b"HANGUP\n"
        assert 0.03 <= seen["gap"] < 1.0
        assert seen["next"] == DEAD

    async def test_notice_comes_with_the_next_command_then_its_reply(self) -> None:
        """EXEC Dial's -1 comes alone; the notice comes when GET VARIABLE is read, in its
        own write, and GET VARIABLE is still answered (ANSWER); STREAM FILE gets 511."""
        seen: dict[str, Any] = {}
        done = asyncio.Event()

        async def engine(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            while (await reader.readline()) != b"\n":
                pass
            writer.write(b'EXEC Dial "PJSIP/1001,20,g"\n')
            seen["dial"] = await reader.readline()
            try:
                seen["early"] = await asyncio.wait_for(reader.readline(), 0.3)
            except TimeoutError:
                seen["early"] = b""
            writer.write(b"GET VARIABLE DIALSTATUS\n")
            seen["notice"] = await reader.readline()
            noticed = time.monotonic()
            seen["reply"] = await reader.readline()
            seen["gap"] = time.monotonic() - noticed
            writer.write(b'STREAM FILE beep ""\n')
            seen["stream"] = await reader.readline()
            writer.close()
            done.set()

        server = await asyncio.start_server(engine, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            emulator = AsteriskEmulator(port=port, hangup_notice="next_command")
            await asyncio.wait_for(
                emulator.call(
                    "t",
                    actions=[Hangup(on="EXEC Dial", after=10.0)],
                    dial={"PJSIP/1001": DialOutcome("ANSWER", ring=1, talk=60)},
                ),
                20,
            )
            await asyncio.wait_for(done.wait(), 5)
        finally:
            server.close()
        assert seen["dial"] == b"200 result=-1\n"
        assert seen["early"] == b""  # no notice until Asterisk reads the next command
        assert seen["notice"] == b"HANGUP\n"
        assert seen["reply"] == b"200 result=1 (ANSWER)\n"
        assert seen["gap"] >= 0.03  # a write of its own, some 40 ms later (§8.1)
        assert seen["stream"] == b"HANGUP\n" or seen["stream"] == DEAD

    async def test_buffer_size_is_a_parameter(self) -> None:
        """A 3,000-byte NOOP is one command with AGI_BUF_LEN 8192 (22.6+), two with 2048."""
        replies: dict[int, list[bytes]] = {}

        async def session(size: int) -> None:
            async def engine(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
                while (await reader.readline()) != b"\n":
                    pass
                # 'failure' ends the session once the NOOPs ran, however many they were.
                writer.write(b"NOOP " + b"x" * 3000 + b"\nNOOP end\nfailure\n")
                await reader.read()  # until the emulator closes the session
                writer.close()

            server = await asyncio.start_server(engine, "127.0.0.1", 0)
            port = server.sockets[0].getsockname()[1]
            try:
                emulator = AsteriskEmulator(port=port, agi_buffer=size)
                result = await asyncio.wait_for(emulator.call("t"), 10)
            finally:
                server.close()
            replies[size] = [e.received for e in result.exchanges]

        await session(8192)
        await session(2048)
        assert replies[8192] == [b"200 result=0\n"] * 2  # the long NOOP and 'NOOP end'
        # the long one ran as two: a NOOP, then its remainder, an unknown command
        assert replies[2048] == [b"200 result=0\n", b"510 Invalid or unknown command\n",
                                 b"200 result=0\n"]  # fmt: skip

    async def test_closing_the_socket_ends_a_running_prompt(self) -> None:
        """An engine that goes away ends STREAM FILE at once (§8.6), not after the file."""

        async def engine(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            while (await reader.readline()) != b"\n":
                pass
            writer.write(b'STREAM FILE demo-congrats ""\n')
            await writer.drain()
            await asyncio.sleep(0.2)  # the engine dies mid-prompt
            writer.close()

        server = await asyncio.start_server(engine, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            emulator = AsteriskEmulator(port=port, speed=1.0)  # real time: the file is 3 s+
            started = time.monotonic()
            result = await asyncio.wait_for(emulator.call("t"), 10)
            took = time.monotonic() - started
        finally:
            server.close()
        assert result.closed_mid_command is not None
        assert result.closed_mid_command.startswith("STREAM FILE")
        assert result.agistatus == "SUCCESS"
        assert took < 1.0


class TestTheChannel:
    async def test_the_reply_after_a_notice_is_used(self, agi_server: FastAgiServer) -> None:
        """DIALSTATUS after a caller's hang-up mid-talk is ANSWER; a prompt after it is
        never sent (no 511)."""
        outcome: dict[str, Any] = {}

        async def handler(channel: Channel) -> None:
            outcome["dial"] = await channel.exec("Dial", "PJSIP/1001", "20", "g")
            outcome["hung_up"] = channel.hung_up
            outcome["status"] = await channel.get_variable("DIALSTATUS")
            try:
                await channel.stream_file("beep")
            except ChannelHangup:
                outcome["stream"] = "hangup"

        agi_server.route("t", handler)
        emulator = AsteriskEmulator(port=agi_server.port)
        result = await asyncio.wait_for(
            emulator.call(
                "t",
                actions=[Hangup(on="EXEC Dial", after=10.0)],
                dial={"PJSIP/1001": DialOutcome("ANSWER", ring=1, talk=60)},
            ),
            20,
        )
        assert outcome == {"dial": -1, "hung_up": True, "status": "ANSWER", "stream": "hangup"}
        assert refused(result) == []
        assert not any(c.startswith("STREAM FILE") for c in result.commands)

    async def test_a_failed_exec_on_a_live_channel_is_not_a_hangup(
        self, agi_server: FastAgiServer
    ) -> None:
        """-1 from EXEC on a live channel (Hangup of another, a failing app) keeps the call."""
        outcome: dict[str, Any] = {}

        async def handler(channel: Channel) -> None:
            outcome["dial"] = await channel.exec("Dial", "PJSIP/1001", "20")  # no 'g'
            outcome["hung_up"] = channel.hung_up
            await channel.stream_file("beep")
            outcome["played"] = True

        agi_server.route("t", handler)
        emulator = AsteriskEmulator(port=agi_server.port)
        result = await asyncio.wait_for(
            emulator.call("t", dial={"PJSIP/1001": DialOutcome("ANSWER", ring=1, talk=3)}), 20
        )
        # app_dial returns -1 after a bridged call without 'g': the caller is still there.
        assert outcome == {"dial": -1, "hung_up": False, "played": True}
        assert refused(result) == []


FLOW = """
id: centre
nodes:
  menu:
    type: menu
    prompt: For sales, press 1. For a message, press 2.
    options:
      - {digit: 1, goto: sales}
      - {digit: 2, goto: message}
    on_failure: bye
  sales: {type: queue, queue: sales, next: survey, on_failure: bye}
  message: {type: voicemail, mailbox: "100@default"}
  survey:
    type: survey
    questions:
      - {id: csat, prompt: "Press 1 to 5, 5 is best."}
    next: bye
  bye: {type: hangup, say: Goodbye.}
"""


@dataclass
class Centre:
    emulator: AsteriskEmulator
    router: RedisRouter
    traces: list[Trace]
    ami: AmiClient | None

    async def call(self, **kwargs: Any) -> SessionResult:
        result = await asyncio.wait_for(self.emulator.call("centre", **kwargs), 60)
        if self.ami is not None:
            await self.ami.ping()  # every AMI event sent before the Pong has been heard
        return result

    async def events(self) -> list[dict[str, str]]:
        return [f for _, f in await self.router.events(time.time() - 60)]


@pytest.fixture(
    params=[
        ("with AMI", "timed"),
        ("without AMI", "timed"),
        ("with AMI", "next_command"),
        ("without AMI", "next_command"),
        ("without AMI", "after_reply"),
    ],
    ids=lambda p: f"{p[0]}, notice {p[1]}",
)
async def centre(
    request: pytest.FixtureRequest, redis_url: str, tmp_path: Path
) -> AsyncIterator[Centre]:
    registry = flows_in(tmp_path / "flows", {"centre": FLOW})
    router = RedisRouter.connect(redis_url)
    await router.redis.flushall()
    await router.start()
    await router.add_agents([Agent("ann", "PJSIP/1001", {"sales": 5})])
    await router.login("ann")
    with_ami = request.param[0] == "with AMI"
    tracker = AnswerTracker() if with_ami else None
    engine = Engine(
        flows=registry.get,
        prompts=SpeechPrompts(tmp_path / "prompts"),
        router=router,
        queues={"sales": QueueConfig.model_validate({"ring_timeout": 15})},
        answers=tracker,
    )
    server, traces = await serving(registry, engine)
    emulator = AsteriskEmulator(
        port=server.port, sound_dirs=[tmp_path / "prompts"], hangup_notice=request.param[1]
    )
    ami: AmiClient | None = None
    if with_ami:
        ami_server = await emulator.start_ami()
        emulator.pbx.add_endpoint("PJSIP/1001")
        ami = AmiClient(
            AmiConfig(port=ami_server.port, username="ivr", secret="ivr-secret", ping_interval=0)
        )
        assert tracker is not None
        tracker.attach(ami)
        await ami.connect()
    try:
        yield Centre(emulator, router, traces, ami)
    finally:
        if ami is not None:
            await ami.close()
        await server.drain(1)
        await emulator.close()
        await router.close()


class TestQueueCalls:
    async def test_caller_hangs_up_first_the_agent_is_not_left_on_call(
        self, centre: Centre
    ) -> None:
        """Answered, then the caller hangs up mid-talk: connected and completed are
        recorded, the agent is free, the call counts as answered (never abandoned)."""
        result = await centre.call(
            callerid="5551234",
            actions=[Keys("1"), Hangup(on="EXEC Dial", after=20.0)],
            dial={"PJSIP/1001": DialOutcome("ANSWER", ring=2, talk=600)},
        )
        assert result.hung_up
        assert refused(result) == []
        assert await centre.router.agent_state("ann") == "available"
        kinds = [f["event"] for f in await centre.events() if f["event"] != "state"]
        assert kinds[-3:] == ["connected", "completed", "ivr_ended"]
        assert kinds.count("connected") == kinds.count("completed") == 1
        assert "abandoned" not in kinds
        trace = centre.traces[0]
        dialled = next(e for e in trace.events if e["event"] == "dialled")
        assert dialled["status"] == "ANSWER"
        assert trace.ended == "caller_hangup"
        queues, _ = compute(await centre.router.events(time.time() - 60), now=time.time())
        sales = queues["sales"]
        assert (sales.offered, sales.answered, sales.abandoned) == (1, 1, 0)

    async def test_agent_hangs_up_first_the_survey_follows(self, centre: Centre) -> None:
        """The ordinary end: the agent hangs up, the caller answers the survey."""
        await centre.call(
            callerid="5551234",
            actions=[Keys("1"), Keys("4")],
            dial={"PJSIP/1001": DialOutcome("ANSWER", ring=2, talk=30)},
        )
        assert await centre.router.agent_state("ann") == "available"
        assert centre.traces[0].variables["survey_csat"] == 4

    async def test_caller_hangs_up_while_it_rings(self, centre: Centre) -> None:
        """Hung up before the answer: abandoned, the agent freed, nothing sent dead."""
        result = await centre.call(
            callerid="5551234",
            actions=[Keys("1"), Hangup(on="EXEC Dial", after=1.0)],
            dial={"PJSIP/1001": DialOutcome("ANSWER", ring=5)},
        )
        assert refused(result) == []
        assert await centre.router.agent_state("ann") == "available"
        kinds = [f["event"] for f in await centre.events()]
        assert "abandoned" in kinds and "completed" not in kinds

    async def test_caller_hangs_up_on_hold(self, centre: Centre) -> None:
        """Nobody free, the caller gives up: abandoned, nothing sent dead."""
        await centre.router.pause("ann", "lunch")
        result = await centre.call(
            callerid="5551234", actions=[Keys("1"), Hangup(on="SET MUSIC", after=5.0)]
        )
        assert refused(result) == []
        kinds = [f["event"] for f in await centre.events()]
        assert "abandoned" in kinds

    async def test_hang_up_in_voicemail_sends_nothing_dead(self, centre: Centre) -> None:
        """VoiceMail returns -1 when the caller hangs up: the engine learns it from the
        notice and sends no HANGUP (nor anything else) that would get 511."""
        result = await centre.call(
            callerid="5551234", actions=[Keys("2"), Hangup(on="EXEC VoiceMail", after=8.0)]
        )
        assert refused(result) == []
        assert result.commands[-1] == "NOOP probe"
        assert centre.traces[0].ended == "voicemail"  # a message ended by hanging up
