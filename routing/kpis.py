"""Contact-centre KPIs computed from the routing event stream (ROUTING.md's events).

Per queue, and per caller's site, over a window: calls offered; answered
(``connected``, once per ticket); each way of leaving without an agent as its
own count (``abandoned`` by the caller, ``overflowed``, ``timed_out``,
``lease_expired``, ``unanswered`` callbacks: only the first is abandonment);
callbacks asked for; ASA from the answer time (``connected``'s ``at`` when
present, else the event's time) over live calls (a callback's wait is not a
caller on hold); abandonment rate (abandoned over answered plus abandoned);
service level (answered within the target, over answered plus abandoned
after it); AHT (answer to ``completed``); calls **waiting** now (stage
``waiting``: a ringing call is ``reserved``, counted apart) and the longest
wait among them; CSAT from ``survey`` notes (share of 4 or 5 out of 5, and the
mean); repeat callers (an ``enqueued`` whose ``caller`` was enqueued before
within ``repeat_window`` seconds, 24 h by default). Overall: agent occupancy
(reserved, on a call or in wrap-up over time logged in and not paused), also
per agent site; **IVR containment** from the engine's ``ivr_ended`` note, one
per call that ended in the flow, with fields ``call`` (the channel's id) and
``contained`` (``1`` when the call ended without reaching a queue's agent,
``0`` otherwise): contained calls over ``ivr_ended`` notes, also per ``flow``;
**drop-off** per flow node: a contained call whose caller hung up
(``ended`` ``caller_hangup``) left at its ``node``.

Per agent (the ``agent`` of ``connected``, ``completed``, ``missed`` and
``state``): calls answered, calls handled, missed rings, AHT, occupancy, and CSAT
through the survey's ``call`` (the channel that was enqueued). **Handled** means one
thing everywhere (ROUTING.md): a call an agent answered that ended with
``completed``, counted as it completes; a queue's handled calls are its
``completed``, an agent's their ``handled``, and AHT is the mean of their handle
times. A call on an agent's line now is answered, not yet handled. :func:`bucketed` gives the
same figures per interval (15 minutes, an hour, a day): a call counts in the
interval it was offered in (its answer, end and survey too), agent time is
cut at the intervals' edges, and repeat callers look back across intervals.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from itertools import pairwise

__all__ = [
    "AgentStats",
    "AgentTime",
    "Event",
    "FlowStats",
    "QueueStats",
    "Running",
    "Summary",
    "bucketed",
    "combine",
    "compute",
    "summarize",
]

Event = tuple[float, Mapping[str, str]]  # (seconds since the epoch, fields)

#: Ways a ticket ends without ``completed``: each is its own count, never an abandon.
ENDINGS = ("abandoned", "overflowed", "timed_out", "lease_expired", "unanswered")
DAY = 86_400.0
#: Events that move a ticket between waiting and ringing.
_MOVES = {"reserved": "reserved", "missed": "waiting"}


@dataclass(slots=True)
class QueueStats:
    queue: str
    offered: int = 0
    answered: int = 0
    #: Calls handled: answered, then ended with ``completed``.
    completed: int = 0
    abandoned: int = 0
    overflowed: int = 0
    timed_out: int = 0
    lease_expired: int = 0
    unanswered: int = 0
    callbacks: int = 0
    waiting: int = 0
    reserved: int = 0
    repeats: int = 0
    asa: float | None = None
    aht: float | None = None
    service_level: float | None = None
    abandonment_rate: float | None = None
    longest_wait: float = 0.0
    #: Share of survey answers that are 4 or 5 (of 5), and the mean answer.
    csat: float | None = None
    csat_mean: float | None = None
    surveys: int = 0
    waits: list[float] = field(default_factory=list, repr=False)
    handles: list[float] = field(default_factory=list, repr=False)
    scores: list[int] = field(default_factory=list, repr=False)
    late_abandons: int = field(default=0, repr=False)
    #: Answered within the service-level target of each call's own queue.
    within: int = field(default=0, repr=False)


@dataclass(slots=True)
class AgentTime:
    """Seconds an agent (or agents) held calls, and were logged in and not paused."""

    busy: float = 0.0
    staffed: float = 0.0

    @property
    def occupancy(self) -> float | None:
        return self.busy / self.staffed if self.staffed else None


@dataclass(slots=True)
class AgentStats:
    agent: str
    site: str = ""
    #: Calls they answered (``connected``), and of those the ones that ended
    #: (``completed``): the calls they handled.
    answered: int = 0
    handled: int = 0
    missed: int = 0
    aht: float | None = None
    time: AgentTime = field(default_factory=AgentTime)
    csat: float | None = None
    csat_mean: float | None = None
    surveys: int = 0
    handles: list[float] = field(default_factory=list, repr=False)
    scores: list[int] = field(default_factory=list, repr=False)


@dataclass(slots=True)
class FlowStats:
    flow: str
    calls: int = 0
    contained: int = 0
    #: Contained calls whose caller hung up, in all and per node they left at.
    dropped: int = 0
    nodes: dict[str, int] = field(default_factory=dict)

    @property
    def containment(self) -> float | None:
        return self.contained / self.calls if self.calls else None


@dataclass(slots=True)
class Summary:
    queues: dict[str, QueueStats]
    #: The same figures by the caller's site ("" for calls without one).
    sites: dict[str, QueueStats]
    occupancy: float | None
    site_occupancy: dict[str, float | None]
    ivr_calls: int = 0
    contained: int = 0
    containment: float | None = None
    repeat_callers: int = 0
    callers: int = 0
    agents: dict[str, AgentStats] = field(default_factory=dict)
    flows: dict[str, FlowStats] = field(default_factory=dict)
    #: Agent time of every agent, and per agent site.
    time: AgentTime = field(default_factory=AgentTime)
    site_time: dict[str, AgentTime] = field(default_factory=dict)


@dataclass(slots=True)
class _Ticket:
    stats: tuple[QueueStats, QueueStats]
    since: float
    target: float
    stage: str = "waiting"
    answered_at: float | None = None
    callback: bool = False
    agent: str = ""


def _at(event: Mapping[str, str], moment: float) -> float:
    try:
        return float(event.get("at") or moment)
    except ValueError:
        return moment


#: Agent states that hold a call, and states that are not staffed time.
_HOLDING = frozenset({"on_call", "wrap_up", "reserved"})
_AWAY = frozenset({"logged_out", "paused"})


class _Window:
    """Folds events, in time order, into per-queue, per-site and per-agent stats and
    agent time. Windows of one :func:`bucketed` share the callers' last calls."""

    def __init__(
        self,
        target: float,
        repeat_window: float,
        targets: Mapping[str, float] | None = None,
        last_call: dict[str, float] | None = None,
    ) -> None:
        self.target, self.repeat_window = target, repeat_window
        self.targets = targets or {}
        self.queues: dict[str, QueueStats] = {}
        self.sites: dict[str, QueueStats] = {}
        #: Tickets not ended yet (an ended one takes no more events).
        self.open: dict[str, _Ticket] = {}
        self.calls: dict[str, _Ticket] = {}  # the enqueued channel: surveys find their ticket
        self.agents: dict[str, AgentStats] = {}
        self.flows: dict[str, FlowStats] = {}
        self.time = AgentTime()
        self.site_time: dict[str, AgentTime] = {}
        self.agent_since: dict[str, tuple[str, float, str]] = {}
        self.last_call = {} if last_call is None else last_call
        self.ivr_calls = self.contained = self.repeat_callers = self.callers = 0

    def take(self, moment: float, event: Mapping[str, str]) -> None:
        kind = event.get("event", "")
        if kind == "enqueued":
            self._enqueued(moment, event)
        elif kind == "state":
            self._state(moment, event)
        elif kind == "survey":
            self._survey(event)
        elif kind == "ivr_ended":
            self._ivr_ended(event)
        else:
            ticket = self.open.get(event.get("ticket", ""))
            if ticket is not None:
                self._call(moment, kind, event, ticket)
                if ticket.stage in ("completed", *ENDINGS):
                    del self.open[event["ticket"]]

    def _agent(self, agent: str, site: str = "") -> AgentStats:
        stats = self.agents.get(agent)
        if stats is None:
            stats = self.agents[agent] = AgentStats(agent)
        stats.site = site or stats.site
        return stats

    def _queue(self, name: str) -> QueueStats:
        stats = self.queues.get(name)
        if stats is None:
            stats = self.queues[name] = QueueStats(name)
        return stats

    def _site(self, name: str) -> QueueStats:
        stats = self.sites.get(name)
        if stats is None:
            stats = self.sites[name] = QueueStats(name)
        return stats

    def _enqueued(self, moment: float, event: Mapping[str, str]) -> None:
        queue, site = event.get("queue", ""), event.get("site", "")
        both = (self._queue(queue), self._site(site))
        ticket = _Ticket(both, moment, self.targets.get(queue, self.target))
        self.open[event.get("ticket", "")] = ticket
        if event.get("call"):
            self.calls[event["call"]] = ticket
        caller = event.get("caller", "")
        repeat = False
        if caller:
            self.callers += 1
            last = self.last_call.get(caller)
            repeat = last is not None and moment - last <= self.repeat_window
            self.repeat_callers += repeat
            self.last_call[caller] = moment
        for stats in both:
            stats.offered += 1
            stats.repeats += repeat

    def _call(self, moment: float, kind: str, event: Mapping[str, str], t: _Ticket) -> None:
        if kind in _MOVES:
            t.stage = _MOVES[kind]
            if kind == "missed" and event.get("agent"):
                self._agent(event["agent"]).missed += 1
        elif kind == "callback_requested" and not t.callback:
            t.callback = True
            for stats in t.stats:
                stats.callbacks += 1
        elif kind == "connected" and t.answered_at is None:
            self._connected(moment, event, t)
        elif kind == "completed":
            self._completed(moment, event, t)
        elif kind in ENDINGS:
            t.stage = kind
            for stats in t.stats:
                setattr(stats, kind, getattr(stats, kind) + 1)
                if kind == "abandoned" and not t.callback and moment - t.since > t.target:
                    stats.late_abandons += 1

    def _connected(self, moment: float, event: Mapping[str, str], t: _Ticket) -> None:
        t.stage, t.answered_at = "connected", _at(event, moment)
        t.agent = event.get("agent", "")
        if t.agent:
            self._agent(t.agent).answered += 1
        wait = t.answered_at - t.since
        for stats in t.stats:
            stats.answered += 1
            if not t.callback:
                stats.waits.append(wait)
                stats.within += wait <= t.target

    def _completed(self, moment: float, event: Mapping[str, str], t: _Ticket) -> None:
        t.stage = "completed"
        t.agent = t.agent or event.get("agent", "")
        agent = self._agent(t.agent) if t.agent else None
        if agent is not None:
            agent.handled += 1
        handle = None if t.answered_at is None else moment - t.answered_at
        for stats in t.stats:
            stats.completed += 1
            if handle is not None:
                stats.handles.append(handle)
        if agent is not None and handle is not None:
            agent.handles.append(handle)

    def _survey(self, event: Mapping[str, str]) -> None:
        score = event.get("score", "")
        queue = event.get("queue", "")
        if not queue or not score.isdigit() or not 1 <= int(score) <= 5:
            return  # no answer, or a survey after no queue
        stats = self._queue(queue)
        stats.scores.append(int(score))
        ticket = self.calls.get(event.get("call", ""))
        if ticket is not None:
            ticket.stats[1].scores.append(int(score))  # the caller's site
            if ticket.agent:
                self._agent(ticket.agent).scores.append(int(score))

    def _ivr_ended(self, event: Mapping[str, str]) -> None:
        contained = event.get("contained") == "1"
        self.ivr_calls += 1
        self.contained += contained
        name = event.get("flow", "")
        flow = self.flows.get(name) or self.flows.setdefault(name, FlowStats(name))
        flow.calls += 1
        flow.contained += contained
        if contained and event.get("ended") == "caller_hangup":
            node = event.get("node") or "(unknown)"
            flow.dropped += 1
            flow.nodes[node] = flow.nodes.get(node, 0) + 1

    def _state(self, moment: float, event: Mapping[str, str]) -> None:
        self._spend(event["agent"], moment)
        self.agent_since[event["agent"]] = (event["after"], moment, event.get("site", ""))

    def _spend(self, agent: str, until: float) -> None:
        """Count the agent's time in their current state up to ``until``."""
        before = self.agent_since.get(agent)
        if before is None or before[0] in _AWAY:
            return
        state, start, site = before
        spent = max(0.0, until - start)
        at_site = self.site_time.get(site)
        if at_site is None:
            at_site = self.site_time[site] = AgentTime()
        for time in (self.time, at_site, self._agent(agent, site).time):
            time.staffed += spent
            if state in _HOLDING:
                time.busy += spent

    def carry(self, following: _Window | None, at: float) -> None:
        """End the agents' time here at ``at``; they go on in ``following`` from there."""
        for agent, (state, _, site) in list(self.agent_since.items()):
            self._spend(agent, at)
            self.agent_since[agent] = (state, at, site)
            if following is not None:
                following.agent_since[agent] = (state, at, site)

    def finish(self, now: float) -> Summary:
        """The figures so far, as of ``now``; the window is left as it was (more events
        may follow, and this may be asked again: :class:`Running`)."""
        queues = {name: _copy_queue(stats) for name, stats in self.queues.items()}
        sites = {name: _copy_queue(stats) for name, stats in self.sites.items()}
        for t in self.open.values():
            for stats in (queues[t.stats[0].queue], sites[t.stats[1].queue]):
                if t.stage == "waiting":
                    stats.waiting += 1
                    stats.longest_wait = max(stats.longest_wait, now - t.since)
                elif t.stage == "reserved":
                    stats.reserved += 1
        return _summary(
            Summary(
                queues=queues,
                sites=sites,
                occupancy=None,
                site_occupancy={},
                ivr_calls=self.ivr_calls,
                contained=self.contained,
                repeat_callers=self.repeat_callers,
                callers=self.callers,
                agents={name: _copy_agent(agent) for name, agent in self.agents.items()},
                flows={
                    name: replace(flow, nodes=dict(flow.nodes)) for name, flow in self.flows.items()
                },
                time=replace(self.time),
                site_time={site: replace(time) for site, time in self.site_time.items()},
            )
        )


