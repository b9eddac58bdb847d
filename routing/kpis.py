"""Contact-centre KPIs computed from the routing event stream.

Per queue over a window: calls offered, answered and abandoned; ASA (average
speed of answer); abandonment rate; service level (answered within the
target, over answered plus abandoned after the target); AHT (connected to
completed); the longest wait of a call still waiting; CSAT (the share of
post-call survey answers of 4 or 5 out of 5, and their average); and agent
occupancy (time on calls over time logged in and not paused).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

__all__ = ["QueueStats", "compute"]

Event = tuple[float, Mapping[str, str]]  # (seconds since the epoch, fields)


@dataclass(slots=True)
class QueueStats:
    queue: str
    offered: int = 0
    answered: int = 0
    abandoned: int = 0
    waiting: int = 0
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


class _Window:
    """Folds events, in time order, into per-queue stats and agent time."""

    def __init__(self, target: float) -> None:
        self.target = target
        self.queues: dict[str, QueueStats] = {}
        self.enqueued: dict[str, tuple[str, float]] = {}
        self.connected: dict[str, float] = {}
        self.ended: set[str] = set()
        self.late_abandons: dict[str, int] = defaultdict(int)
        self.busy = self.staffed = 0.0
        self.agent_since: dict[str, tuple[str, float]] = {}

    def take(self, moment: float, event: Mapping[str, str]) -> None:
        kind = event.get("event", "")
        if kind == "enqueued":
            stats = self.queues.setdefault(event["queue"], QueueStats(event["queue"]))
            stats.offered += 1
            self.enqueued[event["ticket"]] = (event["queue"], moment)
        elif kind == "state":
            self._state(moment, event)
        elif kind == "survey":
            self._survey(event)
        else:
            self._call(moment, kind, event.get("ticket", ""))

    def _call(self, moment: float, kind: str, ticket: str) -> None:
        if ticket not in self.enqueued or ticket in self.ended:
            return
        queue, since = self.enqueued[ticket]
        stats = self.queues[queue]
        if kind == "connected":
            self.connected[ticket] = moment
            stats.answered += 1
            stats.waits.append(moment - since)
        elif kind == "completed" and ticket in self.connected:
            stats.handles.append(moment - self.connected[ticket])
            self.ended.add(ticket)
        elif kind == "abandoned":
            stats.abandoned += 1
            self.ended.add(ticket)
            if moment - since > self.target:
                self.late_abandons[queue] += 1

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
            state, start = before
            if state in ("on_call", "wrap_up", "reserved"):
                self.busy += moment - start
            if state not in ("logged_out", "paused"):
                self.staffed += moment - start
        self.agent_since[event["agent"]] = (event["after"], moment)

    def finish(self, now: float) -> None:
        for ticket, (queue, since) in self.enqueued.items():
            if ticket not in self.connected and ticket not in self.ended:
                stats = self.queues[queue]
                stats.waiting += 1
                stats.longest_wait = max(stats.longest_wait, now - since)
        for stats in self.queues.values():
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
            within = sum(1 for wait in stats.waits if wait <= self.target)
            denominator = stats.answered + self.late_abandons[stats.queue]
            if denominator:
                stats.service_level = within / denominator


def compute(
    events: Iterable[Event], *, now: float, target: float = 20.0
) -> tuple[dict[str, QueueStats], float | None]:
    """Stats per queue, and overall agent occupancy, from ``events`` in time order."""
    window = _Window(target)
    for moment, event in events:
        window.take(moment, event)
    window.finish(now)
    return window.queues, (window.busy / window.staffed if window.staffed else None)
