"""The console over HTTP on a real Redis and the emulated AMI: logins, sessions, CSRF,
roles and scopes, supervisor actions, the admins' pages and the audit."""

from __future__ import annotations

import csv
import io
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ivr.ami import AmiClient, AmiConfig
from ivr.api import build_api
from ivr.auth import TokenBook
from ivr.centre.supervise import Supervisors
from ivr.config import Settings
from ivr.console.roles import Scope
from ivr.console.users import UserRecord, UserStore, hash_password
from ivr.testing import AsteriskEmulator
from routing.config import QueueConfig
from routing.memory import Agent
from routing.redis import RedisRouter

PASSWORD = "a long enough secret"
HTML = {"Accept": "text/html"}


@pytest.fixture
async def router(redis_url: str) -> AsyncIterator[RedisRouter]:
    router = RedisRouter.connect(redis_url)
    await router.redis.flushall()
    await router.start()
    await router.replace_queues(
        {
            "sales": QueueConfig.model_validate({"skills": {"sales": 1}}),
            "tv": QueueConfig.model_validate({"skills": {"tv": 1}}),
        }
    )
    await router.add_agents(
        [
            Agent("ann", "PJSIP/1001", {"sales": 5, "team.north": 1}, site="seoul"),
            Agent("bob", "PJSIP/1002", {"sales": 5, "team.south": 1}, site="busan"),
            Agent("cy", "PJSIP/1003", {"tv": 5, "team.north": 1}, site="seoul"),
        ]
    )
    for agent in ("ann", "bob", "cy"):
        await router.login(agent)
    try:
        yield router
    finally:
        await router.close()


@pytest.fixture(scope="module")
def hashed() -> str:
    return hash_password(PASSWORD)


@pytest.fixture
def users(tmp_path: Path, hashed: str) -> UserStore:
    store = UserStore(tmp_path / "users.json")
    north = Scope(teams=frozenset({"north"}))
    for record in (
        UserRecord("ada", "admin", hashed),
        UserRecord("nina", "supervisor", hashed, north, phones=("PJSIP/2001",)),
        UserRecord("sam", "supervisor", hashed, Scope(teams=frozenset({"south"}))),
        UserRecord("ann", "agent", hashed, agent_id="ann"),
        UserRecord("wall", "viewer", hashed),
        UserRecord("gone", "admin", hashed, disabled=True),
    ):
        store.put(record)
    return store


@pytest.fixture
async def supervisors(router: RedisRouter) -> AsyncIterator[Supervisors]:
    """The emulated Asterisk's AMI, with ann on a call."""
    emulator = AsteriskEmulator()
    server = await emulator.start_ami()
    pbx = emulator.pbx
    for endpoint in ("PJSIP/1001", "PJSIP/1002", "PJSIP/2001", "PJSIP/2002"):
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


def app_for(
    router: RedisRouter, users: UserStore, supervisors: Supervisors | None = None, **settings: Any
) -> Any:
    return build_api(router, TokenBook(), supervisors, Settings(users_file=users.path, **settings))


@pytest.fixture
async def app(router: RedisRouter, users: UserStore) -> Any:
    return app_for(router, users)


def browser(app: Any, base: str = "http://127.0.0.1:8090") -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base)


async def log_in(http: httpx.AsyncClient, name: str, password: str = PASSWORD) -> str:
    """Log ``name`` in; the session's CSRF token (from the page's meta tag)."""
    reply = await http.post("/console/login", data={"name": name, "password": password})
    assert reply.status_code == 303, reply.text
    page = await http.get("/console/", headers=HTML)
    found = re.search(r'<meta name="csrf-token" content="([^"]+)">', page.text)
    assert found is not None, page.text
    return found[1]


async def audit(router: RedisRouter, action: str) -> list[dict[str, str]]:
    return [a for a in await router.audit_log(1000) if a["action"] == action]


