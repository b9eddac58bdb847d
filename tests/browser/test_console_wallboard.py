"""The wallboard in headless Chromium (Debian's, driven by Playwright) while emulated calls
go through the engine's FastAGI into the sales queue and bob answers them: each change
routing writes to Redis is timed until the page's DOM shows it, the day's figures it
moves too (bob's and the queue's handled calls), and the 95th percentile must stay under
the issue's 1 s. The board is saved with a call waiting and with bob on
the call, at 1280 x 800 and on a phone, in ``tests/browser/screenshots/``.

The console, its users and the floor are ``test_console_pages``'s fixture; this module
adds the engine that places the calls (a queue flow on an :class:`Engine` with the router
and the AMI answer tracker, as ``ivr serve`` wires them) and an emulated Asterisk that
runs in real time, so the phone rings and the call lasts.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Page, expect

from ivr.ami import AmiClient, AmiConfig
from ivr.centre.tracker import AnswerTracker
from ivr.flows.interpreter import Engine
from ivr.flows.ports import SpeechPrompts
from ivr.testing import AsteriskEmulator, DialOutcome
from routing.redis import RedisRouter
from routing.types import DEFAULT_GROUP
from tests.browser import test_console_pages as pages
from tests.browser.chromium import DESKTOP, PHONE, SHOTS
from tests.browser.test_console_pages import Console, log_in, shoot
from tests.integration.helpers.engine_rig import flows_in, serving

pytestmark = pytest.mark.slow

# The shared fixture (a fixture is found by its name in the module).
console = pages.console

FLOW = """
id: live
nodes:
  sales: {type: queue, queue: sales, next: bye, on_failure: bye}
  bye: {type: hangup}
"""
#: Calls timed; seven changes each, so the 95th percentile rests on 70 samples.
CALLS = 10
#: bob's phone rings this long and the call lasts this long (emulated, in real time).
ANSWER = DialOutcome("ANSWER", ring=0.3, talk=0.5)

#: Installed in the page: every time the wallboard's DOM changes, a *look* at what it
#: shows (the floor's waiting calls; bob's state and the calls he handled today, his
#: tile's "handled"; the sales queue's calls handled today: both answered and completed,
#: ROUTING.md) with the
#: browser's wall clock (Date.now(), taken first thing in the observer's callback, right
#: after the page's script wrote the DOM and before it is painted), kept when it differs
#: from the last look.
OBSERVE = """() => {
  const root = document.querySelector("#wallboard");
  window.seen = [];
  let last = "";
  const look = () => {
    const t = Date.now();
    const waiting = root.querySelector("#live-floor .tile .figure");
    const bob = root.querySelector("#live-agents [data-agent=bob]");
    const state = bob && bob.className.match(/state-(\\S+)/);
    const mine = bob && bob.textContent.match(/(\\d+) handled/);
    const sales = [...root.querySelectorAll("#live-queues tbody tr")].find(
      (row) => row.cells[0].textContent === "sales");
    const now = {
      waiting: waiting ? Number(waiting.textContent) : null,
      bob: state ? state[1] : null,
      bob_handled: mine ? Number(mine[1]) : null,
      handled: sales ? Number(sales.querySelector("[data-label=Handled]").textContent) : null,
    };
    const key = JSON.stringify(now);
    if (key !== last) {
      last = key;
      window.seen.push({ t, ...now });
    }
  };
  new MutationObserver(look).observe(
    root, { subtree: true, childList: true, characterData: true, attributes: true });
  look();
}"""


@dataclass
class Line:
    """The engine's FastAGI side and the emulated Asterisk that calls it."""

    emulator: AsteriskEmulator

    async def call(self) -> None:
        """A call into the sales queue that bob answers (whoever is reserved: bob)."""
        result = await asyncio.wait_for(
            self.emulator.call("live", callerid="5559876", dial={"PJSIP/1002": ANSWER}), 30
        )
        assert result.dialled == ["PJSIP/1002"], result


