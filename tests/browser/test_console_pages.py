"""The console in headless Chromium (Debian's, driven by Playwright): log in, go through
every page at 1280 x 800 and on a phone, barge after the browser's confirmation, and see a
wall screen's viewer refused. Each page is saved to ``tests/browser/screenshots/`` for a
person to look at."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Page, expect

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
from tests.browser.chromium import DESKTOP, PASSWORD, PHONE, SHOTS, served_in_chromium

pytestmark = pytest.mark.slow


@dataclass
class Console:
    url: str
    router: RedisRouter
    browser: Browser


async def _centre(router: RedisRouter) -> None:
    """Queues, a floor of agents, and ann on a call from the sales queue."""
    await router.replace_queues(
        {
            "sales": QueueConfig.model_validate(
                {"skills": {"sales": 1}, "service_level": {"percent": 80, "seconds": 20}}
            ),
            "tv": QueueConfig.model_validate({"skills": {"tv": 1}, "strategy": "most_skilled"}),
        }
    )
    floor = [
        Agent("ann", "PJSIP/1001", {"sales": 5, "team.north": 1}, ("ko", "en"), "seoul"),
        Agent("bob", "PJSIP/1002", {"sales": 5, "team.south": 1}, (), "busan"),
        Agent("cy", "PJSIP/1003", {"tv": 5, "team.north": 1}, ("ko",), "seoul"),
        Agent("dee", "PJSIP/1004", {"tv": 3, "sales": 2, "team.south": 1}, (), "busan"),
    ]
    await router.add_agents(floor)
    await router.login("ann")
    ticket = await router.enqueue("call-1", "sales", {"sales": 1})
    assignment = await router.wait(ticket)
    await router.connected(assignment)
    for agent in ("bob", "cy", "dee"):
        await router.login(agent)
    await router.pause("dee", "training")


@pytest.fixture
async def console(redis_url: str, tmp_path: Path) -> AsyncIterator[Console]:
    router = RedisRouter.connect(redis_url)
    await router.redis.flushall()
    await router.start()
    await _centre(router)
    users = UserStore(tmp_path / "users.json")
    hashed = hash_password(PASSWORD)
    users.put(UserRecord("ada", "admin", hashed, phones=("PJSIP/2001",)))
    north = Scope(teams=frozenset({"north"}))
    users.put(UserRecord("nina", "supervisor", hashed, north, phones=("PJSIP/2002",)))
    users.put(UserRecord("wall", "viewer", hashed))

    emulator = AsteriskEmulator()
    ami_server = await emulator.start_ami()
    pbx = emulator.pbx
    for endpoint in ("PJSIP/1001", "PJSIP/1002", "PJSIP/2001", "PJSIP/2002"):
        pbx.add_endpoint(endpoint)
    caller = pbx.new_channel("PJSIP/caller-00000001", state=6, cid_num="5551234")
    pbx.bridge(pbx.endpoint_channel("PJSIP/1001", state=6), caller)
    ami = AmiClient(
        AmiConfig(port=ami_server.port, username="ivr", secret="ivr-secret", ping_interval=0)
    )
    await ami.connect()

    app = build_api(router, TokenBook(), Supervisors(router, ami), Settings(users_file=users.path))
    try:
        async with served_in_chromium(app, lifespan="on") as (url, browser):
            yield Console(url, router, browser)
    finally:
        await ami.close()
        await emulator.close()
        await router.close()


async def log_in(page: Page, base: str, name: str) -> None:
    await page.goto(f"{base}/console/")
    await expect(page).to_have_url(f"{base}/console/login?next=/console/")
    await page.fill("input[name=name]", name)
    await page.fill("input[name=password]", PASSWORD)
    await page.click("button[type=submit]")
    await expect(page).to_have_url(f"{base}/console/")


async def shoot(page: Page, name: str, size: str) -> None:
    await page.screenshot(path=str(SHOTS / f"{name}-{size}.png"), full_page=True)


async def tour(console: Console, size: str, options: dict[str, Any]) -> list[str]:
    """Every page as the admin, each saved; the browser's console errors."""
    context = await console.browser.new_context(**options)
    page = await context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("response", lambda r: errors.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    base = console.url
    await page.goto(f"{base}/console/login")
    await shoot(page, "login", size)
    await log_in(page, base, "ada")
    # The live data's WebSocket holds the admin's session too (user_of on the socket).
    await expect(page.locator("[data-age]")).to_contain_text("Live", timeout=10_000)
    await expect(page.locator("#live-agents [data-agent=ann]")).to_contain_text("on call")
    await shoot(page, "wallboard", size)
    for path, name in (
        ("/console/calls", "calls"),
        ("/console/agents", "agents"),
        ("/console/agents/ann/edit", "agent-edit"),
        ("/console/queues", "queues"),
        ("/console/queues/sales/edit", "queue-edit"),
        ("/console/audit", "audit"),
    ):
        await page.goto(base + path)
        await expect(page.locator("h1")).to_be_visible()
        await shoot(page, name, size)
    await context.close()
    return errors


async def test_every_page_at_desktop_and_phone_size(console: Console) -> None:
    for size, options in (("desktop", DESKTOP), ("phone", PHONE)):
        errors = await tour(console, size, options)
        assert errors == [], errors
    for size in ("desktop", "phone"):
        for name in ("login", "wallboard", "calls", "agents", "agent-edit", "queues", "audit"):
            assert (SHOTS / f"{name}-{size}.png").stat().st_size > 5_000


async def test_a_supervisor_pauses_then_barges_after_confirming(console: Console) -> None:
    context = await console.browser.new_context(**DESKTOP)
    page = await context.new_page()
    await log_in(page, console.url, "nina")
    await page.goto(console.url + "/console/agents")
    assert await page.locator("#agent-bob").count() == 0  # team south: not nina's
    cy = page.locator("#agent-cy")
    await cy.locator("input[name=reason]").fill("coaching")
    await cy.get_by_role("button", name="Pause").click()
    await expect(page.locator(".flash")).to_contain_text("cy: pause done; now paused")
    assert await console.router.agent_state("cy") == "paused"

    asked: list[str] = []

    async def accept(dialog: Any) -> None:
        asked.append(dialog.message)
        await dialog.accept()

    page.on("dialog", accept)
    await page.locator("#agent-ann").get_by_role("button", name="Barge").click()
    await expect(page.locator(".flash")).to_contain_text("barge: PJSIP/2002 on ann's call")
    assert asked == ["Barge ann's call from your phone? The caller and ann will both hear you."]
    await shoot(page, "agents-after-barge", "desktop")
    entries = [a for a in await console.router.audit_log() if a["action"] == "supervise.barge"]
    assert [(a["actor"], a["agent"], a["supervisor"]) for a in entries] == [
        ("nina", "ann", "PJSIP/2002")
    ]
    await context.close()


async def test_a_wall_screen_viewer_sees_the_board_and_is_refused_actions(
    console: Console,
) -> None:
    context = await console.browser.new_context(**DESKTOP)
    page = await context.new_page()
    await log_in(page, console.url, "wall")
    await expect(page.locator("[data-age]")).to_contain_text("Live", timeout=10_000)
    assert await page.locator(".top nav").is_hidden()  # kiosk: the board alone
    await shoot(page, "kiosk", "desktop")
    reply = await page.goto(console.url + "/console/agents")
    assert reply is not None and reply.status == 403
    await expect(page.locator(".error")).to_contain_text(
        "wall is viewer; this needs the agent role"
    )
    await shoot(page, "refused", "desktop")
    await context.close()
