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
``0`` otherwise): contained calls over ``ivr_ended`` notes.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

__all__ = ["QueueStats", "Summary", "compute", "summarize"]

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


@dataclass(slots=True)
class _Ticket:
    stats: tuple[QueueStats, QueueStats]
    since: float
    stage: str = "waiting"
    answered_at: float | None = None
    callback: bool = False


def _at(event: Mapping[str, str], moment: float) -> float:
    try:
        return float(event.get("at") or moment)
    except ValueError:
        return moment


class _Window:
    """Folds events, in time order, into per-queue and per-site stats and agent time."""

    def __init__(self, target: float, repeat_window: float) -> None:
        self.target, self.repeat_window = target, repeat_window
        self.queues: dict[str, QueueStats] = {}
        self.sites: dict[str, QueueStats] = {}
        self.tickets: dict[str, _Ticket] = {}
        self.busy: dict[str, float] = defaultdict(float)
        self.staffed: dict[str, float] = defaultdict(float)
        self.agent_since: dict[str, tuple[str, float, str]] = {}
        self.last_call: dict[str, float] = {}
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
            self.ivr_calls += 1
            self.contained += event.get("contained") == "1"
        else:
            ticket = self.tickets.get(event.get("ticket", ""))
            if ticket is not None and ticket.stage not in ("completed", *ENDINGS):
                self._call(moment, kind, event, ticket)

    def _enqueued(self, moment: float, event: Mapping[str, str]) -> None:
        queue, site = event.get("queue", ""), event.get("site", "")
        both = (
            self.queues.setdefault(queue, QueueStats(queue)),
            self.sites.setdefault(site, QueueStats(site)),
        )
        self.tickets[event.get("ticket", "")] = _Ticket(both, moment)
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
        elif kind == "callback_requested" and not t.callback:
            t.callback = True
            for stats in t.stats:
                stats.callbacks += 1
        elif kind == "connected" and t.answered_at is None:
            t.stage, t.answered_at = "connected", _at(event, moment)
            for stats in t.stats:
                stats.answered += 1
                if not t.callback:
                    stats.waits.append(t.answered_at - t.since)
        elif kind == "completed":
            t.stage = "completed"
            for stats in t.stats:
                stats.completed += 1
                if t.answered_at is not None:
                    stats.handles.append(moment - t.answered_at)
        elif kind in ENDINGS:
            t.stage = kind
            for stats in t.stats:
                setattr(stats, kind, getattr(stats, kind) + 1)
                if kind == "abandoned" and not t.callback and moment - t.since > self.target:
                    stats.late_abandons += 1

    def _survey(self, event: Mapping[str, str]) -> None:
        score = event.get("score", "")
        queue = event.get("queue", "")
        if not queue or not score.isdigit() or not 1 <= int(score) <= 5:
            return  # no answer, or a survey after no queue
        stats = self.queues.setdefault(queue, QueueStats(queue))
        stats.scores.append(int(score))

    def _state(self, moment: float, event: Mapping[str, str]) -> None:
        before = self.agent_since.get(event["agent"])
        if before is not None:
            state, start, site = before
            for key in ("", f"site:{site}"):
                if state in ("on_call", "wrap_up", "reserved"):
                    self.busy[key] += moment - start
                if state not in ("logged_out", "paused"):
                    self.staffed[key] += moment - start
        self.agent_since[event["agent"]] = (event["after"], moment, event.get("site", ""))

    def finish(self, now: float) -> None:
        for t in self.tickets.values():
            for stats in t.stats:
                if t.stage == "waiting":
                    stats.waiting += 1
                    stats.longest_wait = max(stats.longest_wait, now - t.since)
                elif t.stage == "reserved":
                    stats.reserved += 1
        for stats in (*self.queues.values(), *self.sites.values()):
            _averages(stats, self.target)


def _averages(stats: QueueStats, target: float) -> None:
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
    within = sum(1 for wait in stats.waits if wait <= target)
    denominator = len(stats.waits) + stats.late_abandons
    if denominator:
        stats.service_level = within / denominator


def summarize(
    events: Iterable[Event],
    *,
    now: float,
    target: float = 20.0,
    repeat_window: float = DAY,
) -> Summary:
    """Every figure of the module docstring from ``events`` in time order."""
    window = _Window(target, repeat_window)
    for moment, event in events:
        window.take(moment, event)
    window.finish(now)
    busy, staffed = window.busy, window.staffed
    sites = {key[5:] for key in staffed if key.startswith("site:")}
    return Summary(
        queues=window.queues,
        sites=window.sites,
        occupancy=busy[""] / staffed[""] if staffed[""] else None,
        site_occupancy={
            s: busy[f"site:{s}"] / staffed[f"site:{s}"] if staffed[f"site:{s}"] else None
            for s in sorted(sites)
        },
        ivr_calls=window.ivr_calls,
        contained=window.contained,
        containment=window.contained / window.ivr_calls if window.ivr_calls else None,
        repeat_callers=window.repeat_callers,
        callers=window.callers,
    )


def compute(
    events: Iterable[Event], *, now: float, target: float = 20.0
) -> tuple[dict[str, QueueStats], float | None]:
    """Stats per queue, and overall agent occupancy, from ``events`` in time order."""
    summary = summarize(events, now=now, target=target)
    return summary.queues, summary.occupancy
