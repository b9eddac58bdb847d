"""The RECORD FILE fallback on a phone with silence suppression, in real time.

Asterisk's ``RECORD FILE`` writes only the frames the channel delivers: a
phone that sends nothing in silence gives a file with no gaps and never
trips ``s=`` (there are no silent frames to count), so each take lasts its
whole time. ``DtxLine`` plays that side (real Vosk, real espeak-ng audio);
the engine must put the missing time back where it was to find the end of
the answer.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import cast

import pytest

from ivr.agi.channel import Channel, RecordResult
from ivr.emulator.caller import synthesize
from ivr.speech_input import Listen, SpeechInput
from speech.audio import from_pcm, write_wav
from speech.recognizer import ModelRegistry, Recognizer
from speech.tts import Synthesizer


@pytest.fixture(scope="module")
def recognizer() -> Recognizer:
    return Recognizer(ModelRegistry())


class DtxLine:
    """``RECORD FILE`` for a caller who says ``audio`` ``at`` seconds after the first take
    starts, from a phone that sends frames only while they speak."""

    def __init__(self, audio: bytes, at: float) -> None:
        self.audio = audio
        self.at = at
        self.hung_up = False
        self.takes: list[tuple[float, float, int]] = []  # (start, seconds, bytes written)
        self.started: float | None = None  # loop time of the first take

    async def record_file(
        self,
        filename: str,
        fmt: str = "wav",
        escape_digits: str = "#",
        timeout_ms: int = 60000,
        *,
        silence_s: int | None = None,
    ) -> RecordResult:
        loop = asyncio.get_running_loop()
        self.started = loop.time() if self.started is None else self.started
        start = loop.time() - self.started
        await asyncio.sleep(timeout_ms / 1000)  # s= never fires: no silent frames come
        end = loop.time() - self.started
        talk_end = self.at + len(self.audio) / 16000
        first, last = max(start, self.at), min(end, talk_end)
        pcm = b""
        if last > first:
            pcm = self.audio[
                round((first - self.at) * 8000) * 2 : round((last - self.at) * 8000) * 2
            ]
        write_wav(Path(f"{filename}.{fmt}"), from_pcm(pcm))
        self.takes.append((start, end - start, len(pcm)))
        return RecordResult("timeout", None, len(pcm) // 2)


async def listen(tmp_path: Path, recognizer: Recognizer, line: DtxLine) -> tuple[str, float]:
    spool = tmp_path / "spool"
    spool.mkdir()
    synthesizer = Synthesizer(tmp_path / "prompts")
    ears = SpeechInput(recognizer, synthesizer, server=None, spool=spool)
    request = Listen(
        language="ko", phrases=["예약", "안내"], no_input=1.0, end_silence=0.5, max_utterance=5.0
    )
    try:
        heard = await ears.listen(cast(Channel, line), request)
    finally:
        synthesizer.close()
    assert not list(spool.iterdir())
    assert line.started is not None
    return f"{heard.kind}:{heard.phrase}", asyncio.get_running_loop().time() - line.started


async def test_an_answer_then_silence(tmp_path: Path, recognizer: Recognizer) -> None:
    """예약 at 0.2 s, then nothing: the first take's missing time is silence before the
    word, the second take's after it; heard after two takes (1 s + 1.5 s), not 6 s."""
    line = DtxLine(await asyncio.to_thread(synthesize, "예약", "ko"), at=0.2)
    heard, took = await listen(tmp_path, recognizer, line)
    assert heard == "speech:예약"
    assert len(line.takes) == 2
    assert took < 3.0


async def test_an_answer_across_the_first_take(tmp_path: Path, recognizer: Recognizer) -> None:
    """안내 starting 0.8 s into a 1 s take: the take ends mid-word, its missing time was
    the silence before; the rest of the word comes in the next take, heard as one."""
    line = DtxLine(await asyncio.to_thread(synthesize, "안내", "ko"), at=0.8)
    heard, _ = await listen(tmp_path, recognizer, line)
    assert heard == "speech:안내"
    assert line.takes[0][2] > 0 and line.takes[1][2] > 0  # the word was split across takes


async def test_silence_is_no_input_after_the_first_take(
    tmp_path: Path, recognizer: Recognizer
) -> None:
    line = DtxLine(b"", at=0.0)
    heard, took = await listen(tmp_path, recognizer, line)
    assert heard == "noinput:None"
    assert len(line.takes) == 1 and took < 1.5
