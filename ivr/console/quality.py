"""The quality page: each checked call's QA result, the words around each match, and
its recording from that moment; the same results on the API.

    GET /console/quality                  agent+      results, newest first;
                                                      ?period=1d|7d|30d&queue=&agent=
                                                      &violations=1 (&format=json)
    GET /console/quality/{id}/recording   agent+      the call's mix (WAV; Range requests)
    GET /api/qa                           supervisor  the same results as JSON (bearer token)

Who sees what: an admin every call, a supervisor the calls of their queues
whose agent is in their sites and teams, an agent their own calls, a viewer
(a wall screen) none; a bearer token of the API sees every result, as the
reports do (the recordings themselves need a console session). The results
are the QA worker's ``qa_result`` events (:mod:`ivr.console.quality_data`
reads them and the transcripts). A recording is served only from the
recordings folder, found from its result (``{id}`` is looked up, never used
as a path), with Starlette's :class:`~starlette.responses.FileResponse`,
which answers Range requests (a browser seeks with them); every request for
one is audited (``recording.play``), refusals too.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlencode

import structlog
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Route

from ivr.auth import Principal
from ivr.config import Settings
from ivr.console.access import refuse, require, wants_html
from ivr.console.context import console_of
from ivr.console.floor import annotate
from ivr.console.quality_data import (
    ID,
    PERIODS,
    QaCall,
    QaQuery,
    QaQueryError,
    call_of,
    qa_rows,
    recording_file,
    result_id,
    visible,
)
from ivr.console.roles import User
from routing.errors import RoutingError
from routing.redis import RedisRouter

__all__ = ["QualityApi", "routes"]

log = structlog.get_logger("ivr.console.quality")

#: Calls shown at most on one page or answer (newest first).
SHOWN: Final = 100
#: Seconds one reading of the results serves the recordings' look-ups (a browser asks
#: a few ranges of one file within a second or two when it seeks).
FRESH: Final = 5.0
PERIOD_LABELS: Final = {"1d": "Last 24 hours", "7d": "7 days", "30d": "30 days"}
_LONGEST: Final = max(PERIODS.values()) * 86400.0

Rows = list[tuple[float, dict[str, str]]]


async def results(router: RedisRouter, period: str) -> Rows:
    """The ``qa_result`` events of the period, newest first."""
    return qa_rows(await router.events(router.clock() - PERIODS[period] * 86400.0))


async def _agents(router: RedisRouter) -> dict[str, dict[str, Any]]:
    queues = await router.load_queues()
    return {str(row["id"]): annotate(row, queues) for row in await router.agents()}


async def shown(folder: Path, rows: Rows, query: QaQuery) -> tuple[list[QaCall], int]:
    """The calls the filters keep, as shown (at most :data:`SHOWN`), and how many more."""
    kept = [(at, row) for at, row in rows if query.keeps(row)]
    calls = await asyncio.to_thread(lambda: [call_of(folder, at, r) for at, r in kept[:SHOWN]])
    return calls, max(0, len(kept) - SHOWN)


def _answer(query: QaQuery, calls: list[QaCall], more: int) -> dict[str, Any]:
    return {
        "period": query.period,
        "queue": query.queue or None,
        "agent": query.agent or None,
        "violations": query.violations,
        "calls": [c.as_json() for c in calls],
        "more": more,
    }


def clock(at: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(at))


def moment(seconds: float) -> str:
    """A time in the recording: 0:07.4, 12:03.0."""
    whole = int(seconds)
    return f"{whole // 60}:{whole % 60:02d}.{int((seconds - whole) * 10)}"


class QualityPages:
    """The page and the recordings, under /console."""

    def __init__(self, settings: Settings) -> None:
        self.folder = settings.recordings_dir
        self._read: tuple[float, Rows] | None = None

    @require("agent")
    async def page(self, request: Request, user: User) -> Response:
        console = console_of(request)
        as_json = request.query_params.get("format", "html") == "json"
        try:
            query = QaQuery.parse(request.query_params)
        except QaQueryError as exc:
            if as_json or not wants_html(request):
                await refuse(request, 422, str(exc), user)  # audited; the answer names each
                return JSONResponse({"error": str(exc), "problems": exc.problems}, 422)
            return await self._render(request, user, QaQuery(), problems=exc.problems, status=422)
        if user.role == "agent":
            query = QaQuery(query.period, query.queue, user.agent_id or "", query.violations)
        agents = await _agents(console.router)
        rows = [(at, r) for at, r in await results(console.router, query.period)
                if visible(user, r, agents)]  # fmt: skip
        calls, more = await shown(self.folder, rows, query)
        if as_json:
            return JSONResponse(_answer(query, calls, more))
        choices = {
            "queues": sorted({r["queue"] for _, r in rows if r.get("queue")}),
            "agents": sorted({r["agent"] for _, r in rows if r.get("agent")}),
        }
        return await self._render(request, user, query, calls=calls, more=more, choices=choices)

    async def _render(
        self,
        request: Request,
        user: User,
        query: QaQuery,
        *,
        calls: list[QaCall] | None = None,
        more: int = 0,
        problems: list[dict[str, str]] | None = None,
        status: int = 200,
        choices: Mapping[str, list[str]] | None = None,
    ) -> Response:
        context = {
            "query": query,
            "calls": calls or [],
            "more": more,
            "problems": problems or [],
            "periods": list(PERIOD_LABELS.items()),
            "queues": (choices or {}).get("queues", []),
            "agents": (choices or {}).get("agents", []),
            "own": user.role == "agent",
            "clock": clock,
            "moment": moment,
            "shown": SHOWN,
            "json_url": _json_url(query, own=user.role == "agent"),
        }
        return console_of(request).render(request, "quality.html", context, status=status)

    async def _lookup(
        self, router: RedisRouter, wanted: str
    ) -> tuple[float, dict[str, str]] | None:
        """The result ``wanted`` names, from a reading at most :data:`FRESH` s old (read
        again when it is not in an older one)."""
        for attempt in range(2):
            now = time.monotonic()
            if self._read is None or (attempt and now - self._read[0] > FRESH):
                self._read = (now, qa_rows(await router.events(router.clock() - _LONGEST)))
            found = next(((at, r) for at, r in self._read[1] if result_id(r) == wanted), None)
            if found is not None:
                return found
        return None

    @require("agent")
    async def recording(self, request: Request, user: User) -> Response:
        console = console_of(request)
        wanted = request.path_params["id"]
        if not ID.match(wanted):
            return await refuse(
                request, 422, "a recording's id is letters, digits, '_', '-', '.'", user
            )
        found = await self._lookup(console.router, wanted)
        if found is None:
            return await refuse(
                request, 404, f"no QA result {wanted[:80]!r} in the last 30 days", user
            )
        _, row = found
        if not visible(user, row, await _agents(console.router)):
            return await refuse(
                request, 403, f"the call of {row.get('agent')!r} in queue {row.get('queue')!r} "
                f"is outside {user.name}'s view ({_view(user)})", user,
            )  # fmt: skip
        path = await asyncio.to_thread(recording_file, self.folder, row)
        if path is None:
            return await refuse(
                request, 404, "this call's recording is no longer kept (its queue's retention "
                "has passed) or is not where its record says", user,
            )  # fmt: skip
        try:
            await console.router.audit(
                user.name, "recording.play", call=row.get("call", ""), queue=row.get("queue", ""),
                agent=row.get("agent", ""), recording=wanted,
                range=request.headers.get("range", "")[:80],
                address=request.client.host if request.client else "",
            )  # fmt: skip
        except RoutingError as exc:
            log.error("console.audit_failed", error=str(exc))  # noqa: TRY400
            return JSONResponse({"error": "the audit trail (Redis) does not answer"}, 503)
        return FileResponse(path, media_type="audio/wav")


def _json_url(query: QaQuery, *, own: bool) -> str:
    params = {
        "period": query.period,
        "queue": query.queue,
        "agent": "" if own else query.agent,
        "violations": "1" if query.violations else "",
    }
    return "/console/quality?" + urlencode(
        {k: v for k, v in params.items() if v} | {"format": "json"}
    )


def _view(user: User) -> str:
    if user.role == "agent":
        return f"their own calls, agent {user.agent_id or 'none set'}"
    return user.scope.describe()


class QualityApi:
    """``GET /api/qa`` for :func:`ivr.api.build_api`'s bearer tokens (every result)."""

    def __init__(self, router: RedisRouter, settings: Settings) -> None:
        self.router = router
        self.folder = settings.recordings_dir

    async def results(self, request: Request, who: Principal) -> Response:
        try:
            query = QaQuery.parse(request.query_params)
        except QaQueryError as exc:
            return JSONResponse({"error": str(exc), "problems": exc.problems}, 422)
        calls, more = await shown(self.folder, await results(self.router, query.period), query)
        return JSONResponse(_answer(query, calls, more))


def routes(settings: Settings) -> list[BaseRoute]:
    """The quality page's routes, under /console."""
    pages = QualityPages(settings)
    return [
        Route("/quality", pages.page, methods=["GET"]),
        Route("/quality/{id}/recording", pages.recording, methods=["GET"]),
    ]
