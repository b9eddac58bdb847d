"""The console's flows pages over HTTP on a real Redis: the list, the validator's problems
at their lines, saves the engine's registry reloads, refusals (role, CSRF, a save that
breaks another flow, a file changed meanwhile), history, diff, rollback and diagrams."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from ivr.config import Settings
from ivr.console.flows_svg import UnsafeSvg, sanitised
from ivr.flows.registry import FlowRegistry
from routing.redis import RedisRouter
from tests.integration.helpers import console_admin
from tests.integration.helpers.console_admin import (
    BILLING,
    HTML,
    MAIN,
    app_for,
    audit,
    browser,
    log_in,
)

# The shared fixtures (a fixture is found by its name in the module).
router, users, hashed, settings = (
    console_admin.router,
    console_admin.users,
    console_admin.hashed,
    console_admin.settings,
)

BROKEN_MENU = MAIN.replace("goto: billing", "goto: nowhere")


@pytest.fixture
def app(router: RedisRouter, settings: Settings) -> Any:
    return app_for(router, settings)


def kept(settings: Settings, key: str) -> list[Path]:
    folder = settings.redis_dir.parent / "flow-history" / key
    return sorted(folder.glob("*.yaml"))


async def validate(http: Any, csrf: str, key: str, text: str, **extra: Any) -> Any:
    return await http.post(
        "/console/flows/validate",
        json={"key": key, "text": text, **extra},
        headers={"X-CSRF-Token": csrf},
    )


class TestAccess:
    async def test_only_admins_reach_the_flows(self, app: Any) -> None:
        """A supervisor, an agent and a viewer are refused every flows page and action;
        without a session a browser goes to the login."""
        async with browser(app) as http:
            reply = await http.get("/console/flows", headers=HTML)
            assert reply.status_code == 303 and "/console/login" in reply.headers["location"]
            for name in ("pat", "ann", "wall"):
                csrf = await log_in(http, name)
                for path in (
                    "/console/flows",
                    "/console/flows/main/edit",
                    "/console/flows/main/history",
                ):
                    assert (await http.get(path, headers=HTML)).status_code == 403, (name, path)
                reply = await validate(http, csrf, "main", MAIN)
                assert reply.status_code == 403
                reply = await http.post(
                    "/console/flows/main/edit", data={"csrf": csrf, "text": MAIN}
                )
                assert reply.status_code == 403
                await http.post("/console/logout", data={"csrf": csrf})

    async def test_every_change_needs_the_csrf_token(
        self, app: Any, router: RedisRouter, settings: Settings
    ) -> None:
        before = (settings.flows_dir / "main.yaml").read_text()
        async with browser(app) as http:
            await log_in(http, "ada")
            for path, data in (
                ("/console/flows/main/edit", {"text": MAIN.replace("version: 3", "version: 4")}),
                ("/console/flows/main/rollback", {"version": "x"}),
                ("/console/flows/new", {"name": "extra", "text": MAIN}),
            ):
                assert (await http.post(path, data=data)).status_code == 403
                forged = await http.post(path, data={**data, "csrf": "forged"})
                assert forged.status_code == 403
            reply = await http.post("/console/flows/validate", json={"key": "main", "text": MAIN})
            assert reply.status_code == 403
        assert (settings.flows_dir / "main.yaml").read_text() == before
        refused = await audit(router, "refused")
        assert len(refused) == 7 and {a["actor"] for a in refused} == {"ada"}


class TestList:
    async def test_versions_status_and_problems(self, app: Any, settings: Settings) -> None:
        """Each file with its flow's version; a file the engine would refuse says why, at
        its line, and so does a flow whose subflow is refused."""
        (settings.flows_dir / "support.yaml").write_text("id: support\nnodes:\n  a: {type: nope}\n")
        async with browser(app) as http:
            await log_in(http, "ada")
            page = await http.get("/console/flows", headers=HTML)
        assert page.status_code == 200
        text = page.text
        main = text[text.index('id="flow-main"') :].split("</tr>")[0]
        assert ">3<" in main and "loaded" in main
        support = text[text.index('id="flow-support"') :].split("</tr>")[0]
        assert "refused" in support and "line 3, col" in support and "nope" in support
        assert 'src="/console/flows/main/diagram.svg"' in text


class TestValidate:
    async def test_yaml_syntax_points_at_its_line(self, app: Any) -> None:
        async with browser(app) as http:
            csrf = await log_in(http, "ada")
            reply = await validate(http, csrf, "main", MAIN.replace("    prompt:", "\tprompt:"))
        body = reply.json()
        assert reply.status_code == 200 and body["ok"] is False
        [problem] = body["problems"]
        assert problem["line"] == 12 and "YAML indents with spaces" in problem["message"]

    async def test_model_and_graph_problems_each_at_their_line(self, app: Any) -> None:
        text = BROKEN_MENU.replace(
            "    on_failure: bye\n", "    on_failure: bye\n    colour: red\n"
        )
        async with browser(app) as http:
            csrf = await log_in(http, "ada")
            reply = await validate(http, csrf, "main", text)
        problems = reply.json()["problems"]
        assert [p["line"] for p in problems] == [16], problems
        assert "colour" in problems[0]["message"]
        async with browser(app) as http:
            csrf = await log_in(http, "ada")
            reply = await validate(http, csrf, "main", BROKEN_MENU)
        [problem] = reply.json()["problems"]
        assert problem["line"] == 14 and "no node named 'nowhere'" in problem["message"]

    async def test_a_subflow_that_is_no_flow_is_a_problem_at_its_line(self, app: Any) -> None:
        text = MAIN.replace("flow: billing", "flow: bill")
        async with browser(app) as http:
            csrf = await log_in(http, "ada")
            reply = await validate(http, csrf, "main", text)
        [problem] = reply.json()["problems"]
        assert problem["line"] == 16 and "no flow 'bill' is loaded" in problem["message"]

    async def test_hostile_input_meets_the_loader_s_limits(self, app: Any) -> None:
        """The same limits as `ivr validate`: a text past 1 MiB, a billion laughs."""
        huge = MAIN + "# " + "x" * (1 << 20) + "\n"
        laughs = "id: main\nnodes:\n  a: &a [x, x, x, x, x, x, x, x, x, x]\n"
        for level in "bcdefgh":
            laughs += f"  {level}: &{level} [{', '.join(['*' + chr(ord(level) - 1)] * 10)}]\n"
        async with browser(app) as http:
            csrf = await log_in(http, "ada")
            big = (await validate(http, csrf, "main", huge)).json()["problems"]
            bomb = (await validate(http, csrf, "main", laughs)).json()["problems"]
            unknown = await validate(http, csrf, "nope", MAIN)
            wrong = await http.post(
                "/console/flows/validate", json=["main"], headers={"X-CSRF-Token": csrf}
            )
        assert "holds at most 1,048,576 bytes" in big[0]["message"]
        assert "values" in bomb[0]["message"] and "at most" in bomb[0]["message"]
        assert unknown.status_code == 404 and wrong.status_code == 400


class TestSave:
    async def test_a_save_is_written_kept_audited_and_reloaded(
        self, app: Any, router: RedisRouter, settings: Settings
    ) -> None:
        """The file is replaced whole, the text before and the new one are kept, and the
        engine's registry watcher serves the new version within a second."""
        registry = FlowRegistry(settings.flows_dir)
        assert registry.reload() == []
        watcher = asyncio.ensure_future(registry.watch(interval=0.05))
        edited = MAIN.replace("version: 3", "version: 4").replace("press 1", "press one")
        try:
            async with browser(app) as http:
                csrf = await log_in(http, "ada")
                page = await http.get("/console/flows/main/edit", headers=HTML)
                base = page.text.split('name="base" value="')[1].split('"')[0]
                reply = await http.post(
                    "/console/flows/main/edit",
                    data={"csrf": csrf, "text": edited.replace("\n", "\r\n"), "base": base},
                )
                assert reply.status_code == 303, reply.text
                assert reply.headers["location"] == "/console/flows/main/edit"
                page = await http.get("/console/flows/main/edit", headers=HTML)
            assert "main saved (version 4)" in page.text
            deadline = time.monotonic() + 5
            while registry.get("main").version != 4:  # type: ignore[union-attr]
                assert time.monotonic() < deadline, "the registry did not reload the save"
                await asyncio.sleep(0.05)
        finally:
            watcher.cancel()
        assert (settings.flows_dir / "main.yaml").read_text() == edited  # LF, as a file
        assert [p.name.split("-v")[1] for p in kept(settings, "main")] == ["3.yaml", "4.yaml"]
        assert kept(settings, "main")[0].read_text() == MAIN
        assert [p.name for p in settings.flows_dir.iterdir() if p.name.startswith(".")] == []
        [saved] = await audit(router, "flow.save")
        assert (saved["actor"], saved["flow"], saved["version"]) == ("ada", "main", "4")

    async def test_a_text_with_problems_is_not_saved(
        self, app: Any, router: RedisRouter, settings: Settings
    ) -> None:
        async with browser(app) as http:
            csrf = await log_in(http, "ada")
            reply = await http.post(
                "/console/flows/main/edit", data={"csrf": csrf, "text": BROKEN_MENU}, headers=HTML
            )
        assert reply.status_code == 422
        assert 'data-line="14"' in reply.text and "no node named" in reply.text
        assert (settings.flows_dir / "main.yaml").read_text() == MAIN
        assert kept(settings, "main") == []
        [refused] = await audit(router, "refused")
        assert refused["status"] == "422" and "flow main" in refused["reason"]

    async def test_a_save_that_would_break_another_flow_is_refused(
        self, app: Any, settings: Settings
    ) -> None:
        """Renaming billing's id would leave main's subflow node with no flow: refused as
        the engine's reload refuses it, marked at the id's line."""
        async with browser(app) as http:
            csrf = await log_in(http, "ada")
            reply = await http.post(
                "/console/flows/billing/edit",
                data={"csrf": csrf, "text": BILLING.replace("id: billing", "id: invoices")},
            )
        assert reply.status_code == 422
        [problem] = reply.json()["problems"]
        assert problem["line"] == 1
        assert "main.yaml (line 16) uses flow 'billing' as a subflow" in problem["message"]
        assert (settings.flows_dir / "billing.yaml").read_text() == BILLING

    async def test_an_id_another_file_holds_is_refused(self, app: Any) -> None:
        async with browser(app) as http:
            csrf = await log_in(http, "ada")
            reply = await validate(http, csrf, "support", MAIN)
        [problem] = reply.json()["problems"]
        assert problem["line"] == 1 and "also used by main.yaml" in problem["message"]

    async def test_a_file_changed_since_it_was_opened_is_not_overwritten(
        self, app: Any, settings: Settings
    ) -> None:
        async with browser(app) as http:
            csrf = await log_in(http, "ada")
            page = await http.get("/console/flows/main/edit", headers=HTML)
            base = page.text.split('name="base" value="')[1].split('"')[0]
            (settings.flows_dir / "main.yaml").write_text(MAIN.replace("Goodbye", "Bye"))
            reply = await http.post(
                "/console/flows/main/edit",
                data={"csrf": csrf, "text": MAIN, "base": base},
                headers=HTML,
            )
        assert reply.status_code == 409 and "changed since you opened it" in reply.text
        assert "Bye." in (settings.flows_dir / "main.yaml").read_text()

    async def test_a_new_flow_is_created_and_a_bad_name_refused(
        self, app: Any, router: RedisRouter, settings: Settings
    ) -> None:
        text = "id: extra\nnodes:\n  bye: {type: hangup, say: Hello.}\n"
        async with browser(app) as http:
            csrf = await log_in(http, "ada")
            for name, status in (("../evil", 409), ("main", 409), ("routing", 409)):
                reply = await http.post(
                    "/console/flows/new", data={"csrf": csrf, "name": name, "text": text}
                )
                assert reply.status_code == status, name
            reply = await http.post(
                "/console/flows/new", data={"csrf": csrf, "name": "extra", "text": text}
            )
        assert reply.status_code == 303 and reply.headers["location"] == "/console/flows/extra/edit"
        assert (settings.flows_dir / "extra.yaml").read_text() == text
        assert not (settings.flows_dir.parent / "evil.yaml").exists()
        [created] = await audit(router, "flow.create")
        assert created["flow"] == "extra"


