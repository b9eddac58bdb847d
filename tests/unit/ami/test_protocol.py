"""The AMI wire format: framing, repeated headers, encodings, injection refused."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ivr.ami import AmiInjectionError, AmiParser, Message, encode_action
from ivr.ami.events import (
    BridgeEnter,
    DeviceStateChange,
    DialBegin,
    DialEnd,
    FullyBooted,
    Hangup,
    OriginateResponse,
    parse_event,
)
from ivr.ami.protocol import encode_message

TRANSCRIPT = Path(__file__).parents[2] / "data" / "transcripts" / "ami-dial-session.txt"

names = st.text(
    st.characters(min_codepoint=33, max_codepoint=126, exclude_characters=":"),
    min_size=1,
    max_size=20,
)
values = st.text(
    st.characters(blacklist_characters="\r\n\0", blacklist_categories=("Cs",)), max_size=40
)
headers = st.lists(st.tuples(names, values), min_size=1, max_size=12)


def parse_all(data: bytes, chunks: list[int] | None = None) -> tuple[AmiParser, list[Message]]:
    parser = AmiParser()
    out: list[Message] = []
    if not chunks:
        return parser, parser.feed(data)
    pos = 0
    for size in chunks:
        out += parser.feed(data[pos : pos + size])
        pos += size
    out += parser.feed(data[pos:])
    return parser, out


class TestTranscript:
    def test_every_message_of_the_capture(self) -> None:
        """The capture parses into its 133 messages, banner apart, in order."""
        data = TRANSCRIPT.read_bytes()
        parser, messages = parse_all(data)
        assert parser.banner == "Asterisk Call Manager/11.0.0" and parser.version == "11.0.0"
        assert len(messages) == data.count(b"\r\n\r\n")
        assert messages[0].response == "Success"
        assert messages[0].get("Message") == "Authentication accepted"
        assert [m.event for m in messages[1:3]] == ["FullyBooted", "SuccessfulAuth"]
        assert messages[3].action_id == "orig-1"
        # The file ends with one LF more than Asterisk sent (a text file's last newline).
        body = data.partition(b"\r\n")[2].removesuffix(b"\n")
        assert b"".join(encode_message(m.headers) for m in messages) == body

    @given(st.lists(st.integers(1, 700), max_size=80))
    def test_any_chunking(self, chunks: list[int]) -> None:
        """However TCP splits the bytes, the same messages come out."""
        data = TRANSCRIPT.read_bytes()
        assert parse_all(data, chunks)[1] == parse_all(data)[1]

    def test_typed_events(self) -> None:
        """The capture's events become the typed records the engine reads."""
        events = [parse_event(m) for m in parse_all(TRANSCRIPT.read_bytes())[1] if m.event]
        booted = next(e for e in events if isinstance(e, FullyBooted))
        assert booted.status == "Fully Booted" and booted.uptime == 183
        originate = next(e for e in events if isinstance(e, OriginateResponse))
        assert originate.success and originate.reason == 4 and originate.action_id == "orig-1"
        dial_ends = [e for e in events if isinstance(e, DialEnd)]
        assert [e.dial_status for e in dial_ends] == ["ANSWER", "ANSWER", "NOANSWER"]
        assert dial_ends[0].caller is None  # the Originate's own dial has no caller
        assert dial_ends[1].caller is not None
        assert dial_ends[1].caller.channel == "Local/dial@ivr-0000000c;2"
        assert dial_ends[1].dest.channel == "Local/agent1@agents-0000000d;1"
        begin = next(e for e in events if isinstance(e, DialBegin) and e.caller)
        assert begin.dial_string == "agent1@agents"
        enter = next(e for e in events if isinstance(e, BridgeEnter))
        assert enter.bridge_uniqueid == "0aafe6ae-1c36-40c4-9470-12862ac208be"
        assert enter.channel.endpoint == "Local/agent1@agents"
        hangups = [e for e in events if isinstance(e, Hangup)]
        assert (hangups[0].cause, hangups[0].cause_txt) == (16, "Normal Clearing")
        states = [e.state for e in events if isinstance(e, DeviceStateChange)]
        assert states[:2] == ["INUSE", "INUSE"] and states[-1] == "NOT_INUSE"


class TestFraming:
    @given(headers, st.booleans())
    def test_round_trip(self, pairs: list[tuple[str, str]], bare_lf: bool) -> None:
        """Encoded headers parse back identical, with CRLF or a bare LF."""
        data = encode_message(pairs)
        if bare_lf:
            data = data.replace(b"\r\n", b"\n")
        parser = AmiParser(expect_banner=False)
        (message,) = parser.feed(data)
        assert list(message.headers) == [(n.strip(), v) for n, v in pairs]

    def test_repeated_headers_kept_in_order(self) -> None:
        """Variable and Output may repeat; get() is the first, get_all() every one."""
        data = encode_action(
            "Originate", {"Channel": "PJSIP/1", "Variable": ["A=1", "B=2"]}, action_id="x"
        )
        assert data == (
            b"Action: Originate\r\nActionID: x\r\nChannel: PJSIP/1\r\n"
            b"Variable: A=1\r\nVariable: B=2\r\n\r\n"
        )
        (message,) = AmiParser(expect_banner=False).feed(data)
        assert message.get("variable") == "A=1"
        assert message.get_all("VARIABLE") == ["A=1", "B=2"]
        assert "channel" in message and "Nope" not in message

    def test_caller_name_not_utf8(self) -> None:
        """A CallerIDName in a legacy charset is kept (as Latin-1), the stream goes on."""
        raw = "홍길동".encode("euc-kr")
        data = b"Event: Newchannel\r\nCallerIDName: " + raw + b"\r\nUniqueid: 1.2\r\n\r\n"
        (message,) = AmiParser(expect_banner=False).feed(data)
        assert message.get("CallerIDName").encode("latin-1") == raw
        assert message.get("Uniqueid") == "1.2"

    def test_utf8_split_across_chunks(self) -> None:
        """A UTF-8 character cut in two by TCP is not lost (panoramisk drops it)."""
        data = "Event: Newchannel\r\nCallerIDName: 김철수\r\n\r\n".encode()
        parser = AmiParser(expect_banner=False)
        cut = data.index("김".encode()) + 1
        assert parser.feed(data[:cut]) == []
        (message,) = parser.feed(data[cut:])
        assert message.get("CallerIDName") == "김철수"


class TestInjection:
    @given(names, values, st.sampled_from("\r\n\0"), values)
    def test_control_characters_refused(self, name: str, head: str, bad: str, tail: str) -> None:
        """CR, LF or NUL anywhere in a value is refused, naming the header."""
        with pytest.raises(AmiInjectionError) as info:
            encode_action("Originate", {name: head + bad + tail})
        assert repr(name) in str(info.value)
        assert isinstance(info.value, ValueError)

    @pytest.mark.parametrize("name", ["Call:erID", "Caller\nID", ""])
    def test_bad_header_names_refused(self, name: str) -> None:
        """A header name cannot smuggle a colon or a line break either."""
        with pytest.raises(AmiInjectionError, match="header name"):
            encode_action("Originate", {name: "x"})

    def test_action_name_checked(self) -> None:
        """Even the action name is checked."""
        with pytest.raises(AmiInjectionError, match="'Action'"):
            encode_action("Ping\r\nAction: Originate")
