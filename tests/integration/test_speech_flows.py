"""Speech in flows, end to end: the emulated caller speaks Korean (espeak-ng) over
AudioSocket, the engine recognises it with the real Vosk Korean model, with barge-in,
keys at any time, silence (the caller's phone sends no frame while its caller is quiet,
the worst real case, unless a test says otherwise), out-of-grammar speech, hang-ups,
the RECORD FILE fallback, a speech node with confirmation and an FAQ."""

from __future__ import annotations

import array
import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette

from ivr.agi.channel import Channel
from ivr.agi.server import FastAgiServer
from ivr.audiosocket.protocol import Kind, encode_frame
from ivr.audiosocket.server import AudioSocketServer
from ivr.console import metrics
from ivr.emulator.caller import Timeline, synthesize
from ivr.flows.interpreter import Engine, Trace
from ivr.flows.loader import load_flow
from ivr.flows.ports import SpeechPrompts
from ivr.speech_input import SpeechInput
from ivr.testing import AsteriskEmulator, Hangup, Press, SessionResult, Talk, say
from speech.recognizer import ModelRegistry, Recognizer
from speech.tts import Synthesizer

MENU = """
id: reservations
defaults: {language: ko, timeout: 3, retries: 1}
nodes:
  menu:
    type: menu
    prompt: 예약은 1번, 안내는 2번을 누르거나 말씀하세요.
    options:
      - {digit: 1, phrases: [예약], goto: booking}
      - {digit: 2, phrases: [안내], goto: info}
    no_input: {goto: quiet}
    no_match: {prompt: 잘 알아듣지 못했습니다.}
    on_failure: failed
  booking: {type: hangup, say: 예약을 도와드리겠습니다.}
  info: {type: hangup, say: 안내해 드리겠습니다.}
  quiet: {type: hangup, say: 입력이 없습니다.}
  failed: {type: hangup, say: 상담원에게 연결합니다.}
"""


@pytest.fixture(scope="module")
def recognizer() -> Recognizer:
    return Recognizer(ModelRegistry())


@dataclass
class Rig:
    engine: Engine
    server: FastAgiServer
    emulator: AsteriskEmulator
    traces: list[Trace]

    async def call(self, flow: str, actions: list[Any], **kwargs: Any) -> Any:
        return await self.emulator.call(flow, actions=actions, **kwargs)


async def rig_for(
    tmp_path: Path, recognizer: Recognizer, flows: str, *, audiosocket: bool = True
) -> AsyncIterator[Rig]:
    prompts = tmp_path / "prompts"
    spool = tmp_path / "spool"
    spool.mkdir(exist_ok=True)
    sockets = AudioSocketServer(port=0) if audiosocket else None
    if sockets is not None:
        await sockets.start()
    synthesizer = Synthesizer(prompts)
    engine = Engine(
        flows={}.get,
        prompts=SpeechPrompts(prompts, synthesizer),
        speech=SpeechInput(recognizer, synthesizer, server=sockets, spool=spool),
    )
    flow = load_flow("flow.yaml", flows)
    traces: list[Trace] = []

    async def handler(channel: Channel) -> None:
        traces.append(await engine.run(channel, flow))

    server = FastAgiServer(default=handler, port=0)
    await server.start()
    emulator = AsteriskEmulator(port=server.port, sound_dirs=[prompts], record_dir=tmp_path)
    try:
        yield Rig(engine, server, emulator, traces)
    finally:
        await server.drain(2)
        if sockets is not None:
            await sockets.close()
        synthesizer.close()


@pytest.fixture
async def rig(tmp_path: Path, recognizer: Recognizer) -> AsyncIterator[Rig]:
    async for made in rig_for(tmp_path, recognizer, MENU):
        yield made


def heard(trace: Trace) -> list[tuple[Any, ...]]:
    return [
        (e["kind"], e.get("phrase"), e.get("digit")) for e in trace.events if e["event"] == "heard"
    ]


async def test_a_spoken_option_is_chosen(rig: Rig) -> None:
    result = await rig.call("reservations", [say("안내", on="EXEC AudioSocket", after=0.5)])
    trace = rig.traces[0]
    assert heard(trace) == [("speech", "안내", None)]
    assert trace.nodes == ["menu", "info"]
    assert result.audiosockets[0].ending == "server-hangup"
    assert result.audiosockets[0].result == 0


