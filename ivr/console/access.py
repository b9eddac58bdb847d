"""Who is asking, and may they: the console's session check and role guard.

:func:`user_of` reads the ``ivr_session`` cookie (pages, forms, fetches and
WebSockets alike) and answers the user it belongs to, re-read from the users
file, or None: no cookie, an expired or ended session, a disabled user, a
password changed since the login, or a WebSocket opened from another origin
(a page on another port of the same host is the same *site*, so SameSite
does not stop it; the Origin check does).

:func:`require` guards a Starlette endpoint (HTTP or WebSocket)::

    @require("supervisor")
    async def page(request: Request) -> Response:       # request.state.user is set
        ...

    @require("admin")
    async def save(request: Request, user: User) -> Response:   # or given as ``user``
        ...

No session: a page asked by a browser is redirected to the login (303), any
other request gets 401 JSON; a WebSocket is accepted and closed with 4401. A
role that falls short: 403 with the reason (WebSocket: 4403). A request that
changes state (any method but GET, HEAD and OPTIONS) must also carry the
session's CSRF token, as the form field ``csrf`` or the ``X-CSRF-Token``
header: 403 without it. Refusals of a known user are audited.
"""

from __future__ import annotations

import functools
import hmac
import inspect
from collections.abc import Awaitable, Callable
from typing import Any, Final, TypeVar
from urllib.parse import quote, urlsplit

import structlog
from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.websockets import WebSocket

from ivr.console.context import COOKIE, SCOPE_KEY, Console, console_of
from ivr.console.roles import RANK, Role, Scope, User, agent_queues, agent_team
from ivr.console.users import UserRecord
from ivr.errors import ConfigError
from routing.errors import RoutingError

__all__ = [
    "Role",
    "Scope",
    "User",
    "agent_queues",
    "agent_team",
    "check_csrf",
    "refuse",
    "require",
    "same_origin",
    "user_of",
    "wants_html",
]

log = structlog.get_logger("ivr.console.access")

SAFE_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS"})

E = TypeVar("E", bound=Callable[..., Awaitable[Any]])
_UNSET: Final = object()


def same_origin(conn: HTTPConnection) -> bool:
    """True when the request names no Origin, or its own (scheme, host and port)."""
    origin = conn.headers.get("origin")
    if origin is None:
        return True
    parts = urlsplit(origin)
    own = conn.url
    schemes = {"http": "http", "ws": "http", "https": "https", "wss": "https"}
    return (
        schemes.get(parts.scheme) == schemes.get(own.scheme)
        and parts.netloc.lower() == (conn.headers.get("host") or own.netloc).lower()
    )


async def user_of(conn: HTTPConnection) -> User | None:
    """The user whose session cookie ``conn`` carries (browser, incl. WebSocket), else None."""
    known = getattr(conn.state, "user", _UNSET)
    if known is None or isinstance(known, User):  # asked before in this request
        return known
    conn.state.user = None
    console = conn.scope.get(SCOPE_KEY)
    session_id = conn.cookies.get(COOKIE)
    if not isinstance(console, Console) or not session_id:
        return None
    if conn.scope["type"] == "websocket" and not same_origin(conn):
        return None
    session = await console.sessions.get(session_id)
    record = await _record(console, session.user) if session is not None else None
    if session is None or record is None or record.disabled:
        return None
    if not hmac.compare_digest(record.stamp, session.stamp):
        return None  # the password changed since this login
    conn.state.session = session
    conn.state.user = record.user
    return record.user


async def _record(console: Console, name: str) -> UserRecord | None:
    try:
        return console.users.get(name)
    except ConfigError as exc:
        log.error("console.users_file", error=str(exc))  # noqa: TRY400 - no trace needed
        return None


def wants_html(conn: HTTPConnection) -> bool:
    """A browser's page or form (or htmx), as opposed to a script's fetch."""
    return "text/html" in conn.headers.get("accept", "") or "hx-request" in conn.headers


async def refuse(request: Request, status: int, message: str, user: User | None = None) -> Response:
    """A refusal as the asker reads it (a page for a browser, else JSON); audited when
    the user is known."""
    if user is not None:
        console = console_of(request)
        try:
            await console.router.audit(
                user.name,
                "refused",
                method=request.method,
                path=request.url.path,
                status=str(status),
                reason=message[:200],
                address=request.client.host if request.client else "",
            )
        except RoutingError as exc:
            log.error("console.audit_failed", error=str(exc))  # noqa: TRY400
    if wants_html(request):
        return console_of(request).render(
            request, "error.html", {"status": status, "message": message}, status=status
        )
    return JSONResponse({"error": message}, status_code=status)


async def check_csrf(request: Request) -> bool:
    """True when the request carries its session's CSRF token (header or form field)."""
    session = getattr(request.state, "session", None)
    if session is None:
        return False
    token = request.headers.get("x-csrf-token")
    if token is None and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        value = (await request.form()).get("csrf")
        token = value if isinstance(value, str) else None
    return token is not None and hmac.compare_digest(token.encode(), session.csrf.encode())


def _login_redirect(request: Request) -> Response:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/console/login?next={quote(target, safe='/')}", status_code=303)


def _not_logged_in(request: Request) -> Response:
    if "hx-request" in request.headers:  # htmx follows this header, not a 303
        return Response("log in first", status_code=401, headers={"HX-Redirect": "/console/login"})
    if wants_html(request):
        return _login_redirect(request)
    return JSONResponse({"error": "log in first: POST /console/login"}, status_code=401)


async def _guard_http(request: Request, role: Role) -> tuple[User | None, Response | None]:
    try:
        user = await user_of(request)
    except RoutingError:
        return None, JSONResponse(
            {"error": "the routing store (Redis) does not answer; try again shortly"},
            status_code=503,
        )
    if user is None:
        return None, _not_logged_in(request)
    if not user.may(role):
        message = f"{user.name} is {user.role}; this needs the {role} role"
        return user, await refuse(request, 403, message, user)
    if request.method not in SAFE_METHODS and not await check_csrf(request):
        message = "the CSRF token is missing or wrong; reload the page and try again"
        return user, await refuse(request, 403, message, user)
    return user, None


async def _guard_websocket(websocket: WebSocket, role: Role) -> User | None:
    user = await user_of(websocket)
    if user is None or not user.may(role):
        await websocket.accept()
        if user is None:
            await websocket.close(4401, "log in first: /console/login")
        else:
            await websocket.close(4403, f"{user.name} is {user.role}; this needs {role}")
        return None
    return user


def require(role: Role) -> Callable[[E], E]:
    """A guard for a Starlette endpoint: the user logged in, with at least ``role``."""
    if role not in RANK:
        raise ValueError(f"role {role!r} is unknown; allowed: {', '.join(RANK)}")

    def decorate(endpoint: E) -> E:
        wants_user = "user" in inspect.signature(endpoint).parameters

        @functools.wraps(endpoint)
        async def guarded(*args: Any) -> Any:
            conn = args[-1]  # a bound method gets (self, request)
            extra = {}
            if isinstance(conn, WebSocket):
                user = await _guard_websocket(conn, role)
                if user is None:
                    return None
            else:
                user, refusal = await _guard_http(conn, role)
                if refusal is not None:
                    return refusal
            if wants_user:
                extra["user"] = user
            return await endpoint(*args, **extra)

        return guarded  # type: ignore[return-value]

    return decorate
