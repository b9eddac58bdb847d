"""The reports over HTTP on a real Redis: the console's page, JSON and CSV, the API's
JSON and CSV with bearer tokens, who sees what (scope, agents, viewers) and bad
parameters."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ivr.api import build_api
from ivr.auth import TokenBook
from ivr.config import Settings
from ivr.console.figures import REPORTS
from ivr.console.roles import Scope
from ivr.console.users import UserRecord, UserStore, hash_password
from routing.config import QueueConfig
from routing.memory import Agent
from routing.redis import RedisRouter

PASSWORD = "a long enough secret"
HTML = {"Accept": "text/html"}
VIEWER = "v-token-0123456"


async def _day(router: RedisRouter) -> None:
    """ann answers a sales call from Seoul (caller 555, who rates it 5), cy a tv call
    from Busan; 555 calls sales again and gives up; three calls end in the IVR."""
    await router.login("ann")
    ticket = await router.enqueue("call-1", "sales", {"sales": 1}, customer="555", site="seoul")
    first = await router.wait(ticket)
    await router.connected(first)
    await router.completed(first)
    await router.note("survey", call="call-1", queue="sales", question="csat", score="5")
    await router.end_wrap_up("ann")
    await router.login("cy")
    ticket = await router.enqueue("call-2", "tv", {"tv": 1}, site="busan")
    second = await router.wait(ticket)
    await router.connected(second)
    await router.completed(second)
    await router.end_wrap_up("cy")
    await router.pause("ann", "lunch")
    ticket = await router.enqueue("call-3", "sales", {"sales": 1}, customer="555", site="seoul")
    await router.abandon(ticket)
    for flow, contained, ended, node in (
        ("main", "1", "caller_hangup", "menu"),
        ("main", "0", "hangup", "bye"),
        ("=2+3", "1", "hangup", "x"),  # a hostile name: never a formula in a spreadsheet
    ):
        await router.note(
            "ivr_ended", call=f"ivr-{node}", flow=flow, contained=contained, ended=ended, node=node
        )
    await router.login("bob")


@pytest.fixture
async def router(redis_url: str) -> AsyncIterator[RedisRouter]:
    router = RedisRouter.connect(redis_url)
    await router.redis.flushall()
    await router.start()
    await router.replace_queues(
        {
            "sales": QueueConfig.model_validate({"skills": {"sales": 1}}),
            "tv": QueueConfig.model_validate(
                {"skills": {"tv": 1}, "service_level": {"percent": 90, "seconds": 30}}
            ),
        }
    )
    await router.add_agents(
        [
            Agent("ann", "PJSIP/1001", {"sales": 5, "team.north": 1}, site="seoul"),
            Agent("bob", "PJSIP/1002", {"sales": 5, "team.south": 1}, site="busan"),
            Agent("cy", "PJSIP/1003", {"tv": 5, "team.north": 1}, site="seoul"),
        ]
    )
    await _day(router)
    try:
        yield router
    finally:
        await router.close()


@pytest.fixture(scope="module")
def hashed() -> str:
    return hash_password(PASSWORD)


@pytest.fixture
def app(router: RedisRouter, tmp_path: Path, hashed: str) -> Any:
    users = UserStore(tmp_path / "users.json")
    for record in (
        UserRecord("ada", "admin", hashed),
        UserRecord("nina", "supervisor", hashed, Scope(teams=frozenset({"north"}))),
        UserRecord("quinn", "supervisor", hashed, Scope(queues=frozenset({"tv"}))),
        UserRecord("ann", "agent", hashed, agent_id="ann"),
        UserRecord("wall", "viewer", hashed),
    ):
        users.put(record)
    tokens = TokenBook.from_environ({"IVR_API_TOKENS": f"v:viewer:{VIEWER}"})
    return build_api(router, tokens, None, Settings(users_file=users.path))


def client(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1")


@contextlib.asynccontextmanager
async def logged_in(app: Any, name: str) -> AsyncIterator[httpx.AsyncClient]:
    async with client(app) as http:
        reply = await http.post("/console/login", data={"name": name, "password": PASSWORD})
        assert reply.status_code == 303, reply.text
        yield http


async def report(http: httpx.AsyncClient, path: str, **params: str) -> dict[str, Any]:
    reply = await http.get(path, params={"format": "json", **params})
    assert reply.status_code == 200, reply.text
    data: dict[str, Any] = reply.json()
    return data


def totals(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {row["name"]: row for row in data["totals"]}


def parse_csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


class TestFigures:
    async def test_traffic_by_queue_counts_todays_calls(self, app: Any) -> None:
        async with logged_in(app, "ada") as http:
            data = await report(http, "/console/reports/traffic", by="queue")
        got = totals(data)
        sales, tv = got["sales"], got["tv"]
        assert (sales["offered"], sales["answered"], sales["abandoned"]) == (2, 1, 1)
        assert (tv["offered"], tv["answered"], tv["service_level"]) == (1, 1, 1.0)
        assert sales["abandonment_rate"] == 0.5
        assert data["charts"] == ["offered", "service_level"]
        assert {row["name"] for row in data["rows"]} == {"sales", "tv"}
        assert all(b["at"] <= data["generated"] for b in data["buckets"])

    async def test_quality_has_csat_per_agent_and_repeat_callers_per_queue(self, app: Any) -> None:
        async with logged_in(app, "ada") as http:
            agents = totals(await report(http, "/console/reports/quality", by="agent"))
            queues = totals(await report(http, "/console/reports/quality", by="queue"))
        assert (agents["ann"]["csat"], agents["ann"]["surveys"]) == (1.0, 1)
        assert (queues["sales"]["repeats"], queues["sales"]["repeat_rate"]) == (1, 0.5)
        assert queues["sales"]["csat_mean"] == 5.0

    async def test_ivr_containment_drop_off_occupancy_and_staffing(self, app: Any) -> None:
        async with logged_in(app, "ada") as http:
            flows = totals(await report(http, "/console/reports/ivr"))
            nodes = totals(await report(http, "/console/reports/dropoff"))
            occupancy = totals(await report(http, "/console/reports/occupancy", by="agent"))
            staffing = totals(await report(http, "/console/reports/staffing"))
        assert (flows["main"]["calls"], flows["main"]["containment"]) == (2, 0.5)
        assert (flows["main"]["dropped"], flows["main"]["drop_rate"]) == (1, 0.5)
        assert nodes == {"main · menu": {"name": "main · menu", "dropped": 1, "share": 0.5}}
        assert set(occupancy) == {"ann", "bob", "cy"}
        assert occupancy["ann"]["busy"] > 0 and occupancy["ann"]["staffed"] > 0
        assert staffing["sales"]["agents"] >= 1 and staffing["tv"]["agents"] >= 1
        assert staffing["(all)"]["agents"] == staffing["sales"]["agents"] + staffing["tv"]["agents"]

    @pytest.mark.parametrize(
        ("name", "by"), [(k.name, by) for k in REPORTS.values() for by in k.bys]
    )
    @pytest.mark.parametrize("period", ["today", "30d"])
    async def test_every_report_renders_a_page_with_its_charts(
        self, app: Any, name: str, by: str, period: str
    ) -> None:
        """The page, its data block for the charts (never a script that runs) and the
        chart library's files."""
        async with logged_in(app, "ada") as http:
            reply = await http.get(
                f"/console/reports/{name}", params={"by": by, "period": period}, headers=HTML
            )
        assert reply.status_code == 200, reply.text
        found = re.search(
            r'<script type="application/json" id="report-data">(.*?)</script>', reply.text, re.S
        )
        assert found is not None
        assert json.loads(found[1])["report"] == name
        assert 'src="/console/static/uPlot.iife.min.js"' in reply.text
        assert reply.text.count('class="chart"') >= 2
        assert "script-src 'self'" in reply.headers["content-security-policy"]

    async def test_day_intervals_start_at_midnight(self, app: Any) -> None:
        async with logged_in(app, "ada") as http:
            data = await report(http, "/console/reports/traffic", period="7d", interval="1d")
        assert len(data["buckets"]) == 7
        assert all(b["at"][11:16] == "00:00" for b in data["buckets"])


