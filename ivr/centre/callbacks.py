"""Placing callbacks: the agent first, then the customer, bridged by Asterisk.

A caller who pressed the callback key left the queue's line but kept their
place. When routing reserves an agent for that call, one engine claims it
(:meth:`RedisRouter.next_callback`) and this worker runs AMI ``Originate``
towards the agent's phone with the application ``Dial`` to the customer's
number (``Async: true``). So:

* the agent does not answer (or the phone is unreachable): the agent goes to
  ``missed`` and the callback back to the head of its queue, like a live call;
* the agent answers: Asterisk dials the customer from the agent's channel.
  ``DialEnd`` on that channel tells whether the customer answered: then the
  call is ``connected`` (so a callback counts as answered only when the
  customer answered), and the agent's hang-up ends it and starts wrap-up.
* the customer does not answer (busy, no answer): the ticket ends
  ``unanswered``, its own outcome; the agent is freed, not blamed (no endless
  retries).

Caller IDs: the agent's phone shows the customer's number; the customer sees
``caller_id`` (the centre's number, ``IVR_CALLBACK_CALLER_ID``; Dial's
``f()`` option), never their own number.

The customer's number came from the caller ID: it is checked again here
(digits only) and goes through the same allow-list as transfers before any
dial string is built. Originate's ``Dial`` needs no ``system`` permission
(``is_originate_app_permitted``, main/manager.c; asterisk_conf/ASTERISK_FACTS.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import Awaitable

import structlog

from ivr.agi.protocol import escape_app_arg
from ivr.ami import AmiClient, AmiError, DialEnd, Hangup
from ivr.ami.client import AMI_LINE_MAX, EventStream
from ivr.errors import UnsafeArgumentError
from ivr.numbers import callback_dial
from routing.errors import RoutingError
from routing.memory import Assignment
from routing.redis import RedisRouter

__all__ = ["CallbackWorker"]

log = structlog.get_logger("ivr.centre.callbacks")

_CALLER_ID = re.compile(r"\+?[0-9]{3,20}")


def _fits(name: str, value: str) -> bool:
    """True when ``Variable: name=value`` (escaped as Originate sends it) is a line
    Asterisk reads whole and the value can be sent at all."""
    try:
        line = f"Variable: {name}={escape_app_arg(value)}".encode()
    except (UnsafeArgumentError, UnicodeEncodeError):
        return False
    return len(line) <= AMI_LINE_MAX


def _context(value: str) -> str | None:
    """What the caller chose, as the agent's leg can get it: whole when its line fits
    (escaping can double a 900-byte context past manager.c's 1,022 bytes, which
    would drop the whole Originate), else the caller alone, as a live call's
    hand-over does past its limit, else nothing."""
    if _fits("__IVR_CONTEXT", value):
        return value
    try:
        caller = json.loads(value).get("caller")
    except (ValueError, AttributeError):
        return None
    shorter = json.dumps({"caller": caller}, ensure_ascii=False, default=str)
    return shorter if _fits("__IVR_CONTEXT", shorter) else None


def _handed(assignment: Assignment) -> dict[str, str]:
    """The variables a callback's agent leg gets: the same as a live call's (the flow,
    the queue, what the caller chose), inherited by the customer's leg too."""
    ticket = assignment.ticket
    variables = {"IVR_CALLBACK_QUEUE": ticket.queue, "__IVR_QUEUE": ticket.queue}
    try:
        stored = json.loads(assignment.context) if assignment.context else {}
    except ValueError:
        stored = {}
    if isinstance(stored, dict):
        if isinstance(stored.get("flow"), str):
            variables["__IVR_FLOW"] = stored["flow"]
        if isinstance(stored.get("context"), str):
            context = _context(stored["context"])
            if context is not None:
                variables["__IVR_CONTEXT"] = context
    return variables


