"""Run-time changes to agents and queues: one validation, one store call, one audit entry.

The JSON API (:mod:`ivr.api`) and the console (:mod:`ivr.console`) both
change agents and queues through these functions, so a value refused by
one is refused by the other with the same words. A refusal is a
:class:`ChangeError` with the HTTP status that suits it and, for settings that
do not validate, each problem with where it is.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final

from pydantic import ValidationError

from ivr.auth import ENDPOINT, Principal
from ivr.centre.supervise import Supervision, SupervisionError, Supervisors
from ivr.errors import IvrError
from ivr.routing_config import agent_of
from routing.config import AgentConfig, QueueConfig
from routing.redis import RedisRouter

__all__ = [
    "ACTIONS",
    "ChangeError",
    "act",
    "problems",
    "put_agent",
    "put_queue",
    "set_skills",
    "supervise",
]

#: State changes an agent can be given (``ready`` ends wrap-up now).
ACTIONS: Final = ("login", "logout", "pause", "resume", "ready")
_QUEUE_NAME_CHARS: Final = frozenset("_-.")


class ChangeError(IvrError):
    """A change that is not made; ``status`` suits HTTP."""

    def __init__(
        self, status: int, message: str, problems: list[dict[str, str]] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.problems = problems or []


def problems(exc: ValidationError) -> list[dict[str, str]]:
    """Each validation problem as ``{"at": "steps.0.after", "message": ...}``."""
    out = []
    for error in exc.errors():
        at = ".".join(str(part) for part in error["loc"]) or "(body)"
        out.append({"at": at, "message": error["msg"]})
    return out


def _no_agent(agent_id: str) -> ChangeError:
    return ChangeError(404, f"no agent {agent_id!r}; PUT /api/agents/{agent_id} creates one")


async def put_agent(router: RedisRouter, actor: str, agent_id: str, data: Any) -> dict[str, Any]:
    """Create or change an agent from its routing.yaml form; the agent's row."""
    if not isinstance(data, dict):
        raise ChangeError(400, "send a JSON object: {endpoint, skills, team, name}")
    try:
        config = AgentConfig.model_validate({**data, "id": agent_id})
    except ValidationError as exc:
        raise ChangeError(422, "the agent does not validate", problems(exc)) from None
    await router.add_agents([agent_of(config)])
    await router.audit(actor, "agent.put", agent=agent_id, value=json.dumps(data))
    return await router.agent(agent_id) or {}


async def act(
    router: RedisRouter,
    supervisors: Supervisors | None,
    actor: str,
    agent_id: str,
    action: str,
    *,
    reason: str = "",
) -> dict[str, Any]:
    """Log in, log out, pause (with ``reason``), resume or end the wrap-up of an agent.

    The answer's ``result`` is ``done``, ``pending`` (a pause or logout asked during a
    call takes effect when it and its wrap-up end) or ``unchanged``. Raises
    :class:`routing.states.InvalidTransition` when the agent's state does not allow it.
    """
    if action not in ACTIONS:
        raise ChangeError(404, f"unknown action {action!r}; allowed: {', '.join(ACTIONS)}")
    if await router.agent(agent_id) is None:
        raise _no_agent(agent_id)
    if action != "pause":
        reason = ""
    elif any(c in reason for c in "\r\n\0") or len(reason) > 80:
        raise ChangeError(422, "a pause reason is one line of at most 80 characters")
    moves = {
        "login": router.login,
        "logout": router.logout,
        "resume": router.resume,
        "ready": router.end_wrap_up,
    }
    change = (
        await router.pause(agent_id, reason) if action == "pause" else await moves[action](agent_id)
    )
    rang = None
    if change.released is not None and supervisors is not None:
        # A forced logout of a ringing agent: their phone stops ringing now.
        rang = await supervisors.cancel_ring(change.released.endpoint)
    await router.audit(
        actor, f"agent.{action}", agent=agent_id, reason=reason, result=change.result
    )
    row = await router.agent(agent_id, skills=False) or {}
    return {
        "agent": agent_id,
        "state": row.get("state"),
        "result": change.result,
        "changed": bool(change),
        "pending": row.get("pending") or None,
        "ring_cancelled": rang,
    }


