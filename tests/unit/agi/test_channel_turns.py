"""One command outstanding per channel, whichever tasks send them (PROTOCOL.md §2)."""

from __future__ import annotations

import asyncio

from ivr.agi.channel import Channel
from ivr.agi.protocol import EnvironmentParser


class OneAtATime:
    """Answers each command after a short while; fails a test on a second one sent early."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.overlaps = 0
        self.outstanding = False
        self._replies: asyncio.Queue[bytes] = asyncio.Queue()

    async def write(self, data: bytes) -> None:
        self.overlaps += self.outstanding
        self.outstanding = True
        self.sent.append(data)
        asyncio.get_running_loop().call_later(0.01, self._replies.put_nowait, b"200 result=1\n")

    async def read(self) -> bytes:
        data = await self._replies.get()
        self.outstanding = False
        return data


def channel(transport: OneAtATime) -> Channel:
    env = EnvironmentParser().feed(b"agi_network: yes\nagi_uniqueid: 1\n\n")
    assert env is not None
    return Channel(env, transport, command_timeout=1)


class TestTurns:
    async def test_commands_from_several_tasks_go_one_at_a_time_in_order(self) -> None:
        """Tasks that send at once are served one after the other, first come first served."""
        transport = OneAtATime()
        ch = channel(transport)
        await asyncio.gather(*(ch.set_variable(f"V{n}", "x") for n in range(5)))
        assert transport.overlaps == 0
        assert transport.sent == [f"SET VARIABLE V{n} x\n".encode() for n in range(5)]

    async def test_a_cancelled_waiter_does_not_block_the_others(self) -> None:
        """A task cancelled while it waits for its turn never sends, and the rest go on."""
        transport = OneAtATime()
        ch = channel(transport)
        first = asyncio.ensure_future(ch.noop("a"))
        waiting = asyncio.ensure_future(ch.noop("b"))
        last = asyncio.ensure_future(ch.noop("c"))
        await asyncio.sleep(0)
        waiting.cancel()
        await asyncio.gather(first, last)
        assert waiting.cancelled()
        assert transport.sent == [b"NOOP a\n", b"NOOP c\n"]
        assert transport.overlaps == 0
        await ch.noop("d")  # the turn is free again

    async def test_a_task_cancelled_as_its_turn_comes_passes_it_on(self) -> None:
        """Handed the turn and cancelled before it runs: the next task gets the turn."""
        transport = OneAtATime()
        ch = channel(transport)
        handed: asyncio.Future[None] | None = None

        async def first() -> None:
            await ch.noop("a")
            # Still in this task's step: ``handed`` holds the turn but has not run.
            assert handed is not None
            handed.cancel()

        running = asyncio.ensure_future(first())
        handed = asyncio.ensure_future(ch.noop("b"))
        last = asyncio.ensure_future(ch.noop("c"))
        await asyncio.wait_for(asyncio.gather(running, last), 1)
        assert handed.cancelled()
        assert transport.sent == [b"NOOP a\n", b"NOOP c\n"]
        await ch.noop("d")
