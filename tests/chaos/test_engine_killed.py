"""kill -9 of the engine with calls up (issue 12, chaos 1; bench/chaos.py runs 500).

Asterisk's side follows PROTOCOL.md §8.6 (the emulator does): the closed socket ends
the running command, ``AGI`` returns with AGISTATUS=SUCCESS, and the rendered
dialplan sends a call the engine did not finish (``IVR_DONE`` unset) to its fallback.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.chaos import scenarios
from tests.chaos.rig import EngineProcess, alive, descendants, write_setup

pytestmark = pytest.mark.slow


async def test_every_call_takes_the_fallback_and_no_agent_stays_held(root: Path) -> None:
    """50 calls up (10 talking to agents, 40 on hold): each leaves the dead engine within
    5 s into the fallback queue, and with a new engine every agent is free again."""
    figures = await scenarios.engine_killed(root, calls=50, agents=10)
    assert figures["left_on_hold_or_prompt_max_s"] < 1.0  # the closed socket ends it at once
    assert figures["agents_free_after_new_engine_s"] < 10.0


async def test_a_killed_engine_leaves_no_process_behind(root: Path) -> None:
    """The engine's own redis-server and TTS worker go with it."""
    write_setup(root, agents=1, port=0)
    engine = EngineProcess(root)  # its own redis-server under var/redis
    try:
        await engine.start()
        helpers = descendants(engine.pid)
        assert helpers, "the engine runs no helper: nothing to check"
        orphans = await engine.kill()
        await asyncio.sleep(1.0)
        assert [pid for pid in orphans if alive(pid)] == []
    finally:
        await engine.stop()
