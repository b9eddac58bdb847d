"""A call's log lines name the call: the server sets it once, the lines read it."""

from __future__ import annotations

import asyncio
import json

import pytest
import structlog

from ivr import log
from ivr.agi.channel import Channel
from ivr.agi.protocol import encode_environment
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


async def test_a_hang_up_seen_while_the_call_is_idle_is_logged_naming_the_call(
    agi_server: FastAgiServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """The HANGUP notice of an idle call is taken where the connection reads it, outside
    the call's task: its line still names the call (and no other)."""
    config = structlog.get_config()
    structlog.contextvars.clear_contextvars()
    log.configure(json=True, level="debug")
    try:
        waiting = asyncio.Event()

        async def handler(channel: Channel) -> None:
            waiting.set()
            await channel.wait_for_hangup()

        agi_server.route("idle", handler)
        reader, writer = await asyncio.open_connection("127.0.0.1", agi_server.port)
        block = AsteriskEmulator().environment("idle", uniqueid="1795356168.5")
        writer.write(encode_environment(block))
        await asyncio.wait_for(waiting.wait(), 5)
        writer.write(b"HANGUP\n")
        await writer.drain()
        assert await asyncio.wait_for(reader.read(), 5) == b""  # the engine closed
        writer.close()
    finally:
        log.configure(json=True, level="info")  # debug off again
        structlog.configure(**config)
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line]
    (hangup,) = [line for line in lines if line["event"] == "agi.hangup"]
    assert (hangup["uniqueid"], hangup["flow"]) == ("1795356168.5", "idle")
