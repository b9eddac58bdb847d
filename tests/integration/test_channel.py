"""Channel methods over the real FastAGI server against the Asterisk emulator."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from ivr.agi.channel import Channel, ChannelState, DigitsResult, PlaybackResult, RecordResult
from ivr.agi.server import FastAgiServer
from ivr.errors import (
    ApplicationNotFoundError,
    ChannelHangup,
    PlaybackError,
    UnknownCommandError,
    UnsafeArgumentError,
    UsageError,
)
from ivr.testing import (
    Action,
    AsteriskEmulator,
    DialOutcome,
    Hangup,
    Press,
    SessionResult,
    Talk,
    Timeline,
)

Body = Callable[[Channel], Awaitable[Any]]


async def run(
    server: FastAgiServer,
    body: Body,
    actions: list[Action] | None = None,
    **call: Any,
) -> tuple[Any, BaseException | None, SessionResult]:
    """Run ``body`` as the handler of one emulated call; return its value or error."""
    outcome: dict[str, Any] = {"value": None, "error": None}

    async def handler(channel: Channel) -> None:
        try:
            outcome["value"] = await body(channel)
        except BaseException as exc:
            outcome["error"] = exc
            raise

    server.route("t", handler)
    emulator = AsteriskEmulator(port=server.port)
    result = await asyncio.wait_for(emulator.call("t", actions=actions or [], **call), 20)
    return outcome["value"], outcome["error"], result


class TestCommands:
    async def test_answer_and_status(self, agi_server: FastAgiServer) -> None:
        """answer() brings the channel up; channel_status() reports it as UP."""

        async def body(ch: Channel) -> ChannelState:
            await ch.answer()
            return await ch.channel_status()

        value, error, _ = await run(agi_server, body)
        assert error is None and value is ChannelState.UP

    async def test_stream_file_stopped_by_digit(self, agi_server: FastAgiServer) -> None:
        """A key in the escape set stops the prompt and is returned with the position."""

        async def body(ch: Channel) -> PlaybackResult:
            return await ch.stream_file("demo-congrats", "0123456789")

        value, _, _ = await run(agi_server, body, [Press("5", on="STREAM FILE", after=1.0)])
        assert value == PlaybackResult("5", 8000)

    async def test_stream_file_plays_to_the_end(self, agi_server: FastAgiServer) -> None:
        """Keys outside the escape set do not stop the prompt."""

        async def body(ch: Channel) -> PlaybackResult:
            return await ch.stream_file("beep", "1")

        value, _, result = await run(agi_server, body, [Press("9", on="STREAM FILE", after=0.1)])
        assert value == PlaybackResult(None, 3404)
        assert result.played == ["beep"]

    async def test_missing_file_is_not_a_hangup(self, agi_server: FastAgiServer) -> None:
        """result=-1 for a missing file on a live channel is a PlaybackError; the call goes on."""

        async def body(ch: Channel) -> str | None:
            with pytest.raises(PlaybackError, match="no-such-file"):
                await ch.stream_file("no-such-file")
            await ch.set_variable("AFTER", "yes")
            return await ch.get_variable("AFTER")

        value, error, _ = await run(agi_server, body)
        assert error is None and value == "yes"

    async def test_get_data(self, agi_server: FastAgiServer) -> None:
        """Digits end on '#', on max digits, or on the timeout (then flagged)."""

        async def body(ch: Channel) -> list[DigitsResult]:
            return [
                await ch.get_data("beep", 3000, 6),
                await ch.get_data("beep", 3000, 3),
                await ch.get_data("beep", 1000, 4),
            ]

        actions: list[Action] = [
            Press("12#", on="GET DATA", nth=1, after=1.0),
            Press("9876", on="GET DATA", nth=2, after=1.0),  # the 6 lands in the next GET DATA
            Press("4", on="GET DATA", nth=3, after=0.2),
        ]
        value, _, _ = await run(agi_server, body, actions)
        assert value == [
            DigitsResult("12", False),
            DigitsResult("987", False),
            DigitsResult("46", True),
        ]

    async def test_wait_for_digit(self, agi_server: FastAgiServer) -> None:
        """A key returns the key; no key within the timeout returns None."""

        async def body(ch: Channel) -> list[str | None]:
            return [await ch.wait_for_digit(2000), await ch.wait_for_digit(500)]

        value, _, _ = await run(agi_server, body, [Press("*", at=0.5)])
        assert value == ["*", None]

    async def test_say_digits_and_number(self, agi_server: FastAgiServer) -> None:
        """say_* play the digit prompts; a key in the escape set interrupts and is returned."""

        async def body(ch: Channel) -> list[str | None]:
            return [await ch.say_digits("123"), await ch.say_number(42, "#")]

        value, _, result = await run(agi_server, body, [Press("#", on="SAY NUMBER", after=0.1)])
        assert value == [None, "#"]
        assert result.played[:3] == ["digits/1", "digits/2", "digits/3"]

    async def test_record_file(self, agi_server: FastAgiServer) -> None:
        """A message ends on silence after speech, or on '#'."""

        async def body(ch: Channel) -> list[RecordResult]:
            first = await ch.record_file("/tmp/msg1", "wav", "#", 20000, silence_s=2)
            second = await ch.record_file("/tmp/msg2", "wav", "#", 20000, beep=True)
            return [first, second]

        actions: list[Action] = [
            Talk(3.0, on="RECORD FILE /tmp/msg1", after=0.5),
            Talk(1.0, on="RECORD FILE /tmp/msg2", after=0.6),
            Press("#", on="RECORD FILE /tmp/msg2", after=2.0),
        ]
        value, _, _ = await run(agi_server, body, [], timeline=Timeline(actions, dtx=False))
        # A continuous phone: frames flow all along (0.5 s quiet, 3 s talk, 2 s quiet);
        # the 1 s of trailing silence past s=1 is cut off: 5.52 s - 1 s = 36160 samples.
        assert value[0] == RecordResult("timeout", None, 36160)
        assert value[1].ended_by == "dtmf" and value[1].digit == "#"
        # With silence suppression only the 3 s of talk come (24000 samples), and no
        # silent frame ever trips s=: the take runs to its 20 s limit.
        value, _, _ = await run(agi_server, body, [], timeline=Timeline(actions, dtx=True))
        assert value[0] == RecordResult("timeout", None, 24000)
        assert value[1].ended_by == "dtmf"

    async def test_exec_and_unknown_application(self, agi_server: FastAgiServer) -> None:
        """exec() returns the application's result; an unknown application says which."""

        async def body(ch: Channel) -> int:
            with pytest.raises(ApplicationNotFoundError, match="NoSuchApp"):
                await ch.exec("NoSuchApp", "x")
            return await ch.exec("Playback", "beep")

        value, error, _ = await run(agi_server, body)
        assert (value, error) == (0, None)

    async def test_dial_outcomes(self, agi_server: FastAgiServer) -> None:
        """Dial with 'g' returns 0 after the agent hangs up; DIALSTATUS tells the outcome."""

        async def body(ch: Channel) -> list[tuple[int, str | None]]:
            out = []
            for endpoint in ("PJSIP/1001", "PJSIP/1002", "PJSIP/1003"):
                code = await ch.exec("Dial", endpoint, "20", "g")
                out.append((code, await ch.get_variable("DIALSTATUS")))
            return out

        emulator_dial = {
            "PJSIP/1001": DialOutcome("NOANSWER"),
            "PJSIP/1002": DialOutcome("BUSY", ring=0.5),
            "PJSIP/1003": DialOutcome("ANSWER", ring=1, talk=30),
        }

        async def handler(channel: Channel) -> None:
            result.append(await body(channel))

        result: list[Any] = []
        agi_server.route("dial", handler)
        emulator = AsteriskEmulator(port=agi_server.port, dial=emulator_dial)
        call = await emulator.call("dial")
        assert result == [[(0, "NOANSWER"), (0, "BUSY"), (0, "ANSWER")]]
        assert call.dialled == ["PJSIP/1001", "PJSIP/1002", "PJSIP/1003"]

    async def test_variables_quoting(self, agi_server: FastAgiServer) -> None:
        """Values with quotes, backslashes and spaces come back unchanged."""
        tricky = 'He said "hi" \\ then left; ${EVIL} "'

        async def body(ch: Channel) -> list[str | None]:
            await ch.set_variable("CALLER_SAID", tricky)
            return [
                await ch.get_variable("CALLER_SAID"),
                await ch.get_variable("NOT_SET"),
                await ch.get_full_variable("${CALLERID(num)}"),
            ]

        value, _, _ = await run(agi_server, body, callerid="5551234")
        assert value == [tricky, None, "5551234"]

    async def test_errors_name_the_command(self, agi_server: FastAgiServer) -> None:
        """510 and 520 become errors that name the command and show the usage."""

        async def body(ch: Channel) -> None:
            with pytest.raises(UnknownCommandError, match="BOGUS"):
                await ch.command("BOGUS COMMAND")
            with pytest.raises(UsageError, match="Waits up to"):
                await ch.command("WAIT FOR DIGIT")
            with pytest.raises(UnsafeArgumentError, match="LF"):
                await ch.set_variable("X", "a\nHANGUP")
            await ch.verbose("still here", 3)
            await ch.set_music(True, "default")
            await ch.noop("ok")

        _, error, result = await run(agi_server, body)
        assert error is None
        assert not any("HANGUP" in c for c in result.commands)


