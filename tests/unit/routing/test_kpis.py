"""KPIs from the routing event stream, on a hand-made timeline."""

from __future__ import annotations

import pytest

from routing.kpis import compute


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
