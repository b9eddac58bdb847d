"""The record node through the emulator: silence counted from the start (PROTOCOL.md §8.3)
never cuts a caller off before their first word, and nothing empty is left in the spool."""

from __future__ import annotations

import asyncio
import wave
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ivr.flows.interpreter import Engine, Trace
from ivr.flows.ports import SpeechPrompts
from ivr.testing import AsteriskEmulator, Hangup, SessionResult, Talk, Timeline
from tests.integration.helpers.engine_rig import flows_in, serving

FLOW = """
id: message
defaults: {timeout: 4}
nodes:
  leave:
    type: record
    prompt: Please leave your message after the tone.
    variable: message
    silence_seconds: 1
    max_seconds: 30
    next: thanks
  thanks: {type: hangup, say: Thank you.}
"""


@dataclass
class Rig:
    emulator: AsteriskEmulator
    spool: Path
    traces: list[Trace]

    async def call(self, **kwargs: Any) -> SessionResult:
        return await asyncio.wait_for(self.emulator.call("message", **kwargs), 30)


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    registry = flows_in(tmp_path / "flows", {"message": FLOW})
    spool = tmp_path / "spool"
    spool.mkdir()
    engine = Engine(
        flows=registry.get, prompts=SpeechPrompts(tmp_path / "prompts"), spool=str(spool)
    )
    server, traces = await serving(registry, engine)
    emulator = AsteriskEmulator(
        port=server.port, sound_dirs=[tmp_path / "prompts"], record_dir=tmp_path
    )
    try:
        yield Rig(emulator, spool, traces)
    finally:
        await server.drain(1)


class TestRecordNode:
    @pytest.mark.parametrize(("dtx", "seconds"), [(False, 5.0), (True, 3.0)])
    async def test_a_caller_who_starts_late_is_recorded(
        self, rig: Rig, dtx: bool, seconds: float
    ) -> None:
        """The caller starts 2.5 s after the beep (s=1 would have stopped a continuous
        phone at 1 s): the whole message is in the file. A silence-suppressing phone
        sends only the 3 s of talk, so that is what Asterisk writes."""
        actions = [Talk(3.0, on="RECORD FILE", after=2.5, audio=b"\x10\x20" * 24000)]
        result = await rig.call(timeline=Timeline(actions, dtx=dtx))
        command = next(c for c in result.commands if c.startswith("RECORD FILE"))
        assert command.endswith("s=4")  # at least the time the caller is given to start
        trace = rig.traces[0]
        path = Path(trace.variables["message"])
        with wave.open(str(path)) as wav:
            assert wav.getnframes() / wav.getframerate() >= seconds

    async def test_nothing_said_leaves_no_file(self, rig: Rig) -> None:
        """A caller who hangs up in silence leaves no header-only WAV in the spool."""
        await rig.call(actions=[Hangup(on="RECORD FILE", after=0.5)])
        assert list(rig.spool.iterdir()) == []

    async def test_silence_to_the_end_leaves_no_file(self, rig: Rig) -> None:
        """No frames at all until the time runs out: the variable is empty, no file kept."""
        await rig.call()
        assert rig.traces[0].variables["message"] is None
        assert list(rig.spool.iterdir()) == []