class TestLogin:
    async def test_a_good_password_opens_a_session_in_a_strict_httponly_cookie(
        self, app: Any, router: RedisRouter
    ) -> None:
        """The cookie is HttpOnly, SameSite=Strict, Path=/, not Secure over plain http;
        Redis holds only the id's hash."""
        async with browser(app) as http:
            reply = await http.post(
                "/console/login",
                data={"name": "ada", "password": PASSWORD, "next": "/console/audit"},
            )
            assert reply.status_code == 303
            assert reply.headers["location"] == "/console/audit"
            cookie = reply.headers["set-cookie"]
            session = http.cookies["ivr_session"]
        assert len(session) >= 43  # 256 bits, base64url
        flags = {part.strip().split("=")[0].lower() for part in cookie.split(";")}
        assert {"httponly", "path", "max-age"} <= flags and "secure" not in flags
        assert "samesite=strict" in cookie.lower()
        keys = [k.decode() for k in await router.redis.keys("rt:console:session:*")]
        assert len(keys) == 1 and session not in keys[0]
        assert [a["actor"] for a in await audit(router, "console.login")] == ["ada"]

    async def test_over_https_or_by_setting_the_cookie_is_secure(
        self, router: RedisRouter, users: UserStore
    ) -> None:
        async with browser(app_for(router, users), "https://console.example") as http:
            reply = await http.post("/console/login", data={"name": "ada", "password": PASSWORD})
        assert "secure" in reply.headers["set-cookie"].lower()
        forced = app_for(router, users, console_secure_cookie="always")
        async with browser(forced) as http:
            reply = await http.post("/console/login", data={"name": "ada", "password": PASSWORD})
        assert "; secure" in reply.headers["set-cookie"].lower()

    @pytest.mark.parametrize(
        ("name", "password"), [("ada", "wrong password!"), ("nobody", PASSWORD), ("gone", PASSWORD)]
    )
    async def test_bad_name_password_or_disabled_user_is_401_saying_the_same(
        self, app: Any, router: RedisRouter, name: str, password: str
    ) -> None:
        async with browser(app) as http:
            reply = await http.post("/console/login", data={"name": name, "password": password})
            assert reply.status_code == 401
            assert "Wrong name or password." in reply.text
            assert "ivr_session" not in http.cookies
        assert [a["actor"] for a in await audit(router, "console.login.failed")] == [name]

    async def test_five_failures_lock_the_user_then_429_with_retry_after(self, app: Any) -> None:
        """Even the right password is refused while locked, before it is checked."""
        async with browser(app) as http:
            for _ in range(5):
                bad = {"name": "nina", "password": "not the password"}
                assert (await http.post("/console/login", data=bad)).status_code == 401
            reply = await http.post("/console/login", data={"name": "nina", "password": PASSWORD})
        assert reply.status_code == 429
        assert 0 < int(reply.headers["retry-after"]) <= 300
        assert "Too many failed logins" in reply.text

    async def test_failures_from_one_address_lock_it_for_every_name(self, app: Any) -> None:
        async with browser(app) as http:
            for name in ("u1", "u2", "u3", "u4", "u5"):
                reply = await http.post("/console/login", data={"name": name, "password": "x" * 12})
                assert reply.status_code == 401
            reply = await http.post("/console/login", data={"name": "ada", "password": PASSWORD})
        assert reply.status_code == 429

    async def test_a_login_form_posted_from_another_origin_is_refused(self, app: Any) -> None:
        async with browser(app) as http:
            reply = await http.post(
                "/console/login",
                data={"name": "ada", "password": PASSWORD},
                headers={"Origin": "http://127.0.0.1:8089"},
            )
        assert reply.status_code == 403
        assert "ivr_session" not in http.cookies

    async def test_next_never_leads_off_the_console(self, app: Any) -> None:
        async with browser(app) as http:
            for target in ("https://evil.example/", "//evil.example/console", "/api/agents"):
                await http.post("/console/logout")
                http.cookies.clear()
                reply = await http.post(
                    "/console/login", data={"name": "ada", "password": PASSWORD, "next": target}
                )
                assert reply.headers["location"] == "/console/", target

    async def test_the_login_page_renders_and_a_page_without_session_redirects_to_it(
        self, app: Any
    ) -> None:
        async with browser(app) as http:
            page = await http.get("/console/login", headers=HTML)
            assert page.status_code == 200 and 'name="password"' in page.text
            reply = await http.get("/console/agents?x=1", headers=HTML)
            assert reply.status_code == 303
            assert reply.headers["location"] == "/console/login?next=/console/agents%3Fx%3D1"
            scripted = await http.get("/console/agents")
            assert scripted.status_code == 401
            assert scripted.json() == {"error": "log in first: POST /console/login"}


