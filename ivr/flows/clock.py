"""The clock a call on hold waits by: the event loop's, or one a test moves by hand.

Escalation steps fire after tens of seconds of waiting; tests move a
:class:`ManualClock` instead of sleeping, and the queue logic cannot tell.
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

__all__ = ["Clock", "LoopClock", "ManualClock"]


class Clock(Protocol):
    def now(self) -> float:
        """Seconds, monotonic."""

    async def wait(self, futures: set[asyncio.Future[Any]], timeout: float | None) -> None:
        """Until one of ``futures`` is done or ``timeout`` seconds pass on this clock."""


class LoopClock:
    """Real time: the event loop's clock."""

    def now(self) -> float:
        return asyncio.get_running_loop().time()

    async def wait(self, futures: set[asyncio.Future[Any]], timeout: float | None) -> None:
        await asyncio.wait(futures, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)


class ManualClock:
    """Time that moves only when a test calls :meth:`advance`."""

    def __init__(self, start: float = 0.0) -> None:
        self._now = start
        self._moved = asyncio.Event()

    def now(self) -> float:
        return self._now

    async def advance(self, seconds: float) -> None:
        """Move time on and let every waiter whose deadline passed run."""
        self._now += seconds
        self._moved.set()
        self._moved = asyncio.Event()
        for _ in range(20):  # let the woken tasks get to their next wait
            await asyncio.sleep(0)

    async def wait(self, futures: set[asyncio.Future[Any]], timeout: float | None) -> None:
        deadline = None if timeout is None else self._now + timeout
        while not any(f.done() for f in futures):
            if deadline is not None and self._now >= deadline:
                return
            moved: asyncio.Future[Any] = asyncio.ensure_future(self._moved.wait())
            await asyncio.wait({*futures, moved}, return_when=asyncio.FIRST_COMPLETED)
            if not moved.done():
                moved.cancel()
