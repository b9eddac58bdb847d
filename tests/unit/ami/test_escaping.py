"""Asterisk's C escaping of event fields: the pair round-trips, and typed events unescape
exactly the fields Asterisk escapes (CallerIDName, ConnectedLineName, ChanVariable values,
VarSet's Value) and no other."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ivr.ami.escaping import ESCAPED_CHARACTERS, escape_c, unescape_c
from ivr.ami.events import (
    ChanSpyStart,
    CoreShowChannel,
    DialBegin,
    Newchannel,
    Newstate,
    OriginateResponse,
    VarSet,
    parse_event,
)
from ivr.ami.protocol import AmiParser, Message, encode_message

#: Quotes, backslashes, commas, '?', non-ASCII: what a caller's phone may send as its name.
HOSTILE = 'Zoë "The Boss" O\'Brien, Esq.\\ 김철수 ¿? \\n'


def channel(
    prefix: str = "", name: str = "PJSIP/caller-00000001", cid_name: str = ""
) -> list[tuple[str, str]]:
    return [
        (prefix + "Channel", name), (prefix + "ChannelState", "6"),
        (prefix + "ChannelStateDesc", "Up"), (prefix + "CallerIDNum", "5551234"),
        (prefix + "CallerIDName", escape_c(cid_name) or "<unknown>"),
        (prefix + "ConnectedLineNum", "<unknown>"),
        (prefix + "ConnectedLineName", escape_c(cid_name) or "<unknown>"),
        (prefix + "Language", "en"), (prefix + "AccountCode", ""),
        (prefix + "Context", "ivr"), (prefix + "Exten", "s"), (prefix + "Priority", "1"),
        (prefix + "Uniqueid", "1795356324.24"), (prefix + "Linkedid", "1795356324.24"),
    ]  # fmt: skip


def wire(headers: list[tuple[str, str]]) -> Message:
    """The headers through the wire and the parser, as the client gets them."""
    (message,) = AmiParser(expect_banner=False).feed(encode_message(headers))
    return message


class TestEscapeC:
    def test_the_protocol_example(self) -> None:
        """A caller named A"B\\C arrives as A\\"B\\\\C (PROTOCOL.md §8.5)."""
        assert escape_c('A"B\\C') == 'A\\"B\\\\C'
        assert unescape_c('A\\"B\\\\C') == 'A"B\\C'

    def test_exactly_ast_escape_c_s_eleven_characters(self) -> None:
        """escape_sequences / escape_sequences_map of main/utils.c, and nothing else."""
        assert escape_c("\a\b\f\n\r\t\v\\'\"?") == "\\a\\b\\f\\n\\r\\t\\v\\\\\\'\\\"\\?"
        assert len(ESCAPED_CHARACTERS) == 11
        untouched = "".join(chr(c) for c in range(1, 256) if chr(c) not in ESCAPED_CHARACTERS)
        assert escape_c(untouched) == untouched  # commas, ';', '|', '=', Latin-1, DEL ...
        assert escape_c("김철수, Zoë") == "김철수, Zoë"

    def test_a_backslash_asterisk_did_not_write_stays(self) -> None:
        """Only ast_escape_c's own pairs are undone; \\x or a trailing \\ are kept."""
        assert unescape_c("C:\\x41\\") == "C:\\x41\\"

    @given(st.text())
    def test_round_trip(self, text: str) -> None:
        """unescape_c(escape_c(s)) == s for every string."""
        assert unescape_c(escape_c(text)) == text

    @given(st.text(st.characters(blacklist_characters="\0", blacklist_categories=("Cs",))))
    def test_escaped_fits_one_header_line(self, text: str) -> None:
        """What Asterisk writes never breaks the AMI framing (no CR or LF left)."""
        escaped = escape_c(text)
        assert "\r" not in escaped and "\n" not in escaped
        message = wire([("Event", "Newchannel"), ("CallerIDName", escaped)])
        assert unescape_c(message.get("CallerIDName")) == text


