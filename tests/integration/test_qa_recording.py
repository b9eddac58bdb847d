"""A recorded agent call through the emulated Asterisk, checked by the engine's QA worker:
MixMonitor before the Dial (caller, agent and mix as real WAV files), StopMixMonitor after,
the recording and the QA result in the event stream of a real Redis, the transcript next to
the recording, the webhook on a violation, the files gone after the queue's retention; and
the caller's "no" to the recording notice, by key or spoken (espeak-ng's Korean over
AudioSocket, heard by the real Vosk model)."""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ivr.audiosocket.server import AudioSocketServer
from ivr.emulator.caller import Talk, synthesize
from ivr.flows.interpreter import Engine, Trace
from ivr.flows.ports import SpeechPrompts
from ivr.qa_worker import QaWorker
from ivr.speech_input import SpeechInput
from ivr.testing import AsteriskEmulator, DialOutcome, Keys, say
from routing.config import QueueConfig
from routing.memory import Agent
from routing.redis import RedisRouter
from speech.qa import Transcriber
from speech.recognizer import ModelRegistry, Recognizer
from speech.tts import Synthesizer
from tests.integration.helpers.engine_rig import flows_in, serving

ROOT = Path(__file__).resolve().parents[2]
FLOW = """
id: rec
defaults: {language: ko, timeout: 2, retries: 0}
nodes:
  notice:
    type: menu
    prompt: 녹음됩니다. 싫으시면 아니요 또는 2번.
    options:
      - {digit: 1, phrases: [좋아요], goto: sales}
      - {digit: 2, phrases: [아니요], goto: no_recording}
    on_failure: sales
  no_recording: {type: set, variables: {record: false}, next: sales}
  sales: {type: queue, queue: sales, next: bye, on_failure: bye}
  bye: {type: hangup}
"""

pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs espeak-ng")


@dataclass
class Rig:
    emulator: AsteriskEmulator
    router: RedisRouter
    worker: QaWorker
    folder: Path
    traces: list[Trace]


