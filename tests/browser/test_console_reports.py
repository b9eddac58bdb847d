"""The reports in headless Chromium (Debian's, driven by Playwright): a week of calls,
the charts drawn (a canvas with ink on it), the period changed from its menu, a CSV
downloaded, and each page saved to ``tests/browser/screenshots/`` at 1280 x 800 and
on a phone for a person to look at."""

from __future__ import annotations

import asyncio
import csv
import io
import random
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Page, expect

from ivr.api import build_api
from ivr.auth import TokenBook
from ivr.config import Settings
from ivr.console.users import UserRecord, UserStore, hash_password
from routing.config import QueueConfig
from routing.memory import Agent
from routing.redis import RedisRouter
from tests.browser.chromium import DESKTOP, PASSWORD, PHONE, SHOTS, served_in_chromium

pytestmark = pytest.mark.slow

#: Agents of the synthetic week: (id, queue, site).
FLOOR = (("ann", "sales", "seoul"), ("bob", "sales", "busan"), ("cy", "tv", "seoul"))


def _week(now: float) -> list[tuple[float, dict[str, str]]]:
    """Six past days of calls, 9 to 17 local time: each agent takes calls one after
    another; some callers give up, some hang up in the IVR; surveys after most calls."""
    rng = random.Random(14)
    today = datetime.fromtimestamp(now).astimezone().date()
    out: list[tuple[float, dict[str, str]]] = []
    number = 0
    for back in range(6, 0, -1):
        day = today - timedelta(days=back)
        opens = datetime(day.year, day.month, day.day, 9).astimezone().timestamp()
        for agent, queue, site in FLOOR:
            base = {"agent": agent, "site": site}
            out.append((opens, {"event": "state", **base, "after": "available"}))
            moment = opens + rng.uniform(60, 600)
            while moment < opens + 8 * 3600:
                number += 1
                ticket, call = f"w{number}", f"week-{number}"
                wait = min(240.0, rng.expovariate(1 / 14))
                handle = rng.uniform(120, 480)
                caller = f"55501{rng.randrange(40):02d}"
                fields = {"ticket": ticket, "queue": queue, "site": site}
                out += [
                    (
                        moment - wait,
                        {"event": "enqueued", **fields, "call": call, "caller": caller},
                    ),
                    (moment, {"event": "state", **base, "after": "on_call"}),
                    (moment, {"event": "connected", **fields, "agent": agent, "at": repr(moment)}),
                    (moment + handle, {"event": "completed", **fields, "agent": agent}),
                    (moment + handle, {"event": "state", **base, "after": "wrap_up"}),
                    (moment + handle + 30, {"event": "state", **base, "after": "available"}),
                ]
                if rng.random() < 0.7:
                    score = str(rng.choice((2, 3, 4, 4, 5, 5, 5)))
                    note = {"event": "survey", "call": call, "queue": queue, "score": score}
                    out.append((moment + handle + 40, note))
                if rng.random() < 0.15:
                    number += 1
                    gone = {"ticket": f"w{number}", "queue": queue, "site": site}
                    out.append((moment + 5, {"event": "enqueued", **gone, "call": f"g{number}"}))
                    out.append((moment + 5 + rng.uniform(30, 150), {"event": "abandoned", **gone}))
                moment += handle + 30 + rng.uniform(60, 900)
            out.append((opens + 8 * 3600 + 600, {"event": "state", **base, "after": "logged_out"}))
        for n in range(rng.randrange(30, 60)):
            node, how = rng.choice(
                (
                    ("menu", "caller_hangup"),
                    ("hours", "hangup"),
                    ("billing.account", "caller_hangup"),
                    ("language", "caller_hangup"),
                    ("goodbye", "hangup"),
                )
            )
            ivr = {"event": "ivr_ended", "call": f"ivr-{back}-{n}", "flow": "main"}
            out.append(
                (
                    opens + rng.uniform(0, 8 * 3600),
                    {**ivr, "contained": "1", "ended": how, "node": node},
                )
            )
    out.sort(key=lambda item: item[0])
    return out


async def _centre(router: RedisRouter) -> None:
    """Queues, agents, the synthetic week in the stream, and a call today."""
    await router.replace_queues(
        {
            "sales": QueueConfig.model_validate({"skills": {"sales": 1}}),
            "tv": QueueConfig.model_validate({"skills": {"tv": 1}}),
        }
    )
    await router.add_agents(
        [
            Agent(a, f"PJSIP/10{n}", {q: 5, "team.north": 1}, site=s)
            for n, (a, q, s) in enumerate(FLOOR)
        ]
    )
    stream = router.names.group("default").events
    for at, fields in _week(time.time()):
        await router.redis.xadd(stream, {**fields, "at": repr(at), "group": "default"})
    await router.login("ann")
    ticket = await router.enqueue("call-1", "sales", {"sales": 1}, customer="5550100")
    assignment = await router.wait(ticket)
    await router.connected(assignment)
    await router.completed(assignment)
    await router.note("survey", call="call-1", queue="sales", question="csat", score="4")
    await router.login("cy")


