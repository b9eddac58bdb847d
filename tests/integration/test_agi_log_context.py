"""A call's log lines name the call: the server sets it once, the lines read it."""

from __future__ import annotations

import json

import pytest
import structlog

from ivr import log
from ivr.agi.channel import Channel
from ivr.agi.server import FastAgiServer
from ivr.testing import AsteriskEmulator


async def test_lines_a_call_logs_name_its_uniqueid_and_flow(
    agi_server: FastAgiServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """What a handler logs carries the call's uniqueid and flow (its script); another
    call's lines carry theirs, and a line logged outside any call neither."""
    config = structlog.get_config()
    structlog.contextvars.clear_contextvars()
    log.configure(json=True, level="info")
    try:

        async def handler(channel: Channel) -> None:
            structlog.get_logger("t").info("handler.ran")
            await channel.hangup()

        agi_server.route("sales", handler)
        agi_server.route("support", handler)
        emulator = AsteriskEmulator(port=agi_server.port)
        await emulator.call("sales", uniqueid="1795356168.1")
        await emulator.call("support", uniqueid="1795356168.2")
        structlog.get_logger("t").info("outside")
    finally:
        structlog.configure(**config)
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line]
    named = [(line["event"], line.get("uniqueid"), line.get("flow")) for line in lines]
    assert named == [
        ("handler.ran", "1795356168.1", "sales"),
        ("handler.ran", "1795356168.2", "support"),
        ("outside", None, None),
    ]


async def test_a_crash_is_logged_with_its_traceback_and_an_agi_failure_without(
    agi_server: FastAgiServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """A handler's bug is logged with its traceback; an AGI failure (an outcome, not a
    bug) without one; both lines name the call, and both callers get the fallback."""
    config = structlog.get_config()
    structlog.contextvars.clear_contextvars()
    log.configure(json=True, level="info")
    try:

        async def buggy(channel: Channel) -> None:
            await channel.answer()
            raise KeyError("menu")

        async def failing(channel: Channel) -> None:
            await channel.command("SPEECH RECOGNIZE", "x")  # the emulator does not know it

        agi_server.route("buggy", buggy)
        agi_server.route("failing", failing)
        emulator = AsteriskEmulator(port=agi_server.port)
        crashed = await emulator.call("buggy", uniqueid="1795356168.3")
        failed = await emulator.call("failing", uniqueid="1795356168.4")
    finally:
        structlog.configure(**config)
    assert (crashed.agistatus, failed.agistatus) == ("FAILURE", "FAILURE")
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line]
    by_event = {line["event"]: line for line in lines}
    crash, failure = by_event["agi.handler_crashed"], by_event["agi.call_failed"]
    assert (crash["uniqueid"], crash["flow"]) == ("1795356168.3", "buggy")
    assert "KeyError: 'menu'" in crash["exception"]
    assert (failure["uniqueid"], failure["flow"]) == ("1795356168.4", "failing")
    assert "exception" not in failure