class TestSessions:
    async def test_logout_needs_csrf_then_ends_the_session(
        self, app: Any, router: RedisRouter
    ) -> None:
        async with browser(app) as http:
            csrf = await log_in(http, "nina")
            session = http.cookies["ivr_session"]
            assert (await http.post("/console/logout")).status_code == 403
            reply = await http.post("/console/logout", data={"csrf": csrf})
            assert reply.status_code == 303 and reply.headers["location"] == "/console/login"
            assert 'ivr_session=""' in reply.headers["set-cookie"]
        async with browser(app) as http:  # the old cookie, replayed
            http.cookies.set("ivr_session", session)
            assert (await http.get("/console/", headers=HTML)).status_code == 303
        assert await router.redis.keys("rt:console:session:*") == []
        assert [a["actor"] for a in await audit(router, "console.logout")] == ["nina"]

    async def test_a_new_password_or_disabling_ends_sessions_at_once(
        self, app: Any, users: UserStore
    ) -> None:
        async with browser(app) as http:
            await log_in(http, "nina")
            users.change("nina", password=hash_password("another long secret"))
            assert (await http.get("/console/", headers=HTML)).status_code == 303
            await log_in(http, "nina", "another long secret")
            users.change("nina", disabled=True)
            assert (await http.get("/console/", headers=HTML)).status_code == 303

    async def test_a_session_ends_at_its_lifetime_and_a_viewer_s_lasts_a_month(
        self, app: Any, router: RedisRouter
    ) -> None:
        async with browser(app) as http:
            reply = await http.post("/console/login", data={"name": "wall", "password": PASSWORD})
            assert "max-age=2592000" in reply.headers["set-cookie"].lower()
            await log_in(http, "nina")
            (key,) = await router.redis.keys("rt:console:session:*")
            lifetime = float(await router.redis.hget(key, "lifetime"))
            assert lifetime == 24 * 3600
            await router.redis.hset(key, "created", repr(time.time() - lifetime - 1))
            assert (await http.get("/console/", headers=HTML)).status_code == 303
        assert await router.redis.keys("rt:console:session:*") == []

    async def test_a_damaged_users_file_refuses_logins_and_says_where(
        self, app: Any, users: UserStore
    ) -> None:
        users.path.write_text('{"users": {"ada": {"role": "root"}}}')
        async with browser(app) as http:
            reply = await http.post("/console/login", data={"name": "ada", "password": PASSWORD})
        assert reply.status_code == 503
        assert "The users file cannot be read" in reply.text

    async def test_pages_carry_security_headers(self, app: Any) -> None:
        async with browser(app) as http:
            await log_in(http, "ada")
            page = await http.get("/console/", headers=HTML)
            static = await http.get("/console/static/console.css")
        assert "script-src 'self'" in page.headers["content-security-policy"]
        assert page.headers["x-frame-options"] == "DENY"
        assert page.headers["cache-control"] == "no-store"
        assert static.status_code == 200 and "cache-control" not in static.headers


def row(page: str, agent: str) -> bool:
    return f'id="agent-{agent}"' in page


