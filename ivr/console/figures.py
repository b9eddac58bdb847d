"""The reports' figures, pure: what a report is, its intervals, rows, CSV and JSON.

A report is asked for by a :class:`Query` (``report``, ``period`` today / 7d /
30d, ``interval`` 15m / 1h / 1d, ``by`` queue / site / agent / flow / node) and
seen through a :class:`View` (what the asker may see). :func:`build` folds the
routing events with :func:`routing.kpis.bucketed` (one summary per interval, and
one for the whole period) and lays them out as rows per interval and name; the
staffing report turns measured volume into agents with
:func:`routing.erlang.agents_needed`. Intervals are in the engine's local time:
days start at midnight, the last interval holds now. The console
(:mod:`ivr.console.reports`) and the API (``/api/reports``) serve the same
:class:`Report` as a page, JSON or CSV.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Final

from routing.config import QueueConfig
from routing.erlang import agents_needed
from routing.kpis import (
    DAY,
    AgentStats,
    Event,
    FlowStats,
    QueueStats,
    Summary,
    bucketed,
    combine,
)

__all__ = [
    "INTERVALS",
    "PERIODS",
    "REPORTS",
    "Query",
    "QueryError",
    "Report",
    "View",
    "build",
    "edges",
    "visible_events",
]

#: Days a period covers, today included.
PERIODS: Final = {"today": 1, "7d": 7, "30d": 30}
#: Seconds an interval lasts (a day is a calendar day: 23 or 25 hours at a clock change).
INTERVALS: Final = {"15m": 900, "1h": 3600, "1d": 86_400}
FORMATS: Final = ("html", "json", "csv")
Values = dict[str, float | int | None]


@dataclass(frozen=True, slots=True)
class Column:
    key: str
    label: str
    unit: str = "count"  # count, percent (a fraction), seconds, hours, number


@dataclass(frozen=True, slots=True)
class Kind:
    name: str
    title: str
    bys: tuple[str, ...]
    about: str


REPORTS: Final = {
    k.name: k
    for k in (
        Kind(
            "traffic",
            "Traffic",
            ("queue", "site", "agent"),
            "Calls offered, answered and abandoned; service level, ASA and AHT.",
        ),
        Kind(
            "quality",
            "Quality",
            ("queue", "site", "agent"),
            "CSAT from the post-call survey, and repeat callers (a first-contact-"
            "resolution proxy: the same number queued again within 24 hours).",
        ),
        Kind(
            "occupancy",
            "Occupancy",
            ("agent", "site"),
            "Time agents held calls (ringing, on a call, wrap-up) over time logged in "
            "and not paused.",
        ),
        Kind(
            "ivr",
            "IVR",
            ("flow",),
            "Calls that ended in the flow without a person (containment), and callers "
            "who hung up in it.",
        ),
        Kind(
            "dropoff",
            "Drop-off",
            ("node",),
            "Where callers hung up in the flow before reaching a person, per node.",
        ),
        Kind(
            "staffing",
            "Staffing",
            ("queue",),
            "Erlang C on the measured volume: agents on the phones each interval needs to "
            "meet the queue's service-level target, with the period's AHT; against the "
            "agents who were logged in and not paused.",
        ),
    )
}

_QUEUE_TRAFFIC = (
    Column("offered", "Offered"),
    Column("answered", "Answered"),
    Column("abandoned", "Abandoned"),
    Column("abandonment_rate", "Abandonment", "percent"),
    Column("service_level", "Service level", "percent"),
    Column("asa", "ASA", "seconds"),
    Column("aht", "AHT", "seconds"),
    Column("callbacks", "Callbacks"),
    Column("overflowed", "Overflowed"),
    Column("timed_out", "Timed out"),
)
COLUMNS: Final[dict[tuple[str, str], tuple[Column, ...]]] = {
    ("traffic", "queue"): _QUEUE_TRAFFIC,
    ("traffic", "site"): _QUEUE_TRAFFIC,
    ("traffic", "agent"): (
        Column("handled", "Handled"),
        Column("missed", "Missed rings"),
        Column("aht", "AHT", "seconds"),
    ),
    ("quality", "queue"): (
        Column("csat", "CSAT", "percent"),
        Column("csat_mean", "Mean score", "number"),
        Column("surveys", "Surveys"),
        Column("repeats", "Repeat callers"),
        Column("repeat_rate", "Repeat rate", "percent"),
        Column("offered", "Offered"),
    ),
    ("quality", "agent"): (
        Column("csat", "CSAT", "percent"),
        Column("csat_mean", "Mean score", "number"),
        Column("surveys", "Surveys"),
        Column("handled", "Handled"),
    ),
    ("occupancy", "agent"): (
        Column("occupancy", "Occupancy", "percent"),
        Column("busy", "Holding calls", "hours"),
        Column("staffed", "Staffed", "hours"),
    ),
    ("ivr", "flow"): (
        Column("calls", "Calls"),
        Column("containment", "Containment", "percent"),
        Column("contained", "Contained"),
        Column("dropped", "Hung up in the IVR"),
        Column("drop_rate", "Drop-off", "percent"),
    ),
    ("dropoff", "node"): (
        Column("dropped", "Hung up here"),
        Column("share", "Of the flow's calls", "percent"),
    ),
    ("staffing", "queue"): (
        Column("agents", "Agents needed"),
        Column("staffed", "Agents staffed", "number"),
        Column("offered", "Offered"),
        Column("aht", "AHT", "seconds"),
        Column("traffic", "Erlangs", "number"),
        Column("service_level", "Forecast service level", "percent"),
        Column("asa", "Forecast ASA", "seconds"),
    ),
}
COLUMNS[("quality", "site")] = COLUMNS[("quality", "queue")]
COLUMNS[("occupancy", "site")] = COLUMNS[("occupancy", "agent")]
#: The figures each report draws over time (the first also as totals per name).
CHARTS: Final = {
    "traffic": ("offered", "service_level"),
    "quality": ("csat", "repeats"),
    "occupancy": ("occupancy", "staffed"),
    "ivr": ("calls", "containment"),
    "dropoff": ("dropped",),
    "staffing": ("agents", "offered"),
}
_AGENT_CHARTS: Final = {"traffic": ("handled", "aht"), "quality": ("csat", "surveys")}
#: A figure drawn on another's chart, dashed, to compare with it.
COMPARE: Final = {("staffing", "agents"): "staffed"}
#: The row that sums every queue in the staffing report, and every agent by site.
ALL: Final = "(all)"
NO_SITE: Final = "(no site)"


class QueryError(ValueError):
    """A query that does not validate; ``problems`` say which parameter and why."""

    def __init__(self, problems: list[dict[str, str]]) -> None:
        super().__init__("; ".join(f"{p['at']}: {p['message']}" for p in problems))
        self.problems = problems


@dataclass(frozen=True, slots=True)
class Query:
    report: str
    period: str = "today"
    interval: str = "1h"
    by: str = ""
    format: str = "html"

    @classmethod
    def parse(
        cls,
        report: str,
        params: Mapping[str, str],
        *,
        default_by: str = "",
        formats: tuple[str, ...] = FORMATS,
    ) -> Query:
        """The query from a URL's parameters; :class:`QueryError` names each bad one."""
        kind = REPORTS[report]
        values = {
            "period": params.get("period") or "today",
            "interval": params.get("interval") or "1h",
            "by": params.get("by") or (default_by if default_by in kind.bys else kind.bys[0]),
            "format": params.get("format") or formats[0],
        }
        allowed = {"period": PERIODS, "interval": INTERVALS, "by": kind.bys, "format": formats}
        problems = [
            {"at": key, "message": f"{values[key][:40]!r} is not one of {', '.join(allowed[key])}"}
            for key in allowed
            if values[key] not in allowed[key]
        ]
        if problems:
            raise QueryError(problems)
        return cls(report, **values)

    def with_(self, **changes: str) -> dict[str, str]:
        """This query's parameters with ``changes``, for links."""
        out = {"period": self.period, "interval": self.interval, "by": self.by}
        return {**out, **changes}


