"""The console's login, logout, wallboard, calls and audit pages.

The wallboard and the calls page are rendered from the routing store when
asked, and carry the containers the live data fills over the WebSocket
(``#wallboard`` and ``#calls``, ``data-ws="/console/ws"``, with
``/console/static/live.js``): without it they are a snapshot.
"""

from __future__ import annotations

import asyncio
import csv
import io
import time
from datetime import datetime
from typing import Any, Final
from urllib.parse import urlencode

import structlog
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from ivr.console.access import refuse, require, same_origin, user_of
from ivr.console.context import COOKIE, console_of
from ivr.console.floor import floor_of
from ivr.console.roles import User
from ivr.console.sessions import KIOSK_LIFETIME
from ivr.console.users import hash_password, verify_unknown
from ivr.errors import ConfigError
from routing.errors import RoutingError
from routing.redis.core import decode

__all__ = ["routes"]

log = structlog.get_logger("ivr.console")

#: Audit entries read at most for one page or export (newest first).
AUDIT_SCAN: Final = 20_000
AUDIT_PAGE: Final = 200
AUDIT_EXPORT: Final = 10_000


def _address(request: Request) -> str:
    return request.client.host if request.client else ""


def _next(raw: object) -> str:
    """Where to go after the login: only a console page (never another site)."""
    target = raw if isinstance(raw, str) else ""
    if not target.startswith("/console") or target.startswith("//") or "\\" in target:
        return "/console/"
    return target


async def login_page(request: Request) -> Response:
    console = console_of(request)
    target = _next(request.query_params.get("next"))
    if await user_of(request) is not None:
        return RedirectResponse(target, status_code=303)
    return console.render(request, "login.html", {"next": target, "error": ""})


async def login(request: Request) -> Response:
    console = console_of(request)
    if not same_origin(request):
        return await refuse(request, 403, "a login form from another site is refused")
    form = await request.form()
    name, password = str(form.get("name") or "").strip(), str(form.get("password") or "")
    target = _next(form.get("next"))
    address = _address(request)

    def again(status: int, error: str, headers: dict[str, str] | None = None) -> Response:
        context = {"next": target, "error": error, "name": name[:64]}
        return console.render(request, "login.html", context, status=status, headers=headers)

    wait = await console.limiter.retry_after(name, address)
    if wait:
        log.warning("console.login_limited", user=name[:64], address=address)
        minutes = max(1, round(wait / 60))
        return again(
            429,
            f"Too many failed logins; try again in about {minutes} minute(s).",
            {"Retry-After": str(wait)},
        )
    try:
        record = console.users.get(name) if name else None
    except ConfigError as exc:
        log.error("console.users_file", error=str(exc))  # noqa: TRY400 - no trace needed
        return again(503, "The users file cannot be read; the engine's log says why.")
    if record is not None and not record.disabled:
        ok = await asyncio.to_thread(record.verify, password)
    else:
        ok = await asyncio.to_thread(verify_unknown, password)
    if record is None or record.disabled or not ok:
        await console.limiter.failed(name, address)
        await console.router.audit(name[:64] or "(none)", "console.login.failed", address=address)
        return again(401, "Wrong name or password.")
    await console.limiter.succeeded(name)
    if record.needs_rehash:
        fresh = await asyncio.to_thread(hash_password, password)
        record = console.users.change(name, password=fresh)
    old = request.cookies.get(COOKIE)
    if old:  # never keep a session id from before the login
        await console.sessions.end(old)
    lifetime = KIOSK_LIFETIME if record.role == "viewer" else None
    session = await console.sessions.create(name, record.stamp, address, lifetime=lifetime)
    await console.router.audit(name, "console.login", address=address)
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        COOKIE,
        session.id,
        max_age=int(session.lifetime),
        path="/",
        secure=console.secure(request),
        httponly=True,
        samesite="strict",
    )
    return response


@require("viewer")
async def logout(request: Request, user: User) -> Response:
    console = console_of(request)
    session_id = request.cookies.get(COOKIE)
    if session_id:
        await console.sessions.end(session_id)
    await console.router.audit(user.name, "console.logout", address=_address(request))
    response = RedirectResponse("/console/login", status_code=303)
    response.delete_cookie(
        COOKIE, path="/", secure=console.secure(request), httponly=True, samesite="strict"
    )
    return response


async def _flash(request: Request) -> None:
    session = getattr(request.state, "session", None)
    if session is not None:
        request.state.flash = await console_of(request).sessions.take_flash(session)


@require("viewer")
async def wallboard(request: Request, user: User) -> Response:
    console = console_of(request)
    await _flash(request)
    floor = await floor_of(console.router, user)
    kiosk = user.role == "viewer" or request.query_params.get("kiosk") == "1"
    context = {"floor": floor, "counts": floor.counts(), "kiosk": kiosk, "now": time.time()}
    return console.render(request, "wallboard.html", context)


@require("supervisor")
async def calls(request: Request, user: User) -> Response:
    console = console_of(request)
    await _flash(request)
    floor = await floor_of(console.router, user)
    return console.render(request, "calls.html", {"floor": floor})


