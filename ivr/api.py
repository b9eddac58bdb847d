"""The engine's HTTP API: agents and queues changed at run time, KPIs read.

Every engine process sharing the routing store sees a change at once (queue
settings live in Redis and are announced by pub/sub). Each request needs a
bearer token (:mod:`ivr.auth`); every change is written to the audit stream
with who made it.

    GET  /health                          (no token)  200 {"status": "ok"} while the routing
                                                      store answers, else 503: for load
                                                      balancers and compose health checks
    GET  /api/agents                      viewer      agents, states, skills
    PUT  /api/agents/{id}                 admin       create or change (endpoint, skills, team)
    POST /api/agents/{id}/login|logout|resume|ready   supervisor  (ready: end wrap-up now)
    POST /api/agents/{id}/pause           supervisor  {"reason": "lunch"}; during a call it
                                                      is pending until the call and wrap-up end
    PUT  /api/agents/{id}/skills          admin       {"billing": 7, "tv": 3}: all of them
    PATCH /api/agents/{id}/skills         admin       {"tv": 5, "chat": 0}: these only (0 removes)
    GET  /api/queues                      viewer      settings and waiting calls
    GET  /api/queues/{name}               viewer
    PUT  /api/queues/{name}               admin       the routing.yaml form of one queue
    GET  /api/queues/{name}/stats         viewer      ?interval=3600: seconds, more than 0 and
                                                      at most 604800 (7 days)
    GET  /api/audit                       admin       newest changes
    GET  /api/reports                     viewer      the reports and their parameters
    GET  /api/reports/{report}            viewer      traffic, quality, occupancy, ivr, dropoff,
                                                      staffing: ?period=today|7d|30d
                                                      &interval=15m|1h|1d&by=...&format=json|csv
                                                      (ivr.console.reports)
    GET  /api/qa                          supervisor  QA results of recorded calls, newest first:
                                                      ?period=1d|7d|30d&queue=&agent=&violations=1
                                                      (ivr.console.quality)
    POST /api/supervise                   supervisor  {"agent": ID, "mode": "listen|whisper|barge",
                                                       "from": "PJSIP/2001"}: "from" is one of the
                                                      supervisor's own phones (the token file's)

    GET  /metrics                         (no token)  Prometheus text (ivr.console.metrics)
    /console/...                          (session)   the supervisor and admin console
                                                      (ivr.console): pages, /console/ws

The validation and audit of every change live in :mod:`ivr.changes`, shared
with the console.

Errors are JSON ``{"error": ..., "problems": [{"at": ..., "message": ...}]}``
with 400 (bad JSON), 401/403 (token, role, a phone that is not the
supervisor's), 404, 409 (a state change the agent's state does not allow),
422 (settings or a query that do not validate) and 503 (the routing store is
unreachable). Refused requests (401, 403, 404, 409,
422) are written to the audit stream too, with who asked and why.

A state change answers ``{"agent", "state", "result": "done|pending|unchanged",
"changed", "pending"}``: a pause or logout asked during a call is ``pending``
(it takes effect when the call and its wrap-up end); a logout of a ringing
agent is done at once, the ringing stops and the caller goes back to the
head of the queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import structlog
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from ivr import changes
from ivr.auth import Principal, TokenBook
from ivr.centre.supervise import Supervisors
from ivr.config import Settings
from ivr.console import Hook, console_routes, live_aggregator
from ivr.console.metrics import routes as metrics_routes
from ivr.console.quality import QualityApi
from ivr.console.reports import ReportApi
from routing.config import QueueConfig
from routing.errors import RoutingError, RoutingUnavailable
from routing.kpis import compute
from routing.redis import RedisRouter
from routing.states import InvalidTransition

__all__ = ["build_api"]

log = structlog.get_logger("ivr.api")

Handler = Callable[[Request, Principal], Awaitable[Response]]

#: The longest KPI window: a week of events is read at most (a viewer must not make
#: the engine read the whole stream).
MAX_INTERVAL = 7 * 24 * 3600
#: How long /health waits for the routing store.
HEALTH_TIMEOUT = 2.0


def _error(status: int, message: str, problems: list[dict[str, str]] | None = None) -> Response:
    body: dict[str, Any] = {"error": message}
    if problems:
        body["problems"] = problems
    return JSONResponse(body, status_code=status)


def _principal(
    tokens: TokenBook, role: str, request: Request
) -> tuple[Principal | None, Response | None]:
    """Whose token the request carries (None: no valid one), and the refusal to send, if
    any: a principal whose role falls short is known, and audited by name."""
    if not tokens:
        return None, _error(
            401,
            "the API has no tokens configured; set IVR_API_TOKENS "
            "('NAME:ROLE:TOKEN;...') or IVR_API_TOKENS_FILE and restart",
        )
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    who = tokens.who(token.strip()) if scheme.lower() == "bearer" else None
    if who is None:
        return None, _error(401, "send 'Authorization: Bearer <token>' with a valid token")
    if not who.may(role):
        return who, _error(403, f"{who.name} is {who.role}; this needs the {role} role")
    return who, None


#: Answers that refuse a request: audited with who asked and why.
_REFUSED = frozenset({401, 403, 404, 409, 422})


def _guarded(
    tokens: TokenBook, role: str, handler: Handler, router: RedisRouter
) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        who, refusal = _principal(tokens, role, request)
        if refusal is not None:
            response = refusal
        else:
            assert who is not None
            try:
                response = await handler(request, who)
            except changes.ChangeError as exc:
                response = _error(exc.status, str(exc), exc.problems or None)
            except InvalidTransition as exc:
                response = _error(409, str(exc))
            except RoutingUnavailable as exc:
                return _error(503, str(exc))
            except RoutingError as exc:
                response = _error(409, str(exc))
        if response.status_code in _REFUSED:
            await _audit_refusal(router, request, who, response)
        return response

    return endpoint


async def _audit_refusal(
    router: RedisRouter, request: Request, who: Principal | None, response: Response
) -> None:
    """Write a refusal to the audit stream; a store that is away is logged, not hidden."""
    actor = who.name if who is not None else "(no valid token)"
    try:
        reason = json.loads(bytes(response.body)).get("error", "")
    except ValueError:
        reason = ""
    try:
        await router.audit(
            actor,
            "refused",
            method=request.method,
            path=request.url.path,
            status=str(response.status_code),
            reason=str(reason)[:200],
        )
    except RoutingError as exc:
        log.error("api.audit_failed", error=str(exc), status=response.status_code)  # noqa: TRY400


class _Handlers:
    def __init__(self, router: RedisRouter, supervisors: Supervisors | None = None) -> None:
        self.router = router
        self.supervisors = supervisors

    async def supervise(self, request: Request, who: Principal) -> Response:
        done = await changes.supervise(
            self.supervisors, who, await self.body(request), phones_hint=_NO_PHONES
        )
        return JSONResponse(dataclasses.asdict(done))

    @staticmethod
    async def body(request: Request) -> Any:
        raw = await request.body()
        try:
            return json.loads(raw or b"null")
        except ValueError as exc:
            raise _BadRequestError(f"the body is not JSON: {exc}") from None

    async def list_agents(self, request: Request, who: Principal) -> Response:
        return JSONResponse({"agents": await self.router.agents()})

    async def put_agent(self, request: Request, who: Principal) -> Response:
        agent_id = request.path_params["agent"]
        row = await changes.put_agent(self.router, who.name, agent_id, await self.body(request))
        log.info("api.agent_changed", agent=agent_id, by=who.name)
        return JSONResponse(row)

    async def act(self, request: Request, who: Principal) -> Response:
        agent_id, action = request.path_params["agent"], request.path_params["action"]
        reason = ""
        if action == "pause" and await self.router.agent(agent_id) is not None:
            data = await self.body(request)
            reason = str(data.get("reason", "")) if isinstance(data, dict) else ""
        done = await changes.act(
            self.router, self.supervisors, who.name, agent_id, action, reason=reason
        )
        return JSONResponse(done, status_code=202 if done["result"] == "pending" else 200)

    async def patch_skills(self, request: Request, who: Principal) -> Response:
        """Change only the skills named; level 0 removes one (PUT replaces them all)."""
        return await self.put_skills(request, who, merge=True)

    async def put_skills(
        self, request: Request, who: Principal, *, merge: bool = False
    ) -> Response:
        agent_id = request.path_params["agent"]
        if await self.router.agent(agent_id) is None:
            raise changes.ChangeError(
                404, f"no agent {agent_id!r}; PUT /api/agents/{agent_id} creates one"
            )
        data = await self.body(request)
        row = await changes.set_skills(self.router, who.name, agent_id, data, merge=merge)
        return JSONResponse(row)

    async def list_queues(self, request: Request, who: Principal) -> Response:
        await self.router.load_queues()
        sizes = await self.router.queue_sizes()
        names = sorted(set(self.router.queues) | set(sizes))
        return JSONResponse(
            {
                "queues": {
                    name: {
                        "waiting": sizes.get(name, 0),
                        "config": self.router.queues[name].model_dump(mode="json")
                        if name in self.router.queues
                        else None,
                    }
                    for name in names
                }
            }
        )

    async def get_queue(self, request: Request, who: Principal) -> Response:
        name = request.path_params["name"]
        await self.router.load_queues()
        if name not in self.router.queues:
            return _error(404, f"no queue {name!r}; PUT /api/queues/{name} creates one")
        return JSONResponse(self.router.queues[name].model_dump(mode="json"))

    async def put_queue(self, request: Request, who: Principal) -> Response:
        name = request.path_params["name"]
        data = await self.body(request)
        config = await changes.put_queue(self.router, who.name, name, data)
        log.info("api.queue_changed", queue=name, by=who.name)
        return JSONResponse(config.model_dump(mode="json"))

    async def queue_stats(self, request: Request, who: Principal) -> Response:
        name = request.path_params["name"]
        raw = request.query_params.get("interval", "3600")
        try:
            interval = float(raw)
        except ValueError:
            interval = math.nan
        if not 0 < interval <= MAX_INTERVAL:  # nan and inf fail it too
            message = (
                f"interval is a number of seconds more than 0 and at most {MAX_INTERVAL} "
                f"(7 days), not {raw[:40]!r}"
            )
            return _error(422, message, [{"at": "interval", "message": message}])
        now = time.time()
        config = self.router.queues.get(name) or QueueConfig()
        queues, occupancy = compute(
            await self.router.events(now - interval), now=now, target=config.service_level.seconds
        )
        stats = queues.get(name)
        if stats is None:
            return JSONResponse({"queue": name, "offered": 0})
        fields = {
            k: v
            for k, v in dataclasses.asdict(stats).items()
            if k not in ("waits", "handles", "scores")
        }
        return JSONResponse({**fields, "occupancy": occupancy})

    async def audit(self, request: Request, who: Principal) -> Response:
        return JSONResponse({"audit": await self.router.audit_log()})


#: The refusal for a supervisor whose token lists no phones.
_NO_PHONES = (
    "{name} has no phones in the token file, so supervision cannot ring one; add them "
    "to {name}'s entry (NAME ROLE TOKEN PJSIP/2001 in IVR_API_TOKENS_FILE, "
    "NAME:ROLE:TOKEN:PJSIP/2001 in IVR_API_TOKENS)"
)


def _health(router: RedisRouter) -> Callable[[Request], Awaitable[Response]]:
    async def health(request: Request) -> Response:
        """200 while the routing store answers, else 503; no token (load balancers)."""
        try:
            await asyncio.wait_for(router.read(router.redis.ping()), HEALTH_TIMEOUT)
        except (RoutingError, TimeoutError) as exc:
            # The detail (addresses) is logged, not shown to whoever asks.
            log.warning("api.unhealthy", error=str(exc) or f"no answer in {HEALTH_TIMEOUT:g} s")
            return JSONResponse(
                {"status": "unavailable", "reason": "the routing store does not answer"},
                status_code=503,
            )
        return JSONResponse({"status": "ok"})

    return health


def build_api(
    router: RedisRouter,
    tokens: TokenBook,
    supervisors: Supervisors | None = None,
    settings: Settings | None = None,
    *,
    hooks: Sequence[Hook] = (),
) -> Starlette:
    """The ASGI app; ``router`` is the engine's routing store, ``supervisors`` its AMI side.

    The console's pages are under ``/console`` (:func:`ivr.console.console_routes`);
    ``hooks`` (and the console's own, such as the live data's aggregator) start with
    the app's lifespan and close with it, the last started first. The aggregator is
    ``app.state.aggregator``: the engine tells it where its calls are in their flows.
    """
    h = _Handlers(router, supervisors)
    reports = ReportApi(router)
    settings = settings or Settings()
    quality = QualityApi(router, settings)

    def guarded(role: str, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        return _guarded(tokens, role, handler, router)

    routes: list[BaseRoute] = [
        Route("/health", _health(router), methods=["GET"]),
        *metrics_routes(),  # no token, as /health: see ivr.console.metrics
        Route("/api/agents", guarded("viewer", h.list_agents), methods=["GET"]),
        Route("/api/agents/{agent}", guarded("admin", h.put_agent), methods=["PUT"]),
        Route(
            "/api/agents/{agent}/{action:str}",
            _choose(
                {
                    "login": guarded("supervisor", h.act),
                    "logout": guarded("supervisor", h.act),
                    "pause": guarded("supervisor", h.act),
                    "resume": guarded("supervisor", h.act),
                    "ready": guarded("supervisor", h.act),
                }
            ),
            methods=["POST"],
        ),
        Route("/api/agents/{agent}/skills", guarded("admin", h.put_skills), methods=["PUT"]),
        Route("/api/agents/{agent}/skills", guarded("admin", h.patch_skills), methods=["PATCH"]),
        Route("/api/queues", guarded("viewer", h.list_queues), methods=["GET"]),
        Route("/api/queues/{name}", guarded("viewer", h.get_queue), methods=["GET"]),
        Route("/api/queues/{name}", guarded("admin", h.put_queue), methods=["PUT"]),
        Route("/api/queues/{name}/stats", guarded("viewer", h.queue_stats), methods=["GET"]),
        Route("/api/audit", guarded("admin", h.audit), methods=["GET"]),
        Route("/api/reports", guarded("viewer", reports.index), methods=["GET"]),
        Route("/api/reports/{report}", guarded("viewer", reports.report), methods=["GET"]),
        Route("/api/supervise", guarded("supervisor", h.supervise), methods=["POST"]),
        Route("/api/qa", guarded("supervisor", quality.results), methods=["GET"]),
    ]
    started_with: list[Hook] = list(hooks)
    aggregator = live_aggregator(router, supervisors, settings)
    routes += console_routes(
        router, supervisors, settings, hooks=started_with, aggregator=aggregator
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            for hook in started_with:
                await hook.start()
                stack.push_async_callback(hook.close)
            yield

    app = Starlette(
        routes=routes,
        exception_handlers={_BadRequestError: _bad_request, RoutingUnavailable: _unavailable},
        lifespan=lifespan,
    )
    app.state.hooks = started_with
    app.state.aggregator = aggregator
    return app


class _BadRequestError(Exception):
    pass


async def _bad_request(request: Request, exc: Exception) -> Response:
    return _error(400, str(exc))


async def _unavailable(request: Request, exc: Exception) -> Response:
    log.warning("api.store_unavailable", path=request.url.path, error=str(exc))
    return _error(503, "the routing store (Redis) does not answer; try again shortly")


def _choose(
    handlers: dict[str, Callable[[Request], Awaitable[Response]]],
) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        action = request.path_params["action"]
        handler = handlers.get(action)
        if handler is None:
            return _error(404, f"unknown action {action!r}; allowed: {', '.join(handlers)}")
        return await handler(request)

    return endpoint
