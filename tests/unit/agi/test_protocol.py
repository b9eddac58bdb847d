"""The sans-I/O AGI protocol, fed the bytes real Asterisk 22 sent."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from ivr.agi.protocol import (
    ENV_ORDER,
    HANGUP_NOTICE,
    MAX_COMMAND_BYTES,
    EnvironmentParser,
    HangupNotice,
    Quoted,
    Reply,
    ReplyParser,
    encode_command,
    escape_app_arg,
    quote,
    split_command_line,
    token,
)
from ivr.errors import AgiProtocolError, UnsafeArgumentError

from ...conftest import TRANSCRIPTS


def parse_all(data: bytes) -> list[Reply | HangupNotice]:
    return ReplyParser().feed(data)


class TestEnvironment:
    def test_every_transcript_block_parses(self, agi_sessions: list[dict[str, Any]]) -> None:
        """Each captured environment block yields every agi_* key with its value."""
        for session in agi_sessions:
            block = session["env_block"]
            env = EnvironmentParser().feed(block.encode())
            assert env is not None
            lines = [line for line in block.split("\n") if line]
            assert len(env.variables) == len(lines)
            for line in lines:
                key, value = line.split(": ", 1) if ": " in line else (line[:-1], "")
                assert env.variables[key] == value

    def test_script_path_and_query_are_split_and_decoded(
        self, agi_sessions: list[dict[str, Any]]
    ) -> None:
        """agi_network_script '700?lang=en&x=a b' gives path 700 and its query arguments."""
        env = EnvironmentParser().feed(agi_sessions[0]["env_block"].encode())
        assert env is not None
        assert env.script == "700"
        assert dict(env.query) == {"lang": "en", "x": "a b"}
        assert env.callerid == "5551234"
        assert env.calleridname == "Alice"
        assert env.uniqueid == "1795356168.1"
        assert env.channel == "Local/700@ivr-00000000;2"
        assert env.get("accountcode") == ""

    def test_url_encoding_in_script_is_decoded(self) -> None:
        """Percent-escapes and '+' in the query are decoded; the path is unquoted."""
        block = b"agi_network: yes\nagi_network_script: sales%2Fvip?name=J%C3%B6rg+K&n=1\n\n"
        env = EnvironmentParser().feed(block)
        assert env is not None
        assert env.script == "sales/vip"
        assert env.query == {"name": "Jörg K", "n": "1"}

    def test_numbered_arguments_in_order(self) -> None:
        """agi_arg_N values come back as a tuple ordered by N, 10 after 9."""
        lines = [f"agi_arg_{n}: v{n}\n" for n in range(1, 11)]
        env = EnvironmentParser().feed(("agi_network: yes\n" + "".join(lines) + "\n").encode())
        assert env is not None
        assert env.args == tuple(f"v{n}" for n in range(1, 11))

    @pytest.mark.parametrize(
        "name",
        ["Bob\nagi_network_script: admin", "Bob\nSmith", "Bob\n\nSmith", "x\nagi_arg_1: evil"],
    )
    def test_line_breaks_in_caller_name_cannot_forge_keys(
        self, name: str, agi_sessions: list[dict[str, Any]]
    ) -> None:
        """A caller name holding line breaks stays the name: no key, route or end is forged."""
        block = agi_sessions[0]["env_block"].replace(
            "agi_calleridname: Alice", f"agi_calleridname: {name}"
        )
        parser = EnvironmentParser()
        env = parser.feed(block.encode())
        assert env is not None
        assert env.script == "700" and env.calleridname == name and env.args == ()
        assert env.get("threadid") == "140505378391744"
        assert parser.suspicious and parser.remainder == b""

    def test_repeated_key_is_refused(self) -> None:
        with pytest.raises(AgiProtocolError, match="sent twice"):
            EnvironmentParser().feed(b"agi_network: yes\nagi_network: no\n\n")

    def test_block_in_pieces_and_bytes_after_it_kept(self) -> None:
        """A block split across reads completes; bytes after the blank line are kept."""
        parser = EnvironmentParser()
        assert parser.feed(b"agi_network: yes\nagi_chan") is None
        env = parser.feed(b"nel: SIP/1\n\nextra")
        assert env is not None and env.channel == "SIP/1"
        assert parser.remainder == b"extra"

    def test_non_utf8_caller_name_survives(self) -> None:
        """A Latin-1 caller name is decoded, not rejected."""
        env = EnvironmentParser().feed(
            b"agi_network: yes\nagi_calleridname: J\xf6rg\nagi_callingpres: 0\n\n"
        )
        assert env is not None and env.calleridname == "Jörg"

    @pytest.mark.parametrize(
        "garbage",
        [b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", b"hello world\n", b"\n", b"agi_network yes\n"],
    )
    def test_garbage_is_refused(self, garbage: bytes) -> None:
        """Bytes that are not agi_* lines raise a protocol error naming what was expected."""
        with pytest.raises(AgiProtocolError, match=r"agi_|environment"):
            EnvironmentParser().feed(garbage)

    @given(st.data())
    def test_any_split_gives_the_same_environment(self, data: st.DataObject) -> None:
        """However the block is cut into reads, the result and the remainder are the same."""
        block = (TRANSCRIPTS / "agi-sessions.json").read_text()
        env_block = json.loads(block)[0]["env_block"].encode() + b"NOOP\n"
        cuts = sorted(data.draw(st.sets(st.integers(1, len(env_block) - 1), max_size=12)))
        parser = EnvironmentParser()
        pieces = [env_block[a:b] for a, b in zip([0, *cuts], [*cuts, None], strict=True)]
        while (env := parser.feed(pieces.pop(0))) is None:
            pass
        assert env == EnvironmentParser().feed(env_block)
        assert parser.remainder + b"".join(pieces) == b"NOOP\n"

    @given(
        st.lists(
            st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\n"), max_size=12),
            min_size=len(ENV_ORDER),
            max_size=len(ENV_ORDER),
        ),
        st.one_of(st.text(max_size=12).map(str.encode), st.binary(max_size=12)),
    )
    @example(["v"] * len(ENV_ORDER), b"HANGUP\n")  # all ASCII
    @example(["J\u00f6rg"] * len(ENV_ORDER), b"HANGUP\n")
    def test_a_whole_block_reads_as_line_by_line(self, values: list[str], after: bytes) -> None:
        """The one-match read of a block as setup_env() writes it gives what the line by
        line parser gives, for any values (': ', CR, non-ASCII, empty) and bytes after it.
        (Values with line breaks are not such a block: the tests above cover them.)"""
        block = "".join(f"{key}: {value}\n" for key, value in zip(ENV_ORDER, values, strict=True))
        data = block.encode() + b"\n" + after
        whole, lines = EnvironmentParser(), EnvironmentParser()
        try:
            expected = lines._feed_lines(data)
        except AgiProtocolError as exc:
            with pytest.raises(AgiProtocolError, match=re.escape(str(exc))):
                whole.feed(data)
            return
        assert whole.feed(data) == expected
        assert (whole.remainder, whole.suspicious) == (lines.remainder, lines.suspicious)

    def test_garbage_after_the_usual_start_is_refused_when_it_arrives(self) -> None:
        """The start of a block is kept until the block is whole, but a line that is not
        the next of setup_env()'s is refused at once, not when the block ends."""
        parser = EnvironmentParser()
        assert parser.feed(b"agi_network: yes\nagi_network_script: x\n") is None
        with pytest.raises(AgiProtocolError, match="not an AGI environment line"):
            parser.feed(b"GET / HTTP/1.1\n")

    def test_endless_line_is_refused(self) -> None:
        """A peer that never sends a newline cannot grow the buffer without bound."""
        parser = EnvironmentParser()
        with pytest.raises(AgiProtocolError, match="too long"):
            for _ in range(100):
                parser.feed(b"agi_x: " + b"a" * 8192)


