"""What the live board holds per agent, call and queue, and the records the console
gets for them (JSON objects: ``ivr/console/static/live.js`` reads these fields).

An agent's ``state`` is what the console shows (:data:`SHOWN`; ``on_hold`` while
a leg of their call is held); ``since`` is when they entered it (seconds since
the epoch; None when not known). Times are the server's; a browser shows ages
against the ``now`` every message carries.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from routing.config import QueueConfig
from routing.kpis import AgentStats, Running

__all__ = [
    "SHOWN",
    "AgentLive",
    "CallLive",
    "QueueLive",
    "agent_record",
    "call_record",
    "queue_counts",
    "queue_record",
]

#: Routing state -> what the console shows (on_call becomes on_hold while held).
SHOWN: Mapping[str, str] = {
    "logged_out": "logged_out",
    "available": "available",
    "reserved": "ringing",
    "on_call": "on_call",
    "wrap_up": "wrap_up",
    "paused": "paused",
    "missed": "missed",
}


@dataclass(slots=True)
class AgentLive:
    id: str
    endpoint: str = ""
    site: str = ""
    team: str = ""
    group: str = "default"
    skills: dict[str, int] = field(default_factory=dict)
    state: str = "logged_out"
    reason: str = ""
    since: float | None = None
    held_since: float | None = None
    call: str = ""
    queues: tuple[str, ...] = ()
    pause_total: float = 0.0

    @property
    def shown(self) -> str:
        if self.state == "on_call" and self.held_since is not None:
            return "on_hold"
        return SHOWN.get(self.state, self.state)


@dataclass(slots=True)
class CallLive:
    id: str
    stage: str  # ivr, waiting, ringing, connected
    since: float
    ticket: str = ""
    queue: str = ""
    site: str = ""
    queued_at: float | None = None
    answered_at: float | None = None
    caller: str = ""
    language: str = ""
    flow: str = ""
    path: list[str] = field(default_factory=list)
    agent: str = ""
    priority: int = 0
    callback: bool = False
    position: int | None = None
    held: set[str] = field(default_factory=set)  # channels on hold


@dataclass(slots=True)
class QueueLive:
    name: str
    config: QueueConfig = field(default_factory=QueueConfig)
    events: list[tuple[float, dict[str, str]]] = field(default_factory=list)
    kpis: dict[str, Any] = field(default_factory=dict)
    #: The day's figures of the agents who took this queue's calls.
    agents: dict[str, AgentStats] = field(default_factory=dict)
    #: ``events`` folded so far; None: to fold again (a new day, new targets).
    running: Running | None = None
    computed: float = float("-inf")
    stale: bool = True
    #: An event since the last figures moved one of them (the board's FIGURES).
    urgent: bool = False


def agent_record(
    agent: AgentLive, call: CallLive | None, day: Iterable[AgentStats]
) -> dict[str, Any]:
    """An agent as the console gets it: with the caller of their current call, and the
    day's figures (``day``: theirs in each queue, from :func:`routing.kpis.summarize`)."""
    handled = missed = 0
    handles: list[float] = []
    for stats in day:
        handled, missed = handled + stats.handled, missed + stats.missed
        handles += stats.handles
    return {
        "id": agent.id,
        "state": agent.shown,
        "reason": agent.reason,
        "since": agent.held_since if agent.shown == "on_hold" else agent.since,
        "site": agent.site,
        "team": agent.team,
        "queues": list(agent.queues),
        "call": call.id if call is not None else "",
        "caller": call.caller if call is not None else "",
        "queue": call.queue if call is not None else "",
        "flow": call.flow if call is not None else "",
        "path": list(call.path) if call is not None else [],
        "language": call.language if call is not None else "",
        "handled": handled,
        "missed": missed,
        "aht": sum(handles) / len(handles) if handles else None,
        "pause_total": agent.pause_total,
    }


def queue_counts(agents: Iterable[AgentLive]) -> dict[str, dict[str, int]]:
    """Logged-in agents per queue they serve, by state (on hold counts as on a call,
    missed as paused): one pass over the agents for every queue."""
    counts: dict[str, dict[str, int]] = {}
    for agent in agents:
        if agent.state == "logged_out" or not agent.queues:
            continue
        shown = _BUCKET.get(agent.shown, agent.shown)
        for name in agent.queues:
            per = counts.setdefault(name, dict.fromkeys(_BUCKETS, 0))
            per[shown] = per.get(shown, 0) + 1
    return counts


_BUCKETS = ("available", "on_call", "paused", "ringing", "wrap_up")
_BUCKET = {"on_hold": "on_call", "missed": "paused"}


def queue_record(
    queue: QueueLive, waiting: list[CallLive], counts: Mapping[str, int] | None
) -> dict[str, Any]:
    """A queue: its calls waiting, its agents by state (:func:`queue_counts`), the
    day's figures."""
    level = queue.config.service_level
    return {
        "name": queue.name,
        "waiting": len(waiting),
        "oldest_since": min((c.queued_at or c.since for c in waiting), default=None),
        "target": {"percent": level.percent, "seconds": level.seconds},
        "agents": dict(counts or dict.fromkeys(_BUCKETS, 0)),
        "offered": 0,
        "answered": 0,
        "handled": 0,
        "abandoned": 0,
        "asa": None,
        "aht": None,
        "service_level": None,
        "abandonment_rate": None,
        "csat": None,
        **queue.kpis,
    }


def call_record(call: CallLive) -> dict[str, Any]:
    """A call: where it is, who called, who took it."""
    return {
        "id": call.id,
        "stage": call.stage,
        "queue": call.queue,
        "site": call.site,
        "since": call.since,
        "queued_at": call.queued_at,
        "answered_at": call.answered_at,
        "caller": call.caller,
        "language": call.language,
        "flow": call.flow,
        "path": list(call.path),
        "agent": call.agent,
        "position": call.position,
        "callback": call.callback,
        "held": bool(call.held),
    }
