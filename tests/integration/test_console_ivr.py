"""Calls in the IVR on the live board, from the engine's own steps: an emulated call
shows at its flow node (a subflow's too) with the caller's number and language while
it is in the IVR, never with what the caller typed, and leaves the board when it hangs
up; a flow that marks the caller sensitive shows no number; the API's aggregator
alerts at the settings' thresholds."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from ivr.api import build_api
from ivr.auth import TokenBook
from ivr.config import Settings
from ivr.console import live, metrics
from ivr.console.board import Thresholds
from ivr.emulator.caller import Timeline
from routing.redis import RedisRouter
from tests.integration.helpers.console_rig import ADMIN, Mirror, Rig, console_rig

FRONT = """
id: front
defaults: {language: en, timeout: 30, retries: 0}
nodes:
  menu:
    type: menu
    prompt: For your account, press 1.
    options:
      - {digit: 1, goto: account}
    on_failure: bye
  account: {type: subflow, flow: account, next: bye}
  bye: {type: hangup}
"""

ACCOUNT = """
id: account
defaults: {timeout: 30, retries: 0}
nodes:
  number:
    type: gather
    prompt: Enter your account number, then the hash key.
    variable: account
    max_length: 8
    sensitive: true
    next: done
    on_failure: done
  done: {type: return}
"""

HIDDEN = """
id: hidden
sensitive: [caller]
defaults: {timeout: 30, retries: 0}
nodes:
  menu:
    type: menu
    prompt: Press 1 to leave.
    options:
      - {digit: 1, goto: bye}
    on_failure: bye
  bye: {type: hangup}
"""


#: Commands that read the caller's keys: an interruptible prompt, a wait of a second or more.
_READS_KEYS = re.compile(r'^(?:STREAM FILE \S+ "?[0-9*#]|WAIT FOR DIGIT \d{4,})', re.IGNORECASE)


class Caller(Timeline):
    """The caller, in real time, driven by the test: each key it is given is pressed
    at the next command that reads keys (one key a command, as a person answers)."""

    def __init__(self) -> None:
        super().__init__([], speed=1.0)
        self.keys = ""
        self.pressed = asyncio.Event()

    def press(self, keys: str) -> None:
        self.keys += keys
        self.pressed.clear()

    def command_started(self, line: str) -> None:
        super().command_started(line)
        if self.keys and _READS_KEYS.match(line):
            self.inject("dtmf", self.keys[0], delay=0.1)
            self.keys = self.keys[1:]
            if not self.keys:
                self.pressed.set()


@pytest.fixture
async def rig(redis_url: str, tmp_path: Path) -> AsyncIterator[Rig]:
    flows = {"front": FRONT, "account": ACCOUNT, "hidden": HIDDEN}
    async with console_rig(redis_url, tmp_path, flows=flows) as made:
        yield made


def _in_ivr(data: dict[str, dict[str, Any]], flow: str, node: str) -> dict[str, Any] | None:
    """The call shown in the IVR at ``flow``'s ``node``, if there is one."""
    for call in data["calls"].values():
        if call["stage"] == "ivr" and call["flow"] == flow and call["path"][-1:] == [node]:
            found: dict[str, Any] = call
            return found
    return None


async def _calls_per_node(rig: Rig) -> dict[tuple[str, str], float]:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{rig.port}") as http:
        reply = await http.get("/metrics")
    return {
        (sample.labels["flow"], sample.labels["node"]): sample.value
        for family in text_string_to_metric_families(reply.text)
        for sample in family.samples
        if sample.name == "ivr_calls"
    }


