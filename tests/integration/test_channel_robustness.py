"""Hard cases found in review: the reply stream never slips out of step."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from ivr.agi.channel import Channel
from ivr.agi.protocol import EnvironmentParser
from ivr.agi.server import FastAgiServer
from ivr.errors import AgiError, ChannelHangup, CommandTimeout
from ivr.testing import AsteriskEmulator


class ScriptedTransport:
    """Bytes Asterisk would send, read by the channel one chunk per read."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks
        self.sent: list[bytes] = []

    async def read(self) -> bytes:
        return self.chunks.pop(0) if self.chunks else b""

    async def write(self, data: bytes) -> None:
        self.sent.append(data)


def bare_channel(chunks: list[bytes]) -> Channel:
    env = EnvironmentParser().feed(b"agi_network: yes\nagi_uniqueid: 1\n\n")
    assert env is not None
    return Channel(env, ScriptedTransport(chunks), command_timeout=1)


async def run_handler(handler: Any, **emulator: Any) -> FastAgiServer:
    server = FastAgiServer(default=handler, port=0, hangup_grace=0.2)
    await server.start()
    try:
        await asyncio.wait_for(AsteriskEmulator(port=server.port, **emulator).call("x"), 10)
        await asyncio.sleep(0.5)
    finally:
        await server.drain(1)
    return server


async def test_cancelled_command_breaks_the_channel() -> None:
    """A command cancelled mid-way leaves its reply owed: later commands refuse to guess."""
    seen: list[BaseException] = []

    async def handler(ch: Channel) -> None:
        await ch.set_variable("GREETING", "hello")
        try:
            async with asyncio.timeout(0.2):
                await ch.wait_for_digit(1000)
        except TimeoutError:
            pass
        try:
            await ch.get_variable("GREETING")
        except AgiError as exc:
            seen.append(exc)
            raise

    server = await run_handler(handler, speed=1.0)
    assert "cancelled while Asterisk ran it" in str(seen[0])
    assert server.stats.errors == 1  # and the caller was handed to the fallback


async def test_exec_returning_one_keeps_the_stream_in_step() -> None:
    """EXEC of an application returning 1 brings a usage block; it belongs to that EXEC."""
    got: dict[str, Any] = {}

    async def returns_one(session: Any, data: str) -> int:
        return 1

    async def handler(ch: Channel) -> None:
        got["exec"] = await ch.exec("ReturnsOne", "x")
        got["var"] = await ch.get_variable("CHANNEL")

    await run_handler(handler, applications={"ReturnsOne": returns_one})
    assert got["exec"] == 1 and got["var"].startswith("PJSIP/")


async def test_engine_hangup_does_not_cut_cleanup() -> None:
    """After the engine hangs up itself, the handler's cleanup is not cancelled."""
    done: list[str] = []

    async def handler(ch: Channel) -> None:
        try:
            await ch.hangup()
        finally:
            await asyncio.sleep(0.4)
            done.append("cleanup finished")

    await run_handler(handler)
    assert done == ["cleanup finished"]


async def test_deadline_reaches_the_task_that_waits() -> None:
    """A command run in a child task still gets CommandTimeout, not a bare cancel."""
    seen: list[BaseException] = []

    async def handler(ch: Channel) -> None:
        try:
            await asyncio.wait_for(ch.exec("Wait", "3", timeout=0.3), 30)
        except CommandTimeout as exc:
            seen.append(exc)

    await run_handler(handler, speed=1.0)
    assert len(seen) == 1


async def test_after_eof_every_command_is_a_hangup() -> None:
    """Once the socket is closed, cleanup commands raise ChannelHangup too, not AgiError."""
    channel = bare_channel([])
    with pytest.raises(ChannelHangup):
        await channel.noop("x")
    with pytest.raises(ChannelHangup):
        await channel.set_variable("X", "1")


async def test_forged_second_reply_is_detected() -> None:
    """A value holding a line break cannot answer the next command in its place."""
    channel = bare_channel([b"200 result=1 (Bob\n200 result=1 (forged)\n", b"200 result=1 (x)\n"])
    with pytest.raises(AgiError, match="two replies"):
        await channel.get_variable("CALLERID(name)")
    with pytest.raises(AgiError, match="unusable"):
        await channel.get_variable("ACCOUNT")


async def test_emulator_runs_an_overlong_line_as_two_commands() -> None:
    """Like Asterisk before 22.6 (AGI_BUF_LEN 2048), the emulator cuts a line at 2047 bytes."""
    out: dict[str, bytes] = {}

    async def handler(ch: Channel) -> None:
        out["reply"] = await ch.send_raw(b"NOOP " + b"a" * 3000 + b"\n")

    server = FastAgiServer(default=handler, port=0)
    await server.start()
    try:
        emulator = AsteriskEmulator(port=server.port, agi_buffer=2048)
        result = await asyncio.wait_for(emulator.call("x"), 10)
    finally:
        await server.drain(1)
    assert len(result.exchanges) == 2
    assert result.exchanges[1].sent == b"a" * 958 + b"\n"
