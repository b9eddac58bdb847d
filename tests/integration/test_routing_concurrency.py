"""Several engine processes on one Redis: no agent reserved twice, no call lost."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

from routing.redis import RedisRouter
from routing.types import Agent

WORKER = Path(__file__).parent / "helpers" / "routing_worker.py"
ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
async def test_processes_race_without_double_reservations(redis_url: str) -> None:
    """8 processes, 500 agents, 5,000 calls: every reservation is exclusive, every call ends."""
    processes, calls, agents = 8, 625, 500
    router = RedisRouter.connect(redis_url)
    await router.redis.flushall()
    await router.add_agents(Agent(f"a{i}", f"PJSIP/{i}") for i in range(agents))
    for i in range(agents):
        await router.login(f"a{i}")
    env_path = {"PYTHONPATH": str(ROOT)}
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            str(WORKER),
            redis_url,
            str(worker),
            str(calls),
            stdout=subprocess.PIPE,
            env={**os.environ, **env_path},
        )
        for worker in range(processes)
    ]
    outputs = await asyncio.wait_for(asyncio.gather(*(p.communicate() for p in procs)), 120)
    outcome: dict[str, str] = {}
    for proc, (out, _) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0
        outcome.update(json.loads(out))
    assert len(outcome) == processes * calls  # every call placed came to an end

    # Replay the event stream: an agent is never reserved while already holding a call.
    holding: dict[str, str | None] = defaultdict(lambda: None)
    reservations = 0
    for _, event in await router.events(0):
        if event["event"] == "reserved":
            agent = event["agent"]
            assert holding[agent] is None, f"{agent} reserved for two calls at once"
            holding[agent] = event["ticket"]
            reservations += 1
        elif event["event"] == "state" and event["after"] in ("available", "missed", "paused"):
            holding[event["agent"]] = None
    assert reservations >= processes * calls * 0.85
    states = {await router.agent_state(f"a{i}") for i in range(agents)}
    assert states == {"available"}  # every agent is free again: no reservation leaked
    await router.close()
