"""The emulated AMI against the Asterisk 22 capture ``ami-dial-session.txt``, byte for byte.

The test replays the client's side of the capture (a Login without
ActionID, an Async Originate with ActionID ``orig-1``) over TCP and compares
the server's bytes with the capture: the banner, the login reply,
FullyBooted, SuccessfulAuth, the Originate acknowledgement, the first
Newchannel events and the OriginateResponse. Only what must vary is
normalised: the TCP ports in SuccessfulAuth's addresses. Uniqueids, the
Local channel number, uptime and the wall clock are injected.

What the real dialplan did between those messages (Local channel
optimisation, Newexten, AGI, VarSet) is played by a script here, not by a
dialplan engine: the emulator does not run Asterisk dialplan.
"""

from __future__ import annotations

import asyncio
import calendar
import time
from pathlib import Path

from ivr.ami.protocol import Message
from ivr.emulator.ami import AmiServer, AmiUser, Pbx

TRANSCRIPT = Path(__file__).parents[1] / "data" / "transcripts" / "ami-dial-session.txt"
WHEN = calendar.timegm((2026, 11, 22, 14, 5, 24, 0, 0, 0)) + 0.2655


def captured() -> tuple[bytes, list[bytes]]:
    data = TRANSCRIPT.read_bytes()
    banner, _, rest = data.partition(b"\r\n")
    blocks = [b + b"\r\n\r\n" for b in rest.split(b"\r\n\r\n") if b.strip()]
    return banner + b"\r\n", blocks


async def test_login_and_originate_match_the_capture() -> None:
    """The server writes the capture's bytes for the same client actions."""
    pbx = Pbx(epoch=1795356324, first_id=24)
    everything = frozenset({"system", "call", "dialplan", "agi", "security", "reporting"})
    server = AmiServer(
        users={"lab": AmiUser("lab-secret", read=everything)}, pbx=pbx, clock=lambda: WHEN
    )
    server.started = time.monotonic() - 183.5

    async def local_originate(action_id: str, action: Message) -> None:
        one = pbx.new_channel("Local/dial@ivr-0000000c;1", context="ivr", exten="dial")
        pbx.new_channel(
            "Local/dial@ivr-0000000c;2", context="ivr", exten="dial", state=4, linkedid=one.uniqueid
        )
        # ... the caller half answers in context caller (played, not emulated) ...
        one.state, one.context, one.exten = 6, action.get("Context"), action.get("Exten")
        one.cid_num, one.cid_name = "5550001", "Bob"
        pbx.originate_response(
            action_id,
            ok=True,
            chan=one,
            name=action.get("Channel"),
            where=[("Context", one.context), ("Exten", one.exten)],
            reason=4,
        )

    pbx.originate_scripts["Local/dial@ivr"] = local_originate
    await server.start()
    try:
        reader, writer = await asyncio.open_connection(server.host, server.port)
        writer.write(b"Action: Login\r\nUsername: lab\r\nSecret: lab-secret\r\n\r\n")
        writer.write(
            b"Action: Originate\r\nActionID: orig-1\r\nChannel: Local/dial@ivr\r\n"
            b"Context: caller\r\nExten: silent\r\nPriority: 1\r\nCallerID: Bob <5550001>\r\n"
            b"Async: true\r\n\r\n"
        )
        await writer.drain()
        got = b""
        while b"Event: OriginateResponse" not in got or not got.endswith(b"\r\n\r\n"):
            got += await asyncio.wait_for(reader.read(65536), 2)
        local_port = writer.get_extra_info("sockname")[1]
        writer.close()
    finally:
        await server.close()
    banner, blocks = captured()
    originate_response = next(b for b in blocks if b.startswith(b"Event: OriginateResponse"))
    expected = banner + b"".join(blocks[:6]) + originate_response
    got = got.replace(f"127.0.0.1/{server.port}\r\n".encode(), b"127.0.0.1/5038\r\n")
    got = got.replace(f"127.0.0.1/{local_port}\r\n".encode(), b"127.0.0.1/37536\r\n")
    assert got == expected
