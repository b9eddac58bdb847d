"""The console's agents and queues: supervisor actions, and the admins' editing.

Every action goes through :mod:`ivr.changes` (the JSON API's own validation
and audit) after the scope check: a supervisor acts only on the agents of
their sites, teams and queues, an agent only on themselves. Listening,
whispering and barging go through the same path as ``POST /api/supervise``,
ring one of the supervisor's own phones (the users file's ``phones``) and are
confirmed first: by the browser's dialog (htmx ``hx-confirm``, which then
sends ``confirmed=1``), or without JavaScript by a confirmation page.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

import yaml
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from ivr import changes
from ivr.auth import Principal
from ivr.centre.supervise import MODES
from ivr.console.access import refuse, require, wants_html
from ivr.console.context import console_of
from ivr.console.floor import annotate, floor_of, scope_refusal
from ivr.console.roles import User
from routing.errors import RoutingError
from routing.states import InvalidTransition

__all__ = ["routes"]

#: The refusal for a supervisor whose users-file entry lists no phones.
NO_PHONES: Final = (
    "{name} has no phones in the users file, so supervision cannot ring one; an admin "
    "adds them: ivr users roles {name} --phones PJSIP/2001"
)
#: The longest queue settings accepted from the form (bytes of YAML).
MAX_YAML: Final = 64 * 1024
_SKILL: Final = re.compile(r"^([A-Za-z0-9_.\-]+)\s*[=:]\s*(-?\d+)$")


def _text(form: FormData, key: str, limit: int = 200) -> str:
    value = form.get(key)
    return value.strip()[:limit] if isinstance(value, str) else ""


def _back(request: Request) -> str:
    return "/console/agents"


async def _agents_page(
    request: Request, user: User, *, error: str = "", status: int = 200
) -> Response:
    console = console_of(request)
    session = getattr(request.state, "session", None)
    if session is not None and not error:
        request.state.flash = await console.sessions.take_flash(session)
    floor = await floor_of(console.router, user)
    context = {
        "floor": floor,
        "error": error,
        "modes": MODES,
        "supervision": console.supervisors is not None,
    }
    return console.render(request, "agents.html", context, status=status)


async def _failed(request: Request, user: User, status: int, message: str) -> Response:
    """A refused action, audited: the agents page with the reason for a browser."""
    if status in (401, 403) or not wants_html(request):
        return await refuse(request, status, message, user)
    await console_of(request).router.audit(
        user.name,
        "refused",
        method=request.method,
        path=request.url.path,
        status=str(status),
        reason=message[:200],
    )
    return await _agents_page(request, user, error=message, status=status)


async def _done(request: Request, message: str) -> Response:
    session = getattr(request.state, "session", None)
    if session is not None:
        await console_of(request).sessions.flash(session, message)
    return RedirectResponse(_back(request), status_code=303)


@require("agent")
async def agents_page(request: Request, user: User) -> Response:
    return await _agents_page(request, user)


@require("agent")
async def agent_action(request: Request, user: User) -> Response:
    console = console_of(request)
    agent_id, action = request.path_params["agent"], request.path_params["action"]
    if action not in changes.ACTIONS:
        return await _failed(
            request, user, 404, f"unknown action {action!r}; allowed: {', '.join(changes.ACTIONS)}"
        )
    refusal = await scope_refusal(console.router, user, agent_id)
    if refusal is not None:
        return await refuse(request, 403, refusal, user)
    form = await request.form()
    reason = form.get("reason")
    try:
        done = await changes.act(
            console.router,
            console.supervisors,
            user.name,
            agent_id,
            action,
            reason=reason if isinstance(reason, str) else "",
        )
    except changes.ChangeError as exc:
        return await _failed(request, user, exc.status, str(exc))
    except InvalidTransition as exc:
        return await _failed(request, user, 409, str(exc))
    note = {"done": "done", "pending": "pending (after the call)", "unchanged": "unchanged"}
    return await _done(request, f"{agent_id}: {action} {note[done['result']]}; now {done['state']}")


@require("supervisor")
async def supervise(request: Request, user: User) -> Response:
    console = console_of(request)
    agent_id = request.path_params["agent"]
    form = await request.form()
    mode = _text(form, "mode", 20)
    phone = _text(form, "from", 80) or (user.phones[0] if len(user.phones) == 1 else "")
    refusal = await scope_refusal(console.router, user, agent_id)
    if refusal is not None:
        return await refuse(request, 403, refusal, user)
    if mode not in MODES:
        return await _failed(request, user, 422, f"mode {mode!r}; allowed: {', '.join(MODES)}")
    if _text(form, "confirmed", 4) != "1":
        context = {"agent": agent_id, "mode": mode, "phone": phone}
        return console.render(request, "confirm.html", context)
    who = Principal(user.name, user.role, user.phones)
    data = {"agent": agent_id, "mode": mode, "from": phone}
    try:
        done = await changes.supervise(console.supervisors, who, data, phones_hint=NO_PHONES)
    except changes.ChangeError as exc:
        return await _failed(request, user, exc.status, str(exc))
    answered = "answered" if done.answered else "did not answer"
    replaced = f", replacing {', '.join(done.replaced)}" if done.replaced else ""
    return await _done(
        request, f"{mode}: {phone} on {agent_id}'s call {done.channel} ({answered}{replaced})"
    )


def _agent_values(row: Mapping[str, Any] | None) -> dict[str, str]:
    if row is None:
        return {"group": "default"}
    skills = row.get("plain_skills") or {}
    return {
        "id": str(row["id"]),
        "endpoint": str(row.get("endpoint") or ""),
        "skills": ", ".join(f"{k}={v}" for k, v in sorted(skills.items())),
        "languages": ", ".join(row.get("languages") or []),
        "site": str(row.get("site") or ""),
        "team": str(row.get("team") or ""),
        "group": str(row.get("group") or "default"),
        "wrap_up": "" if row.get("wrap_up") is None else f"{row['wrap_up']:g}",
    }


def _agent_data(form: FormData) -> tuple[dict[str, Any], list[dict[str, str]]]:
    """The routing.yaml form of an agent from the edit form, and what could not be read."""
    problems: list[dict[str, str]] = []
    skills: dict[str, int] = {}
    for item in filter(None, (p.strip() for p in re.split(r"[,\n]", _text(form, "skills", 2000)))):
        match = _SKILL.match(item)
        if match is None:
            problems.append(
                {"at": "skills", "message": f"{item!r}: write skill=level, e.g. billing=7"}
            )
        else:
            skills[match[1]] = int(match[2])
    data: dict[str, Any] = {
        "endpoint": _text(form, "endpoint"),
        "skills": skills,
        "languages": [p.strip() for p in _text(form, "languages").split(",") if p.strip()],
        "site": _text(form, "site"),
        "group": _text(form, "group") or "default",
    }
    if _text(form, "team"):
        data["team"] = _text(form, "team")
    wrap_up = _text(form, "wrap_up", 20)
    if wrap_up:
        try:
            data["wrap_up"] = float(wrap_up)
        except ValueError:
            problems.append({"at": "wrap_up", "message": "seconds, e.g. 15 (empty: the queue's)"})
    return data, problems


async def _agent_form(
    request: Request,
    *,
    new: bool,
    values: dict[str, str],
    error: str = "",
    problems: list[dict[str, str]] | None = None,
    status: int = 200,
) -> Response:
    context = {"new": new, "values": values, "error": error, "problems": problems or []}
    return console_of(request).render(request, "agent_edit.html", context, status=status)


@require("admin")
async def agent_edit(request: Request) -> Response:
    console = console_of(request)
    agent_id = request.path_params.get("agent")
    row = None
    if agent_id is not None:
        found = await console.router.agent(agent_id)
        if found is None:
            return await refuse(request, 404, f"no agent {agent_id!r}")
        row = annotate(found, await console.router.load_queues())
    return await _agent_form(request, new=agent_id is None, values=_agent_values(row))


@require("admin")
async def agent_save(request: Request, user: User) -> Response:
    console = console_of(request)
    form = await request.form()
    new = "agent" not in request.path_params
    agent_id = _text(form, "id", 64) if new else request.path_params["agent"]
    values = {k: v for k, v in form.items() if isinstance(v, str) and k != "csrf"}
    values["id"] = agent_id
    data, problems = _agent_data(form)
    if problems:
        return await _agent_form(
            request,
            new=new,
            values=values,
            error="the agent does not validate",
            problems=problems,
            status=422,
        )
    if new and await console.router.agent(agent_id) is not None:
        return await _agent_form(
            request,
            new=new,
            values=values,
            status=409,
            error=f"agent {agent_id!r} exists already; edit it from the agents page",
        )
    try:
        await changes.put_agent(console.router, user.name, agent_id, data)
    except changes.ChangeError as exc:
        return await _agent_form(
            request,
            new=new,
            values=values,
            error=str(exc),
            problems=exc.problems,
            status=exc.status,
        )
    return await _done(request, f"agent {agent_id} saved")


@require("supervisor")
async def queues_page(request: Request, user: User) -> Response:
    console = console_of(request)
    session = getattr(request.state, "session", None)
    if session is not None:
        request.state.flash = await console.sessions.take_flash(session)
    floor = await floor_of(console.router, user)
    return console.render(request, "queues.html", {"floor": floor})


def _queue_yaml(config: Any) -> str:
    data = config.model_dump(mode="json", exclude_defaults=True) if config is not None else {}
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True) if data else ""


async def _queue_form(
    request: Request,
    *,
    name: str,
    new: bool,
    text: str,
    error: str = "",
    problems: list[dict[str, str]] | None = None,
    status: int = 200,
) -> Response:
    context = {"name": name, "new": new, "text": text, "error": error, "problems": problems or []}
    return console_of(request).render(request, "queue_edit.html", context, status=status)


@require("admin")
async def queue_edit(request: Request) -> Response:
    console = console_of(request)
    name = request.path_params.get("name")
    if name is None:
        return await _queue_form(request, name="", new=True, text="skills: {}\n")
    queues = await console.router.load_queues()
    if name not in queues:
        return await refuse(request, 404, f"no queue {name!r}")
    return await _queue_form(request, name=name, new=False, text=_queue_yaml(queues[name]))


@require("admin")
async def queue_save(request: Request, user: User) -> Response:
    console = console_of(request)
    form = await request.form()
    new = "name" not in request.path_params
    name = _text(form, "name", 64) if new else request.path_params["name"]
    raw = form.get("settings")
    text = raw if isinstance(raw, str) else ""

    def again(status: int, error: str, problems: list[dict[str, str]] | None = None) -> Response:
        return console.render(
            request,
            "queue_edit.html",
            {"name": name, "new": new, "text": text, "error": error, "problems": problems or []},
            status=status,
        )

    if len(text.encode()) > MAX_YAML:
        return again(422, f"the settings are longer than {MAX_YAML // 1024} KiB")
    try:
        data = yaml.safe_load(text) if text.strip() else {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "(settings)"
        problem = getattr(exc, "problem", None) or str(exc)
        return again(422, "the settings are not valid YAML", [{"at": where, "message": problem}])
    if new and name in await console.router.load_queues():
        return again(409, f"queue {name!r} exists already; edit it from the queues page")
    try:
        await changes.put_queue(console.router, user.name, name, data)
    except changes.ChangeError as exc:
        return again(exc.status, str(exc), exc.problems)
    except RoutingError as exc:
        return again(503, str(exc))
    session = getattr(request.state, "session", None)
    if session is not None:
        await console.sessions.flash(session, f"queue {name} saved")
    return RedirectResponse("/console/queues", status_code=303)


def routes() -> list[BaseRoute]:
    """The agents' and queues' routes, under /console (specific paths first)."""
    return [
        Route("/agents", agents_page, methods=["GET"]),
        Route("/agents/new", agent_edit, methods=["GET"]),
        Route("/agents/new", agent_save, methods=["POST"]),
        Route("/agents/{agent}/edit", agent_edit, methods=["GET"]),
        Route("/agents/{agent}/edit", agent_save, methods=["POST"]),
        Route("/agents/{agent}/supervise", supervise, methods=["POST"]),
        Route("/agents/{agent}/{action}", agent_action, methods=["POST"]),
        Route("/queues", queues_page, methods=["GET"]),
        Route("/queues/new", queue_edit, methods=["GET"]),
        Route("/queues/new", queue_save, methods=["POST"]),
        Route("/queues/{name}/edit", queue_edit, methods=["GET"]),
        Route("/queues/{name}/edit", queue_save, methods=["POST"]),
    ]
