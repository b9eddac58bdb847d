"""What every console request needs (store, users, sessions, templates), found on the request.

:class:`Console` is built once per app by :func:`ivr.console.console_routes`
and put into each console request's ASGI scope (``scope["ivr.console"]``) by
:class:`WithConsole`, which wraps every console route, the live-data and
reports routes included: so :func:`ivr.console.access.user_of` needs nothing
but the connection.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from starlette.requests import HTTPConnection, Request
from starlette.responses import Response
from starlette.templating import Jinja2Templates
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ivr.centre.supervise import Supervisors
from ivr.config import Settings
from ivr.console.roles import User
from ivr.console.sessions import LoginLimiter, Session, Sessions
from ivr.console.users import UserStore
from routing.redis import RedisRouter

__all__ = ["COOKIE", "SCOPE_KEY", "Console", "WithConsole", "console_of"]

SCOPE_KEY: Final = "ivr.console"
COOKIE: Final = "ivr_session"
HERE: Final = Path(__file__).parent

#: (path under /console, label, the least role that sees it in the menu)
_NAV: Final = (
    ("/", "Wallboard", "viewer"),
    ("/calls", "Calls", "supervisor"),
    ("/agents", "Agents", "agent"),
    ("/queues", "Queues", "supervisor"),
    ("/reports", "Reports", "agent"),  # an agent sees their own figures there
    ("/quality", "Quality", "agent"),  # an agent sees their own calls' checks
    ("/announcements", "Announcements", "supervisor"),
    ("/flows", "Flows", "admin"),
    ("/audit", "Audit", "admin"),
)


@dataclass(slots=True)
class Console:
    router: RedisRouter
    supervisors: Supervisors | None
    settings: Settings
    users: UserStore = field(init=False)
    sessions: Sessions = field(init=False)
    limiter: LoginLimiter = field(init=False)
    templates: Jinja2Templates = field(init=False)

    def __post_init__(self) -> None:
        self.users = UserStore(self.settings.users_file)
        self.sessions = Sessions(self.router)
        self.limiter = LoginLimiter(self.router)
        self.templates = Jinja2Templates(directory=HERE / "templates")
        self.templates.env.globals["has_reports"] = (
            importlib.util.find_spec("ivr.console.reports") is not None
        )

    def secure(self, conn: HTTPConnection) -> bool:
        """Whether the session cookie carries ``Secure``: over https (uvicorn reads a
        trusted proxy's X-Forwarded-Proto), or always when the setting says so. Plain
        http on 127.0.0.1 (the demo) gets no Secure flag: browsers other than Chromium
        drop a Secure cookie set over http, and the login would never hold."""
        return self.settings.console_secure_cookie == "always" or conn.url.scheme in (
            "https",
            "wss",
        )

    def nav(self, user: User | None) -> list[tuple[str, str]]:
        if user is None:
            return []
        reports = bool(self.templates.env.globals["has_reports"])
        return [
            (f"/console{path}".rstrip("/") or "/console", label)
            for path, label, role in _NAV
            if user.may(role)  # type: ignore[arg-type]
            and (path != "/reports" or reports)
        ]

    def render(
        self,
        request: Request,
        template: str,
        context: dict[str, Any] | None = None,
        *,
        status: int = 200,
        headers: dict[str, str] | None = None,
    ) -> Response:
        """A page from ``templates/``, with the user, the menu and the CSRF token."""
        user: User | None = getattr(request.state, "user", None)
        session: Session | None = getattr(request.state, "session", None)
        values = {
            "user": user,
            "nav": self.nav(user),
            "csrf": session.csrf if session is not None else "",
            "path": request.url.path,
            "flash": getattr(request.state, "flash", ""),
            **(context or {}),
        }
        return self.templates.TemplateResponse(
            request, template, values, status_code=status, headers=headers
        )


#: Sent with every console response: scripts only from the console's own files (no
#: inline script, so an injected one does not run), no framing (clickjacking on the
#: supervision buttons), nothing cached of pages that show who is on which call.
_HEADERS: Final = (
    (
        b"content-security-policy",
        b"default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        b"img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; "
        b"base-uri 'none'; form-action 'self'",
    ),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
)


class WithConsole:
    """ASGI middleware for one route: the console into the scope, and the security
    headers onto the response."""

    def __init__(self, app: ASGIApp, console: Console) -> None:
        self.app = app
        self.console = console

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        scope[SCOPE_KEY] = self.console
        static = "/static/" in scope["path"]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {name.lower() for name, _ in message.get("headers", [])}
                extra = [(k, v) for k, v in _HEADERS if k not in names]
                if not static and b"cache-control" not in names:
                    extra.append((b"cache-control", b"no-store"))
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def console_of(conn: HTTPConnection) -> Console:
    console = conn.scope.get(SCOPE_KEY)
    if isinstance(console, Console):
        return console
    raise LookupError("not a console route: mount it through ivr.console.console_routes")