async def test_barge_in_stops_the_prompt_within_100_ms(rig: Rig) -> None:
    """Real time: the caller speaks 0.6 s into a ~3 s prompt; the prompt stops."""
    rig.emulator.speed = 1.0
    result = await rig.call("reservations", [say("예약", on="EXEC AudioSocket", after=0.6)])
    record = result.audiosockets[0]
    onset = record.talk_onsets[0].wall
    last_prompt = max(f.wall for f in record.prompt)
    assert last_prompt - onset < 0.1, f"prompt went on {last_prompt - onset:.3f} s after speech"
    assert len(record.prompt) < 100  # far fewer frames than the whole prompt's ~150
    assert rig.traces[0].nodes == ["menu", "booking"]


async def test_a_key_during_the_prompt(rig: Rig) -> None:
    await rig.call("reservations", [Press("2", on="EXEC AudioSocket", after=0.3)])
    assert heard(rig.traces[0]) == [("key", None, "2")]
    assert rig.traces[0].nodes == ["menu", "info"]


def commands(result: SessionResult, name: str) -> list[str]:
    return [c for c in result.commands if c.upper().startswith(name)]


MENU_PROMPT = "예약은 1번, 안내는 2번을 누르거나 말씀하세요."


async def test_silence_takes_the_no_input_path(rig: Rig) -> None:
    """A caller who sends nothing: no input after the prompt and the 3 s no-input time on
    the wall clock, in one AudioSocket session the engine ends (not Asterisk's timeout,
    then a recording)."""
    result = await rig.call("reservations", [])
    assert heard(rig.traces[0]) == [("noinput", None, None)]
    assert rig.traces[0].nodes == ["menu", "quiet"]
    [record] = result.audiosockets
    assert (record.result, record.ending) == (0, "server-hangup")
    assert commands(result, "RECORD FILE") == []
    assert rig.engine.speech is not None
    prompt = len(await rig.engine.speech.synthesizer.pcm(MENU_PROMPT, "ko")) / 16000
    hung = next(f.wall for f in record.received if f.kind == Kind.HANGUP)
    assert prompt + 3.0 <= hung - record.received[0].wall < prompt + 3.6


async def test_barge_in_then_silence_on_a_dtx_phone_keeps_the_answer(rig: Rig) -> None:
    """Real time: the caller says 예약 during the prompt, then their phone sends nothing.
    The prompt stops, the engine's silence keeps the session open, and 0.5 s (the menu's
    end of speech) after the last frame the answer is in: no replay of the prompt, no
    RECORD FILE, one session ended by the engine."""
    rig.emulator.speed = 1.0
    talk = say("예약", on="EXEC AudioSocket", after=0.6)
    result = await rig.call("reservations", [talk])
    trace = rig.traces[0]
    assert heard(trace) == [("speech", "예약", None)]
    assert trace.nodes == ["menu", "booking"]
    assert trace.prompts.count(MENU_PROMPT) == 1
    assert commands(result, "RECORD FILE") == []
    [record] = result.audiosockets
    assert (record.result, record.ending) == (0, "server-hangup")
    assert record.prompt[-1].wall - record.talk_onsets[0].wall < 0.1
    samples = array.array("h", talk.audio)
    voiced = max(i for i, v in enumerate(samples) if abs(v) > 300) / 8000
    last_sound = record.talk_onsets[0].wall + voiced
    hung = next(f.wall for f in record.received if f.kind == Kind.HANGUP)
    assert 0.4 <= hung - last_sound < 0.9, f"answered {hung - last_sound:.3f} s after the word"
    last_frame = record.voice[-1].wall
    assert hung > last_frame + 0.1  # the word's frames stopped well before the answer
    assert [f for f in record.silence if f.wall > last_frame]  # and the line was kept open


KEEP = """
id: keep
defaults: {language: ko, timeout: 6, retries: 0}
nodes:
  menu:
    type: menu
    prompt: 메뉴
    options:
      - {digit: 1, phrases: [예약], goto: booking}
      - {digit: 2, phrases: [안내], goto: info}
    no_input: {goto: quiet}
    on_failure: quiet
  booking: {type: hangup, say: 예약.}
  info: {type: hangup, say: 안내.}
  quiet: {type: hangup, say: 입력이 없습니다.}
"""