class TestHangup:
    async def test_hangup_mid_prompt(self, agi_server: FastAgiServer) -> None:
        """A hang-up during a prompt raises ChannelHangup, not a playback error."""

        async def body(ch: Channel) -> None:
            await ch.answer()
            await ch.stream_file("demo-congrats")

        _, error, result = await run(agi_server, body, [Hangup(on="STREAM FILE", after=1.0)])
        assert isinstance(error, ChannelHangup)
        assert result.hung_up and result.agistatus == "HANGUP"

    async def test_hangup_notice_while_idle(self, agi_server: FastAgiServer) -> None:
        """A hang-up between commands comes as the HANGUP notice; a dead-channel command
        is still answered, and the next one a dead channel refuses raises."""

        async def body(ch: Channel) -> None:
            await ch.answer()
            await asyncio.sleep(0.3)
            await ch.noop("after")  # Asterisk still answers NOOP on a dead channel
            assert ch.hung_up
            await ch.stream_file("beep")

        _, error, result = await run(agi_server, body, [Hangup(at=0.1)])
        assert isinstance(error, ChannelHangup) and error.how == "HANGUP notice"
        assert not any(c.startswith("STREAM FILE") for c in result.commands)

    async def test_dead_channel_reply_511(self, agi_server: FastAgiServer) -> None:
        """After the hang-up, only dead-channel commands still run; the rest raise at once."""
        seen: list[Any] = []

        async def body(ch: Channel) -> None:
            try:
                await ch.wait_for_digit(6000)
            except ChannelHangup:
                seen.append(await ch.get_variable("CHANNEL"))
                with pytest.raises(ChannelHangup):
                    await ch.stream_file("beep")
                raise

        _, error, result = await run(agi_server, body, [Hangup(on="WAIT FOR DIGIT", after=1)])
        assert isinstance(error, ChannelHangup)
        assert seen and seen[0].startswith("PJSIP/")
        assert not any(c.startswith("STREAM FILE") for c in result.commands)

    async def test_eof_is_a_hangup(self, agi_server: FastAgiServer) -> None:
        """Asterisk closing the socket mid-command raises ChannelHangup."""
        errors: list[BaseException] = []

        async def handler(ch: Channel) -> None:
            try:
                await ch.wait_for_digit(10000)
            except BaseException as exc:
                errors.append(exc)
                raise

        agi_server.route("eof", handler)
        reader, writer = await asyncio.open_connection("127.0.0.1", agi_server.port)
        writer.write(b"agi_network: yes\nagi_network_script: eof\n\n")
        await reader.readline()
        writer.close()
        await writer.wait_closed()
        for _ in range(50):
            if errors:
                break
            await asyncio.sleep(0.02)
        assert isinstance(errors[0], ChannelHangup) and errors[0].how == "connection closed"

    async def test_handler_that_ignores_hangup_is_ended(self, agi_server: FastAgiServer) -> None:
        """A handler that swallows the hang-up and lingers is cancelled; its socket closes."""
        cancelled = asyncio.Event()

        async def handler(ch: Channel) -> None:
            try:
                await ch.wait_for_digit(5000)
            except ChannelHangup:
                try:
                    await asyncio.sleep(3600)
                except asyncio.CancelledError:
                    cancelled.set()
                    raise

        agi_server.route("stubborn", handler)
        emulator = AsteriskEmulator(port=agi_server.port)
        call = await asyncio.wait_for(
            emulator.call("stubborn", actions=[Hangup(on="WAIT", after=0.1)]), 5
        )
        assert call.agistatus == "HANGUP"
        await asyncio.wait_for(cancelled.wait(), 2)
        await asyncio.sleep(0.05)
        assert agi_server.active_calls == 0


async def test_hangup_seen_while_no_command_runs(agi_server: FastAgiServer) -> None:
    """A call waiting on something else (a queue) learns of the hang-up as it happens."""
    woke: list[float] = []

    async def handler(ch: Channel) -> None:
        await ch.answer()
        started = asyncio.get_running_loop().time()
        await asyncio.wait_for(ch.wait_for_hangup(), 5)
        woke.append(asyncio.get_running_loop().time() - started)
        await ch.noop("cleanup")  # dead-channel commands still run, without raising
        woke.append(-1)

    agi_server.route("idle", handler)
    emulator = AsteriskEmulator(port=agi_server.port)
    result = await emulator.call("idle", actions=[Hangup(at=0.3)])
    assert len(woke) == 2 and woke[0] < 1.0
    assert result.commands == ["ANSWER", "NOOP cleanup"]
    assert agi_server.stats.hangups == 1  # the handler ended normally, the caller hung up
