"""KPIs per interval, per agent and per flow node, on hand-built event streams."""

from __future__ import annotations

import random

import pytest

from routing.kpis import Event, Running, Summary, bucketed, combine, summarize


def _call(ticket: str, queue: str = "sales", **extra: str) -> dict[str, str]:
    return {"ticket": ticket, "queue": queue, **extra}


def _state(agent: str, after: str, site: str = "seoul") -> dict[str, str]:
    return {"event": "state", "agent": agent, "after": after, "site": site}


class TestIntervals:
    def test_a_call_counts_in_the_interval_it_was_offered_in(self) -> None:
        """Answered and completed after the edge, the call still counts where it queued:
        offered, ASA, AHT and service level per interval."""
        events: list[Event] = [
            (890.0, {"event": "enqueued", **_call("1")}),
            (930.0, {"event": "connected", **_call("1", agent="a")}),  # waited 40 s
            (1_000.0, {"event": "enqueued", **_call("2")}),
            (1_005.0, {"event": "connected", **_call("2", agent="a")}),  # waited 5 s
            (1_030.0, {"event": "completed", **_call("1", agent="a")}),  # handled 100 s
            (1_065.0, {"event": "completed", **_call("2", agent="a")}),  # handled 60 s
        ]
        first, second = bucketed(events, edges=[0.0, 900.0, 1_800.0], now=1_800.0, target=20)
        one, two = first.queues["sales"], second.queues["sales"]
        assert (one.offered, one.answered, one.completed) == (1, 1, 1)
        assert (one.asa, one.aht, one.service_level) == (40.0, 100.0, 0.0)
        assert (two.offered, two.asa, two.aht, two.service_level) == (1, 5.0, 60.0, 1.0)
        assert first.agents["a"].handled == second.agents["a"].handled == 1

    def test_agent_time_is_cut_at_the_edges_and_runs_up_to_now(self) -> None:
        """An agent logged in before the first edge counts from it; a call across an
        edge is split; the last interval runs up to now, not to its end."""
        events: list[Event] = [
            (-500.0, _state("a", "available")),  # history: the state at the start
            (600.0, _state("a", "on_call")),
            (1_200.0, _state("a", "wrap_up")),
            (1_300.0, _state("a", "available")),
            (1_900.0, _state("a", "paused")),
        ]
        edges = [0.0, 900.0, 1_800.0, 2_700.0]
        first, second, third = bucketed(events, edges=edges, now=2_000.0)
        assert (first.time.busy, first.time.staffed) == (300.0, 900.0)
        assert (second.time.busy, second.time.staffed) == (400.0, 900.0)
        assert (third.time.busy, third.time.staffed) == (0.0, 100.0)  # paused from 1,900
        assert second.agents["a"].time.occupancy == pytest.approx(4 / 9)
        assert second.site_time["seoul"].busy == 400.0
        assert second.site_occupancy == {"seoul": pytest.approx(4 / 9)}

    def test_an_agent_still_on_a_call_counts_up_to_now(self) -> None:
        events: list[Event] = [(100.0, _state("a", "on_call"))]
        (only,) = bucketed(events, edges=[0.0, 3_600.0], now=400.0)
        assert (only.time.busy, only.time.staffed, only.occupancy) == (300.0, 300.0, 1.0)

    def test_repeat_callers_look_back_across_intervals_and_into_history(self) -> None:
        """A call before the first edge is not offered, but makes a later call a repeat."""
        events: list[Event] = [
            (-100.0, {"event": "enqueued", **_call("0", caller="555")}),
            (10.0, {"event": "enqueued", **_call("1", caller="555")}),
            (20.0, {"event": "enqueued", **_call("2", caller="777")}),
            (950.0, {"event": "enqueued", **_call("3", caller="777")}),
        ]
        first, second = bucketed(events, edges=[0.0, 900.0, 1_800.0], now=1_000.0)
        assert (first.queues["sales"].offered, first.queues["sales"].repeats) == (2, 1)
        assert (second.queues["sales"].offered, second.queues["sales"].repeats) == (1, 1)
        assert (first.callers, first.repeat_callers) == (2, 1)

    def test_a_survey_goes_to_its_calls_interval_agent_and_site(self) -> None:
        """CSAT per agent and per caller's site through the survey's ``call``."""
        events: list[Event] = [
            (10.0, {"event": "enqueued", **_call("1", call="c1", site="busan")}),
            (20.0, {"event": "connected", **_call("1", agent="a")}),
            (800.0, {"event": "completed", **_call("1", agent="a")}),
            (950.0, {"event": "survey", "queue": "sales", "call": "c1", "score": "5"}),
            (960.0, {"event": "survey", "queue": "sales", "call": "zz", "score": "2"}),
        ]
        first, second = bucketed(events, edges=[0.0, 900.0, 1_800.0], now=1_000.0)
        assert (first.queues["sales"].surveys, first.queues["sales"].csat) == (1, 1.0)
        assert first.agents["a"].csat == 1.0 and first.sites["busan"].csat_mean == 5.0
        assert second.queues["sales"].csat == 0.0  # no call of ours: by its own time
        assert "a" not in second.agents

    def test_events_past_the_last_edge_only_finish_earlier_calls(self) -> None:
        events: list[Event] = [
            (10.0, {"event": "enqueued", **_call("1")}),
            (950.0, {"event": "abandoned", **_call("1")}),
            (960.0, {"event": "enqueued", **_call("2")}),
            (970.0, _state("a", "available")),
        ]
        (only,) = bucketed(events, edges=[0.0, 900.0], now=1_000.0, target=20)
        sales = only.queues["sales"]
        assert (sales.offered, sales.abandoned, sales.waiting) == (1, 1, 0)
        assert sales.service_level == 0.0  # abandoned after the target
        assert only.agents == {}

    def test_a_call_still_waiting_counts_as_waiting_in_its_interval(self) -> None:
        events: list[Event] = [(100.0, {"event": "enqueued", **_call("1")})]
        first, second = bucketed(events, edges=[0.0, 900.0, 1_800.0], now=1_000.0)
        assert (first.queues["sales"].waiting, first.queues["sales"].longest_wait) == (1, 900.0)
        assert second.queues == {}

    @pytest.mark.parametrize("edges", [[0.0], [0.0, 0.0], [10.0, 5.0, 20.0]])
    def test_edges_must_increase(self, edges: list[float]) -> None:
        with pytest.raises(ValueError, match="edges"):
            bucketed([], edges=edges, now=0.0)


