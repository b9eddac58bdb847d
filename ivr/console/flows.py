"""The admins' flows pages: the list, the diagrams, the YAML editor, history and rollback.

The editor is a textarea with a line-number gutter (``static/flows-editor.js``):
as the admin types, the text goes to ``POST /console/flows/validate``, which
runs the checks of ``ivr validate`` and of the engine's reload
(:class:`ivr.console.flows_store.FlowStore`) and answers each problem with
its line and column; the script marks those lines. Saving checks again on
the server (the script is a convenience, never the gate), writes the file
atomically into the flows folder, where the engine's registry watcher
reloads it, and keeps the version. Saves, creations and rollbacks are
audited; refused ones too.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, Final

import structlog
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from ivr.config import Settings, service_urls
from ivr.console.access import refuse, require, wants_html
from ivr.console.context import console_of
from ivr.console.flows_store import (
    HISTORY_SHOWN,
    FlowStore,
    SaveRefused,
    diff_lines,
    text_hash,
)
from ivr.console.flows_svg import SVG_POLICY, UnsafeSvg, sanitised
from ivr.console.roles import User
from ivr.flows.graph import GraphError, svg
from ivr.flows.loader import MAX_FLOW_BYTES
from ivr.flows.problems import Problem
from routing.errors import RoutingError

__all__ = ["FlowPages", "history_folder", "routes"]

log = structlog.get_logger("ivr.console.flows")

#: The largest request body the editor sends (a flow at its limit, escaped as JSON).
MAX_BODY: Final = 8 * MAX_FLOW_BYTES
_NEW_FLOW: Final = """\
id: {name}
version: 1
description: ""
nodes:
  welcome:
    type: hangup
    say: Thank you for calling.
"""


def history_folder(settings: Settings) -> Path:
    """Where saved versions go: ``var/flow-history`` beside the engine's other state."""
    return settings.redis_dir.parent / "flow-history"


def _problem(p: Problem) -> dict[str, Any]:
    return {"file": p.file, "line": p.line, "column": p.column, "message": p.message}


def _address(request: Request) -> str:
    return request.client.host if request.client else ""


async def _text_field(request: Request, name: str, limit: int = MAX_BODY) -> str:
    form = await request.form()
    value = form.get(name)
    return value[:limit] if isinstance(value, str) else ""


