"""KPIs from the routing event stream, on a hand-made timeline."""

from __future__ import annotations

import pytest

from routing.kpis import compute, summarize


def test_queue_kpis() -> None:
    """ASA, AHT, abandonment and service level follow their textbook definitions."""
    events = [
        (0.0, {"event": "enqueued", "ticket": "1", "queue": "sales"}),
        (1.0, {"event": "enqueued", "ticket": "2", "queue": "sales"}),
        (2.0, {"event": "enqueued", "ticket": "3", "queue": "sales"}),
        (5.0, {"event": "connected", "ticket": "1"}),  # waited 5 s
        (31.0, {"event": "connected", "ticket": "2"}),  # waited 30 s
        (35.0, {"event": "abandoned", "ticket": "3"}),  # gave up after 33 s
        (65.0, {"event": "completed", "ticket": "1"}),  # handled 60 s
        (121.0, {"event": "completed", "ticket": "2"}),  # handled 90 s
        (200.0, {"event": "enqueued", "ticket": "4", "queue": "sales"}),
    ]
    queues, _ = compute(events, now=260.0, target=20)
    sales = queues["sales"]
    assert (sales.offered, sales.answered, sales.abandoned, sales.waiting) == (4, 2, 1, 1)
    assert sales.asa == pytest.approx(17.5)
    assert sales.aht == pytest.approx(75.0)
    assert sales.abandonment_rate == pytest.approx(1 / 3)
    assert sales.service_level == pytest.approx(1 / 3)  # 1 within 20 s of 2 answered + 1 late
    assert sales.longest_wait == pytest.approx(60.0)


def test_occupancy() -> None:
    """Time on calls over time available or busy; paused time does not count."""
    events = [
        (0.0, {"event": "state", "agent": "a", "before": "logged_out", "after": "available"}),
        (10.0, {"event": "state", "agent": "a", "before": "available", "after": "reserved"}),
        (12.0, {"event": "state", "agent": "a", "before": "reserved", "after": "on_call"}),
        (40.0, {"event": "state", "agent": "a", "before": "on_call", "after": "paused"}),
        (100.0, {"event": "state", "agent": "a", "before": "paused", "after": "available"}),
        (110.0, {"event": "state", "agent": "a", "before": "available", "after": "logged_out"}),
    ]
    _, occupancy = compute(events, now=120.0)
    assert occupancy == pytest.approx(30 / 50)


def test_csat_from_survey_answers() -> None:
    """CSAT: the share of answers of 4 or 5 (of 5) per queue; blanks and strays ignored."""
    events = [
        (1.0, {"event": "survey", "queue": "sales", "score": "5"}),
        (2.0, {"event": "survey", "queue": "sales", "score": "3"}),
        (3.0, {"event": "survey", "queue": "sales", "score": "4"}),
        (4.0, {"event": "survey", "queue": "sales", "score": ""}),
        (5.0, {"event": "survey", "queue": "sales", "score": "9"}),
        (6.0, {"event": "survey", "queue": "", "score": "5"}),
    ]
    queues, _ = compute(events, now=10.0)
    sales = queues["sales"]
    assert sales.surveys == 3
    assert sales.csat == 2 / 3
    assert sales.csat_mean == 4.0


def _call(ticket: str, queue: str = "sales", **extra: str) -> dict[str, str]:
    return {"ticket": ticket, "queue": queue, **extra}


def test_overflow_timeout_and_lost_leases_are_not_abandons() -> None:
    """Overflowed, timed out, lease_expired and unanswered calls are their own counts: the
    old fold counted an overflow as abandoned (100 % abandonment)."""
    events = [
        (0.0, {"event": "enqueued", **_call("1")}),
        (0.0, {"event": "enqueued", **_call("2")}),
        (0.0, {"event": "enqueued", **_call("3")}),
        (0.0, {"event": "enqueued", **_call("4")}),
        (0.0, {"event": "enqueued", **_call("5")}),
        (2.0, {"event": "connected", **_call("5")}),
        (3.0, {"event": "completed", **_call("5")}),
        (30.0, {"event": "overflowed", **_call("1")}),
        (40.0, {"event": "timed_out", **_call("2")}),
        (50.0, {"event": "lease_expired", **_call("3")}),
        (55.0, {"event": "callback_requested", **_call("4")}),
        (60.0, {"event": "reserved", **_call("4", agent="a")}),
        (70.0, {"event": "unanswered", **_call("4")}),
        (80.0, {"event": "abandoned", **_call("1")}),  # after its end: ignored
    ]
    sales = compute(events, now=100.0)[0]["sales"]
    assert (sales.abandoned, sales.overflowed, sales.timed_out) == (0, 1, 1)
    assert (sales.lease_expired, sales.unanswered, sales.callbacks) == (1, 1, 1)
    assert sales.abandonment_rate == 0.0
    assert (sales.offered, sales.answered, sales.completed, sales.waiting) == (5, 1, 1, 0)


