"""Agents' availability follows their phones, from AMI.

An agent whose phone stops answering (``DeviceStateChange`` UNAVAILABLE) is
paused with the reason ``phone unreachable``, so routing stops offering them
calls; when it registers again they are resumed. A phone in use for a call
routing did not give (a personal or internal call) pauses an available agent
with ``phone in use`` until it is free. Pauses with any other reason (the
agent's own, a supervisor's, missed calls) are never lifted here. Only
``DeviceStateChange`` is read, class ``call`` (main/devicestate.c), the one the
engine's AMI user reads (:mod:`ivr.ami.permissions`): when a PJSIP contact
becomes unreachable, res_pjsip marks the endpoint offline and raises a device
state change (``persistent_endpoint_update_state``,
res/res_pjsip/pjsip_configuration.c) that chan_pjsip reports as UNAVAILABLE
(``chan_pjsip_devicestate``), and NOT_INUSE when it is reachable again.
``ContactStatus`` and ``PeerStatus`` say the same but are class ``system``,
which that user does not read. After an AMI reconnect the client's resync
brings every device state at once, so no agent stays stale past the reconnect.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import structlog

from ivr.ami import AmiClient, AmiEvent, DeviceStateChange, Resync
from routing.errors import RoutingError
from routing.redis import RedisRouter
from routing.states import InvalidTransition

__all__ = ["IN_USE", "UNREACHABLE", "Presence"]

log = structlog.get_logger("ivr.centre.presence")

UNREACHABLE = "phone unreachable"
IN_USE = "phone in use"
_DOWN = frozenset({"UNAVAILABLE", "INVALID", "UNKNOWN"})
_BUSY = frozenset({"INUSE", "BUSY", "ONHOLD", "RINGINUSE"})
_FREE = frozenset({"NOT_INUSE"})
#: Seconds between two lookups of the agents for a phone nobody is known to have.
_REFRESH_EVERY = 2.0


class Presence:
    """Applies phone states to agents; ``endpoints`` maps ``PJSIP/1001`` to agent ids."""

    def __init__(self, router: RedisRouter, endpoints: Mapping[str, str] | None = None) -> None:
        self.router = router
        self.endpoints: dict[str, str] = dict(endpoints or {})
        #: The newest state heard per endpoint. Changes are applied one at a time,
        #: each from the newest state, so a late or reordered event cannot undo a
        #: newer one (a call that ended before its INUSE was handled).
        self.latest: dict[str, str] = {}
        self._due: asyncio.Queue[str] = asyncio.Queue()
        self._pending: set[str] = set()
        self._worker: asyncio.Task[None] | None = None
        self._closed = False
        self._background: set[asyncio.Future[None]] = set()
        self._refreshed = -_REFRESH_EVERY
        self._deferred: set[str] = set()

    def note(self, endpoint: str, state: str) -> None:
        """Record a phone's state and schedule its agent's update."""
        self.latest[endpoint] = state
        if self._closed:
            return
        if endpoint not in self._pending:
            self._pending.add(endpoint)
            self._due.put_nowait(endpoint)
        if self._worker is None or self._worker.done():
            self._worker = asyncio.ensure_future(self._work())

    async def _work(self) -> None:
        while not self._closed:
            endpoint = await self._due.get()
            self._pending.discard(endpoint)
            try:
                await self.apply(endpoint, self.latest[endpoint])
            finally:
                self._due.task_done()

    async def settled(self) -> None:
        """Until every state heard so far is applied (tests, shutdown)."""
        await self._due.join()

    def _retry(self, endpoint: str) -> None:
        self._deferred.discard(endpoint)
        if endpoint in self.latest:
            self.note(endpoint, self.latest[endpoint])

    async def close(self) -> None:
        self._closed = True
        for task in list(self._background):
            task.cancel()
        if self._worker is not None:
            self._worker.cancel()
            # Bounded, and without waiting on the cancellation itself: a Redis call
            # in flight can turn it into an error that apply() logs and goes on.
            await asyncio.wait({self._worker}, timeout=2.0)

    async def refresh(self) -> None:
        """Learn every agent's endpoint from the routing store (agents change at run time)."""
        self.endpoints = {row["endpoint"]: row["id"] for row in await self.router.agents()}

    def attach(self, ami: AmiClient) -> None:
        ami.on("DeviceStateChange", self._on_device)

    def _on_device(self, event: AmiEvent) -> None:
        if isinstance(event, DeviceStateChange):
            self.note(event.device, event.state)

    def resync(self, resync: Resync) -> None:
        """After (re)connecting: every phone's state, all at once. Called as soon as the
        snapshot is taken, so it never overrides an event that came after it."""
        for device, state in resync.device_states.items():
            self.note(device, state)
        log.info(
            "presence.resynced",
            devices=len(resync.device_states),
            reconnected=resync.reconnected,
            outage=round(resync.outage, 2),
        )
        refresh = asyncio.ensure_future(self._refresh_and_apply())
        self._background.add(refresh)
        refresh.add_done_callback(self._background.discard)

    async def _refresh_and_apply(self) -> None:
        """Agents change at run time: learn their endpoints, then apply every state."""
        try:
            await self.refresh()
        except RoutingError as exc:
            log.warning("presence.refresh_failed", error=str(exc))
            return
        for device, state in dict(self.latest).items():
            self.note(device, state)

    async def apply(self, endpoint: str, state: str) -> None:
        agent_id = self.endpoints.get(endpoint)
        if agent_id is None:
            # Agents are added and changed at run time (the API): look again, at
            # most every few seconds (other phones, trunks, are unknown for good).
            loop = asyncio.get_running_loop()
            wait = self._refreshed + _REFRESH_EVERY - loop.time()
            if wait > 0:  # looked just now: look again when allowed, with the newest state
                if endpoint not in self._deferred:
                    self._deferred.add(endpoint)
                    loop.call_later(wait, self._retry, endpoint)
                return
            self._refreshed = loop.time()
            try:
                await self.refresh()
            except RoutingError:
                return
            agent_id = self.endpoints.get(endpoint)
            if agent_id is None:
                return
        try:
            agent = await self.router.agent(agent_id, skills=False)
            if agent is None:
                return
            current, reason = agent.get("state", ""), agent.get("reason", "")
            if state in _DOWN and current in ("available", "missed", "wrap_up"):
                await self.router.pause(agent_id, UNREACHABLE)
                log.info("presence.paused", agent=agent_id, endpoint=endpoint, why=UNREACHABLE)
            elif state in _BUSY and current == "available":
                await self.router.pause(agent_id, IN_USE)
                log.info("presence.paused", agent=agent_id, endpoint=endpoint, why=IN_USE)
            elif state in _FREE and current == "paused" and reason in (UNREACHABLE, IN_USE):
                await self.router.resume(agent_id)
                log.info("presence.resumed", agent=agent_id, endpoint=endpoint, was=reason)
            # Reachable again but busy: stays paused until the phone is free.
        except InvalidTransition as exc:  # raced with a routing change: the next event fixes it
            log.info("presence.skipped", agent=agent_id, error=str(exc))
        except RoutingError as exc:
            log.warning("presence.unavailable", agent=agent_id, error=str(exc))
