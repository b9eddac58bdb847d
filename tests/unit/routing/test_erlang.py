"""Erlang C against published values and against the textbook formula."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from routing.erlang import agents_needed, erlang_c, staffing


def textbook(agents: int, traffic: int) -> float:
    """Erlang C with factorials, exactly (fractions): fine for small numbers."""
    a, n = Fraction(traffic), agents
    top = a**n / math.factorial(n) * Fraction(n, n - traffic)
    bottom = sum(a**k / math.factorial(k) for k in range(n)) + top
    return float(top / bottom)


@pytest.mark.parametrize(
    ("agents", "expected"), [(11, 0.6821), (12, 0.4494), (13, 0.2853), (14, 0.1741), (15, 0.1020)]
)
def test_published_table_for_ten_erlangs(agents: int, expected: float) -> None:
    """P(wait) for 10 Erlangs matches the standard Erlang C table."""
    assert erlang_c(agents, 10.0) == pytest.approx(expected, abs=5e-4)


@given(st.integers(1, 40), st.integers(1, 60))
def test_recursion_equals_the_formula(traffic: int, extra: int) -> None:
    """The stable recursion gives the textbook value."""
    agents = traffic + extra
    assert erlang_c(agents, float(traffic)) == pytest.approx(textbook(agents, traffic), rel=1e-9)


def test_staffing_for_a_typical_interval() -> None:
    """360 calls an hour at 4 minutes: 24 Erlangs; 28 agents give 76 % in 20 s, so 29."""
    reference = staffing(28, 360, 240, 3600, 20)  # the textbook worked example
    assert reference.wait_probability == pytest.approx(0.3331, abs=5e-4)
    assert reference.asa == pytest.approx(20.0, abs=0.05)
    assert reference.service_level == pytest.approx(0.7613, abs=5e-4)
    scheduled, figures = agents_needed(360, 240, 3600, 0.8, 20)
    assert figures.traffic == pytest.approx(24.0)
    assert figures.agents == 29 and scheduled == 29
    assert agents_needed(360, 240, 3600, 0.8, 20, shrinkage=0.3)[0] == math.ceil(29 / 0.7)
    assert agents_needed(360, 240, 3600, 0.8, 20, max_occupancy=0.8)[1].agents == 30


def test_too_few_agents_never_catch_up() -> None:
    figures = staffing(10, 360, 240, 3600, 20)
    assert figures.service_level == 0.0 and figures.asa == math.inf


def test_large_centres_do_not_overflow() -> None:
    """5,000 Erlangs: no factorials, no overflow, a sensible answer."""
    _, figures = agents_needed(75_000, 240, 3600, 0.8, 20)
    assert 5000 < figures.agents < 5200 and figures.occupancy < 1


def test_bad_targets_are_refused() -> None:
    with pytest.raises(ValueError, match="fraction"):
        agents_needed(10, 100, 3600, 80, 20)