class _Hook:
    """A webhook receiver: one HTTP request at a time, answered 204."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            int(line.split(b":")[1]) for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length")
        )  # fmt: skip
        self.bodies.append(json.loads(await reader.readexactly(length)))
        writer.write(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        writer.close()


@pytest.fixture
async def hook() -> AsyncIterator[tuple[_Hook, str]]:
    receiver = _Hook()
    server = await asyncio.start_server(receiver.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    yield receiver, f"http://127.0.0.1:{port}/qa"
    server.close()


@pytest.fixture(scope="module")
def models() -> ModelRegistry:
    """One Korean model for the module: the menu's ears and the QA worker's."""
    return ModelRegistry()


@pytest.fixture
async def rig(
    redis_url: str, tmp_path: Path, hook: tuple[_Hook, str], models: ModelRegistry
) -> AsyncIterator[Rig]:
    registry = flows_in(tmp_path / "flows", {"rec": FLOW})
    router = RedisRouter.connect(redis_url)
    await router.redis.flushall()
    await router.start()
    await router.add_agents([Agent("ann", "PJSIP/1001", {"sales": 5})])
    await router.login("ann")
    folder = tmp_path / "recordings"
    transcriber = Transcriber(models, workers=2)
    worker = QaWorker(
        folder, router=router, transcriber=transcriber, rules=ROOT / "qa", webhook=hook[1]
    )
    sockets = AudioSocketServer(port=0)
    await sockets.start()
    synthesizer = Synthesizer(tmp_path / "prompts")
    engine = Engine(
        flows=registry.get,
        prompts=SpeechPrompts(tmp_path / "prompts", synthesizer),
        speech=SpeechInput(Recognizer(models), synthesizer, server=sockets),
        router=router,
        queues={"sales": QueueConfig.model_validate({"record": True, "retention": "1d"})},
        recorder=worker,
    )
    server, traces = await serving(registry, engine)
    emulator = AsteriskEmulator(port=server.port)
    try:
        yield Rig(emulator, router, worker, folder, traces)
    finally:
        await emulator.close()
        await server.drain(5)
        await sockets.close()
        synthesizer.close()
        await worker.drain()
        transcriber.close()
        await router.close()


def _agent_audio() -> bytes:
    """The agent greets, falls silent 9 s (dead air), then closes."""
    silence = bytes(2 * 8000 * 9)
    return synthesize("안녕하세요 안내 센터입니다") + silence + synthesize("감사합니다")


async def _events(router: RedisRouter, kind: str) -> list[dict[str, str]]:
    return [row for _, row in await router.events(0) if row.get("event") == kind]


async def _wait_for(router: RedisRouter, kind: str, deadline: float = 120) -> dict[str, str]:
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline
    while loop.time() < end:
        found = await _events(router, kind)
        if found:
            return found[0]
        await asyncio.sleep(0.2)
    raise AssertionError(f"no {kind} event in {deadline} s")


class TestRecordedCall:
    async def test_agent_call_ends_with_a_qa_result(
        self, rig: Rig, hook: tuple[_Hook, str]
    ) -> None:
        """Agent answers, talks (dead air in it), hangs up: recording and qa_result in the
        stream, three WAVs and the transcript on disk, the violation POSTed."""
        says = _agent_audio()
        caller = synthesize("네 반품 안내 부탁합니다")
        # The caller answers after the closing: the 9 s in the middle stay dead air.
        talk = len(says) / 16000 + len(caller) / 16000 + 2
        result = await asyncio.wait_for(
            rig.emulator.call(
                "rec",
                actions=[
                    Keys("1"),
                    Talk(
                        len(caller) / 16000,
                        on="EXEC Dial",
                        after=1 + len(says) / 16000 + 1,
                        audio=caller,
                    ),
                ],
                dial={"PJSIP/1001": DialOutcome("ANSWER", ring=1, talk=talk, says=says)},
            ),
            60,
        )
        assert result.dialled == ["PJSIP/1001"]
        assert result.variables["MIXMONITOR_FILENAME"].endswith("-mix.wav")
        recording = await _wait_for(rig.router, "recording")
        assert (recording["queue"], recording["agent"]) == ("sales", "ann")
        sizes = [(await asyncio.to_thread(Path(recording[leg]).stat)).st_size
                 for leg in ("caller", "agent_leg", "mix")]  # fmt: skip
        assert min(sizes) > 8000 * 2 * 5
        qa = await _wait_for(rig.router, "qa_result")
        await rig.worker.drain()
        assert (qa["call"], qa["queue"], qa["agent"]) == (recording["call"], "sales", "ann")
        rules = {rule["id"]: rule for rule in json.loads(qa["rules"])}
        assert set(rules) == {"greeting", "no-cancel-push", "closing", "dead-air", "interrupting"}
        assert rules["dead-air"]["outcome"] == "violated"
        assert 1 < rules["dead-air"]["evidence"][0]["start"] < 5
        assert rules["interrupting"]["outcome"] == "met"
        assert "dead-air" in qa["violations"].split(",")
        assert qa["score"] != ""
        transcript = json.loads(await asyncio.to_thread(Path(qa["transcript"]).read_text))
        assert {leg["speaker"] for leg in transcript["legs"]} == {"agent", "caller"}
        receiver, _ = hook
        assert receiver.bodies and receiver.bodies[0]["call"] == qa["call"]
        assert "dead-air" in receiver.bodies[0]["violations"]
        # After the queue's retention the files go, and only then.
        assert rig.worker.sweep() == 0
        assert rig.worker.sweep(now=float(recording["expires"]) + 1) == 1
        left = [p for p in (recording["mix"], qa["transcript"]) if Path(p).exists()]  # noqa: ASYNC240
        assert left == []

    async def test_caller_says_no(self, rig: Rig) -> None:
        """A caller who presses 2 at the notice is not recorded at all."""
        result = await asyncio.wait_for(
            rig.emulator.call(
                "rec", actions=[Keys("2")], dial={"PJSIP/1001": DialOutcome("ANSWER", talk=2)}
            ),
            60,
        )
        assert result.dialled == ["PJSIP/1001"]
        assert "MIXMONITOR_FILENAME" not in result.variables
        assert await _events(rig.router, "recording") == []
        assert not list(rig.folder.glob("*/*.wav"))

    @pytest.mark.parametrize(
        ("answer", "visits", "recorded"),
        [
            pytest.param("아니요", ["notice", "no_recording", "sales", "bye"], False, id="no"),
            pytest.param("좋아요", ["notice", "sales", "bye"], True, id="yes"),
            pytest.param(None, ["notice", "sales", "bye"], True, id="silent"),
        ],
    )
    async def test_caller_answers_by_voice(
        self, rig: Rig, answer: str | None, visits: list[str], recorded: bool
    ) -> None:
        """A caller who says 아니요 at the notice is not recorded; one who says 좋아요, or
        nothing (the menu's on_failure), is."""
        actions = [say(answer, on="EXEC AudioSocket", after=0.5)] if answer else []
        result = await asyncio.wait_for(
            rig.emulator.call(
                "rec", actions=actions, dial={"PJSIP/1001": DialOutcome("ANSWER", talk=2)}
            ),
            60,
        )
        [trace] = rig.traces
        heard = [(e["kind"], e["phrase"]) for e in trace.events if e["event"] == "heard"]
        assert heard == [("speech", answer) if answer else ("noinput", None)]
        assert trace.nodes == visits
        assert result.dialled == ["PJSIP/1001"]
        assert ("MIXMONITOR_FILENAME" in result.variables) is recorded
        if recorded:
            assert (await _wait_for(rig.router, "recording"))["agent"] == "ann"
        else:
            assert await _events(rig.router, "recording") == []
            assert not list(rig.folder.glob("*/*.wav"))