def _copy_queue(stats: QueueStats) -> QueueStats:
    return replace(stats, waits=[*stats.waits], handles=[*stats.handles], scores=[*stats.scores])


def _copy_agent(stats: AgentStats) -> AgentStats:
    return replace(
        stats, time=replace(stats.time), handles=[*stats.handles], scores=[*stats.scores]
    )


class Running:
    """:func:`summarize` kept up to date one event at a time, for a live view: each
    event is folded once as it comes (:meth:`take`), and :meth:`summary` gives what
    :func:`summarize` would over every event taken so far, without folding them again
    (its cost grows with the calls still open and the figures' lists, not the day's
    events)."""

    def __init__(
        self,
        *,
        target: float = 20.0,
        repeat_window: float = DAY,
        targets: Mapping[str, float] | None = None,
    ) -> None:
        self._window = _Window(target, repeat_window, targets)

    def take(self, moment: float, event: Mapping[str, str]) -> None:
        """One more event, after (or at) every event taken before."""
        self._window.take(moment, event)

    def summary(self, now: float) -> Summary:
        """The figures of every event taken so far, as of ``now``."""
        return self._window.finish(now)


def _summary(summary: Summary) -> Summary:
    """``summary`` with its averages and shares worked out from its counts and lists."""
    for stats in (*summary.queues.values(), *summary.sites.values()):
        _averages(stats)
    for agent in summary.agents.values():
        if agent.handles:
            agent.aht = sum(agent.handles) / len(agent.handles)
        if agent.scores:
            agent.surveys = len(agent.scores)
            agent.csat = sum(1 for s in agent.scores if s >= 4) / len(agent.scores)
            agent.csat_mean = sum(agent.scores) / len(agent.scores)
    summary.occupancy = summary.time.occupancy
    summary.site_occupancy = {s: t.occupancy for s, t in sorted(summary.site_time.items())}
    calls = summary.ivr_calls
    summary.containment = summary.contained / calls if calls else None
    return summary


