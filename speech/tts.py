"""Offline prompts: text to 8 kHz mono 16-bit WAV with pyttsx3 on espeak-ng, cached on disk.

Only fixed text (a flow's own words) is cached. Text made from a call's data
(a PIN read back, a balance) goes through :meth:`Synthesizer.render_private`
into a per-call file (``speech.private``) or :meth:`Synthesizer.pcm_private`
straight to AudioSocket, and is never cached.

Asterisk plays the files by path (without the ``.wav``), so the prompt folder
must be shared with Asterisk; AudioSocket streams ``pcm()`` (raw 8 kHz s16le)
from the same cache. A prompt's file name is a hash of (text, language, voice,
rate): rendering the same prompt twice costs nothing, and a changed text gets
a new file. pyttsx3 is neither async nor thread-safe and its espeak driver
prints to stdout, so one dedicated worker process owns the engine and renders
one prompt at a time; the event loop only waits for it. Whatever goes wrong
with the worker (pyttsx3 missing, an unreadable or empty scratch file, the
process dead or hung past ``worker_timeout``), that prompt is rendered by the
espeak-ng command instead (a subprocess fed on stdin, the same voices) and
the worker is replaced for the next one: a prompt never fails a call because
of the worker.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import hashlib
import io
import itertools
import multiprocessing
import os
import shutil
import signal
import tempfile
import threading
import time
import wave
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Final, Literal

import structlog

from speech.audio import SAMPLE_RATE, from_pcm, resample, to_pcm, write_wav
from speech.errors import TtsError

__all__ = ["SAMPLE_RATE", "Synthesizer", "TtsError", "resample"]

log = structlog.get_logger()

Engine = Literal["auto", "pyttsx3", "espeak-ng"]

#: Worker failures in a row after which pyttsx3 is left for the espeak-ng command.
_GIVE_UP: Final = 3


class VoiceMissingError(RuntimeError):
    """espeak-ng has no such voice: the worker is fine, the request is not."""


# -- the pyttsx3 worker process ------------------------------------------------

_engine: object | None = None
_SCRATCH: str | None = None
_SERIAL = itertools.count()
_last: Path | None = None


def _init_worker(scratch: str, parent: int | None = None) -> None:
    """Runs once in the worker: go with the engine, silence the driver's prints, start
    the engine. Ctrl-C in the engine's terminal reaches the whole process group: the
    worker leaves it to the engine, which stops it (no traceback of its own)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if parent is not None:
        _watch_parent(parent, scratch)
    global _engine  # noqa: PLW0603 -- the worker process owns exactly one engine
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)  # pyttsx3's espeak driver prints "Audio saved to ..."
    import pyttsx3  # type: ignore[import-untyped]

    _engine = pyttsx3.init("espeak")
    global _SCRATCH  # noqa: PLW0603 -- the worker's own scratch folder
    _SCRATCH = scratch
    atexit.register(shutil.rmtree, _SCRATCH, True)


def _watch_parent(parent: int, scratch: str, interval: float = 0.5) -> None:
    """In the worker: exit when the engine is gone (``kill -9`` included).

    A killed engine tells its worker nothing (no shutdown message, and a signal
    on parent death would follow the thread that spawned it, not the process),
    so a daemon thread looks at the parent every ``interval`` s. Once the worker
    exits, multiprocessing's resource tracker loses its last writer (the worker
    inherits its pipe) and exits too.
    """

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(interval)
        shutil.rmtree(scratch, ignore_errors=True)
        os._exit(0)  # mid-prompt or idle: nothing of the worker's is worth keeping

    threading.Thread(target=watch, name="tts-parent-watch", daemon=True).start()


def _speak_pyttsx3(text: str, voice: str, rate: int) -> tuple[bytes, int]:
    """In the worker: render ``text`` and return (pcm, sample rate)."""
    engine = _engine
    if engine is None:
        raise RuntimeError("the pyttsx3 worker has no engine")
    global _last  # noqa: PLW0603 -- one worker, one scratch file at a time
    # A scratch folder for the worker's life: the espeak driver may write a file a
    # second time after runAndWait() returns (a late callback), so the file stays
    # until the next prompt instead of vanishing under it.
    scratch = Path(_SCRATCH or tempfile.gettempdir())
    if _last is not None:
        _last.unlink(missing_ok=True)
    path = _last = scratch / f"prompt-{os.getpid()}-{next(_SERIAL)}.wav"
    # pyttsx3 keeps the previous voice when given an unknown one: check first.
    engine.setProperty("voice", _voice_id(engine, voice))  # type: ignore[attr-defined]
    engine.setProperty("rate", rate)  # type: ignore[attr-defined]
    engine.save_to_file(text, str(path))  # type: ignore[attr-defined]
    engine.runAndWait()  # type: ignore[attr-defined]
    if not path.exists():
        raise RuntimeError(f"pyttsx3 wrote no audio for voice {voice!r}")
    # An empty or cut file raises here (EOFError, wave.Error): the caller falls back.
    with wave.open(str(path)) as wav:
        return wav.readframes(wav.getnframes()), wav.getframerate()