def test_a_ringing_call_is_not_waiting() -> None:
    """One definition of waiting: a call whose agent rings is reserved, not waiting; a missed
    ring puts it back to waiting (the old fold said 2 where the API said 1)."""
    events = [
        (0.0, {"event": "enqueued", **_call("1")}),
        (5.0, {"event": "enqueued", **_call("2")}),
        (6.0, {"event": "reserved", **_call("1", agent="a")}),
        (8.0, {"event": "enqueued", **_call("3")}),
        (9.0, {"event": "reserved", **_call("3", agent="b")}),
        (20.0, {"event": "missed", **_call("3", agent="b")}),
    ]
    sales = compute(events, now=30.0)[0]["sales"]
    assert (sales.waiting, sales.reserved) == (2, 1)
    assert sales.longest_wait == pytest.approx(25.0)  # ticket 2; ticket 1 rings


def test_asa_from_the_answer_time_not_the_event() -> None:
    """Without AMI the answer is recorded after Dial returns, with ``at`` from ANSWEREDTIME:
    ASA uses ``at`` and AHT runs from it (the old fold put the talk time into ASA)."""
    events = [
        (0.0, {"event": "enqueued", **_call("1")}),
        (70.0, {"event": "connected", **_call("1", at="10.0")}),
        (70.0, {"event": "completed", **_call("1")}),
        (70.0, {"event": "connected", **_call("1", at="60.0")}),  # a replay: ignored
    ]
    sales = compute(events, now=80.0)[0]["sales"]
    assert (sales.answered, sales.asa, sales.aht) == (1, 10.0, 60.0)


def test_containment_repeat_callers_and_sites() -> None:
    """IVR containment from ``ivr_ended`` notes; repeat callers within the window (a
    parameter); every figure also by the caller's site, and occupancy by the agents' site."""
    events = [
        (0.0, {"event": "ivr_ended", "call": "c1", "contained": "1"}),
        (1.0, {"event": "ivr_ended", "call": "c2", "contained": "0"}),
        (2.0, {"event": "ivr_ended", "call": "c3", "contained": "1"}),
        (0.0, {"event": "enqueued", **_call("1", caller="555", site="seoul")}),
        (100.0, {"event": "enqueued", **_call("2", caller="555", site="busan")}),
        (200_000.0, {"event": "enqueued", **_call("3", caller="555", site="seoul")}),
        (200_001.0, {"event": "enqueued", **_call("4", caller="777", site="seoul")}),
        (200_002.0, {"event": "connected", **_call("4", site="seoul")}),
        (0.0, {"event": "state", "agent": "a", "after": "available", "site": "seoul"}),
        (10.0, {"event": "state", "agent": "a", "after": "on_call", "site": "seoul"}),
        (20.0, {"event": "state", "agent": "a", "after": "logged_out", "site": "seoul"}),
        (0.0, {"event": "state", "agent": "b", "after": "available", "site": "busan"}),
        (20.0, {"event": "state", "agent": "b", "after": "logged_out", "site": "busan"}),
    ]
    events.sort(key=lambda e: e[0])
    summary = summarize(events, now=200_010.0)
    assert (summary.ivr_calls, summary.contained, summary.containment) == (3, 2, 2 / 3)
    assert (summary.callers, summary.repeat_callers) == (4, 1)  # 100 s apart; 2 days: not
    assert summarize(events, now=200_010.0, repeat_window=300_000).repeat_callers == 2
    assert (summary.sites["seoul"].offered, summary.sites["busan"].offered) == (3, 1)
    assert summary.sites["seoul"].answered == 1
    assert summary.site_occupancy == {"busan": 0.0, "seoul": 0.5}
    assert summary.occupancy == 10 / 40