async def test_a_caller_silent_for_three_seconds_is_still_heard(
    tmp_path: Path, recognizer: Recognizer
) -> None:
    """A short prompt, then 3 s in which the caller's phone sends nothing (beyond Asterisk's
    2 s without a frame), then 안내: the engine's silence kept the session, one session."""
    async for made in rig_for(tmp_path, recognizer, KEEP):
        result = await made.call("keep", [say("안내", on="EXEC AudioSocket", after=3.5)])
        assert heard(made.traces[0]) == [("speech", "안내", None)]
        assert made.traces[0].nodes == ["menu", "info"]
        [record] = result.audiosockets
        assert (record.result, record.ending) == (0, "server-hangup")
        assert len(record.silence) > 100
        assert commands(result, "RECORD FILE") == []


async def _speaks_then_closes(session: Any, data: str) -> int:
    """An AudioSocket() that gets the caller's 예약 across and then ends the session itself
    (Asterisk closing the socket, EXEC giving -1 on a live channel) before the engine
    could decide."""
    call, _, address = data.partition(",")
    host, _, port = address.rpartition(":")
    _, writer = await asyncio.open_connection(host, int(port))
    writer.write(encode_frame(Kind.UUID, uuid.UUID(call).bytes))
    audio = await asyncio.to_thread(synthesize, "예약", "ko")
    for at in range(0, len(audio), 320):
        writer.write(encode_frame(Kind.AUDIO, audio[at : at + 320].ljust(320, b"\0")))
    await writer.drain()
    await asyncio.sleep(0.05)
    writer.close()
    await writer.wait_closed()
    return -1


async def test_a_session_that_ends_early_keeps_what_was_heard(rig: Rig) -> None:
    """The caller spoke, then Asterisk ended the session (-1): what was heard is the
    answer, rather than the prompt again and a recording."""
    rig.emulator.applications["AudioSocket"] = _speaks_then_closes
    result = await rig.call("reservations", [])
    trace = rig.traces[0]
    assert heard(trace) == [("speech", "예약", None)]
    assert trace.nodes == ["menu", "booking"]
    assert trace.prompts.count(MENU_PROMPT) == 1
    assert commands(result, "RECORD FILE") == []


async def test_a_phone_that_sends_silence_is_heard_too(rig: Rig) -> None:
    """The same answer on a phone without silence suppression: decided in audio time."""
    timeline = Timeline([say("안내", on="EXEC AudioSocket", after=0.5)], dtx=False)
    result = await rig.emulator.call("reservations", timeline=timeline)
    assert heard(rig.traces[0]) == [("speech", "안내", None)]
    [record] = result.audiosockets
    assert (record.result, record.ending) == (0, "server-hangup")


async def test_out_of_grammar_speech_is_no_match_not_a_wrong_option(rig: Rig) -> None:
    """'감사합니다' is no option: asked again, keys only (it was misheard once), then
    the caller stays silent: the no-input path."""
    result = await rig.call("reservations", [say("감사합니다", on="EXEC AudioSocket", after=0.4)])
    trace = rig.traces[0]
    assert heard(trace) == [("nomatch", None, None), ("noinput", None, None)]
    assert trace.nodes == ["menu", "quiet"]
    assert len(result.audiosockets) == 1  # the last try took keys only
    assert "번호를 눌러 주세요." in trace.prompts


async def test_the_keys_only_try_takes_a_key(rig: Rig) -> None:
    await rig.call(
        "reservations",
        [say("오늘 날씨가 좋네요", on="EXEC AudioSocket", after=0.4),
         Press("1", on="STREAM FILE", nth=2, after=0.2)],
    )  # fmt: skip
    assert heard(rig.traces[0])[-1] == ("key", None, "1")
    assert rig.traces[0].nodes == ["menu", "booking"]


