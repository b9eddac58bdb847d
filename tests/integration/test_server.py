"""The FastAGI server under bad peers, overload, crashes and shutdown."""

from __future__ import annotations

import asyncio
import time

import pytest

from ivr.agi.channel import Channel
from ivr.agi.server import FastAgiServer
from ivr.errors import CommandTimeout
from ivr.testing import AsteriskEmulator, Hangup, Press

ENV = b"agi_network: yes\nagi_network_script: hello\nagi_uniqueid: 1.1\n\n"


async def hello(channel: Channel) -> None:
    await channel.answer()
    await channel.stream_file("beep")
    await channel.hangup()


async def read_until_closed(reader: asyncio.StreamReader, timeout: float = 3.0) -> bytes:
    return await asyncio.wait_for(reader.read(), timeout)


class TestBadPeers:
    async def test_close_before_environment_ends_does_not_stall_others(
        self, agi_server: FastAgiServer
    ) -> None:
        """A peer that closes mid-environment is dropped, and other calls go on meanwhile.

        panoramisk's fast_agi spins forever on this (its read loop never
        yields at EOF), freezing every call in the process.
        """
        agi_server.route("hello", hello)
        _, writer = await asyncio.open_connection("127.0.0.1", agi_server.port)
        writer.write(b"agi_network: yes\nagi_netw")
        await writer.drain()
        writer.close()
        started = time.monotonic()
        emulator = AsteriskEmulator(port=agi_server.port)
        results = await asyncio.wait_for(
            asyncio.gather(*(emulator.call("hello") for _ in range(20))), 5
        )
        assert all(r.commands == ["ANSWER", 'STREAM FILE beep ""', "HANGUP"] for r in results)
        assert time.monotonic() - started < 5
        await asyncio.sleep(0.05)
        assert agi_server.stats.dropped == 1

    @pytest.mark.parametrize(
        "garbage", [b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", b"\x16\x03\x01\x02\x00\x01\x00\n\n"]
    )
    async def test_garbage_is_dropped(self, agi_server: FastAgiServer, garbage: bytes) -> None:
        """Something that is not Asterisk gets 'failure' (Asterisk's fallback cue) and a close."""
        reader, writer = await asyncio.open_connection("127.0.0.1", agi_server.port)
        writer.write(garbage)
        assert await read_until_closed(reader) == b"failure\n"
        writer.close()
        assert agi_server.stats.dropped == 1

    async def test_silent_peer_times_out(self, agi_server: FastAgiServer) -> None:
        """A peer that never sends its environment is dropped after env_timeout."""
        reader, writer = await asyncio.open_connection("127.0.0.1", agi_server.port)
        started = time.monotonic()
        assert await read_until_closed(reader) == b"failure\n"
        assert 0.9 <= time.monotonic() - started < 3
        writer.close()

    async def test_socket_closed_when_handler_ends(self, agi_server: FastAgiServer) -> None:
        """When the handler returns, the server closes the socket (Asterisk waits for it)."""

        async def quick(channel: Channel) -> None:
            await channel.noop("x")

        agi_server.route("hello", quick)
        reader, writer = await asyncio.open_connection("127.0.0.1", agi_server.port)
        writer.write(ENV)
        assert await reader.readline() == b"NOOP x\n"
        writer.write(b"200 result=0\n")
        assert await read_until_closed(reader) == b""
        writer.close()


class TestRefusals:
    async def test_unknown_script_takes_the_fallback(self, agi_server: FastAgiServer) -> None:
        """A call for a script with no route ends with AGISTATUS=FAILURE (dialplan fallback)."""
        emulator = AsteriskEmulator(port=agi_server.port)
        result = await emulator.call("nosuchflow")
        assert result.agistatus == "FAILURE"
        assert agi_server.stats.refusals == {"no route": 1}

    async def test_overload_is_refused_clearly(self) -> None:
        """Past max_calls, new calls get FAILURE at once; calls in progress are untouched."""
        release = asyncio.Event()

        async def hold(channel: Channel) -> None:
            await channel.answer()
            await release.wait()
            await channel.noop("done")

        server = FastAgiServer(default=hold, port=0, max_calls=3)
        await server.start()
        emulator = AsteriskEmulator(port=server.port)
        try:
            held = [asyncio.ensure_future(emulator.call("x")) for _ in range(3)]
            while server.active_calls < 3:
                await asyncio.sleep(0.01)
            refused = await asyncio.wait_for(emulator.call("x"), 2)
            release.set()
            done = await asyncio.gather(*held)
        finally:
            await server.drain(1)
        assert refused.agistatus == "FAILURE"
        assert [r.commands for r in done] == [["ANSWER", "NOOP done"]] * 3
        assert server.stats.refusals == {"overloaded": 1}

    async def test_crashing_handler_hands_caller_back(self, agi_server: FastAgiServer) -> None:
        """A handler bug does not drop the caller: AGISTATUS=FAILURE sends them to the fallback."""

        async def buggy(channel: Channel) -> None:
            await channel.answer()
            raise RuntimeError("bug")

        agi_server.route("bug", buggy)
        result = await AsteriskEmulator(port=agi_server.port).call("bug")
        assert result.agistatus == "FAILURE"
        assert result.commands == ["ANSWER"]
        assert agi_server.stats.errors == 1


class TestTimeouts:
    async def test_command_timeout(self) -> None:
        """An Asterisk that stops answering raises CommandTimeout and the call is closed."""
        errors: list[BaseException] = []

        async def handler(channel: Channel) -> None:
            try:
                await channel.noop("anyone?")
            except BaseException as exc:
                errors.append(exc)
                raise

        server = FastAgiServer(default=handler, port=0, command_timeout=0.3)
        await server.start()
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(ENV)
            assert await reader.readline() == b"NOOP anyone?\n"
            rest = await read_until_closed(reader)
            writer.close()
        finally:
            await server.drain(1)
        assert isinstance(errors[0], CommandTimeout)
        assert rest == b"failure\n"


class TestDrain:
    async def test_drain_lets_calls_finish_and_refuses_new_ones(self) -> None:
        """drain() stops accepting; a call in progress finishes; later calls take the fallback."""

        async def slow(channel: Channel) -> None:
            await channel.answer()
            await channel.wait_for_digit(3000)
            await channel.noop("finished")

        server = FastAgiServer(default=slow, port=0)
        await server.start()
        emulator = AsteriskEmulator(port=server.port, speed=1.0)
        running = asyncio.ensure_future(emulator.call("x", actions=[Press("1", at=0.3)]))
        while server.active_calls < 1:
            await asyncio.sleep(0.01)
        draining = asyncio.ensure_future(server.drain(5))
        await asyncio.sleep(0.05)
        late = await AsteriskEmulator(port=server.port).call("x")
        result = await running
        await draining
        assert result.commands[-1] == "NOOP finished"
        assert late.agistatus == "FAILURE"

    async def test_drain_timeout_hands_calls_back(self) -> None:
        """Calls still running when the drain time is up are handed to the dialplan fallback."""

        async def forever(channel: Channel) -> None:
            await channel.answer()
            await asyncio.sleep(3600)

        server = FastAgiServer(default=forever, port=0)
        await server.start()
        emulator = AsteriskEmulator(port=server.port)
        running = asyncio.ensure_future(emulator.call("x", actions=[Hangup(at=60)]))
        while server.active_calls < 1:
            await asyncio.sleep(0.01)
        await server.drain(0.2)
        result = await asyncio.wait_for(running, 2)
        assert result.agistatus == "FAILURE"
        assert server.active_calls == 0


async def test_a_flow_that_ends_on_the_callers_hang_up_counts_as_a_hang_up(
    agi_server: FastAgiServer,
) -> None:
    """engine.stopped's figures: a call whose caller hung up is a hang-up even when the
    handler ended normally (a flow's run catches the hang-up); the engine's own HANGUP
    is a completed call."""
    from ivr.errors import ChannelHangup

    async def caller_leaves(channel: Channel) -> None:
        try:
            await channel.stream_file("demo-congrats")
        except ChannelHangup:
            return  # as Run.execute does

    async def engine_ends(channel: Channel) -> None:
        await channel.hangup()

    agi_server.route("leaves", caller_leaves)
    agi_server.route("ends", engine_ends)
    emulator = AsteriskEmulator(port=agi_server.port)
    await emulator.call("leaves", actions=[Hangup(on="STREAM FILE", after=0.5)])
    await emulator.call("ends")
    await agi_server.drain(1)
    assert (agi_server.stats.hangups, agi_server.stats.completed) == (1, 1)
