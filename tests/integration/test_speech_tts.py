"""Prompts with pyttsx3 on espeak-ng: 8 kHz WAV files, raw PCM for AudioSocket, the cache."""

from __future__ import annotations

import asyncio
import wave
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from speech.audio import SAMPLE_RATE, Vad, from_pcm
from speech.errors import TtsError
from speech.recognizer import ModelRegistry, Recognizer
from speech.tts import Synthesizer


@pytest.fixture
async def synthesizer(tmp_path: Path) -> AsyncIterator[Synthesizer]:
    synth = Synthesizer(tmp_path / "prompts", engine="pyttsx3")
    yield synth
    synth.close()


def voiced_share(pcm: bytes) -> float:
    frames = Vad().frames(from_pcm(pcm))
    return sum(frames) / len(frames)


class TestSynthesizer:
    async def test_korean_and_english_prompts_are_8khz_wav(self, synthesizer: Synthesizer) -> None:
        """pyttsx3 renders Korean and English to 8 kHz mono 16-bit files under <language>/."""
        for text, language in (("예약은 일번, 안내는 이번을 누르세요", "ko"), ("Press one", "en")):
            path = await synthesizer.render(text, language)
            assert path.parent.name == language
            assert path == synthesizer.path_for(text, language)
            with wave.open(str(path)) as wav:
                assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (8000, 1, 2)
                pcm = wav.readframes(wav.getnframes())
            assert len(pcm) / 2 / SAMPLE_RATE > 0.5
            assert voiced_share(pcm) > 0.3

    async def test_pcm_comes_from_the_same_cache(self, synthesizer: Synthesizer) -> None:
        """pcm() returns the WAV's samples and renders each prompt once."""
        pcm = await synthesizer.pcm("안내", "ko")
        again = await synthesizer.pcm("안내", "ko")
        path = synthesizer.path_for("안내", "ko")
        with wave.open(str(path)) as wav:
            assert wav.readframes(wav.getnframes()) == pcm
        assert again == pcm
        assert synthesizer.rendered == 1

    async def test_concurrent_renders_of_one_prompt_render_once(
        self, synthesizer: Synthesizer
    ) -> None:
        """Ten callers asking for one prompt at once share one rendering."""
        paths = await asyncio.gather(*(synthesizer.render("메뉴", "ko") for _ in range(10)))
        assert len(set(paths)) == 1
        assert synthesizer.rendered == 1

    async def test_build_renders_ahead(self, synthesizer: Synthesizer) -> None:
        """build() renders a list of prompts; changing a text makes a new file."""
        paths = await synthesizer.build([("하나", "ko"), ("Two", "en", None), ("셋", "ko")])
        assert all(p.exists() for p in paths)
        assert len(set(paths)) == 3
        assert synthesizer.rendered == 3
        await synthesizer.build([("하나", "ko")])
        assert synthesizer.rendered == 3

    async def test_unknown_voice_says_what_to_do(self, tmp_path: Path) -> None:
        """A voice espeak-ng lacks fails with a TtsError naming it (on both engines)."""
        for engine in ("pyttsx3", "espeak-ng"):
            synth = Synthesizer(tmp_path / engine, engine=engine)  # type: ignore[arg-type]
            try:
                with pytest.raises(TtsError, match="zz-nope"):
                    await synth.render("hello", "en", "zz-nope")
            finally:
                synth.close()

    async def test_espeak_fallback_renders_the_same_layout(self, tmp_path: Path) -> None:
        """The espeak-ng subprocess fallback writes the same file names and format."""
        synth = Synthesizer(tmp_path, engine="espeak-ng")
        path = await synth.render("안내", "ko")
        assert path == Synthesizer(tmp_path).path_for("안내", "ko")
        with wave.open(str(path)) as wav:
            assert wav.getframerate() == 8000

    async def test_a_rendered_prompt_is_recognised(self, synthesizer: Synthesizer) -> None:
        """The prompt audio is real speech: Vosk hears the menu word in it."""
        registry = ModelRegistry()
        recognizer = Recognizer(registry)
        try:
            path = await synthesizer.render("예약", "ko")
            result = await recognizer.recognize_file(path, "ko", ["예약", "안내", "메뉴"])
        finally:
            recognizer.close()
        assert result.phrase == "예약"
