"""The queue node: a caller waits for an agent, is rung through, and comes back.

The step of the call path from a flow to routing: enqueue with the queue's
requirement, hold (music, escalation steps, position notices, the callback
key), dial the reserved agent, and settle the ticket whatever ends the call
(answered and completed, missed and put back, abandoned, overflowed) — never
leaving an agent reserved or on a call. Also ``dial()``, the one Dial every
node uses (transfers too): DIALSTATUS even when the caller hangs up.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any, Final

from ivr.agi.channel import Channel
from ivr.errors import AgiError, ChannelHangup
from ivr.flows import model as m
from ivr.flows import recording as recordings
from ivr.flows.playing import play_files
from ivr.flows.run import Run
from ivr.numbers import callback_dial
from routing.config import QueueConfig
from routing.errors import RoutingError
from routing.types import Assignment, Router, Ticket

__all__ = ["dial", "queue"]


async def queue(run: Run, node: m.QueueNode) -> str | None:
    router = run.engine.router
    if router is None:
        run.event("routing_unavailable", queue=node.queue)
        return node.on_failure
    config = run.engine.queues.get(node.queue) or QueueConfig()
    skills = node.skills or dict(config.skills)
    priority = node.priority or config.priority
    channel = run.channel
    try:
        caller = channel.env.callerid if config.last_agent_first else ""
        ticket = await router.enqueue(
            channel.uniqueid,
            node.queue,
            skills,
            priority,
            strategy=config.strategy,
            customer="" if caller in ("", "unknown") else caller,
            any_skills=dict(config.any_skills) or None,
            # The caller's language is a requirement (agents who list languages
            # must speak it); the site is preferred while the queue says so.
            language=run.language,
            site=run.engine.site,
        )
    except RoutingError as exc:
        run.event("routing_unavailable", queue=node.queue, error=str(exc))
        return node.on_failure
    run.event("queued", queue=node.queue, skills=skills, priority=priority)
    run.last_queue = node.queue
    leg = _Leg()
    try:
        waiter = _Wait(run, config, ticket, node.callback_digit)
        while True:
            assignment = await waiter.next_agent()
            if not isinstance(assignment, Assignment):
                # A callback keeps the call's place in the queue without the caller.
                leg.settled = assignment is _CALLBACK
                return await _left(run, node, waiter, leg)
            leg.assignment, leg.reserved_at = assignment, time.time()
            await _hand_over(run, node, assignment)
            status = await _dial_recorded(run, router, leg, assignment, config)
            run.event("dialled", agent=assignment.agent_id, status=status)
            if leg.connected or status == "ANSWER":
                # Answered: whoever hung up first, the agent's call is over now.
                await _settle(run, "completed", router.completed, assignment)
                leg.settled = True
                if channel.hung_up:
                    raise ChannelHangup("the caller hung up after the agent call", how="hangup")
                return node.next
            if channel.hung_up:  # hung up while the agent's phone rang
                run.event("abandoned", queue=node.queue)
                return None
            leg.assignment = None
            await router.missed(assignment)
    finally:
        if not leg.settled:
            if leg.assignment is not None and leg.connected:
                # Connected, then anything at all (an error, a cancellation)
                # ended the call: the agent's call is over, never left on_call.
                await _settle(run, "completed", router.completed, leg.assignment)
            else:
                # Whatever ended the wait (a hang-up anywhere, an overflow, an
                # error), the call leaves the queue and a reserved agent is freed.
                await _settle(run, leg.outcome, router.abandon, ticket, leg.outcome)


class _Leg:
    """Where one queued call stands with its agent, for whatever ends the node."""

    def __init__(self) -> None:
        self.assignment: Assignment | None = None
        #: The agent answered (AMI's DialEnd, or DIALSTATUS).
        self.connected = False
        #: When the engine learnt of the reservation (wall clock).
        self.reserved_at = 0.0
        #: completed / abandoned / a callback's hand-over is recorded.
        self.settled = False
        #: Why a call that never reached an agent left: the caller, or an overflow.
        self.outcome = "caller"


#: Tries of a settling transition (a Redis blip must not leave an agent held).
_SETTLE_TRIES = 4


async def _settle(run: Run, what: str, action: Callable[..., Awaitable[None]], *args: Any) -> None:
    """Record how a queued call ended; retried, and never cut short by a cancellation
    (the server cancels a handler some time after the hang-up)."""

    async def attempt() -> None:
        delay = 0.05
        for tries in range(1, _SETTLE_TRIES + 1):
            try:
                await action(*args)
            except RoutingError as exc:
                if tries == _SETTLE_TRIES:
                    run.event("settle_failed", what=what, error=str(exc), tries=tries)
                    raise
                await asyncio.sleep(delay)
                delay *= 4
            else:
                return

    task = asyncio.ensure_future(attempt())
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:
        # Cancelled from outside: the transition still runs to its end.
        with contextlib.suppress(RoutingError):
            await task  # reported above through settle_failed
        raise


async def _left(run: Run, node: m.QueueNode, waiter: _Wait, leg: _Leg) -> str | None:
    """Where a call goes that leaves the hold without an agent."""
    if leg.settled:  # a callback: the call keeps its place without the caller
        await play_files(run, await run.sound(_callback_confirmed(run)))
        await run.channel.hangup()
        return None
    if run.channel.hung_up:
        run.event("abandoned", queue=node.queue)
        return None
    run.event("overflow", queue=node.queue, waited=round(waiter.waited()))
    leg.outcome = "overflow"
    return node.on_failure


class _Wait:
    """A call on hold: music, escalation steps over its wait, position notices."""

    def __init__(
        self, run: Run, config: QueueConfig, ticket: Ticket, callback_digit: str | None = None
    ) -> None:
        self.run = run
        self.config = config
        self.ticket = ticket
        #: The key that asks for a callback, offered when the caller's number can be called.
        number = run.channel.env.callerid
        engine = run.engine
        callable_back = engine.callbacks and callback_dial(
            number or "",
            engine.transfer_allow,
            internal=engine.internal_dial,
            external=engine.external_dial,
        )
        # Offered only when this engine places callbacks (AMI) and would dial the number:
        # never a promise that cannot be kept.
        self.callback_digit = callback_digit if callable_back else None
        self.clock = run.engine.hold_clock
        self.started = self.clock.now()
        self.steps = list(config.steps)
        self.announced = self.started
        #: The requirement now (escalation steps change it), for the wait estimate.
        self.skills: dict[str, int] = dict(ticket.skills)
        self.any_skills: dict[str, int] = dict(config.any_skills)

    def waited(self) -> float:
        return self.clock.now() - self.started

    def _deadline(self) -> float | None:
        times = [self.started + step.after for step in self.steps[:1]]
        if self.config.announce_every:
            times.append(self.announced + self.config.announce_every)
        return min(times) if times else None

    async def next_agent(self) -> Held:
        """The assignment, or None when the caller hung up or a step overflowed."""
        router = self.run.engine.router
        assert router is not None
        while True:
            deadline = self._deadline()
            timeout = None if deadline is None else max(0.0, deadline - self.clock.now())
            assignment = await _hold(self.run, router, self.ticket, timeout, self.callback_digit)
            if assignment is _CALLBACK:
                number = self.run.channel.env.callerid
                # The agent gets what a live call's agent gets (IVR_FLOW, IVR_CONTEXT).
                handed = json.dumps({"flow": self.run.flow.id, "context": context_of(self.run)})
                if await router.request_callback(self.ticket, number, handed):
                    self.run.event("callback_requested", queue=self.ticket.queue)
                    return _CALLBACK
                continue  # an agent was reserved meanwhile: the next hold returns them
            if assignment is not None or self.run.channel.hung_up:
                return assignment
            # Whichever fell due first happens first (a clock can jump past both).
            step_at = self.started + self.steps[0].after if self.steps else math.inf
            every = self.config.announce_every
            notice_at = self.announced + every if every else math.inf
            if min(step_at, notice_at) > self.clock.now():
                continue
            if step_at <= notice_at:
                step = self.steps.pop(0)
                if step.overflow:
                    return None
                skills = step.skills if step.skills is not None else self.skills
                await router.requalify(
                    self.ticket,
                    skills,
                    step.priority,
                    step.any_skills,
                    site_only=False if step.all_sites else None,
                )
                self.skills = dict(skills)
                if step.any_skills is not None:
                    self.any_skills = dict(step.any_skills)
                self.run.event("escalated", after=step.after, skills=skills)
            else:
                self.announced = notice_at  # keep the cadence even after a late wake-up
                await self._announce()

    async def _announce(self) -> None:
        router = self.run.engine.router
        assert router is not None
        place = await router.position(self.ticket)
        if place is None:
            return
        # Each of the agents able to take the call frees up once per handle
        # time (recent handle times when the queue has them, the configured
        # one before): the calls ahead are shared among them.
        measured = await router.handle_time(self.ticket.queue)
        serving = await router.staffed(self.skills, self.any_skills or None)
        if serving:
            minutes = max(1, math.ceil(place * (measured or self.config.aht) / serving / 60))
            text = {
                "en": f"You are number {place} in the queue. The wait is about {minutes} minutes.",
                "ko": f"대기 순서는 {place}번째입니다. 약 {minutes}분 기다리셔야 합니다.",
            }
        else:
            minutes = None
            text = {
                "en": f"You are number {place} in the queue.",
                "ko": f"대기 순서는 {place}번째입니다.",
            }
        if self.callback_digit:
            key = self.callback_digit
            text = {
                "en": text["en"] + f" To be called back without losing your place, press {key}.",
                "ko": text["ko"] + f" 순서를 유지한 채 전화를 다시 받으시려면 {key}번을 누르세요.",
            }
        self.run.event("position", place=place, minutes=minutes, agents=serving)
        await self.run.channel.set_music(False)
        await play_files(self.run, await self.run.sound(text))


#: What the hold returns when the caller pressed the callback key.
class _Asked(enum.Enum):
    """What the hold returns when the caller pressed the callback key."""

    CALLBACK = "callback"


_CALLBACK: Final = _Asked.CALLBACK
#: What the hold ends with: an agent, the callback key, or nothing (hung up, a step).
Held = Assignment | _Asked | None


def _callback_confirmed(run: Run) -> dict[str, str]:
    spoken = " ".join(run.channel.env.callerid.lstrip("+"))
    return {
        "en": f"We will call you back at {spoken} when an agent is free. Goodbye.",
        "ko": f"상담원이 연결되면 {spoken} 번호로 전화 드리겠습니다. 감사합니다.",
    }


async def _hold(
    run: Run, router: Router, ticket: Ticket, timeout: float | None = None, key: str | None = None
) -> Held:
    """Music on hold until an agent is reserved, the caller hangs up, ``timeout``, or
    (when ``key`` is offered) the caller presses it: then :data:`_CALLBACK`.

    Keys are only heard while an AGI command reads them, so with a callback key
    the hold listens in slices of WAIT FOR DIGIT (music goes on meanwhile); a
    reservation waits for the slice to end (at most a second) before the dial.
    """
    channel = run.channel
    await channel.set_music(True)
    hangup = asyncio.ensure_future(channel.wait_for_hangup())
    waiting = asyncio.ensure_future(router.wait(ticket))
    stop = asyncio.Event()
    listening = asyncio.ensure_future(_listen_for(channel, key, stop)) if key else None
    watched: set[asyncio.Future[Any]] = (
        {hangup, waiting} if listening is None else {waiting, listening}
    )
    try:
        await run.engine.hold_clock.wait(watched, timeout)
    finally:
        hangup.cancel()
        stop.set()
        if listening is not None:
            # A command in flight is never cancelled (its reply would be lost):
            # the slice ends by itself.
            with contextlib.suppress(ChannelHangup, AgiError):
                await listening
        if not waiting.done():
            waiting.cancel()
    pressed = (
        listening is not None
        and listening.done()
        and not listening.cancelled()
        and listening.exception() is None
        and listening.result()
    )
    if pressed and not waiting.done():  # an agent reserved meanwhile wins
        await channel.set_music(False)
        return _CALLBACK
    if channel.hung_up or not waiting.done() or waiting.cancelled():
        return None
    await channel.set_music(False)
    return waiting.result()


async def _listen_for(channel: Channel, key: str, stop: asyncio.Event) -> bool:
    """WAIT FOR DIGIT in one-second slices until ``key`` comes (True) or ``stop`` is set."""
    while not stop.is_set():
        if await channel.wait_for_digit(1000) == key:
            return True
    return False


async def _dial_agent(
    run: Run, router: Router, leg: _Leg, assignment: Assignment, config: QueueConfig
) -> str | None:
    """Ring the reserved agent; they are ``on_call`` from the answer when AMI tells it
    (the tracker), else from DIALSTATUS. ``g``: the caller comes back to the flow
    (the survey) when the agent hangs up. ``leg.connected`` says whether they answered,
    whatever the order in which Asterisk reports the end of the call."""
    ring, options = config.ring_timeout, "g" + config.dial_options
    tracker = run.engine.answers
    if tracker is None:
        status = await dial(run, assignment.endpoint, ring, options)
        if status == "ANSWER":
            leg.connected = True
            # Without AMI the answer is learnt when Dial returns, after the talk:
            # ANSWEREDTIME (the talk's seconds) dates it, so ASA is the wait alone.
            talk_began = await _answered_at(run)
            # Never before the reservation (a clock that jumped, a wrong ANSWEREDTIME).
            at = None if talk_began is None else max(talk_began, leg.reserved_at)
            await router.connected(assignment, at=at)
        return status

    async def on_answer(answered: asyncio.Future[str]) -> None:
        if await answered == "ANSWER":
            leg.connected = True
            await router.connected(assignment)

    with tracker.expect(run.channel.env.channel, assignment.endpoint) as answered:
        watcher = asyncio.ensure_future(on_answer(answered))
        try:
            status = await dial(run, assignment.endpoint, ring, options)
        finally:
            if not answered.done():
                watcher.cancel()  # no answer heard: nothing is in flight
            # else the connection is being recorded: let it finish, never cut it.
            try:
                await watcher
            except asyncio.CancelledError:
                if not watcher.cancelled():
                    raise  # this call's own task is being cancelled
                # else the watcher we cancelled: no answer was heard
            except RoutingError as exc:
                # Reported, and mended: completed() connects an unrecorded answer first.
                run.event("connect_failed", agent=assignment.agent_id, error=str(exc))
    if status == "ANSWER" and not leg.connected:
        leg.connected = True
        await router.connected(assignment)
    return status


async def _dial_recorded(
    run: Run, router: Router, leg: _Leg, assignment: Assignment, config: QueueConfig
) -> str | None:
    """Dial the agent, recorded from the answer to the end when the queue records."""
    recording = await recordings.start(run, run.last_queue, assignment.agent_id, config)
    if recording is None:
        return await _dial_agent(run, router, leg, assignment, config)
    status: str | None = None
    try:
        status = await _dial_agent(run, router, leg, assignment, config)
    finally:
        answered = leg.connected or status == "ANSWER"
        await recordings.stop(run, recording, answered=answered)
    return status


async def _answered_at(run: Run) -> float | None:
    """When the agent answered, from Dial's ANSWEREDTIME; None when Asterisk did not say."""
    try:
        talked = await run.channel.get_variable("ANSWEREDTIME")
    except AgiError:
        return None
    try:
        seconds = float(talked or "")
    except ValueError:
        return None
    return time.time() - seconds if 0 <= seconds < 86400 else None


