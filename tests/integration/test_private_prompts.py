"""Prompts made from a call's data, through the engine and the Asterisk emulator over TCP:
digits and whole numbers said by Asterisk (SAY DIGITS / SAY NUMBER) where it knows the
language, the rest rendered by espeak-ng into the call's own folder, which goes when
the call ends however it ends (normally, a hang-up, an error, a cancel); variables a
flow marks sensitive are masked in its trace; the flow model refuses what cannot be said."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from ivr.agi.server import FastAgiServer
from ivr.flows.interpreter import HIDDEN_PROMPT, Engine, Trace
from ivr.flows.loader import load_flow
from ivr.flows.ports import PER_CALL, SpeechPrompts
from ivr.flows.problems import FlowError
from ivr.flows.prompts import prompt_texts
from ivr.speech_input import SpeechInput
from ivr.testing import AsteriskEmulator, Keys, SessionResult, say
from speech.recognizer import ModelRegistry, Recognizer
from speech.tts import Synthesizer
from tests.integration.helpers.engine_rig import flows_in, serving

FLOWS = {
    "numbers": """
id: numbers
defaults: {language: en}
sensitive: [balance]
nodes:
  set: {type: set, variables: {balance: "${amount}"}, next: number}
  number: {type: say, value: "${balance}", as: number, next: bye}
  bye: {type: hangup}
""",
    "koreannumber": """
id: koreannumber
defaults: {language: ko}
nodes:
  number: {type: say, value: "${amount}", as: number, next: bye}
  bye: {type: hangup}
""",
    "keys": """
id: keys
nodes:
  digits: {type: say, value: "${code}", as: digits, next: bye}
  bye: {type: hangup}
""",
    "balance": """
id: balance
sensitive: [balance]
nodes:
  set: {type: set, variables: {balance: "58213947", greeting: Hello}, next: greet}
  greet: {type: play, say: "${greeting}.", next: said}
  said: {type: play, say: "Your balance is ${balance}.", next: bye}
  bye: {type: hangup}
""",
    "broken": """
id: broken
nodes:
  pin: {type: gather, prompt: PIN., variable: pin, sensitive: true, next: read, on_failure: bye}
  read: {type: play, say: "You entered ${pin}.", next: box}
  box: {type: set, variables: {box: "1\\n2"}, next: mail}
  mail: {type: voicemail, mailbox: "${box}"}
  bye: {type: hangup}
""",
    "wait": """
id: wait
nodes:
  pin: {type: gather, prompt: PIN., variable: pin, sensitive: true, next: read, on_failure: bye}
  read: {type: play, say: "You entered ${pin}.", next: more}
  more: {type: gather, prompt: "More?", variable: more, timeout: 60, next: bye, on_failure: bye}
  bye: {type: hangup}
