"""The HTTP API's guards on a real Redis and the emulated AMI: a bounded KPI window, a
supervisor's audio only to their own phones, a health check for load balancers, and
every refusal in the audit trail with who asked and why."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from ivr.ami import AmiClient, AmiConfig
from ivr.api import build_api
from ivr.auth import Principal, TokenBook
from ivr.centre.supervise import Supervisors
from ivr.errors import ConfigError
from ivr.testing import AsteriskEmulator
from routing.memory import Agent
from routing.redis import RedisRouter

TOKENS = TokenBook.from_environ(
    {
        "IVR_API_TOKENS": "ops:admin:admin-token-0123;"
        "lee:supervisor:lee-token-012345:PJSIP/2001;"
        "kim:viewer:viewer-token-012;"
        "max:supervisor:max-token-012345"
    }
)
ADMIN = {"Authorization": "Bearer admin-token-0123"}
LEE = {"Authorization": "Bearer lee-token-012345"}  # phone PJSIP/2001
MAX = {"Authorization": "Bearer max-token-012345"}  # no phone
VIEW = {"Authorization": "Bearer viewer-token-012"}


@pytest.fixture
async def router(redis_url: str) -> AsyncIterator[RedisRouter]:
    router = RedisRouter.connect(redis_url)
    await router.redis.flushall()
    await router.start()
    await router.add_agents([Agent("ann", "PJSIP/1001", {"sales": 5})])
    try:
        yield router
    finally:
        await router.close()


@pytest.fixture
async def supervisors(router: RedisRouter) -> AsyncIterator[Supervisors]:
    """The emulated Asterisk's AMI, with ann on a call and two supervisors' phones."""
    emulator = AsteriskEmulator()
    server = await emulator.start_ami()
    pbx = emulator.pbx
    for endpoint in ("PJSIP/1001", "PJSIP/2001", "PJSIP/2002"):
        pbx.add_endpoint(endpoint)
    caller = pbx.new_channel("PJSIP/caller-00000001", state=6, cid_num="5551234")
    pbx.bridge(pbx.endpoint_channel("PJSIP/1001", state=6), caller)
    ami = AmiClient(
        AmiConfig(port=server.port, username="ivr", secret="ivr-secret", ping_interval=0)
    )
    await ami.connect()
    try:
        yield Supervisors(router, ami)
    finally:
        await ami.close()
        await emulator.close()


def client(router: RedisRouter, supervisors: Supervisors | None = None) -> httpx.AsyncClient:
    app = build_api(router, TOKENS, supervisors)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://engine")


async def refusals(router: RedisRouter) -> list[tuple[str, str, str, str]]:
    """(actor, path, status, reason) of every refusal in the audit trail."""
    return [
        (a["actor"], a["path"], a["status"], a["reason"])
        for a in await router.audit_log()
        if a["action"] == "refused"
    ]


class TestStatsInterval:
    @pytest.mark.parametrize("interval", ["inf", "nan", "-3600", "0", "1e9", "604801", "soon"])
    async def test_an_unbounded_interval_is_refused(
        self, router: RedisRouter, interval: str
    ) -> None:
        """inf, nan, negative and 1e9 would read the whole stream (or crash): 422, saying
        what is allowed, and the refusal is audited with the viewer's name."""
        async with client(router) as http:
            reply = await http.get(f"/api/queues/sales/stats?interval={interval}", headers=VIEW)
        assert reply.status_code == 422, reply.text
        assert "at most 604800 (7 days)" in reply.json()["error"]
        assert reply.json()["problems"][0]["at"] == "interval"
        ((actor, path, status, reason),) = await refusals(router)
        assert (actor, path, status) == ("kim", "/api/queues/sales/stats", "422")
        assert "interval is a number of seconds" in reason

    async def test_a_week_and_an_hour_are_fine(self, router: RedisRouter) -> None:
        async with client(router) as http:
            for interval in ("3600", "604800", "0.5"):
                reply = await http.get(f"/api/queues/sales/stats?interval={interval}", headers=VIEW)
                assert reply.status_code == 200, reply.text
        assert await refusals(router) == []


class TestSupervisorPhones:
    async def test_a_supervisor_listens_from_their_own_phone(
        self, router: RedisRouter, supervisors: Supervisors
    ) -> None:
        async with client(router, supervisors) as http:
            reply = await http.post(
                "/api/supervise",
                json={"agent": "ann", "mode": "listen", "from": "PJSIP/2001"},
                headers=LEE,
            )
        assert reply.status_code == 200, reply.text
        assert reply.json()["supervisor"] == "PJSIP/2001"

    async def test_another_device_is_refused_and_audited(
        self, router: RedisRouter, supervisors: Supervisors
    ) -> None:
        """lee cannot send ann's call audio to a phone that is not lee's: 403, nothing rings."""
        async with client(router, supervisors) as http:
            reply = await http.post(
                "/api/supervise",
                json={"agent": "ann", "mode": "barge", "from": "PJSIP/2002"},
                headers=LEE,
            )
        assert reply.status_code == 403
        assert reply.json()["error"] == (
            "'PJSIP/2002' is not one of lee's phones (PJSIP/2001); supervise from your own phone"
        )
        assert not any(a["action"].startswith("supervise.") for a in await router.audit_log())
        assert await refusals(router) == [("lee", "/api/supervise", "403", reply.json()["error"])]

    async def test_a_supervisor_without_phones_is_told_how_to_add_one(
        self, router: RedisRouter, supervisors: Supervisors
    ) -> None:
        async with client(router, supervisors) as http:
            reply = await http.post(
                "/api/supervise",
                json={"agent": "ann", "mode": "listen", "from": "PJSIP/2001"},
                headers=MAX,
            )
        assert reply.status_code == 403
        assert "max has no phones in the token file" in reply.json()["error"]
        assert "NAME:ROLE:TOKEN:PJSIP/2001" in reply.json()["error"]
        ((actor, _, status, _),) = await refusals(router)
        assert (actor, status) == ("max", "403")


