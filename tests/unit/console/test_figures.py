"""The reports' figures on hand-built event streams: intervals in local time (clock
changes too), queries, what a view lets through, the staffing view, the CSV."""

from __future__ import annotations

import csv
import io
import itertools
import time
from collections.abc import Iterator
from datetime import datetime

import pytest

from ivr.console.figures import ALL, Query, QueryError, View, build, edges, visible_events
from routing.config import QueueConfig
from routing.erlang import agents_needed
from routing.kpis import Event


@pytest.fixture
def berlin(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The engine's local time is Berlin's (summer time from 29 March 2026)."""
    monkeypatch.setenv("TZ", "Europe/Berlin")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def local(text: str) -> float:
    return datetime.fromisoformat(text).astimezone().timestamp()


class TestEdges:
    def test_today_per_hour_starts_at_midnight_and_ends_after_now(self, berlin: None) -> None:
        now = local("2026-06-10 10:30")
        cuts = edges("today", "1h", now)
        assert cuts[0] == local("2026-06-10 00:00")
        assert (len(cuts), cuts[-2] <= now < cuts[-1]) == (12, True)

    def test_days_follow_the_calendar_across_a_clock_change(self, berlin: None) -> None:
        """The day the clocks go forward has 23 hours; every edge is a local midnight."""
        cuts = edges("7d", "1d", local("2026-03-31 12:00"))
        assert len(cuts) == 8
        assert [datetime.fromtimestamp(c).hour for c in cuts] == [0] * 8
        lengths = [round((b - a) / 3600) for a, b in itertools.pairwise(cuts)]
        assert lengths == [24, 24, 24, 24, 23, 24, 24]

    def test_thirty_days_of_quarter_hours(self, berlin: None) -> None:
        now = local("2026-06-30 00:10")
        cuts = edges("30d", "15m", now)
        assert cuts[0] == local("2026-06-01 00:00")
        assert cuts[-2] <= now < cuts[-1]


class TestQuery:
    def test_defaults(self) -> None:
        query = Query.parse("occupancy", {})
        assert (query.period, query.interval, query.by, query.format) == (
            "today",
            "1h",
            "agent",
            "html",
        )
        assert Query.parse("traffic", {}, default_by="agent").by == "agent"
        assert Query.parse("ivr", {}, default_by="agent").by == "flow"  # not one of its own

    def test_every_bad_parameter_is_named(self) -> None:
        with pytest.raises(QueryError) as caught:
            Query.parse(
                "traffic", {"period": "1y", "by": "flow", "format": "html"}, formats=("json",)
            )
        assert [p["at"] for p in caught.value.problems] == ["period", "by", "format"]
        assert "'1y' is not one of today, 7d, 30d" in str(caught.value)


def _call(ticket: str, queue: str, **extra: str) -> dict[str, str]:
    return {"ticket": ticket, "queue": queue, **extra}


class TestView:
    def test_a_view_keeps_its_queues_calls_its_agents_and_the_ivr_if_it_may(self) -> None:
        events: list[Event] = [
            (1.0, {"event": "enqueued", **_call("1", "sales")}),
            (2.0, {"event": "enqueued", **_call("2", "tv")}),
            (3.0, {"event": "connected", **_call("2", "tv", agent="cy")}),
            (3.0, {"event": "connected", **_call("1", "sales", agent="ann")}),
            (4.0, {"event": "state", "agent": "ann", "after": "on_call"}),
            (4.0, {"event": "state", "agent": "cy", "after": "on_call"}),
            (5.0, {"event": "survey", "queue": "tv", "call": "c2", "score": "1"}),
            (6.0, {"event": "ivr_ended", "flow": "main", "contained": "1"}),
        ]
        view = View(queues=frozenset({"sales"}), agents=frozenset({"ann"}), ivr=False)
        kept = [
            (e["event"], e.get("ticket") or e.get("agent", ""))
            for _, e in visible_events(events, view)
        ]
        assert kept == [("enqueued", "1"), ("connected", "1"), ("state", "ann")]
        assert len(visible_events(events, View())) == len(events)


def _hour_of_calls(start: float, count: int, handle: float) -> list[Event]:
    out: list[Event] = []
    for n in range(count):
        at = start + n * 3600 / count
        fields = _call(str(n), "sales", agent="ann")
        out += [
            (at, {"event": "enqueued", **fields}),
            (at + 10, {"event": "connected", **fields}),
            (at + 10 + handle, {"event": "completed", **fields}),
        ]
    return sorted(out, key=lambda item: item[0])


class TestBuild:
    def test_staffing_is_erlang_c_on_the_measured_volume_and_aht(self, berlin: None) -> None:
        """30 calls in an hour at 4 minutes each, for 80 % in 20 s: what
        routing.erlang says, per interval; the sum of the queues as (all)."""
        start = local("2026-06-10 09:00")
        events = _hour_of_calls(start, 30, 240.0)
        configs = {
            "sales": QueueConfig.model_validate({"service_level": {"percent": 80, "seconds": 20}})
        }
        query = Query("staffing", "today", "1h", "queue")
        report = build(events, query, View(), now=local("2026-06-10 11:00"), configs=configs)
        rows = {(r[0], r[1]): r[2] for r in report.rows}
        _, expected = agents_needed(30, 240.0, 3600, 0.8, 20)
        nine = rows[(start, "sales")]
        assert (nine["offered"], nine["aht"], nine["agents"]) == (30, 240.0, expected.agents)
        assert nine["service_level"] == pytest.approx(expected.service_level)
        assert rows[(start, ALL)]["agents"] == expected.agents
        assert (start - 3600, ALL) not in rows  # a closed hour: nobody, nothing offered
        assert report.totals["sales"]["agents"] == expected.agents

    def test_csv_prefixes_formulas_and_leaves_missing_figures_empty(self, berlin: None) -> None:
        start = local("2026-06-10 09:00")
        events: list[Event] = [
            (start, {"event": "ivr_ended", "flow": "=cmd|' /C calc'!A0", "contained": "1"}),
            (start, {"event": "ivr_ended", "flow": "@sum", "contained": "0"}),
            (start, {"event": "enqueued", **_call("1", "sales")}),
        ]
        now = local("2026-06-10 10:00")
        ivr = build(events, Query("ivr", by="flow"), View(), now=now, configs={})
        flows = [r["flow"] for r in csv.DictReader(io.StringIO(ivr.as_csv()))]
        assert sorted(flows) == ["'=cmd|' /C calc'!A0", "'@sum"]
        traffic = build(events, Query("traffic", by="queue"), View(), now=now, configs={})
        (row,) = csv.DictReader(io.StringIO(traffic.as_csv()))
        assert (row["offered"], row["asa"], row["service_level"]) == ("1", "", "")
        assert row["interval_start"] == "2026-06-10T09:00+02:00"

    def test_a_page_holds_the_rows_of_the_names_it_draws_only(self, berlin: None) -> None:
        """Eight names per chart, the largest; the JSON and CSV exports keep them all."""
        start = local("2026-06-10 09:00")
        events: list[Event] = [
            (start + n, {"event": "enqueued", **_call(f"{q}-{n}", q)})
            for q in "abcdefghij"
            for n in range(ord(q) - ord("a") + 1)
        ]
        report = build(events, Query("traffic", by="queue"), View(), now=start + 60, configs={})
        assert report.drawn() == set("cdefghij")
        page = {row["name"] for row in report.as_json(report.drawn())["rows"]}
        assert page == set("cdefghij")
        assert {row["name"] for row in report.as_json()["rows"]} == set("abcdefghij")
