"""A hostile caller name and a JSON channel variable over TCP: the emulated Asterisk
C-escapes them on the wire as Asterisk 22 does, and the engine's typed events hold
exactly what the caller sent and what was set."""

from __future__ import annotations

import json

from ivr.agi.channel import Channel
from ivr.agi.server import FastAgiServer
from ivr.ami import (
    AmiClient,
    AmiConfig,
    AmiEvent,
    CoreShowChannel,
    DialBegin,
    DialEnd,
    Newchannel,
    VarSet,
)
from ivr.ami.escaping import escape_c
from ivr.emulator.ami import AmiUser
from ivr.testing import AsteriskEmulator, DialOutcome

#: Quotes, backslashes, commas, '?', a would-be escape, non-ASCII (what a phone may send).
HOSTILE = 'Zoë "The Boss" O\'Brien, Esq.\\ \\n 김철수 ¿?'
#: The same with the control characters ast_escape_c also escapes (set through AMI here;
#: the AGI environment block is one line per variable and cannot carry them).
CONTROLS = HOSTILE + "\a\b\f\n\r\t\v"


def client(port: int, user: str = "ivr", secret: str = "ivr-secret") -> AmiClient:
    return AmiClient(AmiConfig(port=port, username=user, secret=secret, ping_interval=0))


async def answer_and_dial(channel: Channel) -> None:
    await channel.answer()
    await channel.exec("Dial", "PJSIP/200", "20", "g")


async def test_a_hostile_caller_name_arrives_as_the_caller_sent_it(
    agi_server: FastAgiServer,
) -> None:
    """Newchannel's CallerIDName and the agent leg's ConnectedLineName: escaped on the
    wire (``\\"``, ``\\\\``), the caller's own name in the typed events."""
    agi_server.route("queue", answer_and_dial)
    emulator = AsteriskEmulator(port=agi_server.port)
    ami = await emulator.start_ami()
    emulator.pbx.add_endpoint("PJSIP/200")
    engine = client(ami.port)
    seen: list[AmiEvent] = []
    engine.on("*", seen.append)
    await engine.connect()
    try:
        result = await emulator.call(
            "queue", channel="PJSIP/caller-00000001", callerid="5551234",
            calleridname=HOSTILE, dial={"PJSIP/200": DialOutcome("ANSWER", ring=0.5, talk=1)},
        )  # fmt: skip
        await engine.ping()  # every event written before the Pong has arrived
    finally:
        await engine.close()
        await emulator.close()
    assert result.dialled == ["PJSIP/200"]
    first = next(e for e in seen if isinstance(e, Newchannel))
    assert first.channel.channel == "PJSIP/caller-00000001"
    assert first.channel.caller_id_name == HOSTILE
    assert first.get("CallerIDName") == escape_c(HOSTILE)
    assert '\\"The Boss\\"' in first.get("CallerIDName")
    begin = next(e for e in seen if isinstance(e, DialBegin))
    assert begin.caller is not None and begin.caller.caller_id_name == HOSTILE
    assert begin.dest.connected_line_name == HOSTILE  # the agent's phone shows the caller
    end = next(e for e in seen if isinstance(e, DialEnd))
    assert end.dest.connected_line_name == HOSTILE and end.dial_status == "ANSWER"


async def test_json_context_reads_back_from_varset_as_set() -> None:
    """__IVR_CONTEXT set to JSON (with the hostile name in it) reads back from VarSet equal
    to what was set; Getvar (an action response, never escaped) agrees; and a name with
    control characters survives CoreShowChannels too."""
    emulator = AsteriskEmulator()
    ami = await emulator.start_ami()
    ami.users["desk"] = AmiUser("desk-secret", read=frozenset({"call", "dialplan"}))
    caller = emulator.pbx.new_channel("PJSIP/caller-00000002", state=6, cid_num="5551234")
    caller.cid_name = CONTROLS
    context = json.dumps(
        {"caller": HOSTILE, "account": "12345", "said": 'a "quote" and a \\'},
        ensure_ascii=False,
        separators=(",", ":"),
    )
    engine, desk = client(ami.port), client(ami.port, "desk", "desk-secret")
    await engine.connect()
    await desk.connect()
    try:
        async with desk.events("VarSet") as stream:
            await engine.setvar("__IVR_CONTEXT", context, channel=caller.name)
            event = await stream.get(timeout=2)
            raw_value = event.get("Value")
            read_back = await engine.getvar("__IVR_CONTEXT", channel=caller.name)
            listed = await engine.core_show_channels()
    finally:
        await engine.close()
        await desk.close()
        await emulator.close()
    assert isinstance(event, VarSet) and event.variable == "__IVR_CONTEXT"
    assert event.value == context
    assert json.loads(event.value)["caller"] == HOSTILE
    assert raw_value == escape_c(context) and raw_value != context
    assert event.channel is not None and event.channel.caller_id_name == CONTROLS
    assert read_back == context
    (item,) = listed
    assert isinstance(item, CoreShowChannel) and item.channel.caller_id_name == CONTROLS


async def test_context_set_over_agi_reads_back_from_varset(agi_server: FastAgiServer) -> None:
    """SET VARIABLE over AGI raises VarSet (pbx_builtin_setvar_helper), escaped on the
    wire; the typed event's value is the JSON the engine set, byte for byte."""
    context = json.dumps({"caller": HOSTILE, "said": 'a "quote" \\'}, ensure_ascii=False)

    async def handler(channel: Channel) -> None:
        await channel.set_variable("__IVR_CONTEXT", context)

    agi_server.route("ctx", handler)
    emulator = AsteriskEmulator(port=agi_server.port)
    ami = await emulator.start_ami()
    ami.users["desk"] = AmiUser("desk-secret", read=frozenset({"call", "dialplan"}))
    desk = client(ami.port, "desk", "desk-secret")
    await desk.connect()
    try:
        async with desk.events("VarSet") as stream:
            await emulator.call("ctx", callerid="5551234")
            event = await stream.get(timeout=2)
    finally:
        await desk.close()
        await emulator.close()
    assert isinstance(event, VarSet) and event.variable == "__IVR_CONTEXT"
    assert event.get("Value") == escape_c(context)
    assert event.value == context
