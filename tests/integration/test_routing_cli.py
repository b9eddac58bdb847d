"""`ivr agents` and `ivr queues` against the engine's Redis."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from ivr.cli import main
from routing.memory import Agent
from routing.redis import RedisRouter


@pytest.fixture
def config(tmp_path: Path, redis_url: str) -> str:
    path = tmp_path / "engine.yaml"
    path.write_text(f"redis_url: {redis_url}\n")
    return str(path)


def scenario(redis_url: str) -> None:
    async def run() -> None:
        router = RedisRouter.connect(redis_url)
        await router.redis.flushall()
        await router.add_agents([Agent("alice", "PJSIP/1001", {"billing": 5})])
        await router.login("alice")
        ticket = await router.enqueue("c1", "billing", {"billing": 3})
        assignment = await asyncio.wait_for(router.wait(ticket), 2)
        await router.connected(assignment)
        await asyncio.sleep(0.05)
        await router.completed(assignment)
        await router.enqueue("c2", "billing", {"billing": 9})  # nobody can take it
        await router.close()

    asyncio.run(run())


def test_agents_commands(config: str, redis_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    """List, pause with a reason, resume, refuse an invalid move, change skills."""
    scenario(redis_url)
    assert main(["agents", "list", "--config", config]) == 0
    assert "alice        available   PJSIP/1001" in capsys.readouterr().out
    assert main(["agents", "pause", "alice", "--reason", "lunch", "--config", config]) == 0
    assert main(["agents", "list", "--config", config]) == 0
    assert "paused" in capsys.readouterr().out
    assert main(["agents", "login", "alice", "--config", config]) == 0  # logged in already
    assert "alice: paused (no change)" in capsys.readouterr().out
    assert main(["agents", "ready", "alice", "--config", config]) == 1  # not in wrap-up
    assert "allowed from" in capsys.readouterr().err
    assert main(["agents", "resume", "alice", "--config", config]) == 0
    assert main(["agents", "skills", "alice", "billing=9", "--config", config]) == 0
    assert "alice: billing=9" in capsys.readouterr().out


def test_queue_stats(config: str, redis_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    """`ivr queues stats` computes offered, answered and waiting from the event stream."""
    scenario(redis_url)
    assert main(["queues", "stats", "--config", config]) == 0
    out = capsys.readouterr().out
    line = next(row for row in out.splitlines() if row.startswith("billing"))
    assert line.split()[1:3] == ["2", "1"] and line.split()[-2] == "1"
    assert "IVR containment:" in out and "repeat callers:" in out
    assert main(["queues", "list", "--config", config]) == 0
    assert "billing: 1 waiting" in capsys.readouterr().out


def test_no_store_says_what_to_do(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "engine.yaml"
    path.write_text(f"redis_dir: {tmp_path / 'none'}\n")
    assert main(["agents", "list", "--config", str(path)]) == 2
    assert "start the engine" in capsys.readouterr().err


def test_staffing_from_measured_volume(
    config: str, redis_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """`ivr agents staffing --queue` takes calls and AHT from the event stream."""
    scenario(redis_url)
    assert (
        main(["agents", "staffing", "--queue", "billing", "--interval", "1h", "--config", config])
        == 0
    )
    out = capsys.readouterr().out
    assert "measured on billing: 2 calls" in out and "<- needed" in out
    assert main(["agents", "staffing", "--queue", "nope", "--config", config]) == 2
    assert main(["agents", "staffing"]) == 2