class TestAccess:
    async def test_each_role_sees_its_pages_and_is_refused_the_others(self, app: Any) -> None:
        expected = {
            "wall": {"/console/": 200, "/console/agents": 403, "/console/calls": 403},
            "ann": {"/console/agents": 200, "/console/queues": 403, "/console/audit": 403},
            "nina": {"/console/calls": 200, "/console/queues": 200, "/console/audit": 403},
            "ada": {"/console/audit": 200, "/console/agents/new": 200, "/console/queues/new": 200},
        }
        for name, pages in expected.items():
            async with browser(app) as http:
                await log_in(http, name)
                for path, status in pages.items():
                    reply = await http.get(path, headers=HTML)
                    assert reply.status_code == status, (name, path)
                    if status == 403:
                        assert "this needs the" in reply.text

    async def test_a_supervisor_sees_only_their_team_and_an_agent_only_themselves(
        self, app: Any
    ) -> None:
        async with browser(app) as http:
            await log_in(http, "nina")
            page = (await http.get("/console/agents", headers=HTML)).text
            assert row(page, "ann") and row(page, "cy") and not row(page, "bob")
        async with browser(app) as http:
            await log_in(http, "ann")
            page = (await http.get("/console/agents", headers=HTML)).text
            assert row(page, "ann") and not row(page, "cy") and not row(page, "bob")
            board = (await http.get("/console/", headers=HTML)).text
            assert 'data-queue="sales"' in board and 'data-queue="tv"' not in board
            assert 'id="wallboard" data-ws="/console/ws"' in board
            assert "/console/static/live.js" in board

    async def test_state_changes_need_the_csrf_token(self, app: Any, router: RedisRouter) -> None:
        async with browser(app) as http:
            csrf = await log_in(http, "nina")
            forged: list[dict[str, str]] = [{}, {"csrf": "forged"}]
            for data in forged:
                reply = await http.post("/console/agents/ann/pause", data=data, headers=HTML)
                assert reply.status_code == 403
                assert "CSRF token is missing or wrong" in reply.text
            assert await router.agent_state("ann") == "available"
            reply = await http.post(
                "/console/agents/ann/pause",
                data={"reason": "coaching"},
                headers={"X-CSRF-Token": csrf},
            )
            assert reply.status_code == 303
            assert await router.agent_state("ann") == "paused"
            page = await http.get("/console/agents", headers=HTML)
            assert "ann: pause done; now paused" in page.text  # the flash, once
            again = await http.get("/console/agents", headers=HTML)
            assert "ann: pause done" not in again.text
        refused = await audit(router, "refused")
        assert [(a["actor"], a["status"]) for a in refused] == [("nina", "403")] * 2

    async def test_another_team_s_agent_is_out_of_scope(
        self, app: Any, router: RedisRouter
    ) -> None:
        async with browser(app) as http:
            csrf = await log_in(http, "nina")
            reply = await http.post(
                "/console/agents/bob/pause", data={"csrf": csrf, "reason": "x"}, headers=HTML
            )
            assert reply.status_code == 403
            assert "agent &#39;bob&#39; is outside nina&#39;s scope (teams north)" in reply.text
            scripted = await http.post("/console/agents/bob/logout", data={"csrf": csrf})
            assert scripted.status_code == 403
            assert "outside nina's scope" in scripted.json()["error"]
        async with browser(app) as http:
            csrf = await log_in(http, "ann")
            reply = await http.post("/console/agents/cy/pause", data={"csrf": csrf})
            assert reply.status_code == 403
            assert "only on their own agent (ann)" in reply.json()["error"]
            own = await http.post("/console/agents/ann/pause", data={"csrf": csrf})
            assert own.status_code == 303
        assert await router.agent_state("bob") == "available"
        assert await router.agent_state("cy") == "available"
        assert await router.agent_state("ann") == "paused"
        reasons = [a["reason"] for a in await audit(router, "refused")]
        assert any("outside nina's scope" in r for r in reasons)

    async def test_a_viewer_cannot_act_at_all(self, app: Any, router: RedisRouter) -> None:
        async with browser(app) as http:
            csrf = await log_in(http, "wall")
            reply = await http.post("/console/agents/ann/logout", data={"csrf": csrf})
        assert reply.status_code == 403
        assert reply.json()["error"] == "wall is viewer; this needs the agent role"
        assert await router.agent_state("ann") == "available"


