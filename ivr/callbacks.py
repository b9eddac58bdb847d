"""Placing callbacks: the agent first, then the customer, bridged by Asterisk.

A caller who pressed the callback key left the queue's line but kept their
place. When routing reserves an agent for that call, one engine claims it
(:meth:`RedisRouter.next_callback`) and this worker runs AMI ``Originate``
towards the agent's phone with the application ``Dial`` to the customer's
number (``Async: true``). So:

* the agent does not answer (or the phone is unreachable): the agent goes to
  ``missed`` and the callback back to the head of its queue, like a live call;
* the agent answers: they are ``on_call``; Asterisk dials the customer from
  the agent's channel. ``DialEnd`` on that channel tells whether the customer
  answered; the agent's hang-up ends the call and starts wrap-up.
* the customer does not answer: the agent is freed and the callback is
  recorded as ``callback_unanswered`` (no endless retries).

The customer's number came from the caller ID: it is checked again here
(digits only) and goes through the same allow-list as transfers before any
dial string is built. Originate's ``Dial`` needs no ``system`` permission
(``is_originate_app_permitted``, main/manager.c; asterisk_conf/ASTERISK_FACTS.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import re

import structlog

from ivr.ami import AmiClient, AmiError, DialEnd, Hangup
from ivr.ami.client import EventStream
from routing.errors import RoutingError
from routing.memory import Assignment
from routing.redis_router import RedisRouter

__all__ = ["CallbackWorker"]

log = structlog.get_logger("ivr.callbacks")

_NUMBER = re.compile(r"^\+?[0-9]{3,20}$")
_EXTENSION = re.compile(r"^[1-9][0-9]{1,5}$")


class CallbackWorker:
    """Claims reserved callbacks and places them, up to ``concurrency`` at once."""

    def __init__(
        self,
        router: RedisRouter,
        ami: AmiClient,
        *,
        external_dial: str = "PJSIP/{to}@trunk",
        internal_dial: str = "PJSIP/{to}",
        allow: tuple[str, ...] = (),
        ring_timeout: float = 20.0,
        customer_timeout: float = 45.0,
        concurrency: int = 20,
    ) -> None:
        self.router = router
        self.ami = ami
        self.external_dial = external_dial
        self.internal_dial = internal_dial
        self.allow = allow
        self.ring_timeout = ring_timeout
        self.customer_timeout = customer_timeout
        self._slots = asyncio.Semaphore(concurrency)
        self._tasks: set[asyncio.Task[None]] = set()

    def dial_string(self, number: str) -> str | None:
        """The customer's dial string, or None when the number may not be called."""
        if _EXTENSION.match(number):
            return self.internal_dial.format(to=number)
        if _NUMBER.match(number) and any(fnmatch.fnmatchcase(number, p) for p in self.allow):
            return self.external_dial.format(to=number)
        return None

    async def run(self) -> None:
        """Forever: claim the next callback and place it in its own task."""
        while True:
            await self._slots.acquire()
            try:
                # Claim nothing while Asterisk is away: a claimed callback that
                # cannot be placed would count as the agent's miss.
                await self.ami.wait_connected()
                assignment = await self.router.next_callback()
            except RoutingError as exc:
                self._slots.release()
                log.warning("callback.store_unavailable", error=str(exc))
                await asyncio.sleep(1.0)
                continue
            task = asyncio.ensure_future(self._place_and_release(assignment))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def _place_and_release(self, assignment: Assignment) -> None:
        try:
            await self.place(assignment)
        except Exception:
            log.exception("callback.failed", ticket=assignment.ticket.id)
        finally:
            self._slots.release()

    async def place(self, assignment: Assignment) -> str:
        """Place one callback; returns how it ended (for logs and tests)."""
        ticket = assignment.ticket
        bound = log.bind(ticket=ticket.id, queue=ticket.queue, agent=assignment.agent_id)
        target = self.dial_string(assignment.callback)
        if target is None:
            bound.warning("callback.refused", why="number not on the allow-list")
            await self.router.abandon(ticket, reason="callback number not allowed")
            return "refused"
        async with self.ami.events("DialEnd", "Hangup") as stream:
            try:
                response = await self.ami.originate(
                    assignment.endpoint,
                    application="Dial",
                    data=f"{target},{int(self.customer_timeout)}",
                    timeout=self.ring_timeout,
                    caller_id=f'"Callback" <{assignment.callback}>',
                    variables={"IVR_CALLBACK_QUEUE": ticket.queue},
                )
            except AmiError as exc:
                bound.warning("callback.originate_failed", error=str(exc))
                await self.router.missed(assignment)  # back to the head; retried
                return "originate_failed"
            if not response.success:
                bound.info("callback.agent_missed", reason=response.reason)
                await self.router.missed(assignment)
                return "agent_missed"
            await self.router.connected(assignment)
            agent_channel = response.channel
            status = await self._customer_answer(stream, agent_channel)
            if status != "ANSWER":
                bound.info("callback.unanswered", status=status)
                await self.router.completed(assignment)
                await self.router.audit(
                    "engine", "callback_unanswered", queue=ticket.queue, status=status or ""
                )
                return "customer_unanswered"
            bound.info("callback.connected")
            await self._hangup_of(stream, agent_channel)
            await self.router.completed(assignment)
            bound.info("callback.completed")
            return "completed"

    async def _customer_answer(self, stream: EventStream, agent_channel: str) -> str | None:
        deadline = asyncio.get_running_loop().time() + self.customer_timeout + 15
        while (left := deadline - asyncio.get_running_loop().time()) > 0:
            try:
                event = await stream.get(left)
            except TimeoutError:
                break
            if (
                isinstance(event, DialEnd)
                and event.caller is not None
                and event.caller.channel == agent_channel
            ):
                return event.dial_status
            if isinstance(event, Hangup) and event.channel.channel == agent_channel:
                return "CANCEL"
        return None

    async def _hangup_of(self, stream: EventStream, agent_channel: str) -> None:
        while True:
            event = await stream.get(None)
            if isinstance(event, Hangup) and event.channel.channel == agent_channel:
                return