class TestReplies:
    def test_every_transcript_reply_round_trips(self, agi_sessions: list[dict[str, Any]]) -> None:
        """Every received chunk parses into events whose raw bytes rebuild it exactly."""
        for session in agi_sessions:
            for exchange in session["exchanges"]:
                data = exchange["received"].encode()
                events = parse_all(data)
                assert b"".join(e.raw for e in events) == data
                assert isinstance(events[-1], Reply)

    @pytest.mark.parametrize(
        ("line", "code", "result", "data", "fields", "message"),
        [
            ("200 result=0", 200, "0", None, {}, ""),
            ("200 result=50 endpos=13600", 200, "50", None, {"endpos": "13600"}, ""),
            ("200 result= (timeout)", 200, "", "timeout", {}, ""),
            ("200 result=12", 200, "12", None, {}, ""),
            ('200 result=1 (a b"c)', 200, "1", 'a b"c', {}, ""),
            ("200 result=1 (f(x) y))", 200, "1", "f(x) y)", {}, ""),
            ("200 result=-1 endpos=0", 200, "-1", None, {"endpos": "0"}, ""),
            ("200 result=-2", 200, "-2", None, {}, ""),
            ("200 result=0 (timeout) endpos=0", 200, "0", "timeout", {"endpos": "0"}, ""),
            ("200 result=35 (dtmf) endpos=4000", 200, "35", "dtmf", {"endpos": "4000"}, ""),
            ("100 result=0 Trying...", 100, "0", None, {}, "Trying..."),
            ("200 result=0 Gosub complete", 200, "0", None, {}, "Gosub complete"),
            ("510 Invalid or unknown command", 510, None, None, {}, "Invalid or unknown command"),
            (
                "511 Command Not Permitted on a dead channel or intercept routine",
                511,
                None,
                None,
                {},
                "Command Not Permitted on a dead channel or intercept routine",
            ),
        ],
    )
    def test_reply_shapes(
        self,
        line: str,
        code: int,
        result: str | None,
        data: str | None,
        fields: dict[str, str],
        message: str,
    ) -> None:
        """Each reply shape Asterisk sends parses into code, result, data and fields."""
        (reply,) = parse_all(line.encode() + b"\n")
        assert isinstance(reply, Reply)
        assert (reply.code, reply.result, reply.data, dict(reply.fields), reply.message) == (
            code,
            result,
            data,
            fields,
            message,
        )

    def test_hangup_notice_before_reply(self) -> None:
        """'HANGUP' ahead of a reply is its own event, then the reply follows."""
        events = parse_all(b"HANGUP\n511 Command Not Permitted on a dead channel\n")
        assert events[0] is HANGUP_NOTICE
        assert isinstance(events[1], Reply) and events[1].code == 511

    def test_usage_block_is_one_reply(self, agi_sessions: list[dict[str, Any]]) -> None:
        """The multi-line 520 block is one reply carrying the usage text."""
        data = agi_sessions[0]["exchanges"][13]["received"].encode()
        (reply,) = parse_all(data)
        assert isinstance(reply, Reply)
        assert reply.code == 520
        assert reply.usage[0].startswith("Waits up to")
        assert reply.message == "End of proper usage."

    def test_single_line_520(self) -> None:
        """The short 520 form (no usage available) is a plain reply."""
        (reply,) = parse_all(b"520 Invalid command syntax.  Proper usage not available.\n")
        assert isinstance(reply, Reply) and reply.code == 520 and reply.usage == ()

    def test_bytes_split_anywhere(self, agi_sessions: list[dict[str, Any]]) -> None:
        """Feeding one byte at a time gives the same events as one read."""
        data = "".join(e["received"] for e in agi_sessions[0]["exchanges"]).encode()
        parser = ReplyParser()
        events = [event for i in range(len(data)) for event in parser.feed(data[i : i + 1])]
        assert events == parse_all(data)
        assert not parser.pending

    def test_value_and_endpos_helpers(self) -> None:
        """result and endpos read as integers where they are integers."""
        (reply,) = parse_all(b"200 result=-1 endpos=20000\n")
        assert isinstance(reply, Reply)
        assert (reply.value, reply.endpos) == (-1, 20000)

    def test_not_a_reply(self) -> None:
        """A line that is no reply is a protocol error."""
        with pytest.raises(AgiProtocolError, match="not an AGI reply"):
            parse_all(b"garbage\n")

    @given(st.binary(max_size=300))
    def test_parser_never_crashes_on_bytes(self, data: bytes) -> None:
        """Arbitrary bytes give events or AgiProtocolError, nothing else."""
        try:
            ReplyParser().feed(data)
        except AgiProtocolError:
            pass