class TestAgentActions:
    async def test_pause_resume_logout_login_are_audited_with_the_user(
        self, app: Any, router: RedisRouter
    ) -> None:
        async with browser(app) as http:
            csrf = await log_in(http, "nina")
            for action, state in (
                ("pause", "paused"),
                ("resume", "available"),
                ("logout", "logged_out"),
                ("login", "available"),
            ):
                reply = await http.post(
                    f"/console/agents/ann/{action}", data={"csrf": csrf, "reason": "lunch"}
                )
                assert reply.status_code == 303, reply.text
                assert await router.agent_state("ann") == state
        done = [
            (a["actor"], a["action"], a["reason"])
            for a in await router.audit_log()
            if a["action"].startswith("agent.")
        ]
        assert done == [
            ("nina", "agent.pause", "lunch"),
            ("nina", "agent.resume", ""),
            ("nina", "agent.logout", ""),
            ("nina", "agent.login", ""),
        ]

    async def test_bad_input_is_422_and_a_state_that_forbids_it_409(
        self, app: Any, router: RedisRouter
    ) -> None:
        async with browser(app) as http:
            csrf = await log_in(http, "nina")
            reply = await http.post(
                "/console/agents/ann/pause", data={"csrf": csrf, "reason": "x" * 81}, headers=HTML
            )
            assert reply.status_code == 422
            assert "a pause reason is one line of at most 80 characters" in reply.text
            await http.post("/console/agents/ann/logout", data={"csrf": csrf})
            reply = await http.post("/console/agents/ann/pause", data={"csrf": csrf})
            assert reply.status_code == 409
            assert "pause is allowed from available" in reply.json()["error"]
            reply = await http.post("/console/agents/ann/dance", data={"csrf": csrf})
            assert reply.status_code == 404
        assert await router.agent_state("ann") == "logged_out"


async def on_call(router: RedisRouter, agent: str) -> None:
    """``agent`` takes a caller of the sales queue (the others are logged out)."""
    for other in ("ann", "bob", "cy"):
        if other != agent:
            await router.logout(other)
    ticket = await router.enqueue("call-1", "sales", {"sales": 1})
    assignment = await router.wait(ticket)
    assert assignment.agent_id == agent
    await router.connected(assignment)


class TestSupervision:
    async def test_listen_is_confirmed_first_then_rings_the_supervisor_s_phone(
        self, router: RedisRouter, users: UserStore, supervisors: Supervisors
    ) -> None:
        app = app_for(router, users, supervisors)
        await on_call(router, "ann")
        async with browser(app) as http:
            csrf = await log_in(http, "nina")
            page = (await http.get("/console/agents", headers=HTML)).text
            assert 'hx-confirm="Barge ann' in page  # the browser asks first
            ask = await http.post(
                "/console/agents/ann/supervise", data={"csrf": csrf, "mode": "barge"}, headers=HTML
            )
            assert ask.status_code == 200 and "Barge ann's call?" in ask.text
            assert await audit(router, "supervise.barge") == []
            done = await http.post(
                "/console/agents/ann/supervise",
                data={"csrf": csrf, "mode": "barge", "confirmed": "1"},
            )
            assert done.status_code == 303
            page = (await http.get("/console/agents", headers=HTML)).text
            assert "barge: PJSIP/2001 on ann" in page
        (entry,) = await audit(router, "supervise.barge")
        assert (entry["actor"], entry["agent"], entry["supervisor"]) == (
            "nina",
            "ann",
            "PJSIP/2001",
        )

    async def test_only_the_supervisor_s_own_phone_and_own_scope(
        self, router: RedisRouter, users: UserStore, supervisors: Supervisors
    ) -> None:
        app = app_for(router, users, supervisors)
        async with browser(app) as http:
            csrf = await log_in(http, "nina")
            other = await http.post(
                "/console/agents/ann/supervise",
                data={"csrf": csrf, "mode": "listen", "from": "PJSIP/2002", "confirmed": "1"},
            )
            assert other.status_code == 403
            assert "'PJSIP/2002' is not one of nina's phones" in other.json()["error"]
            bad = await http.post(
                "/console/agents/ann/supervise",
                data={"csrf": csrf, "mode": "shout", "confirmed": "1"},
            )
            assert bad.status_code == 422
        async with browser(app) as http:
            csrf = await log_in(http, "sam")  # team south, no phones
            reply = await http.post(
                "/console/agents/ann/supervise",
                data={"csrf": csrf, "mode": "listen", "from": "PJSIP/2001", "confirmed": "1"},
            )
            assert reply.status_code == 403 and "outside sam's scope" in reply.json()["error"]
            await router.add_agents([Agent("bob", "PJSIP/1001", {"sales": 5, "team.south": 1})])
            reply = await http.post(
                "/console/agents/bob/supervise",
                data={"csrf": csrf, "mode": "listen", "from": "PJSIP/2001", "confirmed": "1"},
            )
            assert reply.status_code == 403
            assert "ivr users roles sam --phones PJSIP/2001" in reply.json()["error"]
        async with browser(app) as http:
            csrf = await log_in(http, "ann")
            reply = await http.post(
                "/console/agents/ann/supervise", data={"csrf": csrf, "mode": "listen"}
            )
            assert reply.status_code == 403 and "needs the supervisor role" in reply.text
        assert [a for a in await router.audit_log() if a["action"].startswith("supervise.")] == []

    async def test_without_ami_the_page_says_what_is_missing(self, app: Any) -> None:
        async with browser(app) as http:
            csrf = await log_in(http, "nina")
            page = await http.get("/console/agents", headers=HTML)
            assert "need the engine's AMI connection" in page.text
            reply = await http.post(
                "/console/agents/ann/supervise",
                data={"csrf": csrf, "mode": "listen", "confirmed": "1"},
            )
        assert reply.status_code == 503


