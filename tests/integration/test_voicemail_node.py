"""The voicemail node through the emulator: a message ended by hanging up, and a
VoiceMail that fails on a live channel (a real 22.9.0 without its sound files),
where the caller is handed to the dialplan's fallback, never hung up on."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ivr.flows.interpreter import Engine, Trace
from ivr.flows.ports import SpeechPrompts
from ivr.testing import AsteriskEmulator, Hangup, SessionResult, SoundCatalog
from tests.integration.helpers.engine_rig import flows_in, serving

FLOWS = {
    "message": """
id: message
nodes:
  leave: {type: voicemail, mailbox: "100@default"}
""",
    "message_or_agent": """
id: message_or_agent
nodes:
  leave: {type: voicemail, mailbox: "100@default", on_failure: sorry}
  sorry: {type: hangup, say: "Sorry, we cannot take a message now."}
""",
}


@dataclass
class Rig:
    port: int
    prompts: Path
    traces: list[Trace]

    async def call(self, flow: str, *, sounds: SoundCatalog | None = None, **kw: Any) -> Any:
        emulator = AsteriskEmulator(port=self.port, sound_dirs=[self.prompts], sounds=sounds)
        result: SessionResult = await asyncio.wait_for(emulator.call(flow, **kw), 30)
        return result


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    registry = flows_in(tmp_path / "flows", FLOWS)
    engine = Engine(flows=registry.get, prompts=SpeechPrompts(tmp_path / "prompts"))
    server, traces = await serving(registry, engine)
    try:
        yield Rig(server.port, tmp_path / "prompts", traces)
    finally:
        await server.drain(1)


def without_greeting(prompts: Path) -> SoundCatalog:
    sounds = SoundCatalog(sound_dirs=[prompts])
    sounds.forget("vm-intro")
    return sounds


class TestVoicemail:
    async def test_a_message_ended_by_hanging_up(self, rig: Rig) -> None:
        """The caller hangs up to end the message: nothing is sent to the dead channel."""
        result = await rig.call("message", actions=[Hangup(on="EXEC VoiceMail", after=6.0)])
        assert not any(e.received.startswith(b"511") for e in result.exchanges)
        assert not any(c == "HANGUP" for c in result.commands)
        assert any(e["event"] == "voicemail" for e in rig.traces[0].events)

    async def test_a_failed_voicemail_hands_the_caller_to_the_fallback(self, rig: Rig) -> None:
        """VoiceMail fails on a live channel (VMSTATUS=FAILED, -1): the engine does not
        hang up; the dialplan's fallback takes the caller (AGISTATUS=FAILURE)."""
        result = await rig.call("message", sounds=without_greeting(rig.prompts))
        assert result.agistatus == "FAILURE"
        assert "HANGUP" not in result.commands
        assert not result.hung_up
        kinds = [e["event"] for e in rig.traces[0].events]
        assert "voicemail_failed" in kinds and "voicemail" not in kinds

    async def test_a_failed_voicemail_takes_the_nodes_way_out(self, rig: Rig) -> None:
        """With on_failure the flow goes on there (an apology, then the hang-up)."""
        result = await rig.call("message_or_agent", sounds=without_greeting(rig.prompts))
        assert rig.traces[0].nodes == ["leave", "sorry"]
        assert result.commands[-1] == "HANGUP"  # after the apology, not before
