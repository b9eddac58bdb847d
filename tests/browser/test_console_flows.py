"""The flows, announcements and abandoned-calls pages in headless Chromium (Debian's, driven
by Playwright): an admin edits a flow, sees the validator's problem marked at its line,
fixes it, saves it (the engine's registry watcher reloads it) and rolls it back; switches
an outage notice on and an emulated call through the engine's FastAGI takes it; calls an
abandoned caller back. Each page is saved at 1280 x 800 and on a phone, in
``tests/browser/screenshots/``, for a person to look at."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Page, expect

from ivr.ami import AmiClient, AmiConfig
from ivr.api import build_api
from ivr.auth import TokenBook
from ivr.centre.supervise import Supervisors
from ivr.config import Settings
from ivr.console.users import UserRecord, UserStore, hash_password
from ivr.testing import AsteriskEmulator
from routing.config import QueueConfig
from routing.memory import Agent
from routing.redis import RedisRouter
from speech.tts import Synthesizer
from tests.browser.chromium import DESKTOP, PASSWORD, PHONE, SHOTS, served_in_chromium
from tests.integration.helpers.console_admin import MAIN, Line, heard, write_flows

pytestmark = pytest.mark.slow

SIZES: dict[str, dict[str, Any]] = {"desktop": DESKTOP, "phone": PHONE}
WORDS = "Our lines are down until noon. Please call back later."


@dataclass
class Console:
    url: str
    router: RedisRouter
    browser: Browser
    settings: Settings
    line: Line


@pytest.fixture
async def console(redis_url: str, tmp_path: Path) -> AsyncIterator[Console]:
    """The console on uvicorn, the engine's FastAGI side and its registry watcher on the
    same flows folder, the emulated Asterisk's AMI, and a Chromium."""
    router = RedisRouter.connect(redis_url)
    await router.redis.flushall()
    await router.start()
    await router.replace_queues({"sales": QueueConfig.model_validate({"skills": {"sales": 1}})})
    await router.add_agents([Agent("ann", "PJSIP/1001", {"sales": 5, "team.north": 1})])
    users = UserStore(tmp_path / "users.json")
    users.put(UserRecord("ada", "admin", hash_password(PASSWORD)))
    settings = Settings(
        users_file=users.path,
        flows_dir=write_flows(tmp_path / "flows"),
        prompts_dir=tmp_path / "var" / "prompts",
        announcements_file=tmp_path / "var" / "announcements.json",
        redis_dir=tmp_path / "var" / "redis",
        transfer_allow="555*",
        demo_api_port=0,
    )
    emulator = AsteriskEmulator()
    ami_server = await emulator.start_ami()
    emulator.pbx.add_endpoint("PJSIP/1001")
    ami = AmiClient(
        AmiConfig(port=ami_server.port, username="ivr", secret="ivr-secret", ping_interval=0)
    )
    await ami.connect()
    app = build_api(router, TokenBook(), Supervisors(router, ami), settings)
    try:
        async with (
            served_in_chromium(app, lifespan="on") as (url, browser),
            Line(settings) as line,
        ):
            watcher = asyncio.ensure_future(line.registry.watch(interval=0.1))
            try:
                yield Console(url, router, browser, settings, line)
            finally:
                watcher.cancel()
    finally:
        await ami.close()
        await emulator.close()
        await router.close()


async def open_page(console: Console, size: str) -> tuple[Page, list[str]]:
    """A logged-in admin's page at ``size``, and the browser's errors as they come."""
    context = await console.browser.new_context(**SIZES[size])
    page = await context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
    await page.goto(f"{console.url}/console/login")
    await page.fill("input[name=name]", "ada")
    await page.fill("input[name=password]", PASSWORD)
    await page.click("button[type=submit]")
    await expect(page).to_have_url(f"{console.url}/console/")
    return page, errors


async def shoot(page: Page, name: str, size: str) -> None:
    await page.screenshot(path=str(SHOTS / f"{name}-{size}.png"), full_page=True)


async def served_version(console: Console, version: int) -> None:
    """Until the engine's registry watcher serves ``version`` of main."""
    deadline = time.monotonic() + 10
    while (flow := console.line.registry.get("main")) is None or flow.version != version:
        assert time.monotonic() < deadline, f"the engine did not reload version {version}"
        await asyncio.sleep(0.05)