@dataclass
class Console:
    url: str
    router: RedisRouter
    browser: Browser


@pytest.fixture
async def console(redis_url: str, tmp_path: Path) -> AsyncIterator[Console]:
    router = RedisRouter.connect(redis_url)
    await router.redis.flushall()
    await router.start()
    await _centre(router)
    users = UserStore(tmp_path / "users.json")
    users.put(UserRecord("ada", "admin", hash_password(PASSWORD)))
    app = build_api(router, TokenBook(), None, Settings(users_file=users.path))
    try:
        async with served_in_chromium(app) as (url, browser):
            yield Console(url, router, browser)
    finally:
        await router.close()


async def _page(console: Console, options: dict[str, Any]) -> tuple[Page, list[str]]:
    """A logged-in admin's page; the browser's errors (CSP refusals too) go to the list."""
    context = await console.browser.new_context(accept_downloads=True, **options)
    page = await context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    await page.goto(f"{console.url}/console/login?next=/console/reports")
    await page.fill("input[name=name]", "ada")
    await page.fill("input[name=password]", PASSWORD)
    await page.click("button[type=submit]")
    await expect(page).to_have_url(f"{console.url}/console/reports")
    return page, errors


#: Pixels of a chart's canvas with something drawn on them.
INKED = """(figure) => {
  const canvas = figure.querySelector('canvas');
  if (!canvas || !canvas.width || !canvas.height) return 0;
  const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
  let inked = 0;
  for (let i = 3; i < data.length; i += 4) if (data[i] > 0) inked++;
  return inked;
}"""


async def charts_drawn(page: Page) -> list[int]:
    """Each chart's inked pixels, once every chart has been drawn."""
    figures = page.locator("figure.chart")
    await expect(figures.first).to_have_attribute("data-drawn", "yes", timeout=10_000)
    return [await f.evaluate(INKED) for f in await figures.all()]


async def shoot(page: Page, name: str, *, full_page: bool = True) -> Path:
    path = SHOTS / f"{name}.png"
    await page.screenshot(path=str(path), full_page=full_page)
    return path


async def test_reports_draw_charts_export_csv_and_fit_a_phone(console: Console) -> None:
    page, errors = await _page(console, DESKTOP)
    await expect(page.locator("h1")).to_have_text("Reports")
    inked = await charts_drawn(page)
    assert len(inked) == 3 and all(n > 500 for n in inked), inked
    await shoot(page, "reports-desktop")

    # The menus submit at once: a week per day.
    await page.select_option("select[name=period]", "7d")
    await expect(page).to_have_url(
        f"{console.url}/console/reports/traffic?period=7d&interval=1h&by=queue"
    )
    await page.select_option("select[name=interval]", "1d")
    await expect(page).to_have_url(
        f"{console.url}/console/reports/traffic?period=7d&interval=1d&by=queue"
    )
    assert all(n > 500 for n in await charts_drawn(page))
    await shoot(page, "reports-week-desktop")

    async with page.expect_download() as info:
        await page.click("#export-csv")
    download = await info.value
    assert download.suggested_filename.startswith("report-traffic-queue-7d-1d-")
    text = await asyncio.to_thread(Path(await download.path()).read_text, encoding="utf-8")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert {r["queue"] for r in rows} == {"sales", "tv"}
    assert len({r["interval_start"] for r in rows}) == 7  # six past days and today

    for report, query in (
        ("quality", "period=7d&interval=1d&by=agent"),
        ("occupancy", "period=7d&interval=1h&by=agent"),
        ("dropoff", "period=7d&interval=1d"),
        ("staffing", "period=7d&interval=1h"),
    ):
        await page.goto(f"{console.url}/console/reports/{report}?{query}")
        assert all(n > 500 for n in await charts_drawn(page)), report
        await shoot(page, f"reports-{report}-desktop")
    await page.context.close()

    phone, phone_errors = await _page(console, PHONE)
    await phone.goto(f"{console.url}/console/reports/traffic?period=7d&interval=1d")
    inked = await charts_drawn(phone)
    assert all(n > 500 for n in inked), inked
    width = await phone.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the page is {width} px wide on a 390 px phone"
    await shoot(phone, "reports-phone")
    await shoot(phone, "reports-phone-top", full_page=False)  # what the phone shows first
    await phone.context.close()
    assert errors == [] and phone_errors == [], errors + phone_errors