@contextlib.asynccontextmanager
async def engine_line(router: RedisRouter, folder: Path) -> AsyncIterator[Line]:
    """The queue flow on an engine with the console's router; bob goes on call from the
    answer (AMI's DialEnd, through the tracker), as with ``ivr serve``."""
    async with contextlib.AsyncExitStack() as stack:
        registry = flows_in(folder / "flows", {"live": FLOW})
        tracker = AnswerTracker()
        engine = Engine(
            flows=registry.get,
            prompts=SpeechPrompts(folder / "prompts"),
            router=router,
            queues=router.queues,
            answers=tracker,
        )
        stack.push_async_callback(engine.aclose)
        server, _ = await serving(registry, engine)
        stack.push_async_callback(server.drain, 1)
        emulator = AsteriskEmulator(port=server.port, sound_dirs=[folder / "prompts"], speed=1.0)
        stack.push_async_callback(emulator.close)
        ami_server = await emulator.start_ami()
        emulator.pbx.add_endpoint("PJSIP/1002")
        ami = AmiClient(
            AmiConfig(port=ami_server.port, username="ivr", secret="ivr-secret", ping_interval=0)
        )
        stack.push_async_callback(ami.close)
        tracker.attach(ami)
        await ami.connect()
        yield Line(emulator)


async def open_board(console: Console, options: dict[str, Any]) -> tuple[Page, list[str]]:
    """The admin's wallboard, live; the browser's errors as they come."""
    context = await console.browser.new_context(**options)
    page = await context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    await log_in(page, console.url, "ada")
    await expect(page.locator("[data-age]")).to_contain_text("Live", timeout=10_000)
    await expect(page.locator("#live-agents [data-agent=bob]")).to_contain_text("available")
    return page, errors


async def shows(page: Page, check: str) -> None:
    """Until the board's last look ``s`` passes ``check`` (JavaScript)."""
    await page.wait_for_function(
        f"() => {{ const s = window.seen[window.seen.length - 1]; return {check}; }}",
        timeout=10_000,
    )


async def one_call(console: Console, line: Line, page: Page, handled: int, mine: int) -> None:
    """bob pauses; a call waits; bob comes back, is rung, answers, hangs up. Each step
    waits until the board shows the one before, so every change is a change on screen."""
    await console.router.pause("bob", "coaching")
    await shows(page, "s.bob === 'paused'")
    call = asyncio.ensure_future(line.call())
    await shows(page, "s.waiting === 1")
    await console.router.resume("bob")
    await asyncio.wait_for(call, 30)
    done = f"s.handled === {handled} && s.bob_handled === {mine}"
    await shows(page, f"{done} && s.bob === 'available' && s.waiting === 0")


#: The events timed, and what the board must show once each is written: a look's field
#: and the values it may then have.
SHOWN: dict[str, tuple[str, tuple[object, ...]]] = {
    "paused": ("bob", ("paused",)),
    "enqueued": ("waiting", (1,)),
    "reserved": ("bob", ("ringing",)),
    "connected": ("bob", ("on_call",)),
    "completed": ("bob", ("wrap_up", "available")),
}
#: Figures of the day an event adds one to (a call handled: answered, then completed;
#: bob's tile and the queue's column alike), timed from the same write.
COUNTED: dict[str, tuple[str, ...]] = {"completed": ("bob_handled", "handled")}


def _first(seen: list[dict[str, Any]], cursor: int, field: str, values: tuple[object, ...]) -> int:
    """The first look from ``cursor`` on whose ``field`` is one of ``values``."""
    found = next((i for i in range(cursor, len(seen)) if seen[i][field] in values), None)
    assert found is not None, f"{field} never {values}; looks from there {seen[cursor:]}"
    return found


def latencies(
    events: list[tuple[str, dict[str, str]]], seen: list[dict[str, Any]]
) -> list[tuple[str, int]]:
    """(change, ms from its write in Redis to the board's first look that shows it) for
    every timed event and figure, in order; each is looked for from the look that showed
    the one before."""
    out: list[tuple[str, int]] = []
    counts = {figure: seen[0][figure] for figures in COUNTED.values() for figure in figures}
    cursor = 0
    for stream_id, fields in events:
        kind = fields["event"]
        if kind == "state" and (fields.get("agent"), fields.get("after")) == ("bob", "paused"):
            kind = "paused"
        if kind not in SHOWN:
            continue
        written = int(stream_id.partition("-")[0])
        cursor = _first(seen, cursor, *SHOWN[kind])
        out.append((kind, seen[cursor]["t"] - written))
        for figure in COUNTED.get(kind, ()):
            counts[figure] += 1
            shown = _first(seen, cursor, figure, (counts[figure],))
            out.append((figure, seen[shown]["t"] - written))
    return out