class TestCallsInTheIvr:
    async def test_a_call_shows_at_its_node_and_leaves_when_it_hangs_up(self, rig: Rig) -> None:
        """The board shows the call at the menu with its number and language, then at the
        subflow's gather, and drops it when the caller hangs up; the digits typed there
        never reach a console message."""
        caller = Caller()
        async with rig.connect("ada") as socket:
            board = Mirror(socket)
            await board.next()
            call = asyncio.ensure_future(rig.call("front", timeline=caller, callerid="5551234"))
            await board.until(lambda d: _in_ivr(d, "front", "menu") is not None)
            shown = _in_ivr(board.data, "front", "menu")
            assert shown is not None and shown["path"] == ["menu"]
            assert (shown["caller"], shown["language"]) == ("5551234", "en")
            assert (await _calls_per_node(rig))[("front", "menu")] == 1
            caller.press("1")
            await board.until(lambda d: _in_ivr(d, "account", "number") is not None)
            inside = _in_ivr(board.data, "account", "number")
            assert inside is not None and inside["id"] == shown["id"]
            assert inside["path"] == ["menu", "account", "number"]
            caller.press("7342")
            await asyncio.wait_for(caller.pressed.wait(), 20)
            caller.inject("hangup", delay=0.5)  # mid-gather, before the number is complete
            await board.until(lambda d: d["calls"] == {})
            result = await asyncio.wait_for(call, 30)
        assert result.hung_up  # the caller hung up mid-gather
        assert not any("7342" in json.dumps(m) for m in board.messages)
        assert await _calls_per_node(rig) == {}

    async def test_a_flow_that_marks_the_caller_sensitive_shows_no_number(self, rig: Rig) -> None:
        """``sensitive: [caller]`` keeps the number off the board (the node still shows)."""
        caller = Caller()
        async with rig.connect("ada") as socket:
            board = Mirror(socket)
            await board.next()
            call = asyncio.ensure_future(rig.call("hidden", timeline=caller, callerid="5559876"))
            await board.until(lambda d: _in_ivr(d, "hidden", "menu") is not None)
            shown = _in_ivr(board.data, "hidden", "menu")
            assert shown is not None and shown["caller"] == ""
            caller.press("1")
            await board.until(lambda d: d["calls"] == {})
            await asyncio.wait_for(call, 30)
        assert not any("5559876" in json.dumps(m) for m in board.messages)


async def test_the_apis_aggregator_alerts_at_the_settings_thresholds(
    redis_url: str, tmp_path: Path
) -> None:
    """IVR_ALERT_WAIT and IVR_ALERT_CALL reach the board of the aggregator the engine
    tells (``app.state.aggregator``); unset, a wait alerts at the queue's SL seconds."""
    router = RedisRouter.connect(redis_url)
    try:
        users = tmp_path / "users.json"
        settings = Settings(users_file=users, alert_wait=45.0, alert_call=900.0)
        app = build_api(router, TokenBook(), None, settings)
        assert app.state.aggregator.board.thresholds == Thresholds(wait=45.0, call=900.0)
        default = build_api(router, TokenBook(), None, Settings(users_file=users))
        assert default.state.aggregator.board.thresholds == Thresholds(wait=None, call=600.0)
    finally:
        await router.close()


async def test_calls_seen_before_the_live_data_starts_are_not_kept(redis_url: str) -> None:
    """Until the aggregator follows Redis (nobody asked yet, or Redis was away), calls
    that came and went leave nothing behind; one still in the IVR is in the first
    snapshot."""
    router = RedisRouter.connect(redis_url)
    aggregator = live.Aggregator(router, metrics=metrics.Metrics(process=False))
    try:
        for n in range(1000):
            aggregator.ivr_step(f"1.{n}", "front", "menu", caller="5551234")
            aggregator.ivr_left(f"1.{n}")
        aggregator.ivr_step("2.1", "front", "menu")
        aggregator.ivr_left("2.1")
        aggregator.ivr_step("2.2", "front", "menu")
        assert len(aggregator.board.changes()) == 1  # the call still in the IVR only
        aggregator.ivr_step("2.2", "front", "menu")
        await aggregator.ensure_started()
        assert list(aggregator.snapshot(ADMIN)["calls"]) == ["2.2"]
    finally:
        await aggregator.close()
        await router.close()