class TestHistory:
    async def test_diff_and_rollback(
        self, app: Any, router: RedisRouter, settings: Settings
    ) -> None:
        """Two saves, a diff between the kept versions, then a rollback to the text before
        them: saved as a new version, audited, and served by the registry."""
        registry = FlowRegistry(settings.flows_dir)
        registry.reload()
        v4 = MAIN.replace("version: 3", "version: 4").replace("Goodbye.", "Bye now.")
        v5 = v4.replace("version: 4", "version: 5")
        async with browser(app) as http:
            csrf = await log_in(http, "ada")
            for text in (v4, v5):
                reply = await http.post(
                    "/console/flows/main/edit", data={"csrf": csrf, "text": text}
                )
                assert reply.status_code == 303, reply.text
            first, second, _ = (p.name for p in kept(settings, "main"))
            page = await http.get(f"/console/flows/main/history?a={first}&b={second}", headers=HTML)
            assert page.status_code == 200
            assert '<span class="del">-version: 3</span>' in page.text
            assert '<span class="add">+version: 4</span>' in page.text
            assert '<span class="add">+  bye: {type: hangup, say: Bye now.}</span>' in page.text
            plain = await http.get(f"/console/flows/main/versions/{first}")
            assert plain.text == MAIN and plain.headers["content-type"].startswith("text/plain")
            assert (await http.get("/console/flows/main/versions/..%2Fbilling")).status_code == 404
            reply = await http.post(
                "/console/flows/main/rollback", data={"csrf": csrf, "version": first}
            )
            assert reply.status_code == 303
            page = await http.get(reply.headers["location"], headers=HTML)
        assert "rolled back to the version of" in page.text
        assert (settings.flows_dir / "main.yaml").read_text() == MAIN
        names = [p.name for p in kept(settings, "main")]
        assert len(names) == 4 and names[-1].endswith("-v3.yaml")
        registry.reload()
        assert registry.get("main").version == 3  # type: ignore[union-attr]
        [rollback] = await audit(router, "flow.rollback")
        assert (rollback["actor"], rollback["to"], rollback["version"]) == ("ada", first, "3")

    async def test_a_version_that_no_longer_fits_is_not_restored(
        self, app: Any, settings: Settings
    ) -> None:
        """A kept text whose subflow is gone now is refused, as any save."""
        async with browser(app) as http:
            csrf = await log_in(http, "ada")
            text = MAIN.replace("flow: billing", "flow: support")
            assert (
                await http.post("/console/flows/main/edit", data={"csrf": csrf, "text": text})
            ).status_code == 303
            first = kept(settings, "main")[0].name
            (settings.flows_dir / "billing.yaml").unlink()
            reply = await http.post(
                "/console/flows/main/rollback", data={"csrf": csrf, "version": first}
            )
        assert reply.status_code == 422 and "no flow 'billing' is loaded" in reply.json()["error"]
        assert "flow: support" in (settings.flows_dir / "main.yaml").read_text()


