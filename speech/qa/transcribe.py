"""Transcribing recorded calls: Vosk in free-form mode with word times, per leg, off the loop.

Each leg (the agent's and the caller's files from MixMonitor's ``r()`` and
``t()``, or one mono mix) is read as 8 kHz audio, decoded by a Vosk
recognizer with the model's full vocabulary and ``SetWords(True)``, and run
through the voice activity detector of :mod:`speech.qa.vad` for the speech
stretches the timing rules read. Phrases are **never** checked with a Vosk
grammar: given a grammar, Vosk returns grammar words for any speech, often
with confidence 1.0 (alphacep/vosk-api #741, #1339, #2011), and the Korean
model has no ``[unk]`` to absorb the rest (#2041).

:func:`transcribe_legs` is blocking. :class:`Transcriber` runs the legs of a
call in parallel in a worker pool, threads by default: Vosk's C code releases
the GIL, and threads decoded as much audio per CPU second as worker
processes, neither winning consistently on the wall clock (``python
bench/qa.py --pools-only 3``, four runs in bench/README.md), while sharing
the engine's loaded model where each process loads its own (about 500 MB
for the Korean model). ``pool="process"`` is there for a worker that would
rather keep a crash in native code away from the engine's live calls.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import wave
from collections.abc import Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Final, Literal

from speech.audio import SAMPLE_RATE, read_wav, to_pcm
from speech.qa.errors import TranscriptError
from speech.qa.transcript import Leg, Span, Speaker, Transcript, Word
from speech.qa.vad import speech_spans
from speech.recognizer import LoadedModel, ModelRegistry

__all__ = ["Transcriber", "transcribe_leg", "transcribe_legs"]

Pool = Literal["thread", "process"]

_CHUNK: Final = SAMPLE_RATE // 2  # Vosk is fed half a second at a time


@dataclass(frozen=True, slots=True)
class _Decoded:
    """One leg's decoding, as plain values (a process pool pickles it back)."""

    duration: float
    words: tuple[tuple[str, float, float, float], ...]
    spans: tuple[tuple[float, float], ...]
    seconds: float


def _decode(path: Path, model: Any) -> _Decoded:
    """Read one leg, find its speech, decode it free-form with word times (blocking)."""
    import vosk  # type: ignore[import-untyped]

    began = time.perf_counter()
    try:
        samples = read_wav(path)
    except (OSError, EOFError, ValueError, wave.Error) as error:
        raise TranscriptError(
            f"cannot read {path} as a 16-bit PCM WAV file: {error or type(error).__name__}"
        ) from error
    spans = speech_spans(samples)
    kaldi = vosk.KaldiRecognizer(model, SAMPLE_RATE)
    kaldi.SetWords(True)
    raw: list[dict[str, Any]] = []
    pcm = to_pcm(samples)
    for offset in range(0, len(pcm), 2 * _CHUNK):
        if kaldi.AcceptWaveform(pcm[offset : offset + 2 * _CHUNK]):
            raw += json.loads(kaldi.Result()).get("result", ())
    raw += json.loads(kaldi.FinalResult()).get("result", ())
    words = tuple(
        (str(w["word"]), float(w["start"]), float(w["end"]), min(1.0, max(0.0, float(w["conf"]))))
        for w in raw
    )
    return _Decoded(len(samples) / SAMPLE_RATE, words, tuple(spans), time.perf_counter() - began)


def _leg(path: Path, speaker: Speaker, decoded: _Decoded) -> tuple[Leg, list[Word], list[Span]]:
    leg = Leg(speaker, round(decoded.duration, 3), str(path), round(decoded.seconds, 3))
    words = [Word(text, a, b, round(conf, 3), speaker) for text, a, b, conf in decoded.words]
    spans = [Span(start, end, speaker) for start, end in decoded.spans]
    return leg, words, spans


def transcribe_leg(
    path: Path, speaker: Speaker, model: LoadedModel
) -> tuple[Leg, list[Word], list[Span]]:
    """One leg's recording, its words and its speech (blocking)."""
    return _leg(path, speaker, _decode(Path(path), model.model))


