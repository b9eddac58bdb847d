"""One of two engines dies under load (issue 12, chaos 4).

Both engines share one Redis and take calls in turn (as ``hagi://`` spreads them).
kill -9 of one: its calls leave it for the fallback within 5 s, the survivor ends
its tickets (its heartbeat stopped: within seconds, not after the 30 s lease) and
frees its agents, and the calls that keep coming, all to the survivor now, are
answered; no agent is ever dialled for two calls at once.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.chaos import scenarios

pytestmark = pytest.mark.slow


async def test_the_survivor_ends_the_dead_engines_calls_and_goes_on(root: Path) -> None:
    figures = await scenarios.engine_of_two_killed(root, agents=6, rate=5.0, seconds=6.0)
    assert figures["dead_engines_tickets_ended_s"] < 10.0  # the lease alone: 30 s
    assert figures["calls_of_dead_engine"] > 0
    assert figures["survivor_calls_answered"] > figures["calls_of_dead_engine"]
