"""Offline prompts: text to 8 kHz mono 16-bit WAV with espeak-ng, cached on disk.

Asterisk plays the files by path (without the ``.wav``), so the prompt
folder must be shared with Asterisk. A prompt's file name is a hash of
(text, language, voice, rate): rendering the same prompt twice costs nothing,
and a changed text gets a new file. espeak-ng runs as a subprocess, the
resampling in a worker thread: nothing blocks the event loop.
"""

from __future__ import annotations

import array
import asyncio
import hashlib
import io
import os
import shutil
import sys
import wave
from pathlib import Path

__all__ = ["SAMPLE_RATE", "Synthesizer", "TtsError", "resample"]

SAMPLE_RATE = 8000


class TtsError(RuntimeError):
    """espeak-ng is missing or failed; the message says how to fix it."""


def resample(samples: array.array[int], rate: int, target: int = SAMPLE_RATE) -> array.array[int]:
    """Resample signed 16-bit mono audio by averaging (a box low-pass) and interpolation."""
    if rate == target or not samples:
        return array.array("h", samples)
    step = rate / target
    width = max(1, int(step))
    out = array.array("h")
    count = int(len(samples) / step)
    last = len(samples) - 1
    for index in range(count):
        start = int(index * step)
        window = samples[start : min(start + width, last + 1)]
        out.append(int(sum(window) / len(window)))
    return out


class Synthesizer:
    """Renders prompt text to WAV files in ``folder`` with espeak-ng."""

    def __init__(self, folder: Path, *, rate: int = 165, executable: str = "espeak-ng") -> None:
        self.folder = Path(folder)
        self.rate = rate
        self.executable = executable
        self._locks: dict[Path, asyncio.Lock] = {}

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
        self._locks.pop(path, None)
        return path

    async def _speak(self, text: str, voice: str) -> tuple[bytes, int]:
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


def _write(path: Path, pcm: bytes, rate: int) -> None:
    samples = array.array("h")
    samples.frombytes(pcm[: len(pcm) // 2 * 2])
    if sys.byteorder == "big":
        samples.byteswap()
    out = resample(samples, rate)
    if sys.byteorder == "big":
        out.byteswap()
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".{os.getpid()}.part")
    with wave.open(str(partial), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(SAMPLE_RATE)
        wav.writeframes(out.tobytes())
    partial.replace(path)  # atomic: Asterisk never sees half a file
