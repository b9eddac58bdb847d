"""The announcements page: outage notices switched on or off, for chosen flows, until a time.

Each ``announcement`` node of the flows names a switch
(:mod:`ivr.flows.announcements`, the file ``ivr announcement`` writes too).
From here a supervisor or admin switches it on for some of the flows whose
calls can reach it (those holding the node, and those that reach them as a
subflow), with the node's own words, words they type (spoken by the prompts
synthesizer now, and cached: a caller never waits for them) or a recording
they upload (:mod:`ivr.console.announcements_audio`), and an optional time
at which it switches itself off. A notice reaches every caller of its flows,
whatever their queue or team, so a supervisor whose view is narrowed to some
sites, queues or teams may look but not switch. Every switch is audited.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Final

import structlog
from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route, request_response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ivr.config import Settings, service_urls
from ivr.console.access import refuse, require
from ivr.console.announcements_audio import (
    MAX_SECONDS,
    MAX_UPLOAD,
    RecordingError,
    phone_wav,
    store_recording,
)
from ivr.console.context import console_of
from ivr.console.roles import User
from ivr.flows.announcements import MAX_NOTICE_TEXT, FileAnnouncements, Notice
from ivr.flows.loader import load_flows
from ivr.flows.model import Announcement, Flow, Subflow
from ivr.flows.prompts import flow_languages
from routing.errors import RoutingError
from speech.errors import TtsError
from speech.tts import Synthesizer

__all__ = ["AnnouncementPages", "Spot", "routes", "spots"]

log = structlog.get_logger("ivr.console.announcements")

#: A switch form's body at most: the recording and the other fields.
MAX_BODY: Final = MAX_UPLOAD + 64 * 1024
#: How far ahead an expiry may be set.
LONGEST: Final = timedelta(days=366)
_LANGUAGE: Final = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})?$")
_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f]+")


@dataclass(slots=True)
class Spot:
    """One announcement name as the flows hold it."""

    name: str
    #: (flow id, node name, what the node says by itself)
    nodes: list[tuple[str, str, str]] = field(default_factory=list)
    #: The flows whose calls can reach it: those holding it, and those that reach
    #: them through subflow nodes.
    flows: list[str] = field(default_factory=list)
    languages: list[str] = field(default_factory=list)


def _own_words(flow: Flow, node: Announcement) -> str:
    if node.file is not None:
        return f"the recording {node.file}"
    if isinstance(node.say, dict):
        return node.say.get(flow.defaults.language) or next(iter(node.say.values()), "")
    return node.say or ""


def spots(flows: Mapping[str, Flow]) -> dict[str, Spot]:
    """Every announcement of ``flows`` by name."""
    found: dict[str, Spot] = {}
    for flow in flows.values():
        for node_name, node in flow.nodes.items():
            if isinstance(node, Announcement):
                spot = found.setdefault(node.name, Spot(node.name))
                spot.nodes.append((flow.id, node_name, _own_words(flow, node)))
    uses = {
        flow.id: {n.flow for n in flow.nodes.values() if isinstance(n, Subflow)}
        for flow in flows.values()
    }
    for spot in found.values():
        reach = {flow_id for flow_id, _, _ in spot.nodes}
        while grown := {f for f, targets in uses.items() if targets & reach} - reach:
            reach |= grown
        spot.flows = sorted(reach)
        spot.languages = sorted({lang for f in reach for lang in flow_languages(flows[f])})
    return dict(sorted(found.items()))


class _BodyLimit:
    """A route's ASGI app whose request body may not pass ``limit`` bytes: 413 from the
    declared length, or from the bytes as they arrive (none declared). The body is
    read whole before the route parses it, so a refused upload leaves no file behind."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        length = dict(scope.get("headers") or []).get(b"content-length", b"")
        declared = int(length) if length.isdigit() else 0
        body = bytearray()
        more = declared <= self.limit
        while more and len(body) <= self.limit:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            body += message.get("body", b"")
            more = message.get("more_body", False)
        if declared > self.limit or len(body) > self.limit:
            too_big = f"the upload is larger than {self.limit:,} bytes"
            await Response(too_big, status_code=413, media_type="text/plain")(scope, receive, send)
            return
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if sent:
                return await receive()
            sent = True
            return {"type": "http.request", "body": bytes(body), "more_body": False}

        await self.app(scope, replay, send)


def _local(moment: float) -> str:
    return datetime.fromtimestamp(moment).astimezone().strftime("%Y-%m-%d %H:%M")


def _field(moment: float) -> str:
    """A time as a datetime-local field shows it (the engine's zone)."""
    return datetime.fromtimestamp(moment).astimezone().strftime("%Y-%m-%dT%H:%M")


def _zone() -> str:
    now = datetime.now().astimezone()
    offset = now.strftime("%z")
    return f"{now.tzname()} (UTC{offset[:3]}:{offset[3:]})"