""",
}


@dataclass
class Rig:
    engine: Engine
    server: FastAgiServer
    emulator: AsteriskEmulator
    traces: list[Trace]
    prompts: Path

    async def call(self, script: str, *keys: str, **fields: object) -> SessionResult:
        return await self.emulator.call(
            script,
            actions=[Keys(k) for k in keys],
            **fields,  # type: ignore[arg-type]
        )

    def private(self) -> list[Path]:
        """Per-call prompt files on disk now."""
        return list((self.prompts / PER_CALL).rglob("*.wav"))


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    registry = flows_in(tmp_path / "flows", FLOWS)
    prompts = tmp_path / "prompts"
    engine = Engine(flows=registry.get, prompts=SpeechPrompts(prompts))
    server, traces = await serving(registry, engine)
    emulator = AsteriskEmulator(port=server.port, sound_dirs=[prompts])
    try:
        yield Rig(engine, server, emulator, traces, prompts)
    finally:
        await server.drain(1)
        assert isinstance(engine.prompts, SpeechPrompts)
        engine.prompts.private.close()


async def until(check: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"not in time: {what}"
        await asyncio.sleep(0.02)


def played_privately(result: SessionResult) -> list[str]:
    return [c for c in result.commands if c.startswith("STREAM FILE") and PER_CALL in c]


class TestSayNode:
    async def test_a_whole_number_is_said_by_asterisk(self, rig: Rig) -> None:
        """English knows SAY NUMBER: no prompt file is made at all."""
        result = await rig.call("numbers?amount=1200")
        assert 'SAY NUMBER 1200 ""' in result.commands
        assert played_privately(result) == []

    async def test_the_emulator_says_a_number_as_say_c_does(self, rig: Rig) -> None:
        """SAY NUMBER plays what say.c's get_number_str_en lists (teens whole, millions),
        and answers as Asterisk 22 does."""
        result = await rig.call("numbers?amount=58213947")
        files = ["50", "8", "million", "2", "hundred", "13", "thousand", "9", "hundred", "40"]
        assert result.played[-11:] == [f"digits/{f}" for f in [*files, "7"]]
        said = result.commands.index('SAY NUMBER 58213947 ""')
        assert result.exchanges[said].received == b"200 result=0\n"

    async def test_a_decimal_is_spoken_for_the_call_only(self, rig: Rig) -> None:
        """SAY NUMBER says whole numbers only: 42.50 is spoken by TTS (never cut to 42),
        into the call's folder, gone after the call; nothing is cached for it."""
        result = await rig.call("numbers?amount=42.50")
        assert not any(c.startswith("SAY NUMBER") for c in result.commands)
        assert len(played_privately(result)) == 1
        assert rig.private() == []
        assert not Synthesizer(rig.prompts).path_for("42.50", "en").exists()

    async def test_korean_numbers_are_spoken_for_the_call_only(self, rig: Rig) -> None:
        """say.c has no Korean number syntax (it would say an English 'thousand' in Korean
        files): the number is spoken by TTS, per call."""
        result = await rig.call("koreannumber?amount=1200", language="ko")
        assert not any(c.startswith("SAY NUMBER") for c in result.commands)
        (played,) = played_privately(result)
        reply = result.exchanges[result.commands.index(played)].received
        assert re.fullmatch(rb"200 result=0 endpos=[1-9]\d*\n", reply), reply
        assert rig.private() == []

    async def test_digits_with_a_leading_star(self, rig: Rig) -> None:
        """SAY DIGITS refuses an argument that does not start with a digit (sscanf "%d"):
        a leading * is its sound file, the rest SAY DIGITS."""
        result = await rig.call("keys?code=%2A12%2334")
        assert result.commands[1:3] == ['STREAM FILE digits/star ""', 'SAY DIGITS 12#34 ""']
        assert result.agistatus != "FAILURE"

    async def test_a_sensitive_variable_is_masked_in_the_trace(self, rig: Rig) -> None:
        """The flow marks the balance sensitive: its prompt shows masked, a prompt with a
        plain variable shows as said; both are per call."""
        result = await rig.call("balance")
        trace = rig.traces[-1]
        assert trace.prompts == ["Hello.", HIDDEN_PROMPT]
        assert trace.sensitive == {"balance"}
        assert len(played_privately(result)) == 2


class TestCallFolder:
    async def test_an_error_mid_call_removes_the_calls_prompts(self, rig: Rig) -> None:
        """The flow fails after reading the PIN back (a value Asterisk cannot take): the
        call's folder is removed all the same."""
        result = await rig.call("broken", "73915286#")
        assert len(played_privately(result)) == 1
        assert result.agistatus == "FAILURE"  # the dialplan's fallback takes the caller
        await until(lambda: not rig.private(), "the call's prompts removed")
        assert list((rig.prompts / PER_CALL).glob("*/*")) == []

    async def test_a_cancelled_call_removes_its_prompts(self, rig: Rig) -> None:
        """The engine stops mid-call (the call's task is cancelled) while the PIN read back
        is on disk: the file goes with the call."""
        rig.emulator.speed = 1.0
        call = asyncio.ensure_future(rig.call("wait", "73915286#"))
        await until(lambda: bool(rig.private()), "the PIN read back on disk", timeout=20)
        await rig.server.drain(0)  # no grace: the call's task is cancelled now
        await asyncio.wait_for(call, 10)
        assert rig.private() == []


