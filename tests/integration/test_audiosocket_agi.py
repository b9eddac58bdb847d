"""What ``EXEC AudioSocket`` returns, as app_audiosocket.c does, in every ending.

Through FastAGI (our server, the emulator) where the AGI reply matters, and
against hand-written AudioSocket peers for the frames an engine should
never send.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from ivr.agi.channel import Channel
from ivr.agi.server import FastAgiServer
from ivr.audiosocket.protocol import Kind, encode_frame
from ivr.audiosocket.server import (
    Audio,
    AudioSocketServer,
    AudioSocketTimeout,
    Dtmf,
    EndReason,
)
from ivr.emulator.audiosocket import AudioSocketApp, AudioSocketRecord, run_audiosocket
from ivr.emulator.caller import Hangup, Keys, Timeline
from ivr.testing import AsteriskEmulator, SessionResult

Handler = Callable[[Channel], Awaitable[None]]


@pytest.fixture
async def audiosocket() -> AsyncIterator[AudioSocketServer]:
    async with AudioSocketServer(port=0, connect_timeout=3.0) as server:
        yield server


async def run_call(
    handler: Handler, app: AudioSocketApp, **call: object
) -> tuple[list[str], list[str], SessionResult]:
    """One emulated call into ``handler``; returns the commands, the replies and the result."""
    server = FastAgiServer(default=handler, port=0, command_timeout=10.0)
    await server.start()
    emulator = AsteriskEmulator(port=server.port, applications={"AudioSocket": app})
    try:
        result = await asyncio.wait_for(emulator.call("speech", **call), 20)  # type: ignore[arg-type]
    finally:
        await server.drain(1)
    replies = [e.received.decode() for e in result.exchanges]
    return result.commands, replies, result


class TestThroughAgi:
    async def test_engine_hangup_frame_returns_zero_and_the_flow_goes_on(
        self, audiosocket: AudioSocketServer
    ) -> None:
        """ANSWER, EXEC AudioSocket, a key, our hang-up frame: 200 result=0, then NOOP works."""
        heard: list[object] = []

        async def handler(channel: Channel) -> None:
            await channel.answer()
            call_id = uuid.uuid4()
            session = audiosocket.expect(call_id)
            running = asyncio.ensure_future(
                channel.exec("AudioSocket", str(call_id), audiosocket.address)
            )
            await session.wait_connected()
            async for event in session:
                if isinstance(event, Dtmf):
                    heard.append(event)
                    break
            await session.hangup()
            heard.append(await running)
            await channel.noop("done")

        app = AudioSocketApp()
        commands, replies, _ = await run_call(handler, app, actions=[Keys("4", after=0.2)])
        assert commands[1].startswith("EXEC AudioSocket ")
        assert replies == ["200 result=0\n", "200 result=0\n", "200 result=0\n"]
        assert heard == [Dtmf("4"), 0]
        assert app.records[0].ending == "server-hangup"

    async def test_unanswered_channel_returns_minus_one_without_a_uuid(
        self, audiosocket: AudioSocketServer
    ) -> None:
        """No ANSWER first: the app connects, closes without a byte, returns -1."""
        outcome: list[object] = []

        async def handler(channel: Channel) -> None:
            call_id = uuid.uuid4()
            session = audiosocket.expect(call_id, timeout=0.5)
            outcome.append(await channel.exec("AudioSocket", str(call_id), audiosocket.address))
            with pytest.raises(AudioSocketTimeout):
                await session.wait_connected()
            outcome.append(session.end_reason)

        app = AudioSocketApp()
        _, replies, _ = await run_call(handler, app)
        assert replies[0] == "200 result=-1\n"  # (the channel then asks whether the caller left)
        assert outcome == [-1, EndReason.TIMEOUT]
        assert (app.records[0].ending, app.records[0].sent) == ("not-answered", [])

    async def test_caller_hangup_returns_minus_one_then_the_hangup_notice(
        self, audiosocket: AudioSocketServer
    ) -> None:
        """The caller hangs up mid-session: 200 result=-1, HANGUP; the session just closes."""
        seen: list[object] = []

        async def handler(channel: Channel) -> None:
            await channel.answer()
            call_id = uuid.uuid4()
            session = audiosocket.expect(call_id)
            raw = asyncio.ensure_future(
                channel.send_raw(f"EXEC AudioSocket {call_id},{audiosocket.address}\n".encode())
            )
            await session.wait_connected()
            frames = 0
            async for event in session:
                frames += isinstance(event, Audio)
            seen.extend([frames, session.end_reason, await raw])

        app = AudioSocketApp()
        # A phone that sends frames in silence too (silence suppression off).
        timeline = Timeline([Hangup(on="EXEC AudioSocket", after=0.3)], dtx=False)
        _, _, result = await run_call(handler, app, timeline=timeline)
        frames, reason, reply = seen
        assert 14 <= frames <= 16  # type: ignore[operator]
        assert reason is EndReason.CALLER
        assert reply == b"200 result=-1\n"
        assert app.records[0].ending == "caller-hangup"
        assert (result.hung_up, result.agistatus) == (True, "HANGUP")

    async def test_two_silent_seconds_return_minus_one_and_the_call_goes_on(self) -> None:
        """A caller who sends nothing (silence suppression) and an engine that stops
        sending: after 2 s app_audiosocket returns -1 on a live channel; no HANGUP notice,
        and the next command is answered as usual."""
        seen: list[object] = []
        async with AudioSocketServer(port=0, keepalive=False) as quiet:

            async def handler(channel: Channel) -> None:
                await channel.answer()
                call_id = uuid.uuid4()
                session = quiet.expect(call_id)
                loop = asyncio.get_running_loop()
                started = loop.time()
                seen.append(await channel.exec("AudioSocket", str(call_id), quiet.address))
                seen.extend([loop.time() - started, session.end_reason])
                await channel.noop("still here")

            app = AudioSocketApp()
            commands, replies, result = await run_call(handler, app)
        result_code, took, reason = seen
        assert result_code == -1 and reason is EndReason.CALLER
        assert 1.95 < took < 2.5  # type: ignore[operator]
        at = next(i for i, c in enumerate(commands) if c.startswith("EXEC AudioSocket"))
        assert commands[at + 1].startswith("NOOP")
        assert replies[at : at + 2] == ["200 result=-1\n", "200 result=0\n"]
        assert app.records[0].ending == "timeout"
        assert (result.hung_up, result.agistatus) == (False, "SUCCESS")


@contextlib.asynccontextmanager
async def peer(answer: bytes, *, close: bool = True) -> AsyncIterator[tuple[str, list[bytes]]]:
    """An AudioSocket server that reads the UUID, sends ``answer`` and (maybe) closes."""
    got: list[bytes] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            got.append(await reader.readexactly(19))
            writer.write(answer)
            await writer.drain()
            if not close:
                await reader.read()  # until the app closes
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"127.0.0.1:{port}", got
    finally:
        server.close()
        await server.wait_closed()


CALL = "40325ec2-5efd-4bd3-805f-53576e581d13"


class TestEndings:
    @pytest.mark.parametrize(
        ("answer", "close", "result", "ending"),
        [
            (encode_frame(Kind.HANGUP), False, 0, "server-hangup"),
            (
                encode_frame(Kind.AUDIO, bytes(320)) + encode_frame(Kind.HANGUP),
                False,
                0,
                "server-hangup",
            ),
            (b"", True, 0, "server-closed"),
            (b"\x10", True, 0, "server-closed"),  # EOF inside a header: still graceful
            (b"\x10\x01\x40" + bytes(100), True, -1, "bad-frame"),  # EOF inside a payload
            (encode_frame(Kind.ERROR, b"\x01"), False, -1, "bad-frame"),
            (encode_frame(Kind.DTMF, b"1"), False, -1, "bad-frame"),
            (encode_frame(Kind.UUID, bytes(16)), False, -1, "bad-frame"),
            (encode_frame(Kind.AUDIO), False, -1, "bad-frame"),  # "Invalid message length"
            (b"\x42\x00\x00", False, -1, "bad-frame"),
        ],
    )
    async def test_what_the_engine_sends_decides_the_result(
        self, answer: bytes, close: bool, result: int, ending: str
    ) -> None:
        """Hang-up frame or a close between frames: 0; anything but audio or a bad close: -1."""
        async with peer(answer, close=close) as (address, got):
            record = AudioSocketRecord("")
            outcome = await asyncio.wait_for(
                run_audiosocket(Timeline([], speed=1.0), f"{CALL},{address}", record), 3
            )
        assert (outcome, record.ending) == (result, ending)
        assert got[0] == encode_frame(Kind.UUID, uuid.UUID(CALL).bytes)

    @pytest.mark.parametrize(
        ("data", "ending"),
        [
            ("", "bad-uuid"),
            ("not-a-uuid,127.0.0.1:9", "bad-uuid"),
            ("40325ec25efd4bd3805f53576e581d13,127.0.0.1:9", "bad-uuid"),  # uuid_parse wants 36
            (f"{CALL}", "connect-failed"),
            (f"{CALL},127.0.0.1", "connect-failed"),  # PARSE_PORT_REQUIRE
            (f"{CALL},127.0.0.1:1", "connect-failed"),  # refused
        ],
    )
    async def test_arguments_and_unreachable_servers_return_minus_one(
        self, data: str, ending: str
    ) -> None:
        """A missing or malformed UUID, no port, or a refused connection: -1."""
        record = AudioSocketRecord(data)
        assert await run_audiosocket(Timeline([]), data, record) == -1
        assert (record.ending, record.sent) == (ending, [])

    async def test_ipv6_address_in_brackets(self) -> None:
        """[::1]:port is accepted (when the host has IPv6 loopback)."""
        try:
            server = await asyncio.start_server(lambda r, w: w.close(), "::1", 0)
        except OSError:
            pytest.skip("no IPv6 loopback here")
        port = server.sockets[0].getsockname()[1]
        record = AudioSocketRecord("")
        try:
            result = await run_audiosocket(Timeline([], speed=1.0), f"{CALL},[::1]:{port}", record)
        finally:
            server.close()
            await server.wait_closed()
        assert (result, record.ending) == (0, "server-closed")