@dataclass(frozen=True, slots=True)
class View:
    """What the asker may see; None: every one. An agent's view names their agent."""

    queues: frozenset[str] | None = None
    sites: frozenset[str] | None = None
    agents: frozenset[str] | None = None
    ivr: bool = True

    def sees_queue(self, queue: str) -> bool:
        return self.queues is None or queue in self.queues

    def sees_site(self, site: str) -> bool:
        return self.sites is None or site in self.sites

    def sees_agent(self, agent: str) -> bool:
        return self.agents is None or agent in self.agents


def visible_events(events: Iterable[Event], view: View) -> list[Event]:
    """The events ``view`` may count: calls of its queues (and what follows them),
    surveys of its queues, its agents' states, and the IVR's notes when it sees them."""
    tickets: set[str] = set()
    out: list[Event] = []
    for moment, event in events:
        kind = event.get("event", "")
        if kind == "enqueued":
            keep = view.sees_queue(event.get("queue", ""))
            if keep:
                tickets.add(event.get("ticket", ""))
        elif kind == "state":
            keep = view.sees_agent(event.get("agent", ""))
        elif kind == "survey":
            keep = view.sees_queue(event.get("queue", ""))
        elif kind == "ivr_ended":
            keep = view.ivr
        else:
            keep = event.get("ticket", "") in tickets
        if keep:
            out.append((moment, event))
    return out


