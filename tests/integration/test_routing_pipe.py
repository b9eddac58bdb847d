"""A routing script whose reply is lost is sent again, and runs once in effect.

A TCP proxy in front of a real redis-server forwards an ``FCALL`` to Redis
and then cuts the engine's connection before the reply comes back: Redis ran
the script, the engine does not know it. The engine sends it again (the
ordinary redis-py path); an enqueue is idempotent per call id (routing/ROUTING.md),
so the call has one ticket, one ``enqueued`` event, and is served once.
"""

from __future__ import annotations

import asyncio
import contextlib

from routing.redis import RedisRouter
from routing.types import Agent


class CuttingProxy:
    """Forwards TCP to a Unix-socket Redis; cuts the first connection that carries a
    request with ``marker`` right after forwarding it (the reply is dropped)."""

    def __init__(self, socket_path: str, marker: bytes) -> None:
        self.socket_path = socket_path
        self.marker = marker
        self.cuts = 0
        self.armed = False
        self.port = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_unix_connection(self.socket_path)
        cut = asyncio.Event()

        async def upstream() -> None:
            while data := await reader.read(65536):
                up_writer.write(data)
                await up_writer.drain()
                if self.armed and self.marker in data:
                    self.armed = False
                    self.cuts += 1
                    await asyncio.sleep(0.2)  # Redis has run it by now
                    cut.set()
                    return

        async def downstream() -> None:
            while data := await up_reader.read(65536):
                if self.armed is False and cut.is_set():
                    return
                if not cut.is_set():
                    writer.write(data)
                    await writer.drain()

        tasks = [asyncio.ensure_future(upstream()), asyncio.ensure_future(downstream())]
        for task in tasks:
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        try:
            await asyncio.wait(
                [*tasks, asyncio.ensure_future(cut.wait())], return_when="FIRST_COMPLETED"
            )
        finally:
            for task in tasks:
                task.cancel()
            for w in (writer, up_writer):
                w.close()
                with contextlib.suppress(OSError):  # the peer may be gone already: closing
                    await w.wait_closed()


async def test_an_enqueue_whose_reply_was_lost_is_one_ticket(redis_url: str) -> None:
    socket_path = redis_url.removeprefix("unix://")
    proxy = CuttingProxy(socket_path, b"FCALL")
    await proxy.start()
    router = RedisRouter.connect(f"redis://127.0.0.1:{proxy.port}", namespace="pipecut")
    try:
        await router.start()
        await router.add_agents([Agent("a1", "PJSIP/a1", {"s": 1})])
        await router.login("a1")
        proxy.armed = True
        ticket = await asyncio.wait_for(router.enqueue("call-1", "q", {"s": 1}), 10)
        assert proxy.cuts == 1  # the first reply was really lost
        assignment = await asyncio.wait_for(router.wait(ticket), 5)
        assert assignment.agent_id == "a1"
        events = [e for _, e in await router.events(0) if e.get("call") == "call-1"]
        assert [e["event"] for e in events if e["event"] == "enqueued"] == ["enqueued"]
        assert [e["event"] for e in events if e["event"] == "reserved"] == ["reserved"]
        # Asked again while live (an engine's own retry): the same ticket.
        again = await router.enqueue("call-1", "q", {"s": 1})
        assert again.id == ticket.id
        # Once it ended, the same call id may queue again: a new ticket.
        await router.completed(assignment)
        later = await router.enqueue("call-1", "q", {"s": 1})
        assert later.id != ticket.id
    finally:
        await router.close()
        await proxy.close()