class TestCommands:
    def test_transcript_commands_encode_identically(self) -> None:
        """Our encoder writes the same bytes the captured sessions sent."""
        assert encode_command("SET VARIABLE", "FOO", 'a b"c') == b'SET VARIABLE FOO "a b\\"c"\n'
        assert encode_command("STREAM FILE", "demo-congrats", Quoted("0123456789")) == (
            b'STREAM FILE demo-congrats "0123456789"\n'
        )
        assert encode_command("SAY DIGITS", "123", Quoted("")) == b'SAY DIGITS 123 ""\n'
        assert encode_command("GET DATA", "beep", 2000, 4) == b"GET DATA beep 2000 4\n"
        assert encode_command("EXEC", "Dial", "Local/agent1@agents,10") == (
            b"EXEC Dial Local/agent1@agents,10\n"
        )
        assert encode_command("GET FULL VARIABLE", "${CALLERID(num)}") == (
            b"GET FULL VARIABLE ${CALLERID(num)}\n"
        )

    @pytest.mark.parametrize("bad", ["a\nHANGUP", "x\r", "nul\x00"])
    def test_control_characters_are_refused(self, bad: str) -> None:
        """CR, LF and NUL have no escape in AGI: the encoder refuses them and says why."""
        with pytest.raises(UnsafeArgumentError, match=r"CR|LF|NUL"):
            encode_command("SET VARIABLE", "X", bad)

    def test_overlong_line_is_refused(self) -> None:
        """Asterisk would run the part past its buffer as a second command."""
        with pytest.raises(UnsafeArgumentError, match="another command"):
            encode_command("VERBOSE", "x" * MAX_COMMAND_BYTES)

    def test_verb_must_be_words(self) -> None:
        with pytest.raises(UnsafeArgumentError):
            encode_command("NOOP\nHANGUP")

    def test_a_command_without_arguments_encodes_the_same_every_time(self) -> None:
        """The line of an argument-less command is kept: the same bytes each time, the
        same verb with arguments still gets them, and a bad verb is refused each time."""
        assert [encode_command("NOOP") for _ in range(3)] == [b"NOOP\n"] * 3
        assert encode_command("NOOP", "x y") == b'NOOP "x y"\n'
        assert encode_command("NOOP") == b"NOOP\n"
        for _ in range(2):
            with pytest.raises(UnsafeArgumentError):
                encode_command("NOOP\n")

    def test_tokenizer_follows_asterisk(self) -> None:
        """split_command_line reads quotes, escapes and empties as res_agi.c parse_args."""
        assert split_command_line('SET VARIABLE FOO "a b\\"c"') == [
            "SET",
            "VARIABLE",
            "FOO",
            'a b"c',
        ]
        assert split_command_line('SAY DIGITS 123 ""') == ["SAY", "DIGITS", "123", ""]
        assert split_command_line("a\\ b  c\td") == ["a b", "c", "d"]
        assert split_command_line('x"y z"w') == ["xy zw"]

    @given(
        st.lists(
            st.text(
                alphabet=st.characters(
                    blacklist_categories=("Cs",), blacklist_characters="\r\n\x00"
                )
            ),
            max_size=8,
        )
    )
    def test_any_value_is_exactly_one_argument(self, values: list[str]) -> None:
        """Whatever the values, the line is one command and Asterisk reads them back intact."""
        try:
            line = encode_command("SET VARIABLE", *values)
        except UnsafeArgumentError as exc:
            # only the length limit and unencodable surrogates may refuse
            assert "bytes" in str(exc) or "surrogate" in str(exc)
            return
        assert line.count(b"\n") == 1 and line.endswith(b"\n")
        assert b"\r" not in line and b"\x00" not in line
        words = split_command_line(line[:-1].decode("utf-8"))
        assert words == ["SET", "VARIABLE", *values]

    @given(st.text())
    def test_no_value_ever_yields_a_second_line(self, value: str) -> None:
        """A caller-controlled value either encodes to one line or is refused."""
        try:
            line = encode_command("VERBOSE", value, 1)
        except UnsafeArgumentError:
            bad = any(c in value for c in "\r\n\x00") or not value.isprintable()
            assert bad or len(value.encode("utf-8", "replace")) > 2000
            return
        assert line.count(b"\n") == 1

    @given(
        st.text(
            alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n\x00")
        )
    )
    def test_quote_and_token_round_trip(self, value: str) -> None:
        """quote() and token() both read back as the same single argument."""
        assert split_command_line(quote(value)) == [value]
        assert split_command_line(token(value)) == [value]


class TestApplicationArguments:
    @given(
        st.lists(
            st.text(
                alphabet=st.characters(
                    blacklist_categories=("Cs",), blacklist_characters="\r\n\x00"
                )
            ),
            min_size=1,
        )
    )
    def test_each_value_stays_one_application_argument(self, values: list[str]) -> None:
        """escape_app_arg keeps commas, quotes, brackets and backslashes inside one argument."""
        from ivr.emulator.apps import split_app_args

        data = ",".join(escape_app_arg(v) for v in values)
        assert split_app_args(data) == values
        # and the whole data survives the AGI tokenizer as one word of EXEC
        assert split_command_line("EXEC Dial " + token(data)) == ["EXEC", "Dial", data]
