"""The whole engine after Redis lost its data: `ivr serve` (a real process) on a real
redis-server that is emptied under it puts its agents back from routing.yaml (logged
in where routing.yaml says so) and its queue settings, without a restart."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import redis

from routing.redis import RedisRouter

ROUTING = """
agents:
  - {id: kim, endpoint: PJSIP/1001, skills: {billing: 5}, site: seoul, log_in: true}
queues:
  billing: {skills: {billing: 3}, wrap_up: 12}
"""
SIMPLE = Path(__file__).resolve().parents[1] / "data" / "flows" / "simple"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def until(check: object, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, "not in time"
        time.sleep(0.1)


def test_agents_come_back_after_redis_lost_its_data(redis_url: str, tmp_path: Path) -> None:
    client = redis.Redis.from_url(redis_url)
    client.flushall()
    (tmp_path / "routing.yaml").write_text(ROUTING)
    port = free_port()
    env = dict(
        os.environ,
        IVR_REDIS_URL=redis_url,
        IVR_ROUTING_FILE=str(tmp_path / "routing.yaml"),
        IVR_FLOWS_DIR=str(SIMPLE),
        IVR_PROMPTS_DIR=str(tmp_path / "prompts"),
        IVR_REDIS_DIR=str(tmp_path / "redis"),
        IVR_DEMO_API_PORT="0",
        IVR_API_PORT="0",
        IVR_AUDIOSOCKET_PORT="0",
        IVR_LOG_FORMAT="json",
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "ivr.cli", "serve", "--port", str(port)],
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )

    def kim_is(state: str) -> bool:
        async def read() -> str | None:
            router = RedisRouter.connect(redis_url)
            try:
                return await router.agent_state("kim")
            finally:
                await router.close()

        return asyncio.run(read()) == state

    try:
        until(lambda: kim_is("available"))
        client.flushall()  # Redis restarted without persistence, or a failover lost it
        until(lambda: kim_is("available"))

        async def queues() -> dict[str, float]:
            router = RedisRouter.connect(redis_url)
            try:
                return {name: q.wrap_up for name, q in (await router.load_queues()).items()}
            finally:
                await router.close()

        assert asyncio.run(queues()) == {"billing": 12}
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            _, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
    assert "routing.reset" in err