class FlowPages:
    """The flows routes over one :class:`FlowStore` (one per app)."""

    def __init__(self, store: FlowStore) -> None:
        self.store = store

    async def _audit(self, request: Request, user: User, action: str, **fields: str) -> None:
        try:
            await console_of(request).router.audit(
                user.name, action, address=_address(request), **fields
            )
        except RoutingError as exc:
            log.error("console.audit_failed", action=action, error=str(exc))  # noqa: TRY400

    async def _flash(self, request: Request) -> None:
        session = getattr(request.state, "session", None)
        if session is not None:
            request.state.flash = await console_of(request).sessions.take_flash(session)

    async def _done(self, request: Request, message: str, to: str) -> Response:
        session = getattr(request.state, "session", None)
        if session is not None:
            await console_of(request).sessions.flash(session, message)
        return RedirectResponse(to, status_code=303)

    def _too_big(self, request: Request) -> bool:
        length = request.headers.get("content-length", "")
        return length.isdigit() and int(length) > MAX_BODY

    # ---------------------------------------------------------------- pages

    @require("admin")
    async def list_page(self, request: Request) -> Response:
        await self._flash(request)
        files = await asyncio.to_thread(self.store.files)
        return console_of(request).render(request, "flows.html", {"files": files})

    def _editor(
        self,
        request: Request,
        *,
        key: str,
        text: str,
        base: str,
        new: bool = False,
        problems: list[Problem] | None = None,
        error: str = "",
        status: int = 200,
    ) -> Response:
        flow = None
        if not new and not problems:
            path = self.store.path_of(key)
            flow = self.store.load(path)[0] if path is not None else None
        context = {
            "key": key,
            "text": text,
            "base": base,
            "new": new,
            "flow": flow,
            "problems": [_problem(p) for p in problems or []],
            "error": error,
            "versions": [] if new else self.store.versions(key)[:5],
        }
        return console_of(request).render(request, "flow_edit.html", context, status=status)

    @require("admin")
    async def edit_page(self, request: Request) -> Response:
        key = request.path_params["key"]
        path = self.store.path_of(key)
        if path is None:
            return await refuse(request, 404, f"no flow file {key!r} in the flows folder")
        await self._flash(request)
        text = await asyncio.to_thread(path.read_text, encoding="utf-8")
        checked = await asyncio.to_thread(self.store.check, key, text, path=path)
        return self._editor(
            request, key=key, text=text, base=text_hash(text), problems=checked.problems
        )

    @require("admin")
    async def new_page(self, request: Request) -> Response:
        name = request.query_params.get("name", "")[:64]
        return self._editor(
            request, key=name, text=_NEW_FLOW.format(name=name or "new_flow"), base="", new=True
        )

    # ---------------------------------------------------------------- actions

    @require("admin")
    async def validate(self, request: Request) -> Response:
        """The problems of a text as the engine would take it, each with its line."""
        if self._too_big(request):
            return JSONResponse({"error": "the text is too long"}, status_code=413)
        if request.headers.get("content-type", "").startswith("application/json"):
            try:
                data = await request.json()
            except ValueError:
                return JSONResponse({"error": "send JSON: {key, text}"}, status_code=400)
            data = data if isinstance(data, dict) else {}
        else:
            form = await request.form()
            data = {k: v for k, v in form.items() if isinstance(v, str)}
        key, text = data.get("key"), data.get("text")
        if not isinstance(key, str) or not isinstance(text, str):
            return JSONResponse({"error": "send key and text, both strings"}, status_code=400)
        new = data.get("new") in (True, "1", "true")
        path = None
        if new:
            try:
                path = self.store.new_path(key)
            except ValueError as exc:
                message = str(exc)
                return JSONResponse(
                    {"ok": False, "problems": [], "error": message}, status_code=200
                )
        elif self.store.path_of(key) is None:
            return JSONResponse({"error": f"no flow file {key!r}"}, status_code=404)
        checked = await asyncio.to_thread(
            self.store.check, key, text.replace("\r\n", "\n"), path=path
        )
        flow = checked.flow
        return JSONResponse(
            {
                "ok": checked.ok,
                "problems": [_problem(p) for p in checked.problems],
                "flow": {"id": flow.id, "version": str(flow.version)} if flow else None,
            }
        )

    async def _save(self, request: Request, user: User, *, new: bool) -> Response:
        if self._too_big(request):
            return await refuse(request, 413, "the text is too long", user)
        key = (
            (await _text_field(request, "name", 64)).strip() if new else request.path_params["key"]
        )
        text = await _text_field(request, "text")
        # The hash of the text the editor opened; none (a script): no such check.
        base = None if new else (await _text_field(request, "base", 64) or None)
        try:
            saved = await self.store.save(key, text, by=user.name, base=base, new=new)
        except SaveRefused as exc:
            reason = exc.message or f"{len(exc.problems)} problem(s)"
            await self._audit(
                request,
                user,
                "refused",
                method=request.method,
                path=request.url.path,
                status=str(exc.status),
                reason=f"flow {key}: {reason}"[:200],
            )
            if not wants_html(request):
                body = {"error": reason, "problems": [_problem(p) for p in exc.problems]}
                return JSONResponse(body, status_code=exc.status)
            if exc.status == 404:
                return await refuse(request, 404, exc.message)
            return self._editor(
                request,
                key=key,
                text=text,
                base=base or "",
                new=new,
                problems=exc.problems,
                error=exc.message or "Not saved: the flow has problems (marked below).",
                status=exc.status,
            )
        version = saved.version
        await self._audit(
            request,
            user,
            "flow.create" if new else "flow.save",
            flow=saved.flow.id,
            file=key,
            version=version.version,
            kept=version.name,
        )
        log.info("console.flow_saved", flow=saved.flow.id, file=key, by=user.name)
        return await self._done(
            request,
            f"{key} saved (version {version.version}); the engine reloads it within a second",
            f"/console/flows/{key}/edit",
        )

    @require("admin")
    async def save(self, request: Request, user: User) -> Response:
        return await self._save(request, user, new=False)

    @require("admin")
    async def create(self, request: Request, user: User) -> Response:
        return await self._save(request, user, new=True)

    @require("admin")
    async def rollback(self, request: Request, user: User) -> Response:
        key = request.path_params["key"]
        name = await _text_field(request, "version", 100)
        text = self.store.version_text(key, name)
        if self.store.path_of(key) is None or text is None:
            return await refuse(request, 404, f"no kept version {name!r} of {key!r}", user)
        try:
            saved = await self.store.save(key, text, by=user.name, action="rollback", source=name)
        except SaveRefused as exc:
            problems = "; ".join(f"line {p.line}: {p.message}" for p in exc.problems[:3])
            message = (
                f"version {name} cannot be restored as the folder is now: {exc.message or problems}"
            )
            return await refuse(request, exc.status, message[:600], user)
        await self._audit(
            request,
            user,
            "flow.rollback",
            flow=saved.flow.id,
            file=key,
            to=name,
            version=saved.version.version,
            kept=saved.version.name,
        )
        return await self._done(
            request,
            f"{key} rolled back to the version of {_when(self.store, key, name)} "
            f"(version {saved.version.version}), saved as a new version",
            f"/console/flows/{key}/history",
        )

    # ---------------------------------------------------------------- reads

    @require("admin")
    async def history(self, request: Request) -> Response:
        key = request.path_params["key"]
        path = self.store.path_of(key)
        if path is None:
            return await refuse(request, 404, f"no flow file {key!r} in the flows folder")
        await self._flash(request)
        versions = self.store.versions(key)
        current = await asyncio.to_thread(path.read_text, encoding="utf-8")
        a = request.query_params.get("a") or (versions[1].name if len(versions) > 1 else "")
        b = request.query_params.get("b") or "current"

        def text_of(name: str) -> str | None:
            return current if name == "current" else self.store.version_text(key, name)

        by_name = {v.name: v for v in versions}

        def label(name: str) -> str:
            found = by_name.get(name)
            return f"version {found.version} of {found.when}" if found else "the file now"

        old, new = text_of(a), text_of(b)
        lines = (
            diff_lines(old, new, label(a), label(b)) if old is not None and new is not None else []
        )
        same = next(
            (v.name for v in versions if self.store.version_text(key, v.name) == current), ""
        )
        context = {
            "key": key,
            "versions": versions[:HISTORY_SHOWN],
            "more": max(0, len(versions) - HISTORY_SHOWN),
            "a": a if old is not None else "",
            "b": b if new is not None else "",
            "lines": lines,
            "current": same,
            "label": label,
        }
        return console_of(request).render(request, "flow_history.html", context)

    @require("admin")
    async def version(self, request: Request) -> Response:
        """One kept version's text, as plain text."""
        key, name = request.path_params["key"], request.path_params["name"]
        text = self.store.version_text(key, name)
        if text is None:
            return await refuse(request, 404, f"no kept version {name!r} of {key!r}")
        return Response(text, media_type="text/plain; charset=utf-8")

    @require("admin")
    async def diagram(self, request: Request) -> Response:
        key = request.path_params["key"]
        path = self.store.path_of(key)
        flow = await asyncio.to_thread(self.store.load, path) if path else (None, [])
        if flow[0] is None:
            return await refuse(request, 404, f"no diagram: {key!r} is not a flow that loads")
        try:
            drawn = sanitised(await asyncio.to_thread(svg, flow[0]))
        except (GraphError, UnsafeSvg) as exc:
            log.warning("console.diagram_failed", flow=key, error=str(exc))
            return await refuse(request, 503, f"the diagram cannot be drawn: {exc}")
        return Response(
            drawn,
            media_type="image/svg+xml",
            headers={"content-security-policy": SVG_POLICY, "cache-control": "no-store"},
        )


def _when(store: FlowStore, key: str, name: str) -> str:
    found = next((v for v in store.versions(key) if v.name == name), None)
    return found.when if found is not None else name


def routes(settings: Settings) -> list[BaseRoute]:
    """The flows routes, under /console (specific paths before ``{key:path}``)."""
    store = FlowStore(settings.flows_dir, history_folder(settings), services=service_urls(settings))
    pages = FlowPages(store)
    return [
        Route("/flows", pages.list_page, methods=["GET"]),
        Route("/flows/new", pages.new_page, methods=["GET"]),
        Route("/flows/new", pages.create, methods=["POST"]),
        Route("/flows/validate", pages.validate, methods=["POST"]),
        Route("/flows/{key:path}/edit", pages.edit_page, methods=["GET"]),
        Route("/flows/{key:path}/edit", pages.save, methods=["POST"]),
        Route("/flows/{key:path}/diagram.svg", pages.diagram, methods=["GET"]),
        Route("/flows/{key:path}/history", pages.history, methods=["GET"]),
        Route("/flows/{key:path}/versions/{name}", pages.version, methods=["GET"]),
        Route("/flows/{key:path}/rollback", pages.rollback, methods=["POST"]),
    ]