class TestCsv:
    async def test_csv_is_an_attachment_with_every_interval_row(
        self, app: Any, router: RedisRouter
    ) -> None:
        async with logged_in(app, "ada") as http:
            reply = await http.get(
                "/console/reports/traffic", params={"format": "csv", "interval": "15m"}
            )
        assert reply.status_code == 200
        assert reply.headers["content-type"].startswith("text/csv")
        assert re.match(
            r'attachment; filename="report-traffic-queue-today-15m-\d{8}-\d{6}\.csv"',
            reply.headers["content-disposition"],
        )
        rows = parse_csv(reply.text)
        assert list(rows[0])[:4] == ["interval_start", "queue", "offered", "answered"]
        assert sum(int(r["offered"]) for r in rows if r["queue"] == "sales") == 2
        exports = [a for a in await router.audit_log(100) if a["action"] == "reports.export"]
        assert [(a["actor"], a["report"], a["rows"]) for a in exports] == [
            ("ada", "traffic", str(len(rows)))
        ]

    async def test_a_formula_looking_cell_is_prefixed(self, app: Any) -> None:
        async with logged_in(app, "ada") as http:
            reply = await http.get("/console/reports/ivr", params={"format": "csv"})
        names = [r["flow"] for r in parse_csv(reply.text)]
        assert sorted(names) == ["'=2+3", "main"]

    async def test_a_name_cannot_close_the_charts_data_block(
        self, app: Any, router: RedisRouter
    ) -> None:
        """Names are the callers' flows and the admins' ids: the page's JSON escapes them."""
        hostile = "</script><script>alert(1)</script>"
        await router.note("ivr_ended", call="x", flow=hostile, contained="1", ended="hangup")
        async with logged_in(app, "ada") as http:
            page = await http.get("/console/reports/ivr", headers=HTML)
        assert page.status_code == 200
        assert hostile not in page.text
        assert page.text.count("</script>") == page.text.count("<script")