CONFIRM = """
id: confirm
defaults: {language: ko, timeout: 3, retries: 0}
nodes:
  what:
    type: speech
    prompt: 무엇을 도와드릴까요?
    variable: topic
    grammar: [반품, 해지, 번호]
    confirm: true
    sensitive: true
    next: bye
    on_failure: bye
  bye: {type: hangup}
"""


async def test_without_audiosocket_the_read_back_is_a_per_call_file(tmp_path: Path) -> None:
    """Speech heard through RECORD FILE: the confirmation that reads the answer back is
    played from the call's folder (never the cache), and gone after the call."""
    registry = flows_in(tmp_path / "flows", {"confirm": CONFIRM})
    prompts, spool = tmp_path / "prompts", tmp_path / "spool"
    spool.mkdir()
    synthesizer = Synthesizer(prompts)
    speech = SpeechInput(Recognizer(ModelRegistry()), synthesizer, server=None, spool=spool)
    engine = Engine(flows=registry.get, prompts=SpeechPrompts(prompts, synthesizer), speech=speech)
    server, traces = await serving(registry, engine)
    emulator = AsteriskEmulator(port=server.port, sound_dirs=[prompts], record_dir=tmp_path)
    try:
        result = await emulator.call(
            "confirm", actions=[say("해지", on="RECORD FILE", after=0.3)], language="ko"
        )
    finally:
        await server.drain(1)
        synthesizer.close()
    (read_back,) = played_privately(result)
    reply = result.exchanges[result.commands.index(read_back)].received
    assert re.fullmatch(rb"200 result=0 endpos=[1-9]\d*\n", reply), reply  # played whole
    assert list((prompts / PER_CALL).rglob("*.wav")) == []
    assert traces[0].prompts[-1] == HIDDEN_PROMPT  # the answer read back, masked


class TestFlowModel:
    @pytest.mark.parametrize(
        ("node", "wanted"),
        [
            ("{type: say, value: abc, as: digits, next: bye}", "says keypad digits"),
            ("{type: say, value: 'twelve', as: number, next: bye}", "says a number"),
        ],
    )
    def test_a_say_that_cannot_be_said_is_refused(self, node: str, wanted: str) -> None:
        """A literal that is not digits (or a number) is an error at load, with its line."""
        with pytest.raises(FlowError, match=wanted):
            load_flow("f.yaml", f"id: f\nnodes:\n  s: {node}\n  bye: {{type: hangup}}\n")

    def test_sensitive_is_allowed_on_speech_faq_and_the_flow(self) -> None:
        """``sensitive`` on a speech node, an FAQ and the flow's own variable list."""
        flow = load_flow(
            "f.yaml",
            "id: f\nsensitive: [balance]\nnodes:\n"
            "  s: {type: speech, variable: t, sensitive: true, next: q, on_failure: q}\n"
            "  q: {type: faq, sensitive: true, entries: [{question: hi there, answer: Hi.}],"
            " handoff: bye, next: bye}\n"
            "  bye: {type: hangup}\n",
        )
        assert flow.sensitive == ["balance"]
        assert flow.nodes["s"].sensitive and flow.nodes["q"].sensitive  # type: ignore[union-attr]

    def test_a_sensitive_name_that_is_not_a_variable_is_refused(self) -> None:
        with pytest.raises(FlowError, match="sensitive"):
            load_flow("f.yaml", "id: f\nsensitive: [a.b]\nnodes:\n  bye: {type: hangup}\n")

    def test_fixed_texts_are_rendered_ahead_and_faq_answers_too(self) -> None:
        """Fixed prompts (FAQ answers included) are built at start; text with a variable
        never is (it is rendered per call)."""
        flow = load_flow(
            "f.yaml",
            "id: f\nnodes:\n"
            "  q: {type: faq, prompt: Ask., entries: [{question: hi there, answer: Hi.}],"
            " handoff: bye, next: p}\n"
            '  p: {type: play, say: "You entered ${pin}.", next: bye}\n'
            "  bye: {type: hangup, say: Bye.}\n",
        )
        assert {text for text, _, _ in prompt_texts([flow])} == {"Ask.", "Hi.", "Bye."}