#: Variables handed to the agent's channel; caller-entered values, never sensitive ones.
_HANDOFF_BYTES = 900


def _shown(run: Run) -> dict[str, Any]:
    """The call's variables an agent may see: never sensitive ones."""
    return {
        name: value
        for name, value in run.variables.items()
        if name not in run.sensitive and name not in ("call",) and not name.startswith("_")
    }


def context_of(run: Run) -> str:
    """What the caller chose, said and entered, as the JSON the agent's leg gets."""
    shown = _shown(run)
    context = _utf8(json.dumps(shown, ensure_ascii=False, separators=(",", ":"), default=str))
    if len(context.encode()) > _HANDOFF_BYTES:
        caller = json.dumps({"caller": shown.get("caller")}, ensure_ascii=False, default=str)
        context = _utf8(caller)
        if len(context.encode()) > _HANDOFF_BYTES:
            context = "{}"  # not even the caller's name fits one channel variable
    return context


def _utf8(text: str) -> str:
    """``text`` as Asterisk can take it: a lone surrogate (from an escaped ``\udc80``
    in an HTTP reply, say) becomes "?" instead of failing the hand-over."""
    return text.encode("utf-8", "replace").decode("utf-8")


async def _hand_over(run: Run, node: m.QueueNode, assignment: Assignment) -> None:
    """What the caller chose, said and entered goes to the agent: channel variables
    inherited by the agent's leg (``__`` prefix) and an event for the console."""
    shown = _shown(run)
    context = context_of(run)
    channel = run.channel
    with contextlib.suppress(AgiError):
        await channel.set_variable("__IVR_FLOW", run.flow.id)
        await channel.set_variable("__IVR_QUEUE", node.queue)
        await channel.set_variable("__IVR_CONTEXT", context)
    run.event("handed_over", agent=assignment.agent_id, context=shown)
    router = run.engine.router
    if router is not None:  # for the console: what the agent is about to hear about
        with contextlib.suppress(RoutingError):
            await router.note(
                "handoff",
                call=run.channel.uniqueid,
                agent=assignment.agent_id,
                queue=node.queue,
                context=context,
            )


async def dial(run: Run, destination: str, timeout: int, *options: str) -> str | None:
    """Dial; DIALSTATUS even when the caller hangs up during the call."""
    with contextlib.suppress(ChannelHangup):  # GET VARIABLE still works on a dead channel
        await run.channel.exec("Dial", destination, str(timeout), *options)
    try:
        return await run.channel.get_variable("DIALSTATUS")
    except (ChannelHangup, AgiError):
        return None
