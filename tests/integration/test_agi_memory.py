"""A finished call leaves no reference cycle: reference counting frees it, not the collector.

A cycle through a call's objects (its channel, connection, task and all they
hold) keeps them until the cycle collector runs, which then walks them all:
per call, in the engine's busiest path.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Awaitable

from ivr.agi.channel import Channel
from ivr.agi.connection import AgiConnection
from ivr.agi.server import FastAgiServer
from ivr.testing import AsteriskEmulator, Hangup, Press, SessionResult


async def cyclic_garbage(
    server: FastAgiServer, call: Awaitable[SessionResult]
) -> tuple[SessionResult, set[str]]:
    """Run ``call`` with the cycle collector off; the channels and connections it
    would have had to free afterwards (none, when everything goes by reference count)."""
    gc.collect()
    gc.disable()
    try:
        result = await call
        await asyncio.sleep(0.2)  # the server closes, the transport lets go of its protocol
        await server.drain(0)  # its deadline sweeper may still hold the last channel it saw
        await asyncio.sleep(0.05)  # ... until its cancellation has run
        gc.set_debug(gc.DEBUG_SAVEALL)
        gc.collect()
        found = {type(o).__name__ for o in gc.garbage if isinstance(o, Channel | AgiConnection)}
    finally:
        gc.garbage.clear()
        gc.set_debug(0)
        gc.enable()
    return result, found


class TestNoCycles:
    async def test_a_finished_call(self, agi_server: FastAgiServer) -> None:
        """A call that ends normally leaves its channel and connection to reference counting."""

        async def handler(ch: Channel) -> None:
            await ch.answer()
            await ch.stream_file("beep", "0123456789")
            await ch.get_data("beep", 3000, 4)
            await ch.hangup()

        agi_server.route("t", handler)
        emulator = AsteriskEmulator(port=agi_server.port)
        call = emulator.call("t", actions=[Press("12", on="GET DATA", after=0.1)])
        result, garbage = await cyclic_garbage(agi_server, call)
        assert result.commands[-1] == "HANGUP"
        assert garbage == set()

    async def test_a_call_the_caller_hung_up(self, agi_server: FastAgiServer) -> None:
        """Also when the caller hangs up mid-prompt (the hang-up paths hold the channel too)."""

        async def handler(ch: Channel) -> None:
            await ch.answer()
            await ch.stream_file("demo-congrats", "")

        agi_server.route("t", handler)
        emulator = AsteriskEmulator(port=agi_server.port, speed=4.0)
        call = emulator.call("t", actions=[Hangup(at=0.5)])
        _, garbage = await cyclic_garbage(agi_server, call)
        assert agi_server.stats.hangups == 1
        assert garbage == set()