async def set_skills(
    router: RedisRouter, actor: str, agent_id: str, data: Any, *, merge: bool = False
) -> dict[str, Any]:
    """Replace an agent's skills (``merge``: change only those named; level 0 removes)."""
    row = await router.agent(agent_id)
    if row is None:
        raise _no_agent(agent_id)
    if merge:
        if not isinstance(data, dict):
            raise ChangeError(400, 'send a JSON object of levels, e.g. {"billing": 7, "tv": 0}')
        bad = [k for k, v in data.items() if not isinstance(v, int) or isinstance(v, bool)]
        if bad:
            raise ChangeError(422, f"levels are whole numbers 0-10 (0 removes): {bad[0]!r}")
        skills = {**dict(row.get("skills") or {}), **data}
        data = {k: v for k, v in skills.items() if v != 0}
    try:
        config = AgentConfig.model_validate(
            {
                "id": agent_id,
                "endpoint": row["endpoint"],
                "skills": data,
                # everything else the agent had stays as it was
                "languages": row.get("languages") or [],
                "site": row.get("site") or "",
                "group": row.get("group") or "default",
                "wrap_up": row.get("wrap_up"),
            }
        )
    except ValidationError as exc:
        raise ChangeError(422, "the skills do not validate", problems(exc)) from None
    await router.add_agents([agent_of(config)])
    action = "agent.skills.patch" if merge else "agent.skills"
    await router.audit(actor, action, agent=agent_id, value=json.dumps(data))
    return await router.agent(agent_id) or {}


async def put_queue(router: RedisRouter, actor: str, name: str, data: Any) -> QueueConfig:
    """Create or change a queue from its routing.yaml form (every engine follows)."""
    if not name or not all(c.isalnum() or c in _QUEUE_NAME_CHARS for c in name):
        raise ChangeError(422, "a queue name holds letters, digits, '_', '-' and '.'")
    try:
        config = QueueConfig.model_validate(data)
    except ValidationError as exc:
        raise ChangeError(422, f"queue {name!r} does not validate", problems(exc)) from None
    await router.set_queue(name, config)
    await router.audit(actor, "queue.put", queue=name, value=config.model_dump_json())
    return config


async def supervise(
    supervisors: Supervisors | None,
    who: Principal,
    data: Mapping[str, Any] | Any,
    *,
    phones_hint: str,
) -> Supervision:
    """Listen, whisper or barge from one of ``who``'s own phones; ``phones_hint`` is the
    refusal for a person without phones, saying where to set them (``{name}``: theirs)."""
    if supervisors is None:
        raise ChangeError(
            503,
            "supervision needs the engine's AMI connection; set IVR_AMI_USER and "
            "IVR_AMI_SECRET (or IVR_AMI_SECRET_FILE) and restart",
        )
    if not isinstance(data, Mapping) or not all(
        isinstance(data.get(k), str) for k in ("agent", "mode", "from")
    ):
        raise ChangeError(
            400, 'send {"agent": ID, "mode": "listen|whisper|barge", "from": ENDPOINT}'
        )
    if ENDPOINT.match(data["from"]) and not who.owns(data["from"]):
        # The call's audio goes to "from": only a phone of the supervisor's own (what
        # is not an endpoint at all is refused by the service, 422).
        raise ChangeError(403, _not_own_phone(who, data["from"], phones_hint))
    try:
        return await supervisors.spy(who, data["agent"], data["mode"], data["from"])
    except SupervisionError as exc:
        raise ChangeError(exc.status, str(exc)) from None


def _not_own_phone(who: Principal, endpoint: str, hint: str) -> str:
    if not who.phones:
        return hint.format(name=who.name)
    return (
        f"{endpoint!r} is not one of {who.name}'s phones ({', '.join(who.phones)}); "
        "supervise from your own phone"
    )