def _midnight(day: date) -> float:
    """The local midnight that starts ``day`` (the zone's rules, clock changes too)."""
    return datetime(day.year, day.month, day.day).astimezone().timestamp()


def edges(period: str, interval: str, now: float) -> list[float]:
    """The intervals' edges: from the local midnight that starts the period to the end
    of the interval that holds ``now``."""
    today = datetime.fromtimestamp(now).astimezone().date()
    first = today - timedelta(days=PERIODS[period] - 1)
    if interval == "1d":
        return [_midnight(first + timedelta(days=k)) for k in range(PERIODS[period] + 1)]
    step, start = INTERVALS[interval], _midnight(first)
    count = max(1, math.floor((now - start) / step) + 1)
    return [start + k * step for k in range(count + 1)]


def stamp(moment: float) -> str:
    """A moment as local ISO 8601 with its offset, to the minute."""
    return datetime.fromtimestamp(moment).astimezone().isoformat(timespec="minutes")


@dataclass(slots=True)
class Report:
    query: Query
    kind: Kind
    columns: tuple[Column, ...]
    edges: list[float]
    now: float
    #: (interval start, name, figures), only where the name had something.
    rows: list[tuple[float, str, Values]] = field(default_factory=list)
    #: The whole period, per name.
    totals: dict[str, Values] = field(default_factory=dict)

    @property
    def charts(self) -> list[Column]:
        keys = CHARTS[self.kind.name]
        if self.query.by == "agent":
            keys = _AGENT_CHARTS.get(self.kind.name, keys)
        return [c for k in keys for c in self.columns if c.key == k]

    def drawn(self, most: int = 8) -> set[str]:
        """The names a page's charts draw: per chart, the ``most`` largest totals."""
        out: set[str] = set()
        for column in self.charts:
            known = [(v.get(column.key), n) for n, v in self.totals.items()]
            ranked = sorted((-v, n) for v, n in known if v is not None)  # as reports.js
            out |= {n for _, n in ranked[:most]}
        return out

    def as_json(self, names: set[str] | None = None) -> dict[str, Any]:
        """The report; with ``names``, only their interval rows (a page's charts)."""
        q = self.query
        return {
            "report": q.report,
            "title": self.kind.title,
            "about": self.kind.about,
            "period": q.period,
            "interval": q.interval,
            "by": q.by,
            "from": stamp(self.edges[0]),
            "to": stamp(min(self.now, self.edges[-1])),
            "generated": stamp(self.now),
            "columns": [{"key": c.key, "label": c.label, "unit": c.unit} for c in self.columns],
            "charts": [c.key for c in self.charts],
            "compare": {
                c.key: COMPARE[(q.report, c.key)]
                for c in self.charts
                if (q.report, c.key) in COMPARE
            },
            "buckets": [{"start": e, "at": stamp(e)} for e in self.edges[:-1]],
            "rows": [
                {"at": stamp(at), "name": name, **v}
                for at, name, v in self.rows
                if names is None or name in names
            ],
            "totals": [{"name": name, **v} for name, v in self.totals.items()],
        }

    def as_csv(self) -> str:
        """One line per interval and name; spreadsheet formulas are not run."""
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["interval_start", self.query.by, *(c.key for c in self.columns)])
        for at, name, values in self.rows:
            cells = [_csv_value(values.get(c.key), c.unit) for c in self.columns]
            writer.writerow([stamp(at), _cell(name), *cells])
        return out.getvalue()


