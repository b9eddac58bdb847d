"""Erlang C: how many agents a queue needs to meet its service-level target.

From the calls offered in an interval and the average handle time (AHT),
the traffic is ``A = calls * AHT / interval`` Erlangs. With ``N`` agents the
probability a caller waits is Erlang C, computed here through the stable
Erlang B recursion (no factorials, so it works for thousands of agents):

    B(0) = 1,   B(n) = A·B(n-1) / (n + A·B(n-1)),   C = N·B / (N - A·(1 - B))

and the service level (answered within ``T`` seconds) is
``1 - C·exp(-(N - A)·T / AHT)``; the average speed of answer is
``C·AHT / (N - A)``; occupancy is ``A / N``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["Staffing", "agents_needed", "erlang_c", "staffing"]


@dataclass(frozen=True, slots=True)
class Staffing:
    agents: int
    traffic: float
    wait_probability: float
    service_level: float
    asa: float
    occupancy: float


def erlang_c(agents: int, traffic: float) -> float:
    """Probability that a call waits, with ``agents`` agents and ``traffic`` Erlangs."""
    if traffic <= 0:
        return 0.0
    if agents <= traffic:
        return 1.0  # the queue grows without end
    blocking = 1.0
    for n in range(1, agents + 1):
        blocking = traffic * blocking / (n + traffic * blocking)
    return agents * blocking / (agents - traffic * (1 - blocking))


def staffing(agents: int, calls: float, aht: float, interval: float, target_s: float) -> Staffing:
    """The figures for ``agents`` agents taking ``calls`` calls in ``interval`` seconds."""
    if aht <= 0 or interval <= 0 or calls < 0:
        raise ValueError("calls must be >= 0, aht and interval > 0 seconds")
    traffic = calls * aht / interval
    wait = erlang_c(agents, traffic)
    if agents <= traffic:
        return Staffing(agents, traffic, 1.0, 0.0, math.inf, 1.0)
    level = 1 - wait * math.exp(-(agents - traffic) * target_s / aht)
    return Staffing(agents, traffic, wait, level, wait * aht / (agents - traffic), traffic / agents)


def agents_needed(
    calls: float,
    aht: float,
    interval: float,
    target_level: float,
    target_s: float,
    *,
    max_occupancy: float = 1.0,
    shrinkage: float = 0.0,
) -> tuple[int, Staffing]:
    """Fewest agents on the phones that meet the target, and how many to schedule.

    Returns ``(scheduled, figures)``: ``figures`` for the agents on the phones,
    ``scheduled`` that number grossed up for ``shrinkage`` (breaks, training).
    """
    if not 0 < target_level < 1:
        raise ValueError("target_level is a fraction, e.g. 0.8 for 80 %")
    if not 0 <= shrinkage < 1:
        raise ValueError("shrinkage is a fraction below 1, e.g. 0.3")
    if not 0 < max_occupancy <= 1:
        raise ValueError("max_occupancy is a fraction up to 1, e.g. 0.85")
    traffic = calls * aht / interval
    agents = max(1, math.floor(traffic) + 1)
    while True:
        figures = staffing(agents, calls, aht, interval, target_s)
        if figures.service_level >= target_level and figures.occupancy <= max_occupancy:
            return math.ceil(agents / (1 - shrinkage)), figures
        agents += 1
