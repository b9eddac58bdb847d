"""The reports: pages under ``/console/reports``, and the same data on the API.

    GET /console/reports[/REPORT]   agent+   the page: charts (uPlot, drawn by
                                             static/reports.js), totals and
                                             intervals; ?format=json or csv
    GET /api/reports                viewer   the reports and their parameters
    GET /api/reports/REPORT         viewer   JSON, or ?format=csv

``REPORT`` is traffic, quality, occupancy, ivr, dropoff or staffing
(:data:`ivr.console.figures.REPORTS`); ``period`` today, 7d or 30d;
``interval`` 15m, 1h or 1d; ``by`` queue, site, agent, flow or node as the
report allows. A bad parameter is 422 naming it, an unknown report 404.

Who sees what (every request, page, JSON and CSV alike): an admin everything;
a supervisor the queues, sites and agents of their scope (the IVR's reports
only with a scope of every queue and site, as the live board); an agent their
own agent's figures only (traffic, quality and occupancy by agent); a viewer
(a wall screen) no reports. A bearer token of the API sees everything, as
``/api/queues/{name}/stats`` does. Figures are folded in a worker thread
(the engine's loop keeps serving calls), at most two reports at once.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from datetime import datetime
from typing import Any, Final

import structlog
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from ivr import changes
from ivr.auth import Principal
from ivr.console.access import refuse, require, wants_html
from ivr.console.context import console_of
from ivr.console.figures import (
    INTERVALS,
    PERIODS,
    REPORTS,
    Kind,
    Query,
    QueryError,
    Report,
    View,
    build,
    edges,
    stamp,
)
from ivr.console.floor import annotate
from ivr.console.roles import User
from routing.errors import RoutingError
from routing.kpis import DAY
from routing.redis import RedisRouter

__all__ = ["ReportApi", "routes", "view_of"]

log = structlog.get_logger("ivr.console.reports")

#: What an agent may ask for: their own figures.
AGENT_REPORTS: Final = ("traffic", "quality", "occupancy")
#: Interval rows shown on a page (newest first); the CSV has them all.
PAGE_ROWS: Final = 200
PERIOD_LABELS: Final = {"today": "Today", "7d": "7 days", "30d": "30 days"}
INTERVAL_LABELS: Final = {"15m": "15 minutes", "1h": "Hour", "1d": "Day"}
#: "Offered per ...": the interval in a chart's caption.
INTERVAL_WORDS: Final = {"15m": "15 minutes", "1h": "hour", "1d": "day"}
#: Reports folded at once, per event loop (an engine has one; tests make many).
_GATES: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
    weakref.WeakKeyDictionary()
)


def _gate() -> asyncio.Semaphore:
    loop = asyncio.get_running_loop()
    gate = _GATES.get(loop)
    if gate is None:
        gate = _GATES[loop] = asyncio.Semaphore(2)
    return gate


async def view_of(router: RedisRouter, user: User) -> View:
    """What ``user`` may see in a report (the roles and scopes of ivr.console.roles)."""
    if user.role == "admin":
        return View()
    if user.role == "agent":
        return View(agents=frozenset({user.agent_id} if user.agent_id else ()), ivr=False)
    scope = user.scope
    if not (scope.sites or scope.queues or scope.teams):
        return View()
    queues = await router.load_queues()
    rows = [annotate(row, queues) for row in await router.agents()]
    return View(
        queues=scope.queues or None,
        sites=scope.sites or None,
        agents=frozenset(str(a["id"]) for a in rows if user.sees(a, a["queues"])),
        ivr=not (scope.queues or scope.sites),
    )


async def report_of(router: RedisRouter, query: Query, view: View) -> Report:
    """The report, from the routing events (a day before the period on: repeat callers
    and the agents' states at its start look back)."""
    now = time.time()
    start = edges(query.period, query.interval, now)[0]
    async with _gate():
        events = await router.events(start - DAY)
        configs = dict(await router.load_queues())
        return await asyncio.to_thread(build, events, query, view, now=now, configs=configs)


def _filename(query: Query) -> str:
    moment = datetime.now().astimezone().strftime("%Y%m%d-%H%M%S")
    return f"report-{query.report}-{query.by}-{query.period}-{query.interval}-{moment}.csv"


def csv_response(report: Report) -> Response:
    return Response(
        report.as_csv(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{_filename(report.query)}"'},
    )


def _refusal(user: User, query: Query) -> str | None:
    """Why ``user`` may not have this report (None: they may)."""
    if user.role != "agent":
        if not user.may("admin") and query.report in ("ivr", "dropoff"):
            scope = user.scope
            if scope.queues or scope.sites:
                return (
                    f"the IVR's reports cover calls before any queue; {user.name}'s scope "
                    f"({scope.describe()}) is not every queue and site"
                )
        return None
    if query.report not in AGENT_REPORTS or query.by != "agent":
        return (
            f"{user.name} is an agent and sees only their own figures: by=agent of "
            f"{', '.join(AGENT_REPORTS)}"
        )
    return None


def _menu(user: User) -> list[tuple[str, str]]:
    names = AGENT_REPORTS if user.role == "agent" else tuple(REPORTS)
    if user.role == "supervisor" and (user.scope.queues or user.scope.sites):
        names = tuple(n for n in names if n not in ("ivr", "dropoff"))
    return [(n, REPORTS[n].title) for n in names]


@require("agent")
async def page(request: Request, user: User) -> Response:
    console = console_of(request)
    report = request.path_params.get("report", "traffic")
    if report not in REPORTS:
        return await refuse(
            request, 404, f"no report {report!r}; there are {', '.join(REPORTS)}", user
        )
    try:
        query = Query.parse(
            report, request.query_params, default_by="agent" if user.role == "agent" else ""
        )
    except QueryError as exc:
        return await _bad_query(request, user, report, exc)
    refusal = _refusal(user, query)
    if refusal is not None:
        return await refuse(request, 403, refusal, user)
    built = await report_of(console.router, query, await view_of(console.router, user))
    if query.format == "json":
        return JSONResponse(built.as_json())
    if query.format == "csv":
        await _audit_export(request, user, query, len(built.rows))
        return csv_response(built)
    return console.render(request, "reports.html", _context(user, built))


async def _bad_query(request: Request, user: User, report: str, exc: QueryError) -> Response:
    """422: the page again with the problems (a browser), else JSON naming each one."""
    if request.query_params.get("format", "html") != "html" or not wants_html(request):
        await refuse(request, 422, str(exc), user)  # audited; the answer adds the problems
        return JSONResponse({"error": str(exc), "problems": exc.problems}, status_code=422)
    kind = REPORTS[report]
    context = {
        "report": None,
        "query": Query(report, by="agent" if user.role == "agent" else kind.bys[0]),
        "kind": kind,
        "problems": exc.problems,
        **_choices(user, kind),
    }
    return console_of(request).render(request, "reports.html", context, status=422)


async def _audit_export(request: Request, user: User, query: Query, rows: int) -> None:
    try:
        await console_of(request).router.audit(
            user.name,
            "reports.export",
            report=query.report,
            by=query.by,
            period=query.period,
            interval=query.interval,
            rows=str(rows),
        )
    except RoutingError as exc:
        log.error("console.audit_failed", error=str(exc))  # noqa: TRY400


def _choices(user: User, kind: Kind) -> dict[str, Any]:
    """The page's menus: the reports, periods, intervals and groupings ``user`` may pick."""
    return {
        "reports": _menu(user),
        "periods": [(k, PERIOD_LABELS[k]) for k in PERIODS],
        "intervals": [(k, INTERVAL_LABELS[k]) for k in INTERVALS],
        "bys": [b for b in kind.bys if user.role != "agent" or b == "agent"],
        "show": show,
    }


def _span(report: Report) -> str:
    """The period as a person reads it: 'Mon 23 Nov 00:00 to Sun 29 Nov 08:13 (UTC+09:00)'."""
    start = datetime.fromtimestamp(report.edges[0]).astimezone()
    end = datetime.fromtimestamp(min(report.now, report.edges[-1])).astimezone()
    zone = start.strftime("%z")
    return f"{start:%a %d %b %H:%M} to {end:%a %d %b %H:%M} (UTC{zone[:3]}:{zone[3:]})"


def _context(user: User, report: Report) -> dict[str, Any]:
    rows = report.rows[::-1][:PAGE_ROWS]
    return {
        "span": _span(report),
        "per": INTERVAL_WORDS[report.query.interval],
        "when": (lambda at: stamp(at)[:10]) if report.query.interval == "1d" else _when,
        **_choices(user, report.kind),
        "report": report,
        "query": report.query,
        "kind": report.kind,
        "problems": [],
        "rows": rows,
        "more": len(report.rows) - len(rows),
        "stamp": stamp,
        # The charts' data only: a big floor's month in quarter hours is for the CSV.
        "data": report.as_json(report.drawn()),
        "scope": "everything" if user.role == "admin" else user.scope.describe(),
    }


def _when(at: float) -> str:
    return stamp(at)[:16].replace("T", " ")


def show(value: float | int | None, unit: str) -> str:
    """A figure as a person reads it on the page."""
    if value is None:
        return "\u2014"  # an em dash: nothing to show
    if unit == "percent":
        return f"{value:.0%}" if value in (0, 1) else f"{value:.1%}"
    if unit == "seconds":
        seconds = round(value)
        return f"{seconds} s" if seconds < 60 else f"{seconds // 60}:{seconds % 60:02d}"
    if unit == "hours":
        return f"{value:.1f} h"
    if isinstance(value, int):
        return str(value)
    return f"{value:.1f}"


def routes() -> list[BaseRoute]:
    """The console's report pages, under /console."""
    return [
        Route("/reports", page, methods=["GET"]),
        Route("/reports/{report}", page, methods=["GET"]),
    ]


class ReportApi:
    """``/api/reports`` for :func:`ivr.api.build_api`: handlers given the request and the
    bearer token's principal (every role sees every report; tokens have no scope)."""

    def __init__(self, router: RedisRouter) -> None:
        self.router = router

    async def index(self, request: Request, who: Principal) -> Response:
        return JSONResponse(
            {
                "reports": [
                    {"name": k.name, "title": k.title, "about": k.about, "by": list(k.bys)}
                    for k in REPORTS.values()
                ],
                "period": list(PERIODS),
                "interval": list(INTERVALS),
                "format": ["json", "csv"],
            }
        )

    async def report(self, request: Request, who: Principal) -> Response:
        name = request.path_params["report"]
        if name not in REPORTS:
            raise changes.ChangeError(404, f"no report {name!r}; there are {', '.join(REPORTS)}")
        try:
            query = Query.parse(name, request.query_params, formats=("json", "csv"))
        except QueryError as exc:
            raise changes.ChangeError(422, str(exc), exc.problems) from None
        built = await report_of(self.router, query, View())
        if query.format == "csv":
            return csv_response(built)
        return JSONResponse(built.as_json())
