"""The calls page's abandoned calls: who gave up waiting, and a callback from the list.

The list is read from the routing events (ROUTING.md's stream): a ticket that
ended ``abandoned`` (the caller hung up while waiting) or ``unanswered`` (a
callback the customer did not answer), with its caller, queue and wait from
its ``enqueued`` event, and what happened since (the same number called
again, or a callback from here, and how it went). A supervisor sees the
queues of their view and calls back only there.

A callback goes through the existing callback service: the call is queued
again as a callback (``RedisRouter.request_callback``: it keeps its place in
the queue with nobody on the line), and when routing reserves an agent the
engine's callback worker (:class:`ivr.centre.callbacks.CallbackWorker`) rings
the agent, then the customer. Routing's ``request_callback`` turns a
*waiting* ticket into a callback; a new ticket can be reserved by its very
enqueue when an agent is free. So the ticket is first queued needing a skill
no agent has (:data:`HOLD`), made a callback, then given the queue's real
requirement (``requalify``): no agent is ever reserved for a caller who is not
on the line. The call id is ``callback:<the abandoned ticket>``, so asking
twice while the first callback is live is the same callback. Only numbers on
the allow-list are called (:func:`ivr.numbers.callback_dial`, the transfers'
rule), and only by an engine with AMI (it places the calls).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any, Final

import structlog
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from ivr.config import Settings
from ivr.console.access import refuse, require
from ivr.console.context import console_of
from ivr.console.roles import User
from ivr.numbers import callback_dial
from routing.config import QueueConfig
from routing.errors import RoutingError
from routing.redis import RedisRouter

__all__ = ["HOLD", "Abandoned", "abandoned_calls", "routes"]

log = structlog.get_logger("ivr.console.abandoned")

#: A skill no agent has: the requirement a console callback is queued with until it
#: is a callback (see the module's docstring).
HOLD: Final = {"ivr.console.callback-pending": 10}
#: How far back the list reads, and how many calls it shows at most.
HOURS: Final = 24
SHOWN: Final = 200
#: Seconds one reading of the events serves every list asked meanwhile (each calls
#: page asks every 30 s; a callback from here reads afresh).
FRESH: Final = 5.0
_ENDS: Final = {"abandoned": "hung up while waiting", "unanswered": "did not answer a callback"}


@dataclass(slots=True)
class Abandoned:
    """A call that left a queue without an agent, as the console lists it."""

    ticket: str
    queue: str
    caller: str
    at: float  # when it ended
    ended: str  # "abandoned" or "unanswered"
    waited: float | None = None
    priority: int = 0
    language: str = ""
    site: str = ""
    skills: dict[str, int] = field(default_factory=dict)
    #: What happened since: the caller called again, or a callback from here.
    since: str = ""
    #: A callback from here is queued or under way (asking again changes nothing).
    pending: bool = False
    #: A callback from here reached the caller.
    answered: bool = False

    @property
    def why(self) -> str:
        return _ENDS.get(self.ended, self.ended)


def _skills(raw: str) -> dict[str, int]:
    try:
        data = json.loads(raw) if raw else {}
    except ValueError:
        return {}
    if not isinstance(data, dict):
        return {}
    return {str(k): int(v) for k, v in data.items() if isinstance(v, int)}


def _int(raw: str | None) -> int:
    try:
        return int(raw or 0)
    except ValueError:
        return 0


def _clock(at: float) -> str:
    return time.strftime("%H:%M", time.localtime(at))


def _span(seconds: float | None) -> str:
    """A wait for people: 45 s, 3 min 05 s, 1 h 02 min."""
    if seconds is None:
        return "—"
    whole = round(seconds)
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        return f"{whole // 60} min {whole % 60:02d} s"
    return f"{whole // 3600} h {whole % 3600 // 60:02d} min"


def fold(events: list[tuple[float, dict[str, str]]]) -> list[Abandoned]:
    """The abandoned calls of ``events`` (oldest first), newest first."""
    enqueued: dict[str, tuple[float, dict[str, str]]] = {}
    found: dict[str, Abandoned] = {}
    by_caller: dict[str, list[Abandoned]] = {}
    callbacks: dict[str, Abandoned] = {}  # a console callback's ticket -> its call
    for at, event in events:
        kind, ticket = event.get("event", ""), event.get("ticket", "")
        if kind == "enqueued":
            enqueued[ticket] = (at, event)
            call, caller = event.get("call", ""), event.get("caller", "")
            origin = (
                found.get(call.removeprefix("callback:")) if call.startswith("callback:") else None
            )
            if origin is not None:
                callbacks[ticket] = origin
                origin.since, origin.pending = f"callback asked for at {_clock(at)}", True
            elif caller:
                for earlier in by_caller.get(caller, []):
                    if not earlier.pending:
                        earlier.since = f"called again at {_clock(at)}"
            continue
        origin = callbacks.get(ticket)
        if origin is not None:  # how a console callback went
            step = {
                "callback_requested": "callback queued",
                "reserved": "callback: ringing an agent",
                "missed": "callback: the agent did not answer; queued again",
                "connected": "called back",
                "completed": "called back",
                "unanswered": "called back: no answer",
                "abandoned": "callback ended",
            }.get(kind)
            if step is not None:
                origin.since = f"{step} at {_clock(at)}"
                origin.pending = kind in ("callback_requested", "reserved", "missed")
                origin.answered = kind in ("connected", "completed")
            continue
        if kind not in _ENDS:
            continue
        start = enqueued.get(ticket)
        first = start[1] if start else {}
        caller = first.get("caller", "")
        ended = Abandoned(
            ticket=ticket,
            queue=event.get("queue", "") or first.get("queue", ""),
            caller=caller,
            at=at,
            ended=kind,
            waited=max(0.0, at - start[0]) if start else None,
            priority=_int(first.get("priority")),
            language=first.get("language", ""),
            site=event.get("site", "") or first.get("site", ""),
            skills=_skills(first.get("skills", "")),
        )
        found[ticket] = ended
        if caller:
            by_caller.setdefault(caller, []).append(ended)
    return sorted(found.values(), key=lambda c: c.at, reverse=True)


async def abandoned_calls(router: RedisRouter, hours: float = HOURS) -> list[Abandoned]:
    """The calls abandoned in the last ``hours``, newest first."""
    return fold(await router.events(router.clock() - hours * 3600))


class AbandonedPages:
    """The list (a fragment of the calls page, or a page of its own) and the callback."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.allow = tuple(p.strip() for p in settings.transfer_allow.split(",") if p.strip())
        self._read: tuple[float, list[Abandoned]] | None = None

    async def _calls(self, router: RedisRouter, *, fresh: bool = False) -> list[Abandoned]:
        """The abandoned calls, read again when older than :data:`FRESH` or when asked."""
        now = time.monotonic()
        if fresh or self._read is None or now - self._read[0] > FRESH:
            self._read = (now, await abandoned_calls(router))
        return self._read[1]

    def callable_back(self, number: str) -> bool:
        return (
            callback_dial(
                number,
                self.allow,
                internal=self.settings.internal_dial,
                external=self.settings.external_dial,
            )
            is not None
        )

    async def _list(
        self, request: Request, user: User, *, note: str = "", error: str = "", status: int = 200
    ) -> Response:
        """The list: the calls page's fragment (htmx), or a page of its own."""
        console = console_of(request)
        fragment = "hx-request" in request.headers
        session = getattr(request.state, "session", None)
        if session is not None and not fragment:
            request.state.flash = await console.sessions.take_flash(session)
        calls = [c for c in await self._calls(console.router) if user.sees_queue(c.queue)]
        context = {
            "calls": calls[:SHOWN],
            "more": max(0, len(calls) - SHOWN),
            "hours": HOURS,
            "callable": self.callable_back,
            "ami": console.supervisors is not None,
            "clock": _clock,
            "span": _span,
            "note": note,
            "error": error,
        }
        template = "abandoned_list.html" if fragment else "abandoned.html"
        return console.render(request, template, context, status=status)

    @require("supervisor")
    async def page(self, request: Request, user: User) -> Response:
        return await self._list(request, user)

    async def _refused(self, request: Request, user: User, status: int, message: str) -> Response:
        """A refusal, audited: in the list for htmx, else as every console refusal."""
        if "hx-request" not in request.headers:
            return await refuse(request, status, message, user)
        try:
            await console_of(request).router.audit(
                user.name, "refused", method=request.method, path=request.url.path,
                status=str(status), reason=message[:200],
                address=request.client.host if request.client else "",
            )  # fmt: skip
        except RoutingError as exc:
            log.error("console.audit_failed", error=str(exc))  # noqa: TRY400
        return await self._list(request, user, error=message, status=status)

    def _refusal(
        self, found: Abandoned | None, ticket: str, user: User, *, ami: bool
    ) -> tuple[int, str] | None:
        """Why ``user`` may not call ``found`` back (status, message); None: they may."""
        if found is None:
            return 404, f"no abandoned call {ticket!r} in the last {HOURS} hours"
        if not user.sees_queue(found.queue):
            view = user.scope.describe()
            return 403, f"queue {found.queue!r} is outside {user.name}'s view ({view})"
        if not ami:
            return 503, (
                "callbacks are placed over AMI, and this engine has none: set IVR_AMI_USER "
                "and IVR_AMI_SECRET"
            )
        if not found.caller or not self.callable_back(found.caller):
            return 422, (
                f"{found.caller or 'an unknown number'} may not be called: only numbers on "
                "the allow-list (IVR_TRANSFER_ALLOW) are, as for transfers"
            )
        if found.pending:
            return 409, f"a callback of this call is under way ({found.since})"
        return None

    @require("supervisor")
    async def call_back(self, request: Request, user: User) -> Response:
        console = console_of(request)
        ticket = request.path_params["ticket"]
        calls = await self._calls(console.router, fresh=True)
        found = next((c for c in calls if c.ticket == ticket), None)
        refusal = self._refusal(found, ticket, user, ami=console.supervisors is not None)
        if refusal is not None or found is None:
            status, message = refusal or (404, "")
            return await self._refused(request, user, status, message)
        try:
            done = await _request(console.router, found, user)
        except RoutingError as exc:
            return await self._refused(
                request, user, 503, f"the routing store does not answer: {exc}"
            )
        if not done:
            return await self._refused(request, user, 409, "a callback of this call is under way")
        await console.router.audit(
            user.name,
            "callback.request",
            queue=found.queue,
            ticket=found.ticket,
            address=request.client.host if request.client else "",
        )
        log.info("console.callback_requested", queue=found.queue, ticket=found.ticket, by=user.name)
        self._read = None  # the list shows the callback at once
        note = (
            f"Callback of {found.caller} queued in {found.queue}: an agent is rung first, "
            "then the caller."
        )
        if "hx-request" in request.headers:
            return await self._list(request, user, note=note)
        session = getattr(request.state, "session", None)
        if session is not None:
            await console.sessions.flash(session, note)
        return RedirectResponse("/console/calls/abandoned", status_code=303)