class TestScope:
    async def test_a_team_supervisor_sees_their_agents_only(self, app: Any) -> None:
        async with logged_in(app, "nina") as http:
            traffic = totals(await report(http, "/console/reports/traffic", by="agent"))
            occupancy = totals(await report(http, "/console/reports/occupancy", by="agent"))
            csv_text = (
                await http.get(
                    "/console/reports/occupancy", params={"by": "agent", "format": "csv"}
                )
            ).text
            page = await http.get("/console/reports/occupancy?by=agent", headers=HTML)
        assert set(traffic) == {"ann", "cy"}
        assert set(occupancy) == {"ann", "cy"}
        assert {r["agent"] for r in parse_csv(csv_text)} == {"ann", "cy"}
        assert "bob" not in page.text

    async def test_a_queue_supervisor_sees_their_queues_and_no_ivr(self, app: Any) -> None:
        async with logged_in(app, "quinn") as http:
            queues = totals(await report(http, "/console/reports/traffic"))
            sites = totals(await report(http, "/console/reports/traffic", by="site"))
            ivr = await http.get("/console/reports/ivr", params={"format": "json"})
            dropoff = await http.get("/console/reports/dropoff", headers=HTML)
            page = await http.get("/console/reports", headers=HTML)
        assert set(queues) == {"tv"}
        assert set(sites) == {"busan"}  # the tv call's caller; Seoul's were sales calls
        assert ivr.status_code == dropoff.status_code == 403
        assert "not every queue and site" in ivr.json()["error"]
        assert 'href="/console/reports/ivr' not in page.text

    async def test_an_agent_sees_only_their_own_figures(self, app: Any) -> None:
        async with logged_in(app, "ann") as http:
            own = await report(http, "/console/reports/traffic")
            page = await http.get("/console/reports", headers=HTML)
            refused = [
                await http.get(f"/console/reports/{path}", params={"format": "json", **params})
                for path, params in (
                    ("traffic", {"by": "queue"}),
                    ("occupancy", {"by": "site"}),
                    ("staffing", {}),
                    ("ivr", {}),
                )
            ]
        assert own["by"] == "agent" and [r["name"] for r in own["totals"]] == ["ann"]
        assert page.status_code == 200
        assert "<strong>ann</strong>" in page.text and "<strong>cy</strong>" not in page.text
        assert [r.status_code for r in refused] == [403, 403, 403, 403]
        assert "sees only their own figures" in refused[0].json()["error"]

    async def test_a_viewer_and_a_stranger_are_refused(self, app: Any) -> None:
        async with logged_in(app, "wall") as http:
            viewer = await http.get("/console/reports", params={"format": "json"})
        async with client(app) as http:
            stranger = await http.get("/console/reports", params={"format": "json"})
            page = await http.get("/console/reports", headers=HTML)
        assert viewer.status_code == 403
        assert stranger.status_code == 401
        assert page.status_code == 303 and "/console/login" in page.headers["location"]