class TestAdminPages:
    async def test_an_admin_creates_and_edits_an_agent_with_team_and_site(
        self, app: Any, router: RedisRouter
    ) -> None:
        async with browser(app) as http:
            csrf = await log_in(http, "ada")
            form = {
                "csrf": csrf,
                "id": "dee",
                "endpoint": "PJSIP/1009",
                "skills": "sales=6, tv:2",
                "languages": "ko, en",
                "site": "seoul",
                "team": "north",
                "group": "default",
                "wrap_up": "15",
            }
            reply = await http.post("/console/agents/new", data=form)
            assert reply.status_code == 303, reply.text
            again = await http.post("/console/agents/new", data=form, headers=HTML)
            assert again.status_code == 409
            edit = await http.get("/console/agents/dee/edit", headers=HTML)
            assert 'value="sales=6, tv=2"' in edit.text and 'value="north"' in edit.text
            changed = {**form, "skills": "sales=3", "team": "south"}
            reply = await http.post("/console/agents/dee/edit", data=changed)
            assert reply.status_code == 303
        agent = await router.agent("dee")
        assert agent is not None
        assert agent["skills"] == {"sales": 3, "team.south": 1}
        assert (agent["site"], agent["languages"], agent["wrap_up"]) == ("seoul", ["ko", "en"], 15)
        assert [a["agent"] for a in await audit(router, "agent.put")] == ["dee", "dee"]

    async def test_an_agent_that_does_not_validate_is_422_with_each_problem(
        self, app: Any, router: RedisRouter
    ) -> None:
        async with browser(app) as http:
            csrf = await log_in(http, "ada")
            form = {"csrf": csrf, "id": "eve", "endpoint": "nowhere", "skills": "sales=11"}
            reply = await http.post("/console/agents/new", data=form, headers=HTML)
            assert reply.status_code == 422
            assert (
                "<code>endpoint</code>" in reply.text and "<code>skills.sales</code>" in reply.text
            )
            unreadable = {**form, "endpoint": "PJSIP/1", "skills": "sales", "wrap_up": "soon"}
            reply = await http.post("/console/agents/new", data=unreadable, headers=HTML)
            assert reply.status_code == 422
            assert "write skill=level" in reply.text and "<code>wrap_up</code>" in reply.text
        assert await router.agent("eve") is None

    async def test_queue_settings_are_saved_for_every_engine_or_refused_with_lines(
        self, app: Any, router: RedisRouter
    ) -> None:
        async with browser(app) as http:
            csrf = await log_in(http, "ada")
            page = await http.get("/console/queues/sales/edit", headers=HTML)
            assert "skills:\n  sales: 1" in page.text
            reply = await http.post(
                "/console/queues/sales/edit",
                data={"csrf": csrf, "settings": "skills: {sales: 2}\nstrategy: round_robin\n"},
            )
            assert reply.status_code == 303
            broken = await http.post(
                "/console/queues/sales/edit",
                data={"csrf": csrf, "settings": "skills: {sales: 2\nstrategy: x"},
                headers=HTML,
            )
            assert broken.status_code == 422 and "not valid YAML" in broken.text
            assert "line 2" in broken.text or "line 3" in broken.text
            wrong = await http.post(
                "/console/queues/sales/edit",
                data={"csrf": csrf, "settings": "strategy: random\nsteps: [{after: -1}]"},
                headers=HTML,
            )
            assert wrong.status_code == 422
            assert (
                "<code>strategy</code>" in wrong.text and "<code>steps.0.after</code>" in wrong.text
            )
            new = await http.post(
                "/console/queues/new", data={"csrf": csrf, "name": "chat", "settings": "aht: 60"}
            )
            assert new.status_code == 303
            named = await http.post(
                "/console/queues/new",
                data={"csrf": csrf, "name": "bad name", "settings": ""},
                headers=HTML,
            )
            assert named.status_code == 422
        queues = await router.load_queues()
        assert queues["sales"].strategy == "round_robin" and queues["sales"].skills == {"sales": 2}
        assert queues["chat"].aht == 60

    async def test_a_supervisor_cannot_edit(self, app: Any, router: RedisRouter) -> None:
        async with browser(app) as http:
            csrf = await log_in(http, "nina")
            reply = await http.post(
                "/console/queues/sales/edit", data={"csrf": csrf, "settings": "aht: 1"}
            )
            assert reply.status_code == 403
            page = await http.get("/console/queues", headers=HTML)
            assert "/console/queues/sales/edit" not in page.text
        assert (await router.load_queues())["sales"].aht == 180