class AnnouncementPages:
    """The announcements routes over the switches file and the flows folder."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.store = FileAnnouncements(settings.announcements_file)
        self.services = service_urls(settings)
        self._synthesizer: Synthesizer | None = None

    @property
    def synthesizer(self) -> Synthesizer:
        # The espeak-ng command, as the engine's fallback: no worker process to keep,
        # and the same cache (a prompt's file is named by its text, language, voice).
        if self._synthesizer is None:
            self._synthesizer = Synthesizer(self.settings.prompts_dir, engine="espeak-ng")
        return self._synthesizer

    async def _spots(self) -> dict[str, Spot]:
        flows, _ = await asyncio.to_thread(
            load_flows, [self.settings.flows_dir], services=self.services
        )
        return spots(flows)

    @staticmethod
    def may_switch(user: User) -> bool:
        """An admin, or a supervisor who sees the whole floor."""
        scope = user.scope
        return user.role == "admin" or not (scope.sites or scope.queues or scope.teams)

    async def _page(
        self,
        request: Request,
        user: User,
        *,
        errors: dict[str, list[str]] | None = None,
        values: dict[str, Any] | None = None,
        status: int = 200,
    ) -> Response:
        console = console_of(request)
        found = await self._spots()
        notices = self.store.notices()
        now = self.store.clock()
        context = {
            "spots": found,
            "notices": notices,
            "stale": sorted(set(notices) - set(found)),
            "now": now,
            "local": _local,
            "field": _field,
            "zone": _zone(),
            "may_switch": self.may_switch(user),
            "errors": errors or {},
            "values": values or {},
            "max_text": MAX_NOTICE_TEXT,
            "max_seconds": MAX_SECONDS,
            "max_mib": MAX_UPLOAD // (1024 * 1024),
        }
        return console.render(request, "announcements.html", context, status=status)

    @require("supervisor")
    async def page(self, request: Request, user: User) -> Response:
        session = getattr(request.state, "session", None)
        if session is not None:
            request.state.flash = await console_of(request).sessions.take_flash(session)
        return await self._page(request, user)

    @require("supervisor")
    async def switch(self, request: Request, user: User) -> Response:
        name = request.path_params["name"]
        if not self.may_switch(user):
            message = (
                f"{user.name} sees {user.scope.describe()} only; an announcement reaches "
                "every caller of its flows, so an admin or a supervisor of the whole floor "
                "switches it"
            )
            return await refuse(request, 403, message, user)
        form = await request.form()
        try:
            return await self._switch(request, user, name, form)
        finally:
            await form.close()  # the upload's temporary file

    async def _switch(self, request: Request, user: User, name: str, form: FormData) -> Response:
        state = form.get("state")
        found = await self._spots()
        old = self.store.notices().get(name)
        if name not in found and old is None:
            return await refuse(request, 404, f"no announcement named {name!r} in the flows", user)
        now = self.store.clock()
        if state == "off":
            notice = replace(old or Notice(), on=False, by=user.name, at=now)
            await asyncio.to_thread(self.store.put, name, notice)
            await self._audit(request, user, "announcement.off", name=name)
            return await self._done(request, f"{name}: off; callers no longer hear it")
        spot = found.get(name)
        if state != "on" or spot is None:
            why = (
                f"state {str(state)[:10]!r}; allowed: on, off"
                if state != "on"
                else f"no announcement node named {name!r} in the flows: it cannot be switched on"
            )
            return await refuse(request, 422 if state != "on" else 404, why, user)
        wanted, problems = await self._notice(form, spot, old, user, now)
        if problems or wanted is None:
            values = {name: _form_values(form)}
            await self._audit(
                request, user, "refused", method="POST", path=request.url.path, status="422",
                reason=f"announcement {name}: {'; '.join(problems)}"[:200],
            )  # fmt: skip
            return await self._page(
                request, user, errors={name: problems}, values=values, status=422
            )
        await asyncio.to_thread(self.store.put, name, wanted)
        await self._audit(request, user, "announcement.on", name=name, **_described(wanted))
        until = f" until {_local(wanted.until)}" if wanted.until is not None else ""
        flows = ", ".join(wanted.flows) if wanted.flows else "every flow with it"
        return await self._done(request, f"{name}: on for {flows}{until}")

    async def _notice(
        self, form: FormData, spot: Spot, old: Notice | None, user: User, now: float
    ) -> tuple[Notice | None, list[str]]:
        """The notice the form asks for, or what is wrong with it."""
        problems: list[str] = []
        chosen = [f for f in form.getlist("flows") if isinstance(f, str)]
        unknown = [f for f in chosen if f not in spot.flows]
        if not chosen:
            problems.append("choose at least one flow")
        elif unknown:
            problems.append(
                f"{', '.join(unknown)[:80]}: calls of that flow never reach {spot.name!r}; "
                f"flows: {', '.join(spot.flows)}"
            )
        until = _until(form.get("until"), now, problems)
        message = form.get("message") or "own"
        text = language = recording = ""
        if message == "text":
            text = _CONTROL.sub(" ", str(form.get("text") or "")).strip()
            language = str(form.get("language") or "")
            if not text:
                problems.append("type the words callers hear, or choose another message")
            elif len(text) > MAX_NOTICE_TEXT:
                problems.append(
                    f"the words are {len(text):,} characters; {MAX_NOTICE_TEXT:,} at most"
                )
            if not _LANGUAGE.match(language) or language not in spot.languages:
                problems.append(
                    f"language {language[:10]!r}: one of the flows' {', '.join(spot.languages)}"
                )
        elif message == "recording":
            recording = await self._recording(form.get("recording"), spot, old, problems)
        elif message != "own":
            problems.append(f"message {str(message)[:10]!r}; allowed: own, text, recording")
        if not problems and text:
            try:  # said now, once: no caller waits for it, and a voice that fails says so
                await self.synthesizer.render(text, language)
            except (TtsError, OSError) as exc:
                problems.append(f"the words cannot be spoken in {language!r}: {exc}")
        if problems:
            return None, problems
        every = sorted(chosen) == spot.flows
        notice = Notice(
            True, text, language, recording, () if every else tuple(sorted(chosen)), until,
            user.name, now,
        )  # fmt: skip
        return notice, []

    async def _recording(
        self, upload: object, spot: Spot, old: Notice | None, problems: list[str]
    ) -> str:
        """The sound name of the uploaded recording (or the one the switch has)."""
        if not isinstance(upload, UploadFile) or not upload.filename:
            if old is not None and old.recording:
                return old.recording  # kept: no new file chosen
            problems.append("choose a WAV file to upload, or choose another message")
            return ""
        data = await upload.read(MAX_UPLOAD + 1)
        try:
            wav, _seconds = await asyncio.to_thread(phone_wav, data)
        except RecordingError as exc:
            problems.append(f"{upload.filename[:60]}: {exc}")
            return ""
        path = await asyncio.to_thread(store_recording, self.settings.prompts_dir, spot.name, wav)
        return str(path.resolve().with_suffix(""))  # as Asterisk plays it

    async def _audit(self, request: Request, user: User, action: str, **fields: str) -> None:
        address = request.client.host if request.client else ""
        try:
            await console_of(request).router.audit(user.name, action, address=address, **fields)
        except RoutingError as exc:
            log.error("console.audit_failed", action=action, error=str(exc))  # noqa: TRY400

    async def _done(self, request: Request, message: str) -> Response:
        session = getattr(request.state, "session", None)
        if session is not None:
            await console_of(request).sessions.flash(session, message)
        return RedirectResponse("/console/announcements", status_code=303)


def _until(raw: object, now: float, problems: list[str]) -> float | None:
    """An expiry from the form's local date and time (the engine's zone); None: never."""
    if not isinstance(raw, str) or not raw.strip():
        return None
    try:
        moment = datetime.fromisoformat(raw.strip()).astimezone()
    except ValueError:
        problems.append(f"switch-off time {raw[:20]!r}: write it as 2026-12-31T18:00")
        return None
    at = moment.timestamp()
    if at <= now:
        problems.append(f"switch-off time {_local(at)} has passed; choose a later one, or none")
    elif at - now > LONGEST.total_seconds():
        problems.append("switch-off time: at most a year ahead")
    return at


def _described(notice: Notice) -> dict[str, str]:
    """What the audit keeps of a notice."""
    says = (
        f"text ({notice.language}): {notice.text[:80]}"
        if notice.text
        else f"recording {notice.recording.rpartition('/')[2]}"
        if notice.recording
        else "its own words"
    )
    out = {"says": says, "flows": ", ".join(notice.flows) or "every flow with it"}
    if notice.until is not None:
        out["until"] = datetime.fromtimestamp(notice.until).astimezone().isoformat("T", "minutes")
    return out


def _form_values(form: FormData) -> dict[str, Any]:
    """What the admin typed, to show again with the problems."""
    return {
        "flows": [f for f in form.getlist("flows") if isinstance(f, str)],
        "message": str(form.get("message") or "own"),
        "text": str(form.get("text") or "")[:MAX_NOTICE_TEXT],
        "language": str(form.get("language") or ""),
        "until": str(form.get("until") or "")[:20],
    }


def routes(settings: Settings) -> list[BaseRoute]:
    """The announcements routes, under /console."""
    pages = AnnouncementPages(settings)
    return [
        Route("/announcements", pages.page, methods=["GET"]),
        Route(
            "/announcements/{name}",
            # An ASGI app (not an endpoint) so the body is counted as it arrives; the
            # guard (require) gives ``switch`` its user, which the signature shows.
            _BodyLimit(request_response(pages.switch), MAX_BODY),  # type: ignore[arg-type]
            methods=["POST"],
        ),
    ]
