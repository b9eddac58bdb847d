"""The live board: agents, queues, calls and alerts, folded from what happened.

Pure: :class:`Board` is fed the routing events (ROUTING.md's stream, fields
as written), the roster and queue settings, the few AMI facts routing cannot
know (a call on hold, the caller's number) and, through the engine's hook,
where calls are in their flow; it keeps what the console shows and says which
records changed (:meth:`Board.changes`). :mod:`ivr.console.live` does the
reading and the fan-out.

States come from the events, never guessed from a phone: ``reserved`` shows
as ringing, ``on_call`` as on hold while AMI says either leg is held (Hold /
Unhold), ``wrap_up`` only after ``completed``. Queue figures for the day
(service level, ASA, abandonment, calls handled, AHT, CSAT) and each agent's
(calls handled and missed, AHT: summed over the queues) are
:func:`routing.kpis.summarize` over each queue's events since midnight, folded
as they come (:class:`routing.kpis.Running`: an event is folded once, not the
day again). An event that moves a figure (:data:`FIGURES`) has them worked out
at the next :meth:`Board.settle`, so once per batch however many came in it;
other changes at most every ``kpi_every`` seconds. "Handled" is one thing on
the queue and on the agent: calls answered and completed (ROUTING.md).
Waiting calls, positions and the longest wait are kept live from the same
events.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from ivr.console.records import (
    SHOWN,
    AgentLive,
    CallLive,
    QueueLive,
    agent_record,
    call_record,
    queue_counts,
    queue_record,
)
from ivr.console.roles import agent_queues, agent_team
from routing.config import QueueConfig
from routing.kpis import ENDINGS, AgentStats, Running

__all__ = ["FIGURES", "SHOWN", "Board", "Key", "Kind", "Thresholds"]

Kind = Literal["agent", "queue", "call", "alert"]
Key = tuple[Kind, str]

#: Fields the KPIs read; the rest of an event is not kept for the day.
_KPI_FIELDS = ("event", "ticket", "call", "queue", "site", "caller", "at", "score", "agent")
#: Events that move a figure the board shows (offered, answered, handled, missed,
#: abandoned and the other endings, CSAT): the figures follow at the next settle.
FIGURES = frozenset({"enqueued", "connected", "completed", "missed", "survey", *ENDINGS})
#: Nodes of a call's path kept for the console.
_PATH = 8


@dataclass(frozen=True, slots=True)
class Thresholds:
    """When the board raises an alert."""

    #: Seconds a call may wait; None: the queue's service-level seconds.
    wait: float | None = None
    #: Seconds a call with an agent may last.
    call: float = 600.0


def _float(text: str | None, default: float) -> float:
    try:
        return float(text) if text else default
    except ValueError:
        return default


def _alert(kind: str, call: CallLive, since: float | None, text: str) -> dict[str, Any]:
    prefix = "wait" if kind == "wait" else "long"
    return {"id": f"{prefix}:{call.id}", "kind": kind, "queue": call.queue, "call": call.id,
            "agent": call.agent, "since": since, "text": text}  # fmt: skip


def _day(stats: AgentStats | None) -> tuple[int, int, int, float | None]:
    """What an agent's tile shows of their day in one queue."""
    if stats is None:
        return (0, 0, 0, None)
    return (stats.handled, stats.missed, len(stats.handles), stats.aht)


def _caller_of(context: str) -> str:
    """The caller's number in a handoff's context (JSON of what the caller chose)."""
    try:
        data = json.loads(context)
    except ValueError:
        return ""
    caller = data.get("caller") if isinstance(data, dict) else None
    number = caller.get("number") if isinstance(caller, dict) else None
    return str(number) if number and number != "unknown" else ""