def _busy_day(seed: int) -> list[Event]:
    """Calls answered, abandoned, surveyed and still waiting, agents' states and the
    IVR's notes, at random over 8 hours."""
    rng = random.Random(seed)
    out: list[Event] = []
    for n in range(300):
        at = rng.uniform(0, 8 * 3600)
        fields = _call(str(n), rng.choice(("sales", "tv")), site=rng.choice(("a", "b")))
        enqueued = {
            "event": "enqueued",
            **fields,
            "call": f"c{n}",
            "caller": str(rng.randrange(60)),
        }
        out.append((at, enqueued))
        fate = rng.random()
        if fate < 0.7:
            agent = rng.choice("xyz")
            out.append((at + rng.uniform(1, 90), {"event": "connected", **fields, "agent": agent}))
            out.append((at + rng.uniform(100, 900), {"event": "completed", **fields}))
            score = str(rng.randint(1, 5))
            out.append(
                (
                    at + 950,
                    {"event": "survey", "queue": fields["queue"], "call": f"c{n}", "score": score},
                )
            )
        elif fate < 0.95:
            out.append((at + rng.uniform(1, 200), {"event": "abandoned", **fields}))
        node = rng.choice(("menu", "hours"))
        ended = {"event": "ivr_ended", "flow": "main", "contained": "1", "ended": "caller_hangup"}
        out.append((at, {**ended, "node": node}))
    for agent in "xyz":
        for k in range(40):
            state = rng.choice(("available", "on_call", "wrap_up", "paused"))
            out.append((k * 720 + rng.uniform(0, 700), _state(agent, state, site=agent)))
    return sorted(out, key=lambda item: item[0])


def _figures(summary: Summary, *, approx: bool = False) -> dict[str, object]:
    """What a report shows of a summary (lists' order aside); floats compared ``approx``."""

    def close(value: object) -> object:
        return pytest.approx(value) if approx else value

    out: dict[str, object] = {}
    for kind, table in (("queue", summary.queues), ("site", summary.sites)):
        for name, s in table.items():
            for field in (
                "offered",
                "answered",
                "completed",
                "abandoned",
                "waiting",
                "reserved",
                "repeats",
                "surveys",
            ):
                out[f"{kind}:{name}:{field}"] = getattr(s, field)
            for field in (
                "asa",
                "aht",
                "service_level",
                "abandonment_rate",
                "csat",
                "longest_wait",
            ):
                out[f"{kind}:{name}:{field}"] = close(getattr(s, field))
    for name, a in summary.agents.items():
        out[f"agent:{name}"] = (a.answered, a.handled, a.missed, a.surveys, close(a.aht))
        out[f"agent:{name}:time"] = close((a.time.busy, a.time.staffed))
    for name, f in summary.flows.items():
        out[f"flow:{name}"] = (f.calls, f.contained, f.dropped, f.nodes)
    out["overall"] = (summary.ivr_calls, summary.repeat_callers, summary.callers)
    out["time"] = close((summary.time.busy, summary.time.staffed))
    return out