#: QueueStats' counts, added up when intervals are combined (the rest is worked out).
_COUNTS = (
    "offered", "answered", "completed", "abandoned", "overflowed", "timed_out",
    "lease_expired", "unanswered", "callbacks", "waiting", "reserved", "repeats",
    "late_abandons", "within",
)  # fmt: skip


def _add_queue(into: dict[str, QueueStats], stats: QueueStats) -> None:
    total = into.get(stats.queue)
    if total is None:
        total = into[stats.queue] = QueueStats(stats.queue)
    for name in _COUNTS:
        setattr(total, name, getattr(total, name) + getattr(stats, name))
    total.waits += stats.waits
    total.handles += stats.handles
    total.scores += stats.scores
    total.longest_wait = max(total.longest_wait, stats.longest_wait)


def _add_agent(into: dict[str, AgentStats], stats: AgentStats) -> None:
    total = into.get(stats.agent)
    if total is None:
        total = into[stats.agent] = AgentStats(stats.agent)
    total.site = stats.site or total.site
    total.answered += stats.answered
    total.handled += stats.handled
    total.missed += stats.missed
    total.handles += stats.handles
    total.scores += stats.scores
    _add_time(total.time, stats.time)


def _add_time(total: AgentTime, time: AgentTime) -> None:
    total.busy += time.busy
    total.staffed += time.staffed