def _voice_id(engine: object, voice: str) -> str:
    wanted = voice.lower()
    voices = engine.getProperty("voices")  # type: ignore[attr-defined]
    for candidate in voices:
        ident = str(candidate.id)
        if wanted in {ident.lower(), ident.lower().rsplit("/", 1)[-1]}:
            return ident
    for candidate in voices:
        if wanted in {str(lang).lower() for lang in candidate.languages or ()}:
            return str(candidate.id)
    raise VoiceMissingError(f"espeak-ng has no voice {voice!r} (see espeak-ng --voices)")


# -- the synthesizer -----------------------------------------------------------


class Synthesizer:
    """Renders prompt text to 8 kHz WAV files in ``folder``; one pyttsx3 worker."""

    def __init__(
        self,
        folder: Path,
        *,
        rate: int = 165,
        executable: str = "espeak-ng",
        engine: Engine = "auto",
        worker_timeout: float = 10.0,
    ) -> None:
        self.folder = Path(folder)
        self.rate = rate
        self.executable = executable
        self.engine = engine
        #: Seconds one prompt may take in the pyttsx3 worker before it counts as hung.
        self.worker_timeout = worker_timeout
        self._locks: dict[Path, asyncio.Lock] = {}
        self._worker: ProcessPoolExecutor | None = None
        #: The folder the worker writes its scratch files in (removed with the worker).
        self.scratch: Path | None = None
        self._turn = asyncio.Lock()  # one prompt in the worker at a time
        self._pyttsx3_failed = engine == "espeak-ng"
        self._failures = 0  # worker failures in a row
        self.rendered = 0  # prompts actually synthesized (not from the cache)
        #: Prompts made from a call's data (per call, never cached).
        self.private_rendered = 0
        #: Prompts the espeak-ng command rendered because the pyttsx3 worker failed.
        self.fallbacks = 0

    @property
    def worker_pid(self) -> int | None:
        """The pyttsx3 worker's process id, while one runs."""
        if self._worker is None:
            return None
        pids = list(self._worker._processes or ())  # no public accessor
        return pids[0] if pids else None

    def path_for(self, text: str, language: str, voice: str | None = None) -> Path:
        """Where the prompt's WAV lives (whether or not it is rendered yet)."""
        key = f"{language}\0{voice or language}\0{self.rate}\0{text}".encode()
        digest = hashlib.sha256(key).hexdigest()[:20]
        return self.folder / language / f"{digest}.wav"

    async def render(self, text: str, language: str, voice: str | None = None) -> Path:
        """The prompt's WAV file, rendering it first if needed."""
        path = self.path_for(text, language, voice)
        if path.exists():
            return path
        lock = self._locks.setdefault(path, asyncio.Lock())
        async with lock:
            if not path.exists():
                pcm, rate = await self._speak(text, voice or language)
                await asyncio.to_thread(_write, path, pcm, rate)
                self.rendered += 1
        self._locks.pop(path, None)
        return path

    async def pcm(self, text: str, language: str, voice: str | None = None) -> bytes:
        """The prompt as raw 8 kHz signed-linear little-endian mono (for AudioSocket)."""
        path = await self.render(text, language, voice)
        return await asyncio.to_thread(_read_frames, path)

    async def render_private(self, text: str, language: str, voice: str | None, path: Path) -> Path:
        """Text made from a call's data, rendered into ``path`` (a per-call file with a
        random name, see ``speech.private``): never cached, never left in a scratch file."""
        pcm, rate = await self._speak_private(text, voice or language)
        await asyncio.to_thread(_write, path, pcm, rate)
        self.private_rendered += 1
        return path

    async def pcm_private(self, text: str, language: str, voice: str | None = None) -> bytes:
        """Text made from a call's data as raw 8 kHz PCM (for AudioSocket): no file at all."""
        pcm, rate = await self._speak_private(text, voice or language)
        self.private_rendered += 1
        return await asyncio.to_thread(_phone_pcm, pcm, rate)

    async def build(
        self, items: Iterable[tuple[str, str] | tuple[str, str, str | None]]
    ) -> list[Path]:
        """Render many prompts ahead (``ivr prompts build``): (text, language[, voice])."""
        paths = []
        for item in items:
            text, language, *rest = item
            paths.append(await self.render(text, language, rest[0] if rest else None))
        return paths

    def close(self) -> None:
        """Stop the pyttsx3 worker process."""
        if self._worker is not None:
            self._worker.shutdown(wait=True, cancel_futures=True)
            self._worker = None
        if self.scratch is not None:
            shutil.rmtree(self.scratch, ignore_errors=True)
            self.scratch = None

    async def _speak(self, text: str, voice: str) -> tuple[bytes, int]:
        if not self._pyttsx3_failed:
            try:
                spoken = await self._speak_with_pyttsx3(text, voice)
            except VoiceMissingError as error:
                if self.engine == "pyttsx3":
                    raise TtsError(f"pyttsx3 could not speak: {error}") from error
                # espeak-ng lacks it too, and says so in its own error.
            except Exception as error:  # any failure of the worker
                self._discard_worker()
                self._failures += 1
                if self.engine == "pyttsx3":
                    raise TtsError(
                        f"pyttsx3 could not speak with voice {voice!r}: {_describe(error)}; "
                        "check that libespeak-ng is installed (Debian: apt-get install "
                        "espeak-ng) and the voice exists (espeak-ng --voices)"
                    ) from error
                self._pyttsx3_failed = isinstance(error, ImportError) or self._failures >= _GIVE_UP
                self.fallbacks += 1
                log.warning(
                    "speech.tts_fallback",
                    engine="espeak-ng",
                    error=_describe(error),
                    worker="given up" if self._pyttsx3_failed else "restarted for the next prompt",
                )
            else:
                self._failures = 0
                return spoken
        return await self._speak_with_espeak(text, voice)

    async def _speak_private(self, text: str, voice: str) -> tuple[bytes, int]:
        """Speak text that must leave no file behind.

        The espeak-ng command reads the text on stdin and writes the audio on
        stdout: nothing touches the disk. The pyttsx3 worker writes a scratch
        file it keeps until its next prompt (and its driver may write it again
        late), so it is used only without the command, and is discarded with
        its scratch folder right after.
        """
        if shutil.which(self.executable) is not None:
            return await self._speak_with_espeak(text, voice)
        try:
            return await self._speak(text, voice)
        finally:
            self._discard_worker()

    async def _speak_with_pyttsx3(self, text: str, voice: str) -> tuple[bytes, int]:
        async with self._turn:  # the time limit counts from the worker's turn, not the queue
            if self._worker is None:
                self.scratch = Path(tempfile.mkdtemp(prefix="ivr-tts-"))
                self._worker = ProcessPoolExecutor(
                    max_workers=1,
                    mp_context=multiprocessing.get_context("spawn"),
                    initializer=_init_worker,
                    initargs=(str(self.scratch), os.getpid()),
                )
            loop = asyncio.get_running_loop()
            job = loop.run_in_executor(self._worker, _speak_pyttsx3, text, voice, self.rate)
            try:
                return await asyncio.wait_for(job, self.worker_timeout)
            except TimeoutError as error:
                raise TimeoutError(
                    f"the pyttsx3 worker took more than {self.worker_timeout:g} s"
                ) from error

    def _discard_worker(self) -> None:
        """Kill the worker (it may be hung mid-prompt); the next prompt starts a new one."""
        worker, self._worker = self._worker, None
        if worker is not None:
            for process in list((worker._processes or {}).values()):
                if process.is_alive() and process.pid is not None:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(process.pid, signal.SIGKILL)
            worker.shutdown(wait=False, cancel_futures=True)
        if self.scratch is not None:
            shutil.rmtree(self.scratch, ignore_errors=True)
            self.scratch = None

    async def _speak_with_espeak(self, text: str, voice: str) -> tuple[bytes, int]:
        if shutil.which(self.executable) is None:
            raise TtsError(
                f"{self.executable} is not installed; install it (Debian: apt-get install "
                "espeak-ng) or give prompts as sound files"
            )
        process = await asyncio.create_subprocess_exec(
            self.executable,
            "-v",
            voice,
            "-s",
            str(self.rate),
            "--stdout",
            "--stdin",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        # On stdin, not the command line: a prompt may hold a caller's data,
        # and a process list shows every argument.
        out, err = await process.communicate(text.encode("utf-8"))
        if process.returncode != 0 or not out:
            message = err.decode(errors="replace").strip() or f"exit status {process.returncode}"
            raise TtsError(f"espeak-ng could not speak with voice {voice!r}: {message}")
        with wave.open(io.BytesIO(out)) as wav:
            return wav.readframes(wav.getnframes()), wav.getframerate()


def _describe(error: BaseException) -> str:
    """An error for the log: its kind, and its message when it has one."""
    message = str(error)
    return f"{type(error).__name__}: {message}" if message else type(error).__name__


def _write(path: Path, pcm: bytes, rate: int) -> None:
    samples = resample(from_pcm(pcm), rate)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".{os.getpid()}.part")
    write_wav(partial, samples)
    partial.replace(path)  # atomic: Asterisk never sees half a file


def _phone_pcm(pcm: bytes, rate: int) -> bytes:
    return to_pcm(resample(from_pcm(pcm), rate))


def _read_frames(path: Path) -> bytes:
    with wave.open(str(path)) as wav:
        if wav.getframerate() != SAMPLE_RATE or wav.getsampwidth() != 2:
            raise TtsError(f"{path} is not 8 kHz 16-bit; delete it to render it again")
        return to_pcm(from_pcm(wav.readframes(wav.getnframes())))