class TestTypedEventsUnescape:
    def test_channel_names(self) -> None:
        """CallerIDName and ConnectedLineName come out as the caller set them."""
        event = parse_event(wire([("Event", "Newchannel"), *channel(cid_name=HOSTILE)]))
        assert isinstance(event, Newchannel)
        assert event.channel.caller_id_name == HOSTILE
        assert event.channel.connected_line_name == HOSTILE
        assert event.get("CallerIDName") == escape_c(HOSTILE)  # raw keeps the wire text
        assert event.channel.caller_id_num == "5551234"

    def test_prefixed_blocks(self) -> None:
        """Dest, Spyer and Spyee blocks are escaped the same way."""
        dial = parse_event(
            wire([("Event", "DialBegin"), *channel(cid_name=HOSTILE),
                  *channel("Dest", "PJSIP/200-00000002", HOSTILE), ("DialString", "200")])
        )  # fmt: skip
        assert isinstance(dial, DialBegin) and dial.caller is not None
        assert dial.caller.caller_id_name == dial.dest.connected_line_name == HOSTILE
        spy = parse_event(
            wire([("Event", "ChanSpyStart"), *channel("Spyer", "PJSIP/900-1", "Sup \"1\""),
                  *channel("Spyee", "PJSIP/200-2", HOSTILE)])
        )  # fmt: skip
        assert isinstance(spy, ChanSpyStart)
        assert (spy.spyer.caller_id_name, spy.spyee.caller_id_name) == ('Sup "1"', HOSTILE)
        listed = parse_event(
            wire([("Event", "CoreShowChannel"), ("ActionID", "a-1"), *channel(cid_name=HOSTILE),
                  ("Application", "AGI"), ("ApplicationData", 'agi://x/"main"'),
                  ("Duration", "00:00:01"), ("BridgeId", "")])
        )  # fmt: skip
        assert isinstance(listed, CoreShowChannel)
        assert listed.channel.caller_id_name == HOSTILE
        assert listed.application_data == 'agi://x/"main"'  # not escaped by Asterisk

    def test_chan_variables(self) -> None:
        """manager.conf channelvars: ChanVariable values are escaped, names are not."""
        headers = [("Event", "Newstate"), *channel(),
                   ("ChanVariable", "IVR_QUEUE=sales"),
                   ("ChanVariable", "IVR_CONTEXT=" + escape_c('{"a":"b=c"}'))]  # fmt: skip
        event = parse_event(wire(headers))
        assert isinstance(event, Newstate)
        snapshot = event.channel
        assert snapshot.variables == (("IVR_QUEUE", "sales"), ("IVR_CONTEXT", '{"a":"b=c"}'))
        assert snapshot.variable("IVR_CONTEXT") == '{"a":"b=c"}'
        assert snapshot.variable("NOPE", "-") == "-"

    def test_varset_json_reads_back_as_set(self) -> None:
        """__IVR_CONTEXT set to JSON reads back from VarSet equal to what was set."""
        context = json.dumps(
            {"caller": HOSTILE, "account": "12345", "note": 'say "hi"\\n'},
            ensure_ascii=False,
            separators=(",", ":"),
        )
        headers = [*channel(cid_name=HOSTILE), ("Variable", "__IVR_CONTEXT"),
                   ("Value", escape_c(context))]  # fmt: skip
        event = parse_event(wire([("Event", "VarSet"), *headers]))
        assert isinstance(event, VarSet) and event.channel is not None
        assert event.variable == "__IVR_CONTEXT"
        assert event.value == context
        assert json.loads(event.value)["caller"] == HOSTILE
        assert '\\"' in event.get("Value")  # on the wire the quotes were escaped

    def test_global_varset(self) -> None:
        """A global variable's VarSet has Channel: none (varset_to_ami)."""
        event = parse_event(
            wire([("Event", "VarSet"), ("Channel", "none"), ("Uniqueid", "none"),
                  ("Variable", "MODE"), ("Value", "a\\\\b")])
        )  # fmt: skip
        assert isinstance(event, VarSet)
        assert (event.channel, event.value) == (None, "a\\b")

    @pytest.mark.parametrize("name", ['Callback "x"', "A\\B"])
    def test_originate_response_is_not_unescaped(self, name: str) -> None:
        """fast_originate writes the Originate's CallerID name raw: it stays as sent."""
        event = parse_event(
            wire([("Event", "OriginateResponse"), ("Response", "Success"),
                  ("Channel", "PJSIP/200-1"), ("Reason", "4"), ("CallerIDName", name)])
        )  # fmt: skip
        assert isinstance(event, OriginateResponse) and event.caller_id_name == name
