"""The lines Channel methods send: each value one argument, whatever path encodes it."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from ivr.agi.channel import Channel, PlaybackResult
from ivr.agi.protocol import EnvironmentParser, encode_command, escape_app_arg
from ivr.errors import UnsafeArgumentError


class Recorder:
    """Answers every command with ``reply`` at once and keeps what was sent."""

    def __init__(self, reply: bytes = b"200 result=0\n") -> None:
        self.reply = reply
        self.sent: list[bytes] = []

    async def write(self, data: bytes) -> None:
        self.sent.append(data)

    async def read(self) -> bytes:
        return self.reply


def channel(transport: Recorder) -> Channel:
    env = EnvironmentParser().feed(b"agi_network: yes\nagi_uniqueid: 1\n\n")
    assert env is not None
    return Channel(env, transport, command_timeout=1)


class TestExecData:
    @given(
        st.lists(
            st.text(alphabet=st.characters(codec="utf-8", blacklist_characters="\r\n\x00")),
            min_size=1,
            max_size=5,
        )
    )
    @example(["PJSIP/1001", "20", "g"])
    @example(["PJSIP/1001&PJSIP/1002", "a,b", 'say "hi"', "f(x)", "[1]", "back\\slash"])
    @example(["", ","])
    @example(['say "hi"', "f(x)", "[1]", "back\\slash"])
    def test_exec_sends_each_value_escaped(self, values: list[str]) -> None:
        """Plain or not, the data is what escape_app_arg makes of each value, comma-joined."""
        transport = Recorder()
        data = ",".join(escape_app_arg(value) for value in values)
        try:
            expected = encode_command("EXEC", "Dial", *((data,) if data else ()))
        except UnsafeArgumentError:
            return  # too long for one line: refused either way
        asyncio.run(channel(transport).exec("Dial", *values))
        assert transport.sent == [expected]

    @pytest.mark.parametrize("bad", ["a\nHANGUP", "x\r", "nul\x00"])
    def test_exec_refuses_line_breaks(self, bad: str) -> None:
        """CR, LF and NUL in an application argument are refused before anything is sent."""
        transport = Recorder()
        with pytest.raises(UnsafeArgumentError):
            asyncio.run(channel(transport).exec("Dial", "PJSIP/1", bad))
        assert transport.sent == []


class TestPromptEnd:
    @pytest.mark.parametrize(
        ("reply", "result"),
        [
            (b"200 result=0 endpos=1600\n", PlaybackResult(None, 1600)),
            (b"200 result=53 endpos=800\n", PlaybackResult("5", 800)),
            (b"200 result=0 endpos=x\n", PlaybackResult(None, 0)),
        ],
    )
    def test_stream_file_reads_digit_and_position(
        self, reply: bytes, result: PlaybackResult
    ) -> None:
        """The digit that stopped the prompt and its end position, as Asterisk reports them."""
        transport = Recorder(reply)
        got = asyncio.run(channel(transport).stream_file("beep", "0123456789"))
        assert got == result
        assert transport.sent == [b'STREAM FILE beep "0123456789"\n']
