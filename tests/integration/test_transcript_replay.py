"""The Asterisk emulator reproduces every captured Asterisk 22 session byte for byte.

A handler on our real FastAGI server sends each session's commands exactly as
captured; the emulator, playing the caller the session describes, must send
back exactly the bytes Asterisk 22 sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import filecmp
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from ivr.agi.channel import Channel
from ivr.agi.protocol import EnvironmentParser, encode_environment
from ivr.agi.server import FastAgiServer
from ivr.audiosocket.protocol import FrameParser, Kind, encode_frame
from ivr.testing import Action, AsteriskEmulator, DialOutcome, Hangup, Press

from ..conftest import TRANSCRIPTS

SHARED = Path(__file__).resolve().parents[3] / "shared" / "asterisk" / "transcripts"

#: What the caller did in each captured session (from its "scenario" text).
SCENARIOS: dict[str, list[Action]] = {
    "700": [
        Press("2", on="STREAM FILE demo-congrats", after=1.7),
        Hangup(on="WAIT FOR DIGIT 6000", nth=2, after=3.0),
    ],
    "dead": [Hangup(on="WAIT FOR DIGIT 6000", after=3.0)],
    "hupstream": [Hangup(on="STREAM FILE demo-congrats", after=2.5)],
    "digits": [Press("12#", at=1.0), Press("9876", at=3.0)],
    "dial": [],
    "audiosock": [],
}
DIAL = {
    "Local/agent1@agents": DialOutcome("ANSWER", ring=0.5, talk=2.0),
    "Local/noanswer@agents": DialOutcome("NOANSWER"),
}


def emulator_env(emulator: AsteriskEmulator, block: str) -> dict[str, str]:
    """The emulator's own environment for the session's call parameters."""
    env = EnvironmentParser().feed(block.encode())
    assert env is not None
    return emulator.environment(
        env.variables["agi_network_script"],
        request=env.variables["agi_request"],
        channel=env.channel,
        uniqueid=env.uniqueid,
        callerid=env.callerid,
        calleridname=env.calleridname,
        extension=env.extension,
        threadid=env.variables["agi_threadid"],
    )


@contextlib.asynccontextmanager
async def audiosocket_peer(port: int) -> AsyncIterator[list[bytes]]:
    """An AudioSocket server that answers with a hang-up frame, as in the capture."""
    seen: list[bytes] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        parser = FrameParser()
        frames = parser.feed(await reader.read(19))
        seen.extend(f.payload for f in frames if f.kind == Kind.UUID)
        await asyncio.sleep(0.2)
        writer.write(encode_frame(Kind.HANGUP))
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", port)
    try:
        yield seen
    finally:
        server.close()
        await server.wait_closed()


def test_copy_matches_shared() -> None:
    """The repository's copy of the transcripts is the one in shared/ (when present)."""
    if not SHARED.is_dir():
        pytest.skip("shared/ is not beside this checkout")
    for path in SHARED.iterdir():
        assert filecmp.cmp(path, TRANSCRIPTS / path.name, shallow=False), path.name


@pytest.mark.parametrize("index", range(7))
async def test_replay(index: int, agi_sessions: list[dict[str, Any]]) -> None:
    """Each captured session: same environment block, same reply bytes to every command."""
    session = agi_sessions[index]
    received: list[bytes] = []
    done = asyncio.Event()

    async def replay(channel: Channel) -> None:
        try:
            for exchange in session["exchanges"]:
                received.append(await channel.send_raw(exchange["sent"].encode()))
        finally:
            done.set()

    server = FastAgiServer(default=replay, port=0)
    await server.start()
    emulator = AsteriskEmulator(port=server.port, dial=DIAL)
    env = emulator_env(emulator, session["env_block"])
    assert encode_environment(env) == session["env_block"].encode()
    script = env["agi_network_script"].partition("?")[0]
    try:
        async with contextlib.AsyncExitStack() as stack:
            peer = None
            if script == "audiosock":
                peer = await stack.enter_async_context(audiosocket_peer(9092))
            result = await asyncio.wait_for(
                emulator.call(env=env, actions=SCENARIOS[script]), timeout=30
            )
            await asyncio.wait_for(done.wait(), 5)
            if peer is not None:
                assert peer == [bytes.fromhex("40325ec25efd4bd3805f53576e581d13")]
    finally:
        await server.drain(1)
    expected = [e["received"].encode() for e in session["exchanges"]]
    assert received == expected
    assert [e.sent for e in result.exchanges] == [e["sent"].encode() for e in session["exchanges"]]