async def _request(router: RedisRouter, call: Abandoned, user: User) -> bool:
    """Queue ``call`` again as a callback; False when one is under way already."""
    queues = await router.load_queues()
    config = queues.get(call.queue) or QueueConfig()
    skills = call.skills or dict(config.skills)
    ticket = await router.enqueue(
        f"callback:{call.ticket}",
        call.queue,
        HOLD,
        call.priority,
        strategy=config.strategy,
        customer=call.caller,
        language=call.language or None,
        site=call.site,
    )
    context: dict[str, Any] = {
        "caller": {"number": call.caller},
        "callback": {"by": user.name, "abandoned": call.ticket},
    }
    handed = json.dumps({"flow": "", "context": json.dumps(context)})
    try:
        if not await router.request_callback(ticket, call.caller, handed):
            return False
    finally:
        router.forget((ticket.group, ticket.id))  # nobody on this engine waits for it
    await router.requalify(
        ticket, skills, call.priority, any_skills=dict(config.any_skills) or None
    )
    return True


def routes(settings: Settings) -> list[BaseRoute]:
    """The abandoned calls' routes, under /console."""
    pages = AbandonedPages(settings)
    return [
        Route("/calls/abandoned", pages.page, methods=["GET"]),
        Route("/calls/abandoned/{ticket}/callback", pages.call_back, methods=["POST"]),
    ]
