"""A command cancelled while its line waits for the socket's buffer to drain."""

from __future__ import annotations

import asyncio

import pytest

from ivr.agi.channel import Channel
from ivr.agi.protocol import EnvironmentParser
from ivr.errors import AgiError


class SlowSocket:
    """A transport whose buffer is full: a line is taken, then the writer must wait."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def write_now(self, data: bytes) -> asyncio.Future[None]:
        self.sent.append(data)
        return asyncio.get_running_loop().create_future()  # drained some time later

    async def write(self, data: bytes) -> None:
        await self.write_now(data)

    async def read(self) -> bytes:
        return b"200 result=1\n"


async def test_a_command_cancelled_while_its_line_drains_breaks_the_channel() -> None:
    """The line is already in the transport (Asterisk will run it and answer): a later
    command must not take that reply as its own, so it refuses to run."""
    env = EnvironmentParser().feed(b"agi_network: yes\nagi_uniqueid: 1\n\n")
    assert env is not None
    socket = SlowSocket()
    channel = Channel(env, socket, command_timeout=1)
    task = asyncio.ensure_future(channel.set_variable("A", "1"))
    await asyncio.sleep(0)
    assert socket.sent == [b"SET VARIABLE A 1\n"]
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    with pytest.raises(AgiError, match="cancelled"):
        await asyncio.wait_for(channel.get_variable("B"), 1)
    assert socket.sent == [b"SET VARIABLE A 1\n"]