def _cell(value: str) -> str:
    """A CSV cell a spreadsheet will not run as a formula (as the audit export does)."""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def _csv_value(value: float | int | None, unit: str) -> str:
    if value is None:
        return ""
    if isinstance(value, int):
        return str(value)
    digits = {"percent": 4, "seconds": 1, "hours": 2}.get(unit, 2)
    return f"{value:.{digits}f}"


def _queue_values(s: QueueStats) -> Values:
    values: Values = {
        k: getattr(s, k)
        for k in (
            "offered",
            "answered",
            "abandoned",
            "abandonment_rate",
            "service_level",
            "asa",
            "aht",
            "callbacks",
            "overflowed",
            "timed_out",
            "csat",
            "csat_mean",
            "surveys",
            "repeats",
        )
    }
    values["repeat_rate"] = s.repeats / s.offered if s.offered else None
    return values


def _agent_values(a: AgentStats) -> Values:
    return {
        "handled": a.handled,
        "missed": a.missed,
        "aht": a.aht,
        "csat": a.csat,
        "csat_mean": a.csat_mean,
        "surveys": a.surveys,
        "occupancy": a.time.occupancy,
        "busy": a.time.busy / 3600,
        "staffed": a.time.staffed / 3600,
    }


def _flow_values(f: FlowStats) -> Values:
    return {
        "calls": f.calls,
        "contained": f.contained,
        "containment": f.containment,
        "dropped": f.dropped,
        "drop_rate": f.dropped / f.calls if f.calls else None,
    }


def _named(summary: Summary, query: Query, view: View) -> dict[str, Values]:
    """The figures of one summary per name the view may see."""
    report, by = query.report, query.by
    if by == "queue":
        return {
            n: _queue_values(s) for n, s in sorted(summary.queues.items()) if view.sees_queue(n)
        }
    if by == "agent":
        return {
            n: _agent_values(a)
            for n, a in sorted(summary.agents.items())
            if view.sees_agent(n)
            and (a.time.staffed if report == "occupancy" else a.handled or a.missed or a.scores)
        }
    if by == "flow":
        return {f.flow or "(none)": _flow_values(f) for _, f in sorted(summary.flows.items())}
    if by == "node":
        return {
            f"{f.flow} · {node}": {"dropped": n, "share": n / f.calls}
            for _, f in sorted(summary.flows.items())
            for node, n in sorted(f.nodes.items(), key=lambda item: -item[1])
        }
    return _by_site(summary, report, view)