async def test_hang_up_mid_utterance_ends_cleanly(rig: Rig) -> None:
    result = await rig.call(
        "reservations",
        [say("오늘 날씨가 좋네요", on="EXEC AudioSocket", after=0.5),
         Hangup(on="EXEC AudioSocket", after=0.9)],
    )  # fmt: skip
    assert rig.traces[0].ended == "caller_hangup"
    assert result.audiosockets[0].ending == "caller-hangup"
    assert rig.engine.speech is not None and rig.engine.speech.server is not None
    assert rig.engine.speech.server.sessions == 0


async def test_without_audiosocket_the_answer_is_recorded_and_recognised(
    tmp_path: Path, recognizer: Recognizer
) -> None:
    async for made in rig_for(tmp_path, recognizer, MENU, audiosocket=False):
        result = await made.call("reservations", [say("예약", on="RECORD FILE", after=0.3)])
        assert any(c.startswith("RECORD FILE") for c in result.commands)
        assert heard(made.traces[0]) == [("speech", "예약", None)]
        assert made.traces[0].nodes == ["menu", "booking"]
        assert not list((tmp_path / "spool").iterdir())  # the recording is not kept


async def _asr_samples(
    own: metrics.Metrics,
) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """``GET /metrics`` (the engine's route) read back: the ASR latency samples."""
    app = Starlette(routes=metrics.routes(own))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://engine") as http:
        reply = await http.get("/metrics")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(reply.text)
        for sample in family.samples
        if sample.name.startswith("ivr_asr_seconds")
    }


def _observed_into(rig: Rig, own: metrics.Metrics) -> None:
    """The engine's speech tells ``own`` its latencies, as ``ivr serve`` tells its /metrics."""
    assert rig.engine.speech is not None
    rig.engine.speech.on_latency = lambda lang, seconds: metrics.observe_asr(lang, seconds, own)


async def test_recognition_latency_is_in_the_metrics(rig: Rig) -> None:
    """A spoken answer over AudioSocket: one ASR latency for Korean in /metrics, end of
    speech to the result (well under a second for a two-phrase grammar); a key is none."""
    own = metrics.Metrics(process=False)
    _observed_into(rig, own)
    await rig.call("reservations", [say("안내", on="EXEC AudioSocket", after=0.5)])
    await rig.call("reservations", [Press("2", on="EXEC AudioSocket", after=0.3)])
    assert [heard(t)[0][0] for t in rig.traces] == ["speech", "key"]
    samples = await _asr_samples(own)
    korean = (("language", "ko"),)
    assert samples[("ivr_asr_seconds_count", korean)] == 1
    assert 0 < samples[("ivr_asr_seconds_sum", korean)] < 2


async def test_without_audiosocket_recognition_latency_is_in_the_metrics(
    tmp_path: Path, recognizer: Recognizer
) -> None:
    """RECORD FILE: from the take that ended on the caller's silence to the result."""
    async for made in rig_for(tmp_path, recognizer, MENU, audiosocket=False):
        own = metrics.Metrics(process=False)
        _observed_into(made, own)
        await made.call("reservations", [say("예약", on="RECORD FILE", after=0.3)])
        assert heard(made.traces[0]) == [("speech", "예약", None)]
        samples = await _asr_samples(own)
        assert samples[("ivr_asr_seconds_count", (("language", "ko"),))] == 1
        assert 0 < samples[("ivr_asr_seconds_sum", (("language", "ko"),))] < 2


async def test_without_audiosocket_a_caller_who_starts_late_is_heard(
    tmp_path: Path, recognizer: Recognizer
) -> None:
    """RECORD FILE's s= counts silence from the start: a caller who begins 1.5 s after the
    prompt, within the menu's 3 s, is heard, not cut off after 1 s of silence."""
    async for made in rig_for(tmp_path, recognizer, MENU, audiosocket=False):
        # A continuous phone: its silent frames are what trips s= (a silence-suppressing
        # one sends none; its takes are timed on the wall clock: test_speech_recording).
        actions = [say("예약", on="RECORD FILE", after=1.5)]
        await made.call("reservations", [], timeline=Timeline(actions, dtx=False))
        assert heard(made.traces[0]) == [("speech", "예약", None)]
        assert made.traces[0].nodes == ["menu", "booking"]
        assert not list((tmp_path / "spool").iterdir())


