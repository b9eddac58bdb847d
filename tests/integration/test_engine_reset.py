"""The whole engine after Redis lost its data: `ivr serve` (a real process) on a real
redis-server that is emptied under it puts its agents back from routing.yaml (logged
in where routing.yaml says so) and its queue settings, without a restart."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import redis

from routing.redis import RedisRouter
from tests.integration.helpers.serve_process import free_port, serve, serve_env, stop

ROUTING = """
agents:
  - {id: kim, endpoint: PJSIP/1001, skills: {billing: 5}, site: seoul, log_in: true}
queues:
  billing: {skills: {billing: 3}, wrap_up: 12}
"""
SIMPLE = Path(__file__).resolve().parents[1] / "data" / "flows" / "simple"


def until(check: object, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, "not in time"
        time.sleep(0.1)


def test_agents_come_back_after_redis_lost_its_data(redis_url: str, tmp_path: Path) -> None:
    client = redis.Redis.from_url(redis_url)
    client.flushall()
    (tmp_path / "routing.yaml").write_text(ROUTING)
    proc = serve(serve_env(redis_url, tmp_path, SIMPLE), free_port())

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
        err = stop(proc)
    assert "routing.reset" in err
