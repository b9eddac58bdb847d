"""Model-based proof of routing: the reference model against a second router, in lockstep.

CI runs a modest budget; ``ROUTING_SOAK=1`` runs many more and longer sequences. The
Redis router (``routing.redis.RedisRouter``, built with the test's ``clock``) is the
second router of the second test.
"""

from __future__ import annotations

import inspect
import os
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis.stateful import run_state_machine_as_test

from tests.model.machine import LEASE, FakeClock, machine_for, reference_router

SOAK = os.environ.get("ROUTING_SOAK", "") not in ("", "0")
BUDGET = settings(
    max_examples=2_000 if SOAK else 60,
    stateful_step_count=100 if SOAK else 40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


#: A soak runs as long as it takes (pytest-timeout's 0: no limit).
LIMIT = pytest.mark.timeout(0 if SOAK else 120)


@LIMIT
def test_reference_against_a_second_reference() -> None:
    """Two instances of the reference agree on every answer and snapshot, and every
    invariant of ROUTING.md holds after every step (no double reservation, work-conserving,
    best call first across the group, one terminal stage, KPIs equal the counters)."""
    run_state_machine_as_test(machine_for(reference_router), settings=BUDGET)


def _redis_router_class() -> Any:
    try:
        from routing.redis import RedisRouter
    except ImportError:
        try:
            from routing.redis_router import RedisRouter
        except ImportError:
            return None
    if "clock" not in inspect.signature(RedisRouter.connect).parameters:
        return None
    return RedisRouter


REDIS_BUDGET = settings(BUDGET, max_examples=2_000 if SOAK else 40)


@LIMIT
@pytest.mark.skipif(_redis_router_class() is None, reason="no Redis router with clock= yet")
def test_redis_router_against_the_reference(redis_url: str) -> None:
    """The Redis router gives the reference's answers, snapshots, positions, staffing and
    KPI counts, step by step, also when a reload moves an agent to another routing group
    during a call (2,000 sequences with moves agreed, ``ROUTING_SOAK=1``);
    ``ROUTING_MODEL_REDIS_MOVES=0`` keeps agents in their group."""
    router_class = _redis_router_class()

    async def redis_router(clock: FakeClock) -> Any:
        router = router_class.connect(redis_url, clock=clock, lease=LEASE)
        router.ticking = False  # the test ticks, on its clock
        await router.redis.flushall()
        return router

    moves = os.environ.get("ROUTING_MODEL_REDIS_MOVES", "1") != "0"
    run_state_machine_as_test(
        machine_for(redis_router, keep_groups=not moves), settings=REDIS_BUDGET
    )