async def test_without_audiosocket_an_answer_across_two_takes(
    tmp_path: Path, recognizer: Recognizer
) -> None:
    """An answer still under way when the first take (the no-input time) ends goes on in
    a second take, which ends on silence; both are heard as one answer."""
    async for made in rig_for(tmp_path, recognizer, MENU, audiosocket=False):
        # Fast mode skips the wall clock, so only a continuous phone's takes hold the
        # time they lasted (a silence-suppressing phone's: test_speech_recording).
        actions = [say("안내", on="RECORD FILE", after=2.8)]
        result = await made.call("reservations", [], timeline=Timeline(actions, dtx=False))
        assert heard(made.traces[0]) == [("speech", "안내", None)]
        assert len(commands(result, "RECORD FILE")) == 2
        assert not list((tmp_path / "spool").iterdir())


async def test_without_audiosocket_silence_and_hang_ups_leave_no_recording(
    tmp_path: Path, recognizer: Recognizer
) -> None:
    """Nothing a caller said outlives the call: the spool is empty after a silent caller,
    a key, and a caller who hangs up mid-recording."""
    async for made in rig_for(tmp_path, recognizer, MENU, audiosocket=False):
        spool = tmp_path / "spool"
        await made.call("reservations", [Talk(0.2, at=60)])  # frames, but silence now
        assert heard(made.traces[-1])[0] == ("noinput", None, None)
        assert not list(spool.iterdir())
        await made.call("reservations", [Talk(0.2, at=60), Press("1", on="RECORD FILE", after=1)])
        assert heard(made.traces[-1]) == [("key", None, "1")]
        assert not list(spool.iterdir())
        result = await made.call(
            "reservations",
            [say("오늘 날씨가 좋네요", on="RECORD FILE", after=0.3),
             Hangup(on="RECORD FILE", after=1.0)],
        )  # fmt: skip
        assert made.traces[-1].ended == "caller_hangup"
        assert result.hung_up
        assert not list(spool.iterdir())


SPEECH = """
id: ask
defaults: {language: ko, timeout: 3, retries: 1}
nodes:
  what:
    type: speech
    prompt: 무엇을 도와드릴까요?
    variable: topic
    grammar: [반품, 해지, 번호]
    confirm: true
    next: done
    on_failure: failed
  done: {type: hangup, say: 알겠습니다.}
  failed: {type: hangup, say: 상담원에게 연결합니다.}
"""


async def test_speech_node_with_confirmation(tmp_path: Path, recognizer: Recognizer) -> None:
    async for made in rig_for(tmp_path, recognizer, SPEECH):
        await made.call(
            "ask",
            [say("해지", on="EXEC AudioSocket", after=0.4),
             say("좋아요", on="EXEC AudioSocket", nth=2, after=0.4)],
        )  # fmt: skip
        trace = made.traces[0]
        assert trace.variables["topic"] == "해지"
        assert [e["event"] for e in trace.events if e["event"] in ("confirmed", "recognised")] == [
            "confirmed",
            "recognised",
        ]
        assert trace.nodes == ["what", "done"]


FAQ = """
id: help
defaults: {language: ko, timeout: 3, retries: 1}
nodes:
  ask:
    type: faq
    prompt: 궁금하신 점을 말씀하세요.
    entries:
      - {question: 반품 안내, answer: 반품은 구매 후 30일 안에 가능합니다.}
      - {question: 예약 번호, answer: 예약 번호는 문자로 보내 드렸습니다.}
    handoff: person
    next: bye
  person: {type: hangup, say: 상담원에게 연결합니다.}
  bye: {type: hangup, say: 감사합니다.}
"""


async def test_faq_answers_by_speech_and_hands_over(tmp_path: Path, recognizer: Recognizer) -> None:
    async for made in rig_for(tmp_path, recognizer, FAQ):
        await made.call("help", [say("반품 안내", on="EXEC AudioSocket", after=0.4)])
        await made.call("help", [Press("0", on="EXEC AudioSocket", after=0.3)])
        answered, handed = made.traces
        assert [e["question"] for e in answered.events if e["event"] == "faq_answer"] == [
            "반품 안내"
        ]
        assert "반품은 구매 후 30일 안에 가능합니다." in answered.prompts
        assert answered.nodes == ["ask", "bye"]
        assert handed.nodes == ["ask", "person"]