async def test_the_wallboard_follows_calls_within_a_second(
    console: Console, tmp_path: Path
) -> None:
    """Latency from a change in Redis to the wallboard's DOM, p95 < 1 s over 10 calls.

    The clock is shared because both ends read the same one, the host's wall clock
    (CLOCK_REALTIME): a change's time is its routing event's stream id, the millisecond
    of Redis's own wall clock when the operation's script wrote it (XADD ``*`` in the
    same script as the change, one atomic write); the browser's is ``Date.now()`` in a
    MutationObserver on the wallboard, called as soon as the page's script has written
    the DOM. Redis, Chromium and this test run on one machine, so there is no offset to
    estimate; the resolution is 1 ms (a stream id truncates: a latency may read up to
    1 ms short).

    Timed per call: bob paused by a supervisor (the test), the call enqueued by the
    engine's queue node, bob reserved as he resumes (ringing), bob on call from the
    answer (AMI's DialEnd through the tracker), the call completed (bob leaves it), and
    the day's figures the completion moves (bob's handled calls on his tile, the sales
    queue's Handled column), each from that same write: seven changes a call, all in
    the p95. A second browser (the phone) is connected meanwhile.
    """
    page, errors = await open_board(console, DESKTOP)
    phone, phone_errors = await open_board(console, PHONE)
    await page.evaluate(OBSERVE)
    start = (await console.router.tail(DEFAULT_GROUP, "0-0", count=100_000))[-1][0]
    first = await page.evaluate("window.seen[0]")
    handled, mine = first["handled"], first["bob_handled"]
    async with engine_line(console.router, tmp_path) as line:
        for n in range(1, CALLS + 1):
            await one_call(console, line, page, handled + n, mine + n)
        events = await console.router.tail(DEFAULT_GROUP, start, count=100_000)
        timed = latencies(events, await page.evaluate("window.seen"))

        # Looked at by a person: a call waiting, then bob on it, on both screens.
        await console.router.pause("bob", "coaching")
        talking = DialOutcome(ring=0.3, talk=3)
        slow = asyncio.ensure_future(
            line.emulator.call("live", callerid="5559876", dial={"PJSIP/1002": talking})
        )
        for board in (page, phone):
            await expect(board.locator("#live-floor .tile .figure").first).to_have_text("1")
        await shoot(page, "wallboard-waiting", "desktop")
        await shoot(phone, "wallboard-waiting", "phone")
        await console.router.resume("bob")
        for board in (page, phone):
            await expect(board.locator("#live-agents [data-agent=bob]")).to_contain_text("on call")
        await shoot(page, "wallboard-on-call", "desktop")
        await shoot(phone, "wallboard-on-call", "phone")
        await asyncio.wait_for(slow, 30)

    each = [k for kind in SHOWN for k in (kind, *COUNTED.get(kind, ()))]
    assert [k for k, _ in timed] == each * CALLS
    every = sorted(t for _, t in timed)
    cuts = statistics.quantiles(every, n=100, method="inclusive")
    p50, p95 = cuts[49], cuts[94]
    per = {k: sorted(t for kind, t in timed if kind == k) for k in each}
    print(
        f"\nwallboard, Redis write -> DOM, {len(every)} changes over {CALLS} calls: "
        f"p50 {p50:.0f} ms, p95 {p95:.0f} ms, max {every[-1]} ms; median / max per change: "
        f"{ {k: (statistics.median(ts), ts[-1]) for k, ts in per.items()} }"
    )
    assert p95 < 1000, timed
    assert errors == [] and phone_errors == [], errors + phone_errors
    for name in ("wallboard-waiting", "wallboard-on-call"):
        for size in ("desktop", "phone"):
            assert (SHOTS / f"{name}-{size}.png").stat().st_size > 5_000