class Board:
    """The console's live state, changed by :meth:`take` (routing events) and the AMI
    and flow facts; :meth:`changes` drains the keys whose records changed."""

    def __init__(
        self,
        *,
        thresholds: Thresholds | None = None,
        kpi_every: float = 1.0,
        on_wait: Callable[[str, float, str], None] | None = None,
    ) -> None:
        self.thresholds = thresholds or Thresholds()
        self.kpi_every = kpi_every
        #: Called with (queue, seconds waited, "answered" | "abandoned") as a wait ends.
        self.on_wait = on_wait
        self.agents: dict[str, AgentLive] = {}
        self.calls: dict[str, CallLive] = {}
        self.queues: dict[str, QueueLive] = {}
        self.alerts: dict[str, dict[str, Any]] = {}
        self._by_ticket: dict[str, str] = {}
        self._by_endpoint: dict[str, str] = {}
        self._dirty: set[Key] = set()
        #: Agents per queue and state; None: to count again (an agent moved).
        self._counts: dict[str, dict[str, int]] | None = None
        self._positions: set[str] = set()

    # ------------------------------------------------------------- inputs

    def set_queues(self, configs: Mapping[str, QueueConfig]) -> None:
        """Queue settings (targets, who serves them); unchanged settings cost nothing."""
        changed = False
        for name, config in configs.items():
            changed |= name not in self.queues
            queue = self._queue(name)
            if queue.config != config:  # its targets: the day is folded again
                queue.config, queue.stale, changed = config, True, True
                queue.running, queue.urgent = None, True
        if changed:
            for agent in self.agents.values():
                self._serving(agent)

    def set_agents(self, rows: Iterable[Mapping[str, Any]], *, states: bool = True) -> None:
        """The roster (``router.agents()`` rows): who exists, their site, team and
        skills; with ``states``, their state as the store holds it (at start; after
        that the events say, and a roster read a moment behind them must not)."""
        for row in rows:
            known = row["id"] in self.agents
            agent = self.agents.get(row["id"]) or AgentLive(row["id"])
            self.agents[agent.id] = agent
            skills = {str(k): int(v) for k, v in dict(row.get("skills") or {}).items()}
            before = (agent.endpoint, agent.site, agent.team, agent.group, agent.skills)
            agent.endpoint, agent.site = str(row.get("endpoint", "")), str(row.get("site", ""))
            agent.team, agent.group = agent_team(row), str(row.get("group") or "default")
            agent.skills = skills
            self._by_endpoint[agent.endpoint] = agent.id
            if before != (agent.endpoint, agent.site, agent.team, agent.group, agent.skills):
                self._serving(agent)
            state, reason = str(row.get("state") or "logged_out"), str(row.get("reason", ""))
            if (states or not known) and (state, reason) != (agent.state, agent.reason):
                self._state(agent, state, reason, None, None)

    def take(self, at: float, event: Mapping[str, str]) -> None:
        """One routing event (the stream's fields; ``at`` is when it happened)."""
        kind = event.get("event", "")
        if kind == "state":
            agent = self._agent(event.get("agent", ""))
            reason = event.get("reason", "")
            self._state(agent, event.get("after", ""), reason, event.get("before"), at)
            return
        if kind == "handoff":
            self._handoff(event)
            return
        if kind == "ivr_ended":
            self.ivr_left(event.get("call", ""))
            return
        queue = event.get("queue", "")
        if not queue:
            return
        found = self._queue(queue)
        kept = {k: event[k] for k in _KPI_FIELDS if k in event}
        found.events.append((at, kept))
        if found.running is not None:
            found.running.take(at, kept)
        found.stale = True
        found.urgent |= kind in FIGURES
        self._dirty.add(("queue", queue))
        if kind != "survey":
            self._ticket_event(kind, at, event)

    def ivr_step(
        self, call: str, flow: str, node: str, now: float, *, caller: str = "", language: str = ""
    ) -> None:
        """A call in the IVR reached ``node`` of ``flow`` (the engine's hook)."""
        found = self.calls.get(call)
        if found is None:
            found = self.calls[call] = CallLive(call, "ivr", now)
        found.flow = flow
        found.path = [*found.path, node][-_PATH:]
        found.caller = caller or found.caller
        found.language = language or found.language
        self._touch_call(found)

    def ivr_left(self, call: str) -> None:
        """The call left the engine's flow (hung up, transferred, ended)."""
        found = self.calls.get(call)
        if found is not None and found.stage == "ivr":
            self._drop_call(found)

    def hold(self, channel: str, uniqueid: str, endpoint: str, held: bool, now: float) -> None:
        """AMI Hold / Unhold (or a Hangup: ``held`` False) of a channel: the caller's
        (its uniqueid is the call's id) or an agent's phone."""
        call = self.calls.get(uniqueid)
        if call is None:
            agent_id = self._by_endpoint.get(endpoint, "")
            agent = self.agents.get(agent_id)
            call = self.calls.get(agent.call) if agent is not None else None
        if call is None:
            return
        before = bool(call.held)
        if held:
            call.held.add(channel)
        else:
            call.held.discard(channel)
        if bool(call.held) != before:
            agent = self.agents.get(call.agent)
            if agent is not None:
                agent.held_since = now if call.held else None
                self._dirty.add(("agent", agent.id))
            self._touch_call(call)

    def caller_seen(self, call: str, number: str) -> None:
        """The caller's number, from AMI (the caller's channel when the agent is rung)."""
        found = self.calls.get(call)
        if found is not None and number and not found.caller:
            found.caller = number
            self._touch_call(found)

    # ------------------------------------------------------------- time

    def settle(self, now: float) -> None:
        """What time changes: queue figures (at once after an event that moves them,
        else at most every ``kpi_every`` s), positions, alerts for waits and calls
        over their thresholds."""
        for queue in self.queues.values():
            if queue.stale and (queue.urgent or now - queue.computed >= self.kpi_every):
                self._kpis(queue, now)
        for name in self._positions:
            self._position(name)
        self._positions.clear()
        self._alerts(now)

    def new_day(self) -> None:
        """Midnight: the day's figures start again (live calls and states stay)."""
        for agent in self.agents.values():
            agent.pause_total = 0.0
            self._dirty.add(("agent", agent.id))
        for queue in self.queues.values():
            queue.events = [e for e in queue.events if self._live_ticket(e[1])]
            queue.running, queue.stale, queue.urgent = None, True, True
            self._dirty.add(("queue", queue.name))

    # ------------------------------------------------------------- outputs

    def changes(self) -> list[Key]:
        """The keys changed since the last call, once each."""
        dirty, self._dirty = self._dirty, set()
        return sorted(dirty)

    def record(self, key: Key) -> dict[str, Any] | None:
        """What the console gets for ``key``; None: it is gone."""
        kind, name = key
        if kind == "agent":
            agent = self.agents.get(name)
            if agent is None:
                return None
            day = [q.agents[name] for q in self.queues.values() if name in q.agents]
            return agent_record(agent, self.calls.get(agent.call), day)
        if kind == "queue":
            queue = self.queues.get(name)
            if queue is None:
                return None
            waiting = [c for c in self.calls.values() if c.queue == name and c.stage == "waiting"]
            if self._counts is None:
                self._counts = queue_counts(self.agents.values())
            return queue_record(queue, waiting, self._counts.get(name))
        if kind == "call":
            call = self.calls.get(name)
            return None if call is None else call_record(call)
        return self.alerts.get(name)

    def all_keys(self) -> Iterator[Key]:
        yield from (("queue", name) for name in sorted(self.queues))
        yield from (("agent", name) for name in sorted(self.agents))
        yield from (("call", name) for name in sorted(self.calls))
        yield from (("alert", name) for name in sorted(self.alerts))

    def queues_of(self, agent_id: str | None) -> tuple[str, ...]:
        """The queues an agent serves (their base skills, in their routing group)."""
        agent = self.agents.get(agent_id or "")
        return () if agent is None else agent.queues

    def states(self) -> dict[str, int]:
        """Agents per shown state (the metrics)."""
        counts = dict.fromkeys(("on_hold", *SHOWN.values()), 0)
        for agent in self.agents.values():
            counts[agent.shown] = counts.get(agent.shown, 0) + 1
        return counts

    def nodes(self) -> dict[tuple[str, str], int]:
        """Live calls per (flow, node) in the IVR, and per ("queue", stage) after it."""
        counts: dict[tuple[str, str], int] = {}
        for call in self.calls.values():
            if call.stage == "ivr":
                where = (call.flow, call.path[-1] if call.path else "")
            else:
                where = ("queue", call.stage)
            counts[where] = counts.get(where, 0) + 1
        return counts

    # ------------------------------------------------------------- agents

    def _agent(self, agent_id: str) -> AgentLive:
        agent = self.agents.get(agent_id)
        if agent is None:
            agent = self.agents[agent_id] = AgentLive(agent_id)
        return agent

    def _serving(self, agent: AgentLive) -> None:
        self._counts = None
        row = {"skills": agent.skills, "group": agent.group}
        configs = {name: queue.config for name, queue in self.queues.items()}
        queues = tuple(agent_queues(row, configs))
        if queues != agent.queues:
            for name in {*queues, *agent.queues}:
                self._dirty.add(("queue", name))
            agent.queues = queues
        self._dirty.add(("agent", agent.id))

    def _state(
        self, agent: AgentLive, after: str, reason: str, before: str | None, at: float | None
    ) -> None:
        """The agent entered ``after`` at ``at`` (None: at a time not known, from the
        roster); a state event always says when, even after a missed one."""
        self._counts = None
        paused = agent.since if agent.state == "paused" and after != "paused" else None
        if paused is not None and at is not None:
            agent.pause_total += max(0.0, at - paused)
        moved = (before != after) if before is not None else (after != agent.state)
        if moved or reason != agent.reason or agent.since is None:
            agent.since = at
        agent.state, agent.reason = after, reason if after == "paused" else ""
        if after not in ("reserved", "on_call"):
            agent.held_since = None
            agent.call = ""
        self._dirty.add(("agent", agent.id))
        for name in agent.queues:
            self._dirty.add(("queue", name))

    # ------------------------------------------------------------- calls

    def _queue(self, name: str) -> QueueLive:
        queue = self.queues.get(name)
        if queue is None:
            queue = self.queues[name] = QueueLive(name)
            self._dirty.add(("queue", name))
        return queue

    def _touch_call(self, call: CallLive) -> None:
        self._dirty.add(("call", call.id))
        if call.agent:
            self._dirty.add(("agent", call.agent))

    def _drop_call(self, call: CallLive) -> None:
        self.calls.pop(call.id, None)
        self._by_ticket.pop(call.ticket, None)
        self._dirty.add(("call", call.id))
        if call.queue:
            self._positions.add(call.queue)
        for alert in (f"wait:{call.id}", f"long:{call.id}"):
            if self.alerts.pop(alert, None) is not None:
                self._dirty.add(("alert", alert))

    def _live_ticket(self, event: Mapping[str, str]) -> bool:
        return event.get("ticket", "") in self._by_ticket

    def _ticket_event(self, kind: str, at: float, event: Mapping[str, str]) -> None:
        ticket = event.get("ticket", "")
        call = self.calls.get(event.get("call") or self._by_ticket.get(ticket, ""))
        if kind in ("completed", *ENDINGS):
            if call is not None:  # else a call this board never saw waiting
                self._ended(kind, at, call)
            return
        if kind == "enqueued" or call is None:
            call = self._enqueued(at, event)
        if kind == "reserved":
            call.stage, call.agent = "ringing", event.get("agent", "")
            self._agent(call.agent).call = call.id
        elif kind == "missed":
            call.stage, call.agent = "waiting", ""
        elif kind == "connected":
            call.stage, call.agent = "connected", event.get("agent", "")
            call.answered_at = _float(event.get("at"), at)
            self._agent(call.agent).call = call.id
            if self.on_wait is not None and not call.callback and call.queued_at is not None:
                self.on_wait(call.queue, max(0.0, call.answered_at - call.queued_at), "answered")
        elif kind == "callback_requested":
            call.callback = True
        elif kind == "requalified":
            call.priority = int(_float(event.get("priority"), call.priority))
        elif kind == "restored":
            call.stage, call.agent = "waiting", ""
        self._positions.add(call.queue)
        self._touch_call(call)

    def _enqueued(self, at: float, event: Mapping[str, str]) -> CallLive:
        """The call's ticket (an ``enqueued``, or the first event of a ticket enqueued
        before the board started reading)."""
        call_id, ticket = event.get("call", ""), event.get("ticket", "")
        call = self.calls.get(call_id) or CallLive(call_id, "waiting", at)
        self.calls[call_id] = call
        call.stage, call.queued_at = "waiting", call.queued_at or at
        call.ticket, call.queue = ticket, event.get("queue", "")
        call.site = event.get("site", "")
        call.priority = int(_float(event.get("priority"), call.priority))
        call.caller = event.get("caller") or call.caller
        call.language = event.get("language") or call.language
        self._by_ticket[ticket] = call_id
        return call

    def _ended(self, kind: str, at: float, call: CallLive) -> None:
        if kind == "abandoned" and self.on_wait is not None and call.queued_at is not None:
            self.on_wait(call.queue, max(0.0, at - call.queued_at), "abandoned")
        self._drop_call(call)

    def _handoff(self, event: Mapping[str, str]) -> None:
        call = self.calls.get(event.get("call", ""))
        if call is None:
            return
        call.caller = call.caller or _caller_of(event.get("context", ""))
        self._touch_call(call)

    def _position(self, name: str) -> None:
        waiting = sorted(
            (c for c in self.calls.values() if c.queue == name and c.stage == "waiting"),
            key=lambda c: (-c.priority, c.queued_at or c.since, int(c.ticket or 0)),
        )
        for place, call in enumerate(waiting, start=1):
            if call.position != place:
                call.position = place
                self._dirty.add(("call", call.id))
        for call in self.calls.values():
            if call.queue == name and call.stage != "waiting" and call.position is not None:
                call.position = None
                self._dirty.add(("call", call.id))
        self._dirty.add(("queue", name))

    # ------------------------------------------------------------- queues

    def _kpis(self, queue: QueueLive, now: float) -> None:
        if queue.running is None:
            queue.running = Running(target=queue.config.service_level.seconds)
            for at, event in queue.events:
                queue.running.take(at, event)
        summary = queue.running.summary(now)
        for agent in {*queue.agents, *summary.agents}:
            if _day(queue.agents.get(agent)) != _day(summary.agents.get(agent)):
                self._dirty.add(("agent", agent))
        queue.agents = summary.agents
        stats = summary.queues.get(queue.name)
        queue.kpis = (
            {}
            if stats is None
            else {
                "offered": stats.offered,
                "answered": stats.answered,
                "handled": stats.completed,
                "abandoned": stats.abandoned,
                "asa": stats.asa,
                "aht": stats.aht,
                "service_level": stats.service_level,
                "abandonment_rate": stats.abandonment_rate,
                "csat": stats.csat,
            }
        )
        queue.computed, queue.stale, queue.urgent = now, False, False
        self._dirty.add(("queue", queue.name))

    def _alerts(self, now: float) -> None:
        fresh: dict[str, dict[str, Any]] = {}
        for call in self.calls.values():
            queue = self.queues.get(call.queue)
            limit = self.thresholds.wait
            if limit is None and queue is not None:
                limit = queue.config.service_level.seconds
            waited = now - (call.queued_at or now)
            if call.stage == "waiting" and not call.callback and limit and waited > limit:
                alert = _alert("wait", call, call.queued_at, f"waiting over {limit:g} s")
                fresh[alert["id"]] = alert
            talked = now - (call.answered_at or now)
            if call.stage == "connected" and talked > self.thresholds.call:
                text = f"on a call over {self.thresholds.call / 60:g} min"
                alert = _alert("long_call", call, call.answered_at, text)
                fresh[alert["id"]] = alert
        for queue in self.queues.values():
            level, target = queue.kpis.get("service_level"), queue.config.service_level.percent
            if level is not None and level * 100 < target:
                name = f"sl:{queue.name}"
                since = self.alerts.get(name, {}).get("since", now)
                text = f"service level {level:.0%} under {target:g}%"
                fresh[name] = {"id": name, "kind": "service_level", "queue": queue.name,
                               "call": "", "agent": "", "since": since, "text": text}  # fmt: skip
        for name in set(self.alerts) | set(fresh):
            if self.alerts.get(name) != fresh.get(name):
                self._dirty.add(("alert", name))
        self.alerts = fresh