async def test_a_flow_that_requires_speech_needs_its_model(tmp_path: Path) -> None:
    """No model for the flow's language: the engine does not start, and says how to fix it;
    an optional flow only takes keys."""
    import contextlib

    from ivr.app import _start_speech
    from ivr.config import Settings
    from ivr.errors import ConfigError
    from ivr.flows.registry import FlowRegistry

    flows = tmp_path / "flows"
    flows.mkdir()
    body = (
        "nodes:\n  m: {type: menu, prompt: Hi., on_failure: m,\n"
        "      options: [{digit: 1, phrases: [hi], goto: m}]}\n"
    )
    (flows / "en.yaml").write_text("id: en\ndefaults: {language: en, speech: required}\n" + body)
    registry = FlowRegistry(flows)
    assert registry.reload() == []
    settings = Settings(models_dir=tmp_path / "models", audiosocket_port=0)
    engine = Engine(flows=registry.get, prompts=SpeechPrompts(tmp_path / "prompts"))
    async with contextlib.AsyncExitStack() as stack:
        with pytest.raises(
            ConfigError, match="ivr speech models install URL-or-path --language en"
        ):
            await _start_speech(settings, engine, registry, stack)
    (flows / "en.yaml").write_text("id: en\ndefaults: {language: en}\n" + body)
    registry.reload()
    async with contextlib.AsyncExitStack() as stack:
        await _start_speech(settings, engine, registry, stack)
        assert engine.speech is not None and not engine.speech.speaks("en")
        assert engine.speech.speaks("ko")


QUIET_MENU = """
id: quiet
defaults: {language: ko, timeout: 1, retries: 0}
nodes:
  menu:
    type: menu
    options:
      - {digit: 1, phrases: [예약], goto: booking}
    no_input: {goto: nothing}
    on_failure: nothing
  booking: {type: hangup, say: 예약.}
  nothing: {type: hangup, say: 입력이 없습니다.}
"""


async def _missing(session: Any, data: str) -> int:
    return -2  # Asterisk without app_audiosocket: EXEC answers 200 result=-2


async def test_without_app_audiosocket_the_engine_records_at_once(
    tmp_path: Path, recognizer: Recognizer
) -> None:
    """EXEC AudioSocket fails: no wait for a connection that will never come; the answer
    is recorded; and later calls go straight to RECORD FILE."""
    async for made in rig_for(tmp_path, recognizer, MENU):
        made.emulator.applications["AudioSocket"] = _missing
        started = time.monotonic()
        await made.call("reservations", [say("예약", on="RECORD FILE", after=0.3)])
        assert time.monotonic() - started < 2.5  # no 3 s connect timeout on top
        second = await made.call("reservations", [say("안내", on="RECORD FILE", after=0.3)])
        assert [t.nodes for t in made.traces] == [["menu", "booking"], ["menu", "info"]]
        assert not any(c.startswith("EXEC AudioSocket") for c in second.commands)


async def _silent(session: Any, data: str) -> int:
    """An AudioSocket that connects and sends no audio at all (one-way audio)."""
    import asyncio
    import uuid as uuidlib

    from ivr.audiosocket.protocol import Kind, encode_frame

    call, _, address = data.partition(",")
    host, _, port = address.rpartition(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(encode_frame(Kind.UUID, uuidlib.UUID(call).bytes))
    await writer.drain()
    while await reader.read(4096):
        pass
    writer.close()
    return 0


async def test_a_stream_with_no_audio_ends_as_no_input(
    tmp_path: Path, recognizer: Recognizer
) -> None:
    """No frame at all (one-way audio): no input once the no-input time has passed on
    the wall clock (1 s here), not after some longer stall bound."""
    async for made in rig_for(tmp_path, recognizer, QUIET_MENU):
        made.emulator.applications["AudioSocket"] = _silent
        started = time.monotonic()
        await made.call("quiet", [])
        assert time.monotonic() - started < 2.5
        assert made.traces[0].nodes == ["menu", "nothing"]
        assert heard(made.traces[0]) == [("noinput", None, None)]