class TestAudit:
    async def test_browse_filter_and_export_csv(self, app: Any, router: RedisRouter) -> None:
        await router.audit("nina", "agent.pause", agent="ann", reason="=HYPERLINK(1)")
        await router.audit("sam", "agent.logout", agent="bob")
        async with browser(app) as http:
            await log_in(http, "ada")
            page = await http.get("/console/audit?actor=nina", headers=HTML)
            assert page.status_code == 200
            assert "agent.pause" in page.text and "agent.logout" not in page.text
            bad = await http.get("/console/audit?since=yesterday", headers=HTML)
            assert bad.status_code == 422 and "YYYY-MM-DD" in bad.text
            export = await http.get("/console/audit.csv?action=agent.")
        assert export.status_code == 200
        assert export.headers["content-type"].startswith("text/csv")
        assert "attachment" in export.headers["content-disposition"]
        rows = list(csv.reader(io.StringIO(export.text)))
        assert rows[0] == ["time", "actor", "action", "agent", "queue", "address", "details"]
        assert [(r[1], r[2], r[3]) for r in rows[1:]] == [
            ("sam", "agent.logout", "bob"),
            ("nina", "agent.pause", "ann"),
        ]
        assert rows[2][6] == "'reason==HYPERLINK(1)" or "reason==HYPERLINK(1)" in rows[2][6]
        assert [a["actor"] for a in await audit(router, "audit.export")] == ["ada"]

    async def test_a_formula_is_not_a_formula_in_the_export(
        self, app: Any, router: RedisRouter
    ) -> None:
        await router.audit("=cmd|' /C calc'!A0", "agent.pause", agent="ann")
        async with browser(app) as http:
            await log_in(http, "ada")
            export = await http.get("/console/audit.csv?action=agent.pause")
        rows = list(csv.reader(io.StringIO(export.text)))
        assert rows[1][1] == "'=cmd|' /C calc'!A0"


class TestLifespan:
    async def test_hooks_start_with_the_app_and_close_last_first(
        self, router: RedisRouter, users: UserStore
    ) -> None:
        seen: list[str] = []

        class Hook:
            def __init__(self, name: str) -> None:
                self.name = name

            async def start(self) -> None:
                seen.append(f"start {self.name}")

            async def close(self) -> None:
                seen.append(f"close {self.name}")

        app = build_api(
            router, TokenBook(), None, Settings(users_file=users.path), hooks=[Hook("a"), Hook("b")]
        )
        async with app.router.lifespan_context(app):
            assert seen == ["start a", "start b"]
        assert seen == ["start a", "start b", "close b", "close a"]