def combine(parts: Iterable[Summary]) -> Summary:
    """One summary of consecutive intervals' (:func:`bucketed`'s): the same figures as
    :func:`summarize` over the whole span, without folding the events again."""
    out = Summary(queues={}, sites={}, occupancy=None, site_occupancy={})
    for part in parts:
        for stats in part.queues.values():
            _add_queue(out.queues, stats)
        for stats in part.sites.values():
            _add_queue(out.sites, stats)
        for agent in part.agents.values():
            _add_agent(out.agents, agent)
        for flow in part.flows.values():
            total = out.flows.get(flow.flow) or out.flows.setdefault(
                flow.flow, FlowStats(flow.flow)
            )
            total.calls += flow.calls
            total.contained += flow.contained
            total.dropped += flow.dropped
            for node, count in flow.nodes.items():
                total.nodes[node] = total.nodes.get(node, 0) + count
        _add_time(out.time, part.time)
        for site, time in part.site_time.items():
            _add_time(out.site_time.setdefault(site, AgentTime()), time)
        out.ivr_calls += part.ivr_calls
        out.contained += part.contained
        out.repeat_callers += part.repeat_callers
        out.callers += part.callers
    return _summary(out)


def _averages(stats: QueueStats) -> None:
    if stats.waits:
        stats.asa = sum(stats.waits) / len(stats.waits)
    if stats.handles:
        stats.aht = sum(stats.handles) / len(stats.handles)
    if stats.scores:
        stats.surveys = len(stats.scores)
        stats.csat = sum(1 for s in stats.scores if s >= 4) / len(stats.scores)
        stats.csat_mean = sum(stats.scores) / len(stats.scores)
    if stats.answered + stats.abandoned:
        stats.abandonment_rate = stats.abandoned / (stats.answered + stats.abandoned)
    denominator = len(stats.waits) + stats.late_abandons
    if denominator:
        stats.service_level = stats.within / denominator