class TestBadParameters:
    @pytest.mark.parametrize(
        ("params", "at"),
        [
            ({"period": "1y"}, "period"),
            ({"interval": "5m"}, "interval"),
            ({"by": "flow"}, "by"),
            ({"format": "xml"}, "format"),
            ({"period": "", "interval": "1w", "by": "team"}, "interval"),
        ],
    )
    async def test_422_names_the_parameter(
        self, app: Any, router: RedisRouter, params: dict[str, str], at: str
    ) -> None:
        async with logged_in(app, "ada") as http:
            reply = await http.get("/console/reports/traffic", params=params)
        assert reply.status_code == 422
        assert at in [p["at"] for p in reply.json()["problems"]]
        assert any(
            a["status"] == "422" for a in await router.audit_log(50) if a["action"] == "refused"
        )

    async def test_a_page_with_a_bad_parameter_says_so_in_the_page(self, app: Any) -> None:
        async with logged_in(app, "ada") as http:
            reply = await http.get("/console/reports/traffic?period=1y", headers=HTML)
        assert reply.status_code == 422
        assert "period: &#39;1y&#39; is not one of today, 7d, 30d" in reply.text
        assert "report-data" not in reply.text

    async def test_an_unknown_report_is_404(self, app: Any) -> None:
        async with logged_in(app, "ada") as http:
            reply = await http.get("/console/reports/payroll", params={"format": "json"})
        assert reply.status_code == 404
        assert "traffic" in reply.json()["error"]


class TestApi:
    def bearer(self, token: str = VIEWER) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    async def test_the_api_lists_the_reports(self, app: Any) -> None:
        async with client(app) as http:
            reply = await http.get("/api/reports", headers=self.bearer())
        assert reply.status_code == 200
        assert [r["name"] for r in reply.json()["reports"]] == list(REPORTS)

    async def test_the_api_answers_the_consoles_figures(self, app: Any) -> None:
        """A viewer token sees everything (tokens have no scope), as /api/queues/.../stats."""
        async with client(app) as http:
            api = await http.get(
                "/api/reports/traffic", params={"by": "site"}, headers=self.bearer()
            )
            exported = await http.get(
                "/api/reports/traffic", params={"format": "csv"}, headers=self.bearer()
            )
        async with logged_in(app, "ada") as http:
            console = await report(http, "/console/reports/traffic", by="site")
        assert api.status_code == 200
        assert api.json()["totals"] == console["totals"]
        assert set(totals(api.json())) == {"seoul", "busan"}
        assert exported.headers["content-type"].startswith("text/csv")
        assert {r["queue"] for r in parse_csv(exported.text)} == {"sales", "tv"}

    async def test_the_api_refuses_without_a_token_bad_parameters_and_unknown_reports(
        self, app: Any
    ) -> None:
        async with client(app) as http:
            anonymous = await http.get("/api/reports/traffic")
            wrong = await http.get("/api/reports/traffic", headers=self.bearer("x" * 20))
            bad = await http.get(
                "/api/reports/traffic",
                params={"interval": "2h", "format": "html"},
                headers=self.bearer(),
            )
            unknown = await http.get("/api/reports/payroll", headers=self.bearer())
        assert anonymous.status_code == wrong.status_code == 401
        assert bad.status_code == 422
        assert {p["at"] for p in bad.json()["problems"]} == {"interval", "format"}
        assert unknown.status_code == 404