async def _settled(transition: Awaitable[None], what: str) -> None:
    """Run a settling transition to its end even when cancelled, and report (never hide)
    a failure: the router's outbox keeps a transition Redis could not take."""
    task = asyncio.ensure_future(transition)
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:
        try:
            await task
        except RoutingError as exc:
            log.error("callback.settle_failed", what=what, error=str(exc))  # noqa: TRY400
        raise
    except RoutingError as exc:
        log.error("callback.settle_failed", what=what, error=str(exc))  # noqa: TRY400


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
        caller_id: str = "",
    ) -> None:
        if caller_id and not _CALLER_ID.fullmatch(caller_id):
            raise ValueError(
                f"callback caller ID {caller_id!r}: give the centre's number, "
                "3 to 20 digits with an optional '+'"
            )
        #: What the customer sees: the centre's number (empty: the trunk's default).
        self.caller_id = caller_id
        self.router = router
        self.ami = ami
        self.external_dial = external_dial
        self.internal_dial = internal_dial
        self.allow = allow
        self.ring_timeout = ring_timeout
        self.customer_timeout = customer_timeout
        #: Seconds to wait after Asterisk refused to place a callback.
        self.retry_after = 5.0
        #: How often a placed call's channel is looked up when its hang-up was not
        #: heard (an AMI reconnect can lose the event).
        self.check_every = 5.0
        self._slots = asyncio.Semaphore(concurrency)
        self._resume_at = 0.0
        self._tasks: set[asyncio.Task[None]] = set()

    def dial_string(self, number: str) -> str | None:
        """The customer's dial string, or None when the number may not be called."""
        return callback_dial(
            number, self.allow, internal=self.internal_dial, external=self.external_dial
        )

    async def run(self) -> None:
        """Forever: claim the next callback and place it in its own task."""
        while True:
            await self._slots.acquire()
            try:
                # Claim nothing while Asterisk is away: a claimed callback that
                # cannot be placed would count as the agent's miss.
                await self.ami.wait_connected()
                pause = self._resume_at - asyncio.get_running_loop().time()
                if pause > 0:
                    await asyncio.sleep(pause)
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
        # The number is the caller ID: digits only, whole (a trailing line break passes
        # a pattern anchored with '$'), before anything is built from it.
        number = assignment.callback
        target = self.dial_string(number) if _CALLER_ID.fullmatch(number) else None
        if target is None:
            bound.warning("callback.refused", why="number not on the allow-list")
            # Its own outcome, never an abandon: the number left the allow-list meanwhile.
            await _settled(self.router.abandon(ticket, reason="unanswered"), "unanswered")
            return "refused"
        async with self.ami.events("DialEnd", "Hangup") as stream:
            try:
                options = f",f({self.caller_id})" if self.caller_id else ""
                response = await self.ami.originate(
                    assignment.endpoint,
                    application="Dial",
                    data=f"{target},{int(self.customer_timeout)}{options}",
                    timeout=self.ring_timeout,
                    caller_id=f'"Callback" <{assignment.callback}>',
                    variables=_handed(assignment),
                )
            except UnsafeArgumentError as exc:
                # A value Asterisk can never take as it is: trying again cannot help.
                bound.warning("callback.refused", why=str(exc))
                await _settled(self.router.abandon(ticket, reason="unanswered"), "unanswered")
                return "refused"
            except AmiError as exc:
                # Not the agent's doing (refused, AMI gone): no miss; it goes back to
                # the head, and this worker pauses before claiming again.
                bound.warning("callback.originate_failed", error=str(exc))
                # Every slot of this worker pauses: Asterisk would refuse them too.
                self._resume_at = asyncio.get_running_loop().time() + self.retry_after
                await self.router.missed(assignment, agent_fault=False)
                return "originate_failed"
            if not response.success:
                bound.info("callback.agent_missed", reason=response.reason)
                await self.router.missed(assignment)
                return "agent_missed"
            return await self._talk(assignment, stream, response.channel)

    async def _talk(self, assignment: Assignment, stream: EventStream, agent_channel: str) -> str:
        ticket = assignment.ticket
        try:
            status = await self._customer_answer(stream, agent_channel)
        except BaseException:
            # Cancelled before the customer was heard (shutdown): the agent is freed.
            await _settled(self.router.abandon(ticket, reason="unanswered"), "unanswered")
            raise
        if status != "ANSWER":
            log.info("callback.unanswered", ticket=ticket.id, status=status)
            await _settled(self.router.abandon(ticket, reason="unanswered"), "unanswered")
            return "customer_unanswered"
        await self.router.connected(assignment)
        log.info("callback.connected", ticket=ticket.id, agent=assignment.agent_id)
        try:
            await self._hangup_of(stream, agent_channel)
        finally:
            # Whatever happens (a cancelled worker at shutdown too), the agent goes
            # to wrap-up: never left on_call with nobody to end it.
            await _settled(self.router.completed(assignment), "completed")
        log.info("callback.completed", ticket=ticket.id, agent=assignment.agent_id)
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
        """Until the agent's channel hangs up: its Hangup event, or (the event lost in
        an AMI reconnect) the channel no longer listed by Asterisk."""
        while True:
            try:
                event = await stream.get(self.check_every)
            except TimeoutError:
                if await self._gone(agent_channel):
                    return
                continue
            if isinstance(event, Hangup) and event.channel.channel == agent_channel:
                return

    async def _gone(self, channel: str) -> bool:
        if not self.ami.connected:
            return False
        try:
            channels = await self.ami.core_show_channels()
        except AmiError:
            return False
        return all(item.channel.channel != channel for item in channels)