class TestRefusalsAreAudited:
    async def test_401_403_409_422_each_with_who_and_why(self, router: RedisRouter) -> None:
        async with client(router) as http:
            assert (await http.get("/api/agents")).status_code == 401
            assert (await http.put("/api/queues/x", json={}, headers=LEE)).status_code == 403
            await http.post("/api/agents/ann/logout", headers=LEE)
            paused = await http.post("/api/agents/ann/pause", json={}, headers=LEE)
            assert paused.status_code == 409
            bad = await http.put("/api/queues/x", json={"strategy": "random"}, headers=ADMIN)
            assert bad.status_code == 422
        found = await refusals(router)
        assert [(actor, status) for actor, _, status, _ in found] == [
            ("(no valid token)", "401"),
            ("lee", "403"),
            ("lee", "409"),
            ("ops", "422"),
        ]
        assert "valid token" in found[0][3] and "admin role" in found[1][3]
        assert "pause is allowed from" in found[2][3] and "does not validate" in found[3][3]


class TestHealth:
    async def test_serving_is_200_without_a_token(self, router: RedisRouter) -> None:
        async with client(router) as http:
            reply = await http.get("/health")
        assert reply.status_code == 200 and reply.json() == {"status": "ok"}
        assert await router.audit_log() == []  # not a refusal, not a change

    async def test_a_routing_store_away_is_503(self) -> None:
        router = RedisRouter.connect("redis://127.0.0.1:1/0", connections=2)
        try:
            async with client(router) as http:
                reply = await http.get("/health")
        finally:
            await router.close()
        assert reply.status_code == 503
        assert reply.json() == {
            "status": "unavailable",
            "reason": "the routing store does not answer",
        }

    def test_compose_checks_the_engine_s_health_endpoint(self) -> None:
        """docker/compose.yaml's engine health check asks /health, not a bare TCP connect."""
        import yaml

        root = Path(__file__).resolve().parents[2]
        compose = yaml.safe_load((root / "docker" / "compose.yaml").read_text())
        test = " ".join(compose["services"]["engine"]["healthcheck"]["test"])
        assert "http://127.0.0.1:8090/health" in test


class TestTokenPhones:
    def test_phones_in_the_variable_and_the_file(self, tmp_path: Path) -> None:
        book = TokenBook.from_environ(
            {"IVR_API_TOKENS": "lee:supervisor:lee-token-012345:PJSIP/2001,PJSIP/2002"}
        )
        assert book.who("lee-token-012345") == Principal(
            "lee", "supervisor", ("PJSIP/2001", "PJSIP/2002")
        )
        path = tmp_path / "tokens"
        path.write_text(
            "# name role token phones\n"
            "lee supervisor lee-token-012345 PJSIP/2001, PJSIP/2002\n"
            "ops admin admin-token-0123\n"
        )
        book = TokenBook.from_environ({"IVR_API_TOKENS_FILE": str(path)})
        lee = book.who("lee-token-012345")
        assert lee is not None and lee.phones == ("PJSIP/2001", "PJSIP/2002")
        ops = book.who("admin-token-0123")
        assert ops is not None and ops.phones == ()

    def test_a_token_with_a_colon_still_reads_as_before(self) -> None:
        book = TokenBook.from_environ({"IVR_API_TOKENS": "ops:admin:abc:def-0123456789"})
        assert book.who("abc:def-0123456789") == Principal("ops", "admin")

    def test_a_phone_that_is_not_an_endpoint_stops_the_start(self, tmp_path: Path) -> None:
        with pytest.raises(ConfigError, match=r"entry 1: 'Local/2001@from-internal'"):
            TokenBook.from_environ(
                {"IVR_API_TOKENS": "lee:supervisor:lee-token-012345:Local/2001@from-internal"}
            )
        path = tmp_path / "tokens"
        path.write_text("lee supervisor lee-token-012345 PJSIP/2001,0101234567\n")
        with pytest.raises(ConfigError, match=rf"{path}:1: '0101234567' .* is not an endpoint"):
            TokenBook.from_environ({"IVR_API_TOKENS_FILE": str(path)})

    def test_the_example_tokens_give_the_supervisor_a_phone(self) -> None:
        """docker/.env.example's supervisor has the demo's supervisor phone (PJSIP/1002)."""
        import shlex

        root = Path(__file__).resolve().parents[2]
        line = next(
            line
            for line in (root / "docker" / ".env.example").read_text().splitlines()
            if line.startswith("IVR_API_TOKENS=")
        )
        value = shlex.split(line.partition("=")[2])[0]
        book = TokenBook.from_environ({"IVR_API_TOKENS": value})
        supervisors = [p for p in book.principals if p.role == "supervisor"]
        assert supervisors and all(p.phones == ("PJSIP/1002",) for p in supervisors)