class TestDiagram:
    async def test_served_as_svg_under_a_policy_that_runs_nothing(self, app: Any) -> None:
        async with browser(app) as http:
            await log_in(http, "ada")
            reply = await http.get("/console/flows/main/diagram.svg")
            missing = await http.get("/console/flows/nope/diagram.svg")
        assert reply.status_code == 200
        assert reply.headers["content-type"] == "image/svg+xml"
        assert reply.headers["content-security-policy"].startswith("default-src 'none'")
        assert reply.headers["x-content-type-options"] == "nosniff"
        assert (
            reply.text.startswith("<svg") and "outage" in reply.text and "<script" not in reply.text
        )
        assert missing.status_code == 404

    def test_the_sanitiser_keeps_drawing_only(self) -> None:
        drawn = (
            '<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink"'
            ' width="10" onload="alert(1)"><script>alert(2)</script>'
            '<g id="n" style="background:url(https://x)"><a xlink:href="javascript:alert(3)">'
            '<text x="1">menu &lt;b&gt;</text></a><polygon fill="url(https://x/y)" points="0,0"/>'
            '<foreignObject><div xmlns="http://www.w3.org/1999/xhtml">x</div></foreignObject>'
            '<text x="2">&lt;script&gt;</text></g></svg>'
        )
        clean = sanitised(drawn)
        for gone in ("onload", "script>", "style", "href", "foreignObject", "url(", "alert"):
            assert gone not in clean, gone
        assert 'width="10"' in clean and "&lt;script&gt;" in clean
        with pytest.raises(UnsafeSvg):
            sanitised('<!DOCTYPE x [<!ENTITY a "b">]><svg xmlns="http://www.w3.org/2000/svg"/>')
        with pytest.raises(UnsafeSvg):
            sanitised("<html/>")
