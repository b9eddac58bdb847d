"""An AGI call's Dial, seen on the emulated AMI by the engine's AMI client."""

from __future__ import annotations

from ivr.agi.channel import Channel
from ivr.agi.server import FastAgiServer
from ivr.ami import AmiClient, AmiConfig, BridgeEnter, DialBegin, DialEnd, Hangup, Newchannel
from ivr.ami.events import AmiEvent
from ivr.testing import AsteriskEmulator, DialOutcome


async def dial_agent(channel: Channel) -> None:
    await channel.answer()
    await channel.exec("Dial", "PJSIP/200", "20", "g")
    await channel.exec("Dial", "PJSIP/201", "20", "g")


class TestDialOnAmi:
    async def test_dial_events_reach_the_client(self, agi_server: FastAgiServer) -> None:
        """DialBegin / DialEnd / BridgeEnter / Hangup of the agent legs, with DIALSTATUS."""
        agi_server.route("queue", dial_agent)
        emulator = AsteriskEmulator(port=agi_server.port)
        ami = await emulator.start_ami()
        emulator.pbx.add_endpoint("PJSIP/200")
        emulator.pbx.add_endpoint("PJSIP/201")
        emulator.pbx.set_registered("PJSIP/201", False)
        client = AmiClient(
            AmiConfig(port=ami.port, username="ivr", secret="ivr-secret", ping_interval=0)
        )
        seen: list[AmiEvent] = []
        client.on("*", seen.append)
        await client.connect()
        try:
            result = await emulator.call(
                "queue", channel="PJSIP/caller-00000001", callerid="5551234",
                dial={"PJSIP/200": DialOutcome("ANSWER", ring=1, talk=3)},
            )  # fmt: skip
            await client.ping()  # every event written before the Pong has arrived
        finally:
            await client.close()
            await emulator.close()
        assert result.dialled == ["PJSIP/200", "PJSIP/201"]
        assert result.variables["DIALSTATUS"] == "CHANUNAVAIL"
        begins = [e for e in seen if isinstance(e, DialBegin)]
        ends = [e for e in seen if isinstance(e, DialEnd)]
        assert [b.dest.endpoint for b in begins] == ["PJSIP/200", "PJSIP/201"]
        assert all(b.caller and b.caller.channel == "PJSIP/caller-00000001" for b in begins)
        assert [e.dial_status for e in ends] == ["ANSWER", "CHANUNAVAIL"]
        enters = [e for e in seen if isinstance(e, BridgeEnter)]
        assert {e.channel.channel for e in enters} == {
            begins[0].dest.channel,
            "PJSIP/caller-00000001",
        }
        hangups = [e.channel.channel for e in seen if isinstance(e, Hangup)]
        assert hangups == [begins[0].dest.channel, begins[1].dest.channel, "PJSIP/caller-00000001"]
        first = next(e for e in seen if isinstance(e, Newchannel))
        assert first.channel.caller_id_num == "5551234"
        states = [(e.get("Device"), e.get("State")) for e in seen if e.name == "DeviceStateChange"]
        assert ("PJSIP/200", "RINGING") in states and ("PJSIP/200", "INUSE") in states
        assert states[-1] != ("PJSIP/200", "INUSE")