def _when(entry_id: str) -> str:
    millis = int(entry_id.partition("-")[0] or 0)
    return datetime.fromtimestamp(millis / 1000).astimezone().isoformat(timespec="seconds")


def _day(raw: str, end: bool) -> int | None:
    """A stream id bound (ms) from YYYY-MM-DD (local time); None when empty or bad."""
    try:
        day = datetime.strptime(raw, "%Y-%m-%d").astimezone()
    except ValueError:
        return None
    return int(day.timestamp() * 1000) + (86_400_000 - 1 if end else 0)


class AuditQuery:
    """The audit page's filters, from the query string."""

    def __init__(self, params: Any) -> None:
        self.actor = str(params.get("actor") or "").strip()[:64]
        self.action = str(params.get("action") or "").strip()[:64]
        self.text = str(params.get("q") or "").strip()[:100]
        self.since = str(params.get("since") or "").strip()[:10]
        self.until = str(params.get("until") or "").strip()[:10]
        self.problems: list[str] = []
        for key in ("since", "until"):
            if getattr(self, key) and _day(getattr(self, key), False) is None:
                self.problems.append(f"{key}: write a day as YYYY-MM-DD")

    def matches(self, entry: dict[str, str]) -> bool:
        if self.actor and entry.get("actor") != self.actor:
            return False
        if self.action and not entry.get("action", "").startswith(self.action):
            return False
        return not self.text or any(self.text.lower() in v.lower() for v in entry.values())

    def as_query(self) -> str:
        pairs = {"actor": self.actor, "action": self.action, "q": self.text}
        pairs |= {"since": self.since, "until": self.until}
        return urlencode({k: v for k, v in pairs.items() if v})


async def _audit_entries(request: Request, query: AuditQuery, limit: int) -> list[dict[str, str]]:
    """Matching audit entries, newest first (at most ``limit``; AUDIT_SCAN read)."""
    router = console_of(request).router
    high = _day(query.until, True) if query.until else None
    low = _day(query.since, False) if query.since else None
    top, bottom = (str(high) if high else "+"), (str(low) if low else "-")
    found: list[dict[str, str]] = []
    scanned = 0
    while len(found) < limit and scanned < AUDIT_SCAN:
        batch = await router.read(
            router.redis.xrevrange(router.names.audit, max=top, min=bottom, count=1000)
        )
        if not batch:
            break
        for key, fields in batch:
            entry = {"id": decode(key), **{decode(k): decode(v) for k, v in fields.items()}}
            if query.matches(entry):
                entry["at"] = _when(entry["id"])
                found.append(entry)
                if len(found) >= limit:
                    break
        scanned += len(batch)
        top = "(" + decode(batch[-1][0])  # exclusive: older than the last one read
    return found


_MAIN_FIELDS: Final = ("id", "at", "actor", "action", "agent", "queue", "address")


def _details(entry: dict[str, str]) -> str:
    return " ".join(f"{k}={v}" for k, v in entry.items() if k not in _MAIN_FIELDS)


@require("admin")
async def audit(request: Request) -> Response:
    console = console_of(request)
    query = AuditQuery(request.query_params)
    if query.problems:
        context = {"query": query, "entries": [], "details": _details}
        return console.render(request, "audit.html", context, status=422)
    entries = await _audit_entries(request, query, AUDIT_PAGE)
    context = {"query": query, "entries": entries, "details": _details, "limit": AUDIT_PAGE}
    return console.render(request, "audit.html", context)


def _cell(value: str) -> str:
    """A CSV cell a spreadsheet will not run as a formula."""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


@require("admin")
async def audit_csv(request: Request, user: User) -> Response:
    console = console_of(request)
    query = AuditQuery(request.query_params)
    if query.problems:
        return await refuse(request, 422, "; ".join(query.problems), user)
    entries = await _audit_entries(request, query, AUDIT_EXPORT)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["time", "actor", "action", "agent", "queue", "address", "details"])
    for e in entries:
        row = [e["at"], e.get("actor", ""), e.get("action", ""), e.get("agent", "")]
        row += [e.get("queue", ""), e.get("address", ""), _details(e)]
        writer.writerow([_cell(v) for v in row])
    try:
        await console.router.audit(user.name, "audit.export", rows=str(len(entries)))
    except RoutingError as exc:
        log.error("console.audit_failed", error=str(exc))  # noqa: TRY400
    stamp = datetime.now().astimezone().strftime("%Y%m%d-%H%M%S")
    return Response(
        out.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="audit-{stamp}.csv"'},
    )


def routes() -> list[BaseRoute]:
    """The pages' routes, under /console."""
    return [
        Route("/login", login_page, methods=["GET"]),
        Route("/login", login, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
        Route("/", wallboard, methods=["GET"]),
        Route("/calls", calls, methods=["GET"]),
        Route("/audit", audit, methods=["GET"]),
        Route("/audit.csv", audit_csv, methods=["GET"]),
    ]