def _named(
    agent: Path | None, caller: Path | None, mono: Path | None
) -> list[tuple[Speaker, Path]]:
    if mono is not None and (agent is not None or caller is not None):
        raise TranscriptError(
            "give the agent's and the caller's legs, or one mono mix, not both: the mix "
            "repeats the legs' words with no speaker"
        )
    given: tuple[tuple[Speaker, Path | None], ...] = (
        ("agent", agent),
        ("caller", caller),
        ("any", mono),
    )
    legs = [(speaker, Path(path)) for speaker, path in given if path is not None]
    if not legs:
        raise TranscriptError("no recording given: pass agent= and caller=, or mono=")
    return legs


def _model_name(path: Path) -> str:
    return path.parent.name if path.name == "model" else path.name


def _assemble(
    language: str, model: str, parts: Sequence[tuple[Leg, list[Word], list[Span]]]
) -> Transcript:
    return Transcript(
        language=language,
        legs=tuple(leg for leg, _, _ in parts),
        words=tuple(w for _, words, _ in parts for w in words),
        speech=tuple(s for _, _, spans in parts for s in spans),
        model=model,
    )


def transcribe_legs(
    agent: Path | None = None,
    caller: Path | None = None,
    mono: Path | None = None,
    *,
    model: LoadedModel,
) -> Transcript:
    """A call's transcript from its legs' WAV files (any rate, 16-bit), one leg after another.

    Blocking: async code uses :meth:`Transcriber.transcribe`.
    """
    parts = [transcribe_leg(path, speaker, model) for speaker, path in _named(agent, caller, mono)]
    return _assemble(model.language, _model_name(model.path), parts)


# -- the pool -----------------------------------------------------------------------

_process_models: dict[str, Any] = {}


def _decode_in_process(path: str, model_path: str) -> _Decoded:
    """In a worker process: load the model once per process, then decode."""
    if model_path not in _process_models:
        import vosk

        vosk.SetLogLevel(-1)
        _process_models[model_path] = vosk.Model(model_path)
    return _decode(Path(path), _process_models[model_path])


class Transcriber:
    """Transcribes calls in a worker pool, the legs of a call in parallel.

    ``pool="thread"`` (the default) shares the registry's loaded model between
    threads: no memory added to an engine that already has it.
    ``pool="process"`` decodes in worker processes, started with ``spawn`` (an
    engine's threads and sockets are not forked), each loading its own copy of
    the model.
    """

    def __init__(
        self,
        registry: ModelRegistry | None = None,
        *,
        workers: int | None = None,
        pool: Pool = "thread",
    ) -> None:
        self.registry = registry or ModelRegistry()
        self.pool = pool
        count = workers or os.cpu_count() or 2
        self.executor: Executor = (
            ThreadPoolExecutor(max_workers=count, thread_name_prefix="qa-vosk")
            if pool == "thread"
            else ProcessPoolExecutor(max_workers=count, mp_context=get_context("spawn"))
        )

    def close(self) -> None:
        """Stop the workers (after the legs being decoded)."""
        self.executor.shutdown(wait=True, cancel_futures=True)

    async def __aenter__(self) -> Transcriber:
        return self

    async def __aexit__(self, *_: object) -> None:
        await asyncio.to_thread(self.close)

    async def transcribe(
        self,
        language: str,
        *,
        agent: Path | None = None,
        caller: Path | None = None,
        mono: Path | None = None,
    ) -> Transcript:
        """A call's transcript, decoded off the event loop."""
        legs = _named(agent, caller, mono)
        loop = asyncio.get_running_loop()
        if self.pool == "thread":
            model = await self.registry.get(language)
            path = model.path
            jobs = [
                loop.run_in_executor(self.executor, _decode, leg, model.model) for _, leg in legs
            ]
        else:  # the workers load the model; this process need not
            path = self.registry.path_for(language)
            jobs = [
                loop.run_in_executor(self.executor, _decode_in_process, str(leg), str(path))
                for _, leg in legs
            ]
        decoded = await asyncio.gather(*jobs)
        parts = [_leg(leg, speaker, d) for (speaker, leg), d in zip(legs, decoded, strict=True)]
        return _assemble(language, _model_name(path), parts)
