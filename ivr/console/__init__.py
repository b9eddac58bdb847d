"""The supervisor and admin console, served by the engine's HTTP app under ``/console``.

Server-rendered pages (Jinja2, ``templates/``) with a little vendored
JavaScript (htmx, ``static/VENDORED.md``); users and roles from the users
file (``ivr users``, :mod:`ivr.console.users`), sessions and the login rate
limit in the routing store's Redis (:mod:`ivr.console.sessions`), access by
role and scope (:mod:`ivr.console.access`), the live data over a WebSocket
(:mod:`ivr.console.live`).

:func:`console_routes` gives :func:`ivr.api.build_api` the ``/console`` mount:
the pages, the live data's WebSocket (``/console/ws``, from
``ivr.console.live.routes``) and, once that module exists, the reports'
routes (``ivr.console.reports.routes``, given whichever of ``router``,
``supervisors``, ``settings`` and ``ami`` it names; paths under ``/console``;
pages render through :meth:`ivr.console.context.Console.render` with
``base.html``, whose Content-Security-Policy runs script files from
``/console/static/`` only, never inline scripts).
Every route in it has the console in its scope, so
:func:`ivr.console.access.user_of` and ``require`` work there. What must start
and stop with the app goes into ``hooks``, which ``build_api`` runs in the
app's lifespan: the live data's :class:`~ivr.console.live.Aggregator`, begun
in the background at start (a routing store that does not answer yet is
tried again by the first client) and closed at shutdown. :func:`live_aggregator`
makes it (alert thresholds from the settings) for ``build_api`` to hand in, so
the engine can tell it where its calls are (:mod:`ivr.console.engine_calls`).
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import inspect
from types import ModuleType
from typing import Any, Protocol

import structlog
from starlette.middleware import Middleware
from starlette.routing import BaseRoute, Mount
from starlette.staticfiles import StaticFiles

from ivr.centre.supervise import Supervisors
from ivr.config import Settings
from ivr.console import live
from ivr.console.abandoned import routes as abandoned_routes
from ivr.console.agents import routes as agents_routes
from ivr.console.announcements import routes as announcements_routes
from ivr.console.board import Thresholds
from ivr.console.context import HERE, Console, WithConsole
from ivr.console.flows import routes as flows_routes
from ivr.console.pages import routes as pages_routes
from ivr.console.quality import routes as quality_routes
from routing.errors import RoutingError
from routing.redis import RedisRouter

__all__ = ["Hook", "console_routes", "live_aggregator"]

log = structlog.get_logger("ivr.console")


class Hook(Protocol):
    """Something started with the HTTP app and closed with it."""

    async def start(self) -> None: ...
    async def close(self) -> None: ...


def _optional(name: str) -> ModuleType | None:
    """A console module another part may not have written yet (the reports)."""
    if importlib.util.find_spec(name) is None:
        return None
    return importlib.import_module(name)


def _call_with(function: Any, available: dict[str, Any]) -> list[BaseRoute]:
    """``function``'s routes, given the arguments it names among ``available`` (the
    reports module is written apart from this one: its signature is not fixed here)."""
    parameters = inspect.signature(function).parameters
    missing = [
        name
        for name, p in parameters.items()
        if p.default is inspect.Parameter.empty
        and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        and name not in available
    ]
    if missing:
        log.error("console.routes_skipped", module=function.__module__, needs=missing)
        return []
    return list(function(**{k: v for k, v in available.items() if k in parameters}))


class _Background:
    """The aggregator as a lifespan hook: begun without holding up the app's start."""

    def __init__(self, aggregator: live.Aggregator) -> None:
        self.aggregator = aggregator
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.ensure_future(self._begin())

    async def _begin(self) -> None:
        try:
            await self.aggregator.ensure_started()
        except RoutingError as exc:
            log.warning("console.live_not_started", error=str(exc), retry="at the first client")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self.aggregator.close()


def live_aggregator(
    router: RedisRouter, supervisors: Supervisors | None, settings: Settings
) -> live.Aggregator:
    """The engine's live data, alerting at the settings' thresholds (``IVR_ALERT_WAIT``,
    ``IVR_ALERT_CALL``)."""
    ami = supervisors.ami if supervisors is not None else None
    thresholds = Thresholds(wait=settings.alert_wait, call=settings.alert_call)
    return live.Aggregator(router, ami, thresholds=thresholds)


def console_routes(
    router: RedisRouter,
    supervisors: Supervisors | None,
    settings: Settings,
    *,
    hooks: list[Hook] | None = None,
    aggregator: live.Aggregator | None = None,
) -> list[BaseRoute]:
    """The ``/console`` mount; what must start and stop with the app is added to ``hooks``
    (the live data's ``aggregator`` too: made here unless given)."""
    console = Console(router, supervisors, settings)
    if not console.users.exists():
        log.warning(
            "console.no_users",
            users_file=str(settings.users_file),
            hint="create the first admin: .venv/bin/ivr users add admin --role admin",
        )
    ami = supervisors.ami if supervisors is not None else None
    aggregator = aggregator or live_aggregator(router, supervisors, settings)
    if hooks is not None:
        hooks.append(_Background(aggregator))
    own: list[BaseRoute] = [
        *pages_routes(),
        *agents_routes(),
        *flows_routes(settings),
        *announcements_routes(settings),
        *abandoned_routes(settings),
        *quality_routes(settings),
        *live.routes(router, ami, aggregator=aggregator),
        Mount("/static", app=StaticFiles(directory=HERE / "static"), name="static"),
    ]
    reports = _optional("ivr.console.reports")
    if reports is not None and callable(getattr(reports, "routes", None)):
        available = {"router": router, "supervisors": supervisors, "settings": settings, "ami": ami}
        own += _call_with(reports.routes, available)
    return [Mount("/console", routes=own, middleware=[Middleware(WithConsole, console=console)])]