@pytest.mark.parametrize("seed", range(5))
def test_intervals_combined_are_the_whole_span(seed: int) -> None:
    """Combining the intervals gives what one interval over the whole span gives."""
    events = _busy_day(seed)
    edges = [k * 900.0 for k in range(33)]
    (whole,) = bucketed(events, edges=[0.0, edges[-1]], now=7 * 3600.0)
    combined = combine(bucketed(events, edges=edges, now=7 * 3600.0))
    assert _figures(combined) == _figures(whole, approx=True)


@pytest.mark.parametrize("seed", range(3))
def test_running_figures_are_the_summary_of_the_events_so_far(seed: int) -> None:
    """Folded one event at a time, the figures asked for after each event are those of
    summarize() over the events up to it (asking does not change them)."""
    events = _busy_day(seed)
    running = Running(target=30.0, targets={"tv": 10.0})
    for n, (moment, event) in enumerate(events, start=1):
        running.take(moment, event)
        if n % 97 == 0 or n == len(events):
            now = moment + 5.0
            expected = summarize(events[:n], now=now, target=30.0, targets={"tv": 10.0})
            assert _figures(running.summary(now)) == _figures(expected)
            assert _figures(running.summary(now)) == _figures(expected)


class TestAgentsFlowsAndTargets:
    def test_agent_handled_missed_and_aht(self) -> None:
        events: list[Event] = [
            (0.0, {"event": "enqueued", **_call("1")}),
            (1.0, {"event": "reserved", **_call("1", agent="b")}),
            (20.0, {"event": "missed", **_call("1", agent="b")}),
            (21.0, {"event": "reserved", **_call("1", agent="a")}),
            (25.0, {"event": "connected", **_call("1", agent="a")}),
            (85.0, {"event": "completed", **_call("1", agent="a")}),
        ]
        summary = summarize(events, now=100.0)
        a, b = summary.agents["a"], summary.agents["b"]
        assert (a.answered, a.handled, a.missed, a.aht) == (1, 1, 0, 60.0)
        assert (b.answered, b.handled, b.missed, b.aht) == (0, 0, 1, None)

    def test_a_call_in_progress_is_answered_not_yet_handled(self) -> None:
        """An agent's handled calls are the calls they answered that ended (the
        queue's completed ones), so a call on the line counts as answered only."""
        events: list[Event] = [
            (0.0, {"event": "enqueued", **_call("1")}),
            (5.0, {"event": "connected", **_call("1", agent="a")}),
            (65.0, {"event": "completed", **_call("1", agent="a")}),
            (70.0, {"event": "enqueued", **_call("2")}),
            (75.0, {"event": "connected", **_call("2", agent="a")}),
        ]
        summary = summarize(events, now=100.0)
        a, sales = summary.agents["a"], summary.queues["sales"]
        assert (a.answered, a.handled, sales.answered, sales.completed) == (2, 1, 2, 1)

    def test_containment_per_flow_and_drop_off_per_node(self) -> None:
        """A drop-off is a contained call whose caller hung up, at the node they left;
        a caller who hung up after asking for a person is not one (abandonment is)."""

        def ended(flow: str, contained: str, how: str, node: str = "") -> Event:
            fields = {"event": "ivr_ended", "flow": flow, "contained": contained}
            return (0.0, {**fields, "ended": how, "node": node})

        events = [
            ended("main", "1", "caller_hangup", "menu"),
            ended("main", "1", "caller_hangup", "menu"),
            ended("main", "1", "caller_hangup", "billing.account"),
            ended("main", "1", "hangup", "goodbye"),
            ended("main", "0", "caller_hangup", "to_agent"),
            ended("tv", "1", "caller_hangup"),  # an older engine: no node
        ]
        summary = summarize(events, now=1.0)
        main = summary.flows["main"]
        assert (main.calls, main.contained, main.dropped) == (5, 4, 3)
        assert main.nodes == {"menu": 2, "billing.account": 1}
        assert main.containment == 0.8
        assert summary.flows["tv"].nodes == {"(unknown)": 1}
        assert (summary.ivr_calls, summary.contained) == (6, 5)

    def test_each_queue_its_own_service_level_target(self) -> None:
        """``targets`` per queue; the site's figure mixes them call by call."""
        events: list[Event] = [
            (0.0, {"event": "enqueued", **_call("1", "sales", site="s")}),
            (0.0, {"event": "enqueued", **_call("2", "tv", site="s")}),
            (30.0, {"event": "connected", **_call("1")}),
            (30.0, {"event": "connected", **_call("2")}),
        ]
        summary = summarize(events, now=40.0, target=20, targets={"tv": 60})
        assert summary.queues["sales"].service_level == 0.0
        assert summary.queues["tv"].service_level == 1.0
        assert summary.sites["s"].service_level == 0.5
