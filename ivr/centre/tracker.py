"""What AGI cannot see of a Dial, learned from AMI: the moment the agent answers.

AGI's ``EXEC Dial ... g`` returns only when the bridged call is over. Routing
wants the agent ``on_call`` from the answer (handle times, occupancy, the
console), so the queue node asks this tracker for a future that is resolved by
the ``DialEnd`` whose caller is the call's channel and whose destination is
the agent's endpoint. Without AMI the tracker is absent and the agent goes
``on_call`` when Dial returns (``ANSWEREDTIME`` still says how long they
talked).

A ``DialEnd`` sent while the AMI link was down is lost for good. So after each
reconnect the tracker reads the resync's channels (``CoreShowChannels``): a
call that is waiting for its answer and whose channel shares a bridge with a
channel of the agent's endpoint was answered meanwhile (tests/chaos, the AMI cut).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager

from ivr.ami import AmiClient, AmiEvent, DialEnd, Resync

__all__ = ["AnswerTracker"]


class AnswerTracker:
    """Futures for "the agent at ``endpoint`` answered ``channel``'s Dial"."""

    def __init__(self) -> None:
        self._waiting: dict[tuple[str, str], asyncio.Future[str]] = {}

    def attach(self, ami: AmiClient) -> None:
        ami.on("DialEnd", self._on_dial_end)
        ami.on_resynced(self.resync)

    def resync(self, resync: Resync) -> None:
        """Resolve every waiting answer the channels show bridged with the agent's leg."""
        bridges: dict[str, set[str]] = {}
        for item in resync.channels:
            if item.bridge_id:
                bridges.setdefault(item.bridge_id, set()).add(item.channel.channel)
        for (channel, endpoint), future in list(self._waiting.items()):
            if future.done():
                continue
            for members in bridges.values():
                if channel in members and any(
                    other.startswith(endpoint + "-") for other in members - {channel}
                ):
                    future.set_result("ANSWER")
                    break

    def _on_dial_end(self, event: AmiEvent) -> None:
        if not isinstance(event, DialEnd) or event.caller is None:
            return
        future = self._waiting.get((event.caller.channel, event.dest.endpoint))
        if future is not None and not future.done():
            future.set_result(event.dial_status)

    @contextmanager
    def expect(self, channel: str, endpoint: str) -> Iterator[asyncio.Future[str]]:
        """Within the block, the future gets the DialEnd status of ``channel`` → ``endpoint``."""
        key = (channel, endpoint)
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._waiting[key] = future
        try:
            yield future
        finally:
            if self._waiting.get(key) is future:
                del self._waiting[key]
            if not future.done():
                future.cancel()