@pytest.mark.parametrize("size", ["desktop", "phone"])
async def test_edit_with_an_error_fix_save_and_roll_back(console: Console, size: str) -> None:
    page, errors = await open_page(console, size)
    base = console.url
    await page.goto(f"{base}/console/flows")
    await expect(page.locator("#flow-main")).to_contain_text("loaded")
    await expect(page.locator("#diagram-main img")).to_be_visible()
    assert await page.locator("#diagram-main img").evaluate("i => i.naturalWidth") > 100
    await shoot(page, "flows", size)

    await page.locator("#flow-main").get_by_role("link", name="Edit").click()
    await expect(page.locator("#check")).to_contain_text("No problems: flow main, version 3")
    await shoot(page, "flow-edit", size)
    await page.fill("#flow-text", MAIN.replace("goto: billing", "goto: nowhere"))
    marked = page.locator(".editor .gutter .bad")
    await expect(marked).to_have_text("14")
    await expect(page.locator(".editor .marks .bad")).to_have_count(1)
    await expect(page.locator("#problems li")).to_contain_text("line 14, col")
    await expect(page.locator("#problems li")).to_contain_text("no node named 'nowhere'")
    await shoot(page, "flow-error", size)

    fixed = MAIN.replace("version: 3", "version: 4").replace("Goodbye.", "Goodbye and thanks.")
    await page.fill("#flow-text", fixed)
    await expect(page.locator("#check")).to_contain_text("No problems: flow main, version 4")
    await expect(marked).to_have_count(0)
    await page.get_by_role("button", name="Save").click()
    await expect(page.locator(".flash")).to_contain_text("main saved (version 4)")
    await served_version(console, 4)
    assert (console.settings.flows_dir / "main.yaml").read_text() == fixed
    await shoot(page, "flow-saved", size)

    await page.get_by_role("link", name="History and rollback").click()
    await page.goto(page.url + "?b=current#diff")
    await expect(page.locator("pre.diff .add").first).to_be_visible()
    await shoot(page, "flow-history", size)
    oldest = page.locator("table.versions tbody tr").last
    await oldest.get_by_role("button", name="Roll back to this").click()
    await expect(page.locator(".flash")).to_contain_text("main rolled back to the version of")
    await served_version(console, 3)
    assert (console.settings.flows_dir / "main.yaml").read_text() == MAIN
    await shoot(page, "flow-rolled-back", size)
    _, trace = await console.line.call("main")
    assert trace.prompts[-1] == "Goodbye."  # the call runs the version rolled back to
    assert errors == [], errors
    await page.context.close()


@pytest.mark.parametrize("size", ["desktop", "phone"])
async def test_an_announcement_switched_on_is_taken_by_a_call(console: Console, size: str) -> None:
    page, errors = await open_page(console, size)
    await page.goto(f"{console.url}/console/announcements")
    outage = page.locator("#notice-outage")
    await expect(outage.locator(".badge")).to_have_text("off")
    await shoot(page, "announcements", size)
    _, before = await console.line.call("main")
    assert heard(before) == []

    await outage.get_by_label("support").uncheck()
    await outage.get_by_label("these words").check()
    await outage.get_by_label("Words for outage").fill(WORDS)
    until = (datetime.now() + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M")
    await outage.locator("input[name=until]").fill(until)
    await outage.get_by_role("button", name="Switch on").click()
    await expect(page.locator(".flash")).to_contain_text("outage: on for main until")
    await expect(outage.locator(".badge")).to_have_text("on")
    await expect(outage.locator(".said")).to_contain_text(WORDS)
    await shoot(page, "announcement-on", size)

    result, trace = await console.line.call("main")
    assert trace.nodes[:2] == ["outage", "menu"] and heard(trace) == ["outage"]
    assert WORDS in trace.prompts
    spoken = Synthesizer(console.settings.prompts_dir).path_for(WORDS, "en")
    assert str(spoken.resolve().with_suffix("")) in result.played
    _, other = await console.line.call("support")
    assert heard(other) == []  # not chosen

    await outage.get_by_role("button", name="Switch off").click()
    await expect(outage.locator(".badge")).to_have_text("off")
    _, after = await console.line.call("main")
    assert heard(after) == []
    assert errors == [], errors
    await page.context.close()


@pytest.mark.parametrize("size", ["desktop", "phone"])
async def test_an_abandoned_caller_is_called_back(console: Console, size: str) -> None:
    ticket = await console.router.enqueue("gone-1", "sales", {"sales": 1}, customer="5551234")
    await asyncio.sleep(0.4)
    await console.router.abandon(ticket, "caller")
    page, errors = await open_page(console, size)
    await page.goto(f"{console.url}/console/calls")
    found = page.locator(f"#abandoned-{ticket.id}")
    await expect(found).to_contain_text("5551234")
    await expect(found).to_contain_text("hung up while waiting")
    await shoot(page, "calls-abandoned", size)
    await found.get_by_role("button", name="Call back").click()
    await expect(page.locator("#abandoned-list .flash")).to_contain_text(
        "Callback of 5551234 queued in sales"
    )
    await expect(page.locator(f"#abandoned-{ticket.id}")).to_contain_text("callback under way")
    await shoot(page, "calls-called-back", size)
    entries = [a for a in await console.router.audit_log() if a["action"] == "callback.request"]
    assert [(a["actor"], a["ticket"]) for a in entries] == [("ada", str(ticket.id))]
    assert errors == [], errors
    await page.context.close()