def _by_site(summary: Summary, report: str, view: View) -> dict[str, Values]:
    if report == "occupancy":
        out: dict[str, Values] = {
            site or NO_SITE: {
                "occupancy": t.occupancy,
                "busy": t.busy / 3600,
                "staffed": t.staffed / 3600,
            }
            for site, t in sorted(summary.site_time.items())
            if view.sees_site(site)
        }
        if len(out) > 1 and view.sites is None:
            t = summary.time
            out[ALL] = {
                "occupancy": t.occupancy,
                "busy": t.busy / 3600,
                "staffed": t.staffed / 3600,
            }
        return out
    return {
        site or NO_SITE: _queue_values(s)
        for site, s in sorted(summary.sites.items())
        if view.sees_site(site)
    }


def _staffing(
    summary: Summary,
    length: float,
    aht: Mapping[str, float],
    configs: Mapping[str, QueueConfig],
    view: View,
) -> dict[str, Values]:
    """Erlang C per queue for one interval of ``length`` seconds, and the sum."""
    out: dict[str, Values] = {}
    for name, stats in sorted(summary.queues.items()):
        if not view.sees_queue(name):
            continue
        level = (configs.get(name) or QueueConfig()).service_level
        row: Values = {"offered": stats.offered, "aht": aht.get(name)}
        handle = aht.get(name)
        if stats.offered and handle:
            _, figures = agents_needed(
                stats.offered, handle, length, level.percent / 100, level.seconds
            )
            row |= {
                "agents": figures.agents,
                "traffic": figures.traffic,
                "service_level": figures.service_level,
                "asa": figures.asa,
            }
        elif not stats.offered:
            row["agents"] = 0
        out[name] = row
    needed = [int(r["agents"] or 0) for r in out.values() if r.get("agents") is not None]
    out[ALL] = {
        "offered": sum(int(r["offered"] or 0) for r in out.values()),
        # Queues apart need their own agents: the sum, of those whose AHT is known.
        "agents": sum(needed) if needed or not out else None,
        "staffed": summary.time.staffed / length,
    }
    return out


def build(
    events: Iterable[Event],
    query: Query,
    view: View,
    *,
    now: float,
    configs: Mapping[str, QueueConfig],
) -> Report:
    """The report ``query`` asks for, over ``events`` (from a day before the period on:
    repeat callers and agents' states look back), counting only what ``view`` sees."""
    cuts = edges(query.period, query.interval, now)
    seen = events if view == View() else visible_events(events, view)
    targets = {name: c.service_level.seconds for name, c in configs.items()}
    summaries = bucketed(seen, edges=cuts, now=now, targets=targets)
    whole = combine(summaries)
    report = Report(query, REPORTS[query.report], COLUMNS[(query.report, query.by)], cuts, now)
    if query.report == "staffing":
        aht = {n: s.aht for n, s in whole.queues.items() if s.aht}
        for start, end, summary in zip(cuts, cuts[1:], summaries, strict=False):
            for name, values in _staffing(summary, end - start, aht, configs, view).items():
                if values.get("offered") or values.get("staffed"):  # not a closed night
                    report.rows.append((start, name, values))
        report.totals = _peaks(report.rows)
        return report
    for start, summary in zip(cuts, summaries, strict=False):
        report.rows += [
            (start, name, values) for name, values in _named(summary, query, view).items()
        ]
    report.totals = _named(whole, query, view)
    return report


def _peaks(rows: list[tuple[float, str, Values]]) -> dict[str, Values]:
    """Per name, its interval that needed the most agents (the staffing report's totals)."""
    best: dict[str, Values] = {}
    for _, name, values in rows:
        known = best.get(name)
        if known is None or (values.get("agents") or 0) > (known.get("agents") or 0):
            best[name] = values
    return dict(sorted(best.items(), key=lambda item: item[0] == ALL))


def lookback(cuts: list[float]) -> float:
    """Where to start reading events for intervals from ``cuts[0]``."""
    return cuts[0] - DAY
