"""The HTTP API on a real Redis: run-time changes reach every engine, roles hold."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from ivr.api import build_api
from ivr.auth import TokenBook
from ivr.errors import ConfigError
from routing.config import QueueConfig
from routing.memory import Agent
from routing.redis import RedisRouter

ADMIN = {"Authorization": "Bearer admin-token-0123"}
SUPER = {"Authorization": "Bearer super-token-0123"}
VIEW = {"Authorization": "Bearer viewer-token-012"}
TOKENS = TokenBook.from_environ(
    {
        "IVR_API_TOKENS": "ops:admin:admin-token-0123;lee:supervisor:super-token-0123;"
        "kim:viewer:viewer-token-012"
    }
)


@pytest.fixture
async def routers(redis_url: str) -> AsyncIterator[tuple[RedisRouter, RedisRouter]]:
    """Two engines on one store."""
    first, second = RedisRouter.connect(redis_url), RedisRouter.connect(redis_url)
    await first.redis.flushall()
    await first.start()
    await second.start()
    await first.add_agents([Agent("alice", "PJSIP/1001", {"billing": 5})])
    try:
        yield first, second
    finally:
        await first.close()
        await second.close()


@pytest.fixture
async def client(routers: tuple[RedisRouter, RedisRouter]) -> AsyncIterator[httpx.AsyncClient]:
    app = build_api(routers[0], TOKENS)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://engine") as http:
        yield http


async def eventually(check: Any, timeout: float = 2.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "not seen in time"
        await asyncio.sleep(0.01)


async def test_a_queue_change_reaches_every_engine(
    client: httpx.AsyncClient, routers: tuple[RedisRouter, RedisRouter]
) -> None:
    await routers[0].replace_queues({"billing": QueueConfig.model_validate({"aht": 200})})
    await eventually(lambda: "billing" in routers[1].queues)
    change = {"skills": {"billing": 3}, "aht": 90, "steps": [{"after": 30, "overflow": True}]}
    reply = await client.put("/api/queues/billing", json=change, headers=ADMIN)
    assert reply.status_code == 200, reply.text
    # The other engine's live settings (what its next queue node reads) follow.
    await eventually(lambda: routers[1].queues["billing"].aht == 90)
    assert routers[1].queues["billing"].steps[0].overflow
    listed = (await client.get("/api/queues", headers=VIEW)).json()["queues"]
    assert listed["billing"]["config"]["skills"] == {"billing": 3}
    audit = (await client.get("/api/audit", headers=ADMIN)).json()["audit"]
    assert [(a["actor"], a["action"], a["queue"]) for a in audit] == [
        ("ops", "queue.put", "billing")
    ]


async def test_bad_queue_settings_say_where_and_what(client: httpx.AsyncClient) -> None:
    reply = await client.put(
        "/api/queues/billing",
        json={"strategy": "random", "steps": [{"after": -1, "skills": {"billing": 3}}]},
        headers=ADMIN,
    )
    assert reply.status_code == 422
    problems = {p["at"]: p["message"] for p in reply.json()["problems"]}
    assert "longest_idle" in problems["strategy"]
    assert "greater than 0" in problems["steps.0.after"]
    reply = await client.put("/api/queues/billing", content=b"{nope", headers=ADMIN)
    assert reply.status_code == 400 and "not JSON" in reply.json()["error"]


async def test_agent_states_through_the_api(client: httpx.AsyncClient) -> None:
    reply = await client.post("/api/agents/alice/login", headers=SUPER)
    assert reply.json() == {
        "agent": "alice",
        "state": "available",
        "result": "done",
        "changed": True,
        "pending": None,
        "ring_cancelled": None,
    }
    again = await client.post("/api/agents/alice/login", headers=SUPER)
    assert again.json()["changed"] is False  # a replay changes nothing
    paused = await client.post("/api/agents/alice/pause", json={"reason": "lunch"}, headers=SUPER)
    assert paused.json()["state"] == "paused"
    agents = (await client.get("/api/agents", headers=VIEW)).json()["agents"]
    assert agents[0]["reason"] == "lunch"
    await client.post("/api/agents/alice/logout", headers=SUPER)
    refused = await client.post("/api/agents/alice/pause", json={}, headers=SUPER)
    assert refused.status_code == 409
    assert "pause is allowed from available" in refused.json()["error"]
    assert (await client.post("/api/agents/bob/login", headers=SUPER)).status_code == 404
    odd = await client.post("/api/agents/alice/dance", headers=SUPER)
    assert odd.status_code == 404 and "allowed: login" in odd.json()["error"]
    bad = await client.post("/api/agents/alice/pause", json={"reason": "a\r\nb"}, headers=SUPER)
    assert bad.status_code == 422


async def test_skills_and_new_agents(
    client: httpx.AsyncClient, routers: tuple[RedisRouter, RedisRouter]
) -> None:
    reply = await client.put("/api/agents/alice/skills", json={"billing": 9}, headers=ADMIN)
    assert reply.json()["skills"] == {"billing": 9}
    assert await routers[1].staffed({"billing": 9}) == 0  # logged out
    reply = await client.put(
        "/api/agents/bob", json={"endpoint": "PJSIP/1002", "team": "north"}, headers=ADMIN
    )
    assert reply.status_code == 200
    assert reply.json()["skills"] == {"team.north": 1}
    bad = await client.put("/api/agents/carol", json={"endpoint": "1003"}, headers=ADMIN)
    assert bad.status_code == 422 and bad.json()["problems"][0]["at"] == "endpoint"
    skills = await client.put("/api/agents/alice/skills", json={"billing": 11}, headers=ADMIN)
    assert skills.status_code == 422
    # PATCH changes the skills it names and keeps the others; 0 removes one.
    await client.put("/api/agents/alice/skills", json={"billing": 9, "tv": 3}, headers=ADMIN)
    patched = await client.patch("/api/agents/alice/skills", json={"tv": 5}, headers=ADMIN)
    assert patched.json()["skills"] == {"billing": 9, "tv": 5}
    patched = await client.patch("/api/agents/alice/skills", json={"billing": 0}, headers=ADMIN)
    assert patched.json()["skills"] == {"tv": 5}
    bad = await client.patch("/api/agents/alice/skills", json={"tv": "x"}, headers=ADMIN)
    assert bad.status_code == 422


async def test_roles_and_tokens(routers: tuple[RedisRouter, RedisRouter]) -> None:
    app = build_api(routers[0], TOKENS)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://engine"
    ) as http:
        assert (await http.get("/api/agents")).status_code == 401
        wrong = {"Authorization": "Bearer admin-token-0124"}
        assert (await http.get("/api/agents", headers=wrong)).status_code == 401
        denied = await http.put("/api/queues/x", json={}, headers=SUPER)
        assert denied.status_code == 403 and "admin role" in denied.json()["error"]
        assert (await http.post("/api/agents/alice/login", headers=VIEW)).status_code == 403
    closed = build_api(routers[0], TokenBook())
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=closed), base_url="http://engine"
    ) as http:
        reply = await http.get("/api/agents", headers=ADMIN)
        assert reply.status_code == 401 and "IVR_API_TOKENS" in reply.json()["error"]


def test_token_configuration_errors(tmp_path: Any) -> None:
    with pytest.raises(ConfigError, match="role 'god' is unknown; allowed: viewer"):
        TokenBook.from_environ({"IVR_API_TOKENS": "x:god:0123456789abc"})
    with pytest.raises(ConfigError, match="shorter than 12"):
        TokenBook.from_environ({"IVR_API_TOKENS": "x:admin:short"})
    path = tmp_path / "tokens"
    path.write_text("# team\nops admin 0123456789abcdef\nbad line\n")
    with pytest.raises(ConfigError, match=f"{path}:3: write NAME ROLE TOKEN"):
        TokenBook.from_environ({"IVR_API_TOKENS_FILE": str(path)})
    path.write_text("ops admin 0123456789abcdef\n")
    book = TokenBook.from_environ({"IVR_API_TOKENS_FILE": str(path)})
    assert book.who("0123456789abcdef") is not None and book.who("0123456789abcdeg") is None


async def test_store_down_is_503(redis_url: str) -> None:
    router = RedisRouter.connect("redis://127.0.0.1:1/0", connections=2)
    app = build_api(router, TOKENS)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://engine"
    ) as http:
        reply = await http.put("/api/queues/billing", json={}, headers=ADMIN)
    await router.close()
    assert reply.status_code == 503 and "unreachable" in reply.json()["error"]