def summarize(
    events: Iterable[Event],
    *,
    now: float,
    target: float = 20.0,
    repeat_window: float = DAY,
    targets: Mapping[str, float] | None = None,
) -> Summary:
    """Every figure of the module docstring from ``events`` in time order; ``targets``
    gives a queue its own service-level seconds (else ``target``)."""
    window = _Window(target, repeat_window, targets)
    for moment, event in events:
        window.take(moment, event)
    return window.finish(now)


def bucketed(
    events: Iterable[Event],
    *,
    edges: Sequence[float],
    now: float,
    target: float = 20.0,
    repeat_window: float = DAY,
    targets: Mapping[str, float] | None = None,
) -> list[Summary]:
    """A :class:`Summary` per interval ``[edges[i], edges[i + 1])`` from ``events`` in
    time order.

    Events before ``edges[0]`` are history: the callers' earlier calls (repeat callers)
    and the agents' states at the start, never counted themselves. A call belongs to
    the interval it was enqueued in, with everything that follows it (answer, end,
    survey), even past the interval's end. Agents' time is cut at each edge and runs
    up to ``now`` (or the last edge). Calls still waiting count in their interval.
    """
    if len(edges) < 2 or any(b <= a for a, b in pairwise(edges)):
        raise ValueError("edges: at least two moments, each after the one before")
    last_call: dict[str, float] = {}
    # windows[0] holds the history; windows[i] the interval that ends at edges[i].
    windows = [_Window(target, repeat_window, targets, last_call) for _ in edges]
    owner: dict[str, _Window] = {}  # ticket -> the window it was enqueued in
    by_call: dict[str, _Window] = {}
    current = 0
    for moment, event in events:
        while current < len(edges) - 1 and moment >= edges[current]:
            windows[current].carry(windows[current + 1], edges[current])
            current += 1
        kind, here = event.get("event", ""), windows[current]
        inside = moment < edges[-1]
        if kind == "enqueued" and inside:
            here.take(moment, event)
            owner[event.get("ticket", "")] = here
            if event.get("call"):
                by_call[event["call"]] = here
        elif kind == "survey":
            found = by_call.get(event.get("call") or "\0")
            if found is not None or inside:
                (found or here).take(moment, event)
        elif kind in ("state", "ivr_ended"):
            if inside:
                here.take(moment, event)
        elif event.get("ticket", "") in owner:
            owner[event["ticket"]].take(moment, event)
    stop = min(now, edges[-1])
    while current < len(edges) - 1 and edges[current] <= stop:
        windows[current].carry(windows[current + 1], edges[current])
        current += 1
    windows[current].carry(None, max(stop, edges[0]))
    return [window.finish(now) for window in windows[1:]]


def compute(
    events: Iterable[Event], *, now: float, target: float = 20.0
) -> tuple[dict[str, QueueStats], float | None]:
    """Stats per queue, and overall agent occupancy, from ``events`` in time order."""
    summary = summarize(events, now=now, target=target)
    return summary.queues, summary.occupancy
