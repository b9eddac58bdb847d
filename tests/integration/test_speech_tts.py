"""Prompts with pyttsx3 on espeak-ng: 8 kHz WAV files, raw PCM for AudioSocket, the cache,
and the espeak-ng fallback when the pyttsx3 worker fails for real (killed, hung, empty file)."""

from __future__ import annotations

import asyncio
import os
import signal
import time
import wave
from collections.abc import AsyncIterator, Callable
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


def _gone(pid: int) -> bool:
    """The process has exited (or is a zombie waiting to be reaped)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in {"Z", "X"}


async def _until(condition: Callable[[], bool], seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True


def _spoken(path: Path) -> float:
    with wave.open(str(path)) as wav:
        assert wav.getframerate() == SAMPLE_RATE
        return voiced_share(wav.readframes(wav.getnframes()))


class TestWorkerFailures:
    """Whatever breaks the pyttsx3 worker, the prompt is rendered (by the espeak-ng
    command) and the next prompt has a fresh worker: a call never fails on a prompt."""

    async def test_an_empty_scratch_file(self, tmp_path: Path) -> None:
        """The worker's scratch file reads back empty (wave.open: EOFError), as when the
        espeak driver had not written it yet: fallback, then a new worker."""
        synth = Synthesizer(tmp_path / "prompts")
        try:
            await synth.render("하나", "ko")
            pid, scratch = synth.worker_pid, synth.scratch
            assert pid is not None and scratch is not None
            for serial in range(1, 4):  # the worker's next scratch files: empty for good
                (scratch / f"prompt-{pid}-{serial}.wav").symlink_to(os.devnull)
            path = await synth.render("안내해 드리겠습니다", "ko")
            assert _spoken(path) > 0.3
            assert synth.fallbacks == 1
            assert not scratch.exists()  # the broken worker went, with its scratch files
            await synth.render("셋", "ko")
            assert synth.fallbacks == 1
            assert synth.worker_pid not in (None, pid)
        finally:
            synth.close()

    async def test_a_killed_worker(self, tmp_path: Path) -> None:
        """The worker process dies between prompts: the next prompt is still rendered, and
        the one after it by a new worker (pyttsx3 is not given up for good)."""
        synth = Synthesizer(tmp_path / "prompts")
        try:
            await synth.render("하나", "ko")
            pid = synth.worker_pid
            assert pid is not None
            os.kill(pid, signal.SIGKILL)
            assert await _until(lambda: _gone(pid))
            path = await synth.render("안내해 드리겠습니다", "ko")
            assert _spoken(path) > 0.3
            assert synth.fallbacks == 1
            await synth.render("셋", "ko")
            assert synth.fallbacks == 1
            assert synth.worker_pid not in (None, pid)
        finally:
            synth.close()

    async def test_a_hung_worker(self, tmp_path: Path) -> None:
        """A worker that stops answering (SIGSTOP) costs worker_timeout, not the call: the
        prompt comes from espeak-ng, the hung process is killed, the next gets a new one."""
        synth = Synthesizer(tmp_path / "prompts", worker_timeout=1.0)
        try:
            await synth.render("하나", "ko")
            pid = synth.worker_pid
            assert pid is not None
            os.kill(pid, signal.SIGSTOP)
            started = time.monotonic()
            path = await synth.render("안내해 드리겠습니다", "ko")
            took = time.monotonic() - started
            assert 1.0 <= took < 3.0
            assert _spoken(path) > 0.3
            assert synth.fallbacks == 1
            assert await _until(lambda: _gone(pid))
            await synth.render("셋", "ko")
            assert synth.worker_pid not in (None, pid)
        finally:
            synth.close()

    async def test_a_worker_that_cannot_start_is_given_up(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """pyttsx3 cannot load libespeak-ng in the worker: each prompt is still rendered,
        and after three failed workers in a row no more are started."""
        broken = tmp_path / "site" / "pyttsx3"
        broken.mkdir(parents=True)
        (broken / "__init__.py").write_text(
            "raise OSError('libespeak-ng.so.1: cannot open shared object file')\n"
        )
        monkeypatch.syspath_prepend(broken.parent)  # a spawned worker gets the parent's path
        synth = Synthesizer(tmp_path / "prompts")
        try:
            for index in range(5):
                assert _spoken(await synth.render(f"번호 {index}번", "ko")) > 0.3
            assert synth.fallbacks == 3
            assert synth.worker_pid is None
        finally:
            synth.close()
