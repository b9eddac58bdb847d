"""The quality page in headless Chromium (Debian's, driven by Playwright), on a QA result
the engine's worker wrote: a call spoken by espeak-ng, recorded as MixMonitor writes it
(caller, agent, mix), transcribed by the real Vosk model and checked with the demo's rule
pack (``qa/ko.yaml``). The page shows the dead air the agent left with the words either
side of it, and its play button seeks the recording there (the browser asks for the
bytes with Range requests); saved to ``tests/browser/screenshots/`` at 1280 x 800 and on
a phone for a person to look at."""

from __future__ import annotations

import array
import asyncio
import json
import time
import wave
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Page, expect

from ivr.api import build_api
from ivr.auth import TokenBook
from ivr.config import Settings
from ivr.console.users import UserRecord, UserStore, hash_password
from ivr.emulator.caller import synthesize
from ivr.flows.recording import Recording
from ivr.qa_worker import QaWorker
from routing.config import QueueConfig
from routing.memory import Agent
from routing.redis import RedisRouter
from speech.qa import Transcriber
from speech.recognizer import ModelRegistry
from tests.browser.chromium import DESKTOP, PASSWORD, PHONE, SHOTS, served_in_chromium

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


def _write(path: Path, pcm: bytes) -> None:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(pcm)


def _legs(base: Path) -> None:
    """The agent greets, leaves 9 s of dead air, closes; the caller answers after that:
    the three files MixMonitor writes (caller, agent and their mix)."""
    agent = (
        synthesize("안녕하세요 안내 센터입니다") + bytes(2 * 8000 * 9) + synthesize("감사합니다")
    )
    caller = bytes(len(agent) + 8000) + synthesize("네 반품 안내 부탁합니다")
    agent += bytes(len(caller) - len(agent))
    a, c = array.array("h"), array.array("h")
    a.frombytes(agent)
    c.frombytes(caller)
    mix = array.array("h", (max(-32768, min(32767, x + y)) for x, y in zip(a, c, strict=True)))
    _write(Path(f"{base}-agent.wav"), agent)
    _write(Path(f"{base}-caller.wav"), caller)
    _write(Path(f"{base}-mix.wav"), mix.tobytes())


async def _checked_call(router: RedisRouter, folder: Path) -> dict[str, str]:
    """A recorded call through the engine's QA worker (real Vosk): its qa_result event
    (``folder``: absolute, as the engine's recorder makes it)."""
    base = folder / time.strftime("%Y-%m-%d") / "1764400000.42-ann-00042"
    now = time.time()
    recording = Recording(
        call="1764400000.42", queue="sales", agent="ann", language="ko",
        caller=f"{base}-caller.wav", agent_leg=f"{base}-agent.wav", mix=f"{base}-mix.wav",
        started=now, expires=now + 86400,
    )  # fmt: skip
    transcriber = Transcriber(ModelRegistry(), workers=2)
    worker = QaWorker(folder, router=router, transcriber=transcriber, rules=ROOT / "qa")
    try:
        worker.planned(recording)
        await asyncio.to_thread(_legs, base)
        worker.finished(recording, answered=True)
        await worker.drain()
    finally:
        transcriber.close()
    [result] = [e for _, e in await router.events(0) if e.get("event") == "qa_result"]
    return result


@dataclass
class Console:
    url: str
    router: RedisRouter
    browser: Browser
    result: dict[str, str]


@pytest.fixture
async def console(redis_url: str, tmp_path: Path) -> AsyncIterator[Console]:
    router = RedisRouter.connect(redis_url)
    await router.redis.flushall()
    await router.start()
    await router.replace_queues({"sales": QueueConfig.model_validate({"skills": {"sales": 1}})})
    await router.add_agents([Agent("ann", "PJSIP/1001", {"sales": 5}, site="seoul")])
    settings = Settings(users_file=tmp_path / "users.json", recordings_dir=tmp_path / "recordings")
    result = await _checked_call(router, settings.recordings_dir)
    users = UserStore(settings.users_file)
    users.put(UserRecord("ada", "admin", hash_password(PASSWORD)))
    app = build_api(router, TokenBook(), None, settings)
    try:
        async with served_in_chromium(app) as (url, browser):
            yield Console(url, router, browser, result)
    finally:
        await router.close()


async def _page(console: Console, options: dict[str, Any]) -> tuple[Page, list[str]]:
    """A logged-in admin's quality page; the browser's errors (CSP refusals too) listed."""
    context = await console.browser.new_context(**options)
    page = await context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    await page.goto(f"{console.url}/console/login?next=/console/quality")
    await page.fill("input[name=name]", "ada")
    await page.fill("input[name=password]", PASSWORD)
    await page.click("button[type=submit]")
    await expect(page).to_have_url(f"{console.url}/console/quality")
    return page, errors


#: Whether the audio element stands within a second after ``at`` (it plays on from there).
AT = (
    "([id, at]) => { const a = document.getElementById(id); "
    "return a.readyState >= 1 && a.currentTime >= at - 0.05 && a.currentTime < at + 1; }"
)


async def test_a_play_button_seeks_the_recording_to_the_match(console: Console) -> None:
    rules = {r["id"]: r for r in json.loads(console.result["rules"])}
    [gap] = rules["dead-air"]["evidence"]
    assert rules["dead-air"]["outcome"] == "violated" and 1 < gap["start"] < 5

    page, errors = await _page(console, DESKTOP)
    ranges: list[str] = []
    page.on(
        "request",
        lambda r: ranges.append(r.headers.get("range", "")) if "/recording" in r.url else None,
    )
    card = page.locator("article.qa-call")
    await expect(card).to_have_count(1)
    await expect(card.locator(".qa-who strong")).to_have_text("ann")
    rule = card.locator("li.rule", has=page.locator(".rule-id", has_text="dead-air"))
    await expect(rule.locator(".badge.outcome")).to_have_text("violated")
    button = rule.locator("button.play")
    at = float(await button.get_attribute("data-at") or "nan")
    assert abs(at - gap["start"]) < 0.01
    words = await rule.locator("q.words").inner_text()
    assert "…" in words and "s]" in words, words  # words either side of the gap's length
    audio_id = await button.get_attribute("data-play")
    assert ranges == []  # preload none: nothing fetched before a play
    await page.screenshot(path=str(SHOTS / "quality-desktop.png"), full_page=True)

    await button.click()  # the first play: loaded with #t=, started at the match
    await page.wait_for_function(AT, arg=[audio_id, at], timeout=10_000)
    assert ranges and all(r.startswith("bytes=") for r in ranges), ranges
    await page.evaluate(
        "(id) => { const a = document.getElementById(id); a.pause(); a.currentTime = 0; }",
        audio_id,
    )
    await page.wait_for_function(
        "(id) => document.getElementById(id).currentTime < 0.5", arg=audio_id
    )
    await button.click()  # loaded already: a seek (currentTime)
    await page.wait_for_function(AT, arg=[audio_id, at], timeout=10_000)
    await page.context.close()

    phone, phone_errors = await _page(console, PHONE)
    await expect(phone.locator("article.qa-call button.play").first).to_be_visible()
    width = await phone.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the page is {width} px wide on a 390 px phone"
    await phone.screenshot(path=str(SHOTS / "quality-phone.png"), full_page=True)
    await phone.context.close()
    assert errors == [] and phone_errors == [], errors + phone_errors
    played = [a for a in await console.router.audit_log(100) if a["action"] == "recording.play"]
    assert played and {a["actor"] for a in played} == {"ada"}
