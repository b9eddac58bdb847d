"""Audio utilities: signed-linear PCM, resampling, and voice activity / endpointing.

Everything here is pure Python on ``array('h')`` and is deterministic: time is
counted in samples fed, never read from a clock, so the same audio always gives
the same events (barge-in and end of speech are testable to the sample).
"""

from __future__ import annotations

import array
import itertools
import math
import operator
import sys
import wave
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from pathlib import Path
from typing import Literal

__all__ = [
    "FRAME_SAMPLES",
    "SAMPLE_RATE",
    "Endpoint",
    "Endpointer",
    "Vad",
    "from_pcm",
    "read_wav",
    "resample",
    "to_pcm",
    "write_wav",
]

SAMPLE_RATE = 8000
#: The VAD works on 10 ms frames.
FRAME_SAMPLES = SAMPLE_RATE // 100
_ZERO_CROSSINGS = 6  # half-width of the resampling kernel, in zero crossings
_MAX_PHASES = 2000


def from_pcm(pcm: bytes) -> array.array[int]:
    """Signed 16-bit little-endian bytes to samples (a trailing odd byte is dropped)."""
    samples = array.array("h")
    samples.frombytes(pcm[: len(pcm) // 2 * 2])
    if sys.byteorder == "big":
        samples.byteswap()
    return samples


def to_pcm(samples: array.array[int]) -> bytes:
    """Samples to signed 16-bit little-endian bytes."""
    if sys.byteorder == "big":
        samples = array.array("h", samples)
        samples.byteswap()
    return samples.tobytes()


@lru_cache(maxsize=64)
def _kernels(up: int, down: int) -> tuple[int, tuple[tuple[float, ...], ...]]:
    """Windowed-sinc kernels, one per output phase, for the ratio ``up/down``."""
    cutoff = 0.5 * min(1.0, up / down) * 0.92  # cycles per input sample, below Nyquist
    half = math.ceil(_ZERO_CROSSINGS / (2 * cutoff))
    kernels = []
    for phase in range(up):
        frac = (phase * down % up) / up
        taps = []
        for k in range(-half + 1, half + 1):
            d = k - frac
            x = 2 * cutoff * d
            sinc = 1.0 if x == 0 else math.sin(math.pi * x) / (math.pi * x)
            window = 0.5 + 0.5 * math.cos(math.pi * d / half) if abs(d) < half else 0.0
            taps.append(2 * cutoff * sinc * window)
        total = sum(taps)
        kernels.append(tuple(t / total for t in taps))
    return half, tuple(kernels)


def resample(samples: array.array[int], rate: int, target: int = SAMPLE_RATE) -> array.array[int]:
    """Resample signed 16-bit mono audio with a windowed-sinc low-pass (no aliasing).

    The kernel for each output phase is computed once per ratio, so a prompt
    resamples at a few hundred times real time in pure Python.
    """
    if rate == target or not samples:
        return array.array("h", samples)
    ratio = Fraction(rate, target).limit_denominator(_MAX_PHASES)
    down, up = ratio.numerator, ratio.denominator  # output n sits at input n*down/up
    half, kernels = _kernels(up, down)
    count = len(samples) * up // down
    padded = array.array("h", bytes(2 * half)) + samples + array.array("h", bytes(2 * half))
    out = array.array("h", bytes(2 * count))
    mul = operator.mul
    for n in range(count):
        base, phase = divmod(n * down, up)
        start = base + 1  # taps run from base-half+1 to base+half; padded shifts by +half
        value = sum(map(mul, padded[start : start + 2 * half], kernels[phase]))
        out[n] = max(-32768, min(32767, round(value)))
    return out


def read_wav(path: Path, target: int = SAMPLE_RATE) -> array.array[int]:
    """A 16-bit WAV file as mono samples at ``target`` Hz (channels averaged)."""
    with wave.open(str(path), "rb") as wav:
        if wav.getsampwidth() != 2:
            raise ValueError(f"{path}: only 16-bit PCM WAV is supported, convert it first")
        channels, rate = wav.getnchannels(), wav.getframerate()
        samples = from_pcm(wav.readframes(wav.getnframes()))
    if channels > 1:
        samples = array.array(
            "h",
            (sum(samples[i : i + channels]) // channels for i in range(0, len(samples), channels)),
        )
    return resample(samples, rate, target)


def write_wav(path: Path, samples: array.array[int], rate: int = SAMPLE_RATE) -> None:
    """Write mono 16-bit samples as a WAV file."""
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(to_pcm(samples))


class Vad:
    """Energy and zero-crossing voice activity detector on 10 ms frames at 8 kHz.

    A frame is speech when its level stands ``margin_db`` above an adaptive noise
    floor (and above ``min_db`` absolute), or, for unvoiced sounds (s, ch, h)
    that carry little energy, half that margin with a high zero-crossing rate.
    """

    def __init__(
        self, *, margin_db: float = 12.0, min_db: float = -50.0, start_db: float = -45.0
    ) -> None:
        self.margin_db = margin_db
        self.min_db = min_db
        self.start_db = start_db
        self.floor_db: float | None = None
        self._rest = array.array("h")

    def frames(self, samples: array.array[int]) -> list[bool]:
        """Classify every complete frame in ``samples`` (the remainder waits for more)."""
        self._rest.extend(samples)
        usable = len(self._rest) // FRAME_SAMPLES * FRAME_SAMPLES
        out = [
            self._classify(self._rest[i : i + FRAME_SAMPLES])
            for i in range(0, usable, FRAME_SAMPLES)
        ]
        del self._rest[:usable]
        return out

    def _classify(self, frame: array.array[int]) -> bool:
        energy = sum(map(operator.mul, frame, frame)) / len(frame)
        level = 10 * math.log10(energy / (32768.0 * 32768.0) + 1e-12)
        crossings = sum(1 for a, b in itertools.pairwise(frame) if (a < 0) != (b < 0))
        zcr = crossings / (len(frame) - 1)
        # The first frame may already be speech (a caller who talks at once):
        # never start the floor above a quiet line's level.
        floor = min(level, self.start_db) if self.floor_db is None else self.floor_db
        voiced = level > max(floor + self.margin_db, self.min_db)
        unvoiced = zcr > 0.35 and level > max(floor + self.margin_db / 2, self.min_db)
        speech = voiced or unvoiced
        if level < floor:
            floor = level  # the floor falls at once,
        else:  # rises quickly in pauses and very slowly in speech (steady noise)
            floor += (0.002 if speech else 0.05) * (level - floor)
        self.floor_db = floor
        return speech


@dataclass(frozen=True, slots=True)
class Endpoint:
    """An endpointing event at ``sample`` (counted from the start of the utterance)."""

    kind: Literal["speech_started", "end"]
    sample: int
    reason: Literal["", "noinput", "end_silence", "max_utterance"] = ""

    @property
    def at(self) -> float:
        """Seconds of audio from the start of the utterance."""
        return self.sample / SAMPLE_RATE


class Endpointer:
    """Turns a stream of 8 kHz samples into speech-start and end-of-utterance events.

    ``speech_started`` fires after ``onset_frames`` consecutive speech frames
    (30 ms by default) and reports the first of them. The end comes with
    ``noinput`` (no speech within ``no_input`` s), ``end_silence`` (that much
    silence after speech) or ``max_utterance`` (that long since speech started).
    """

    def __init__(
        self,
        *,
        no_input: float = 5.0,
        end_silence: float = 0.8,
        max_utterance: float = 15.0,
        onset_frames: int = 3,
        vad: Vad | None = None,
    ) -> None:
        self.no_input = round(no_input * SAMPLE_RATE)
        self.end_silence = round(end_silence * SAMPLE_RATE)
        self.max_utterance = round(max_utterance * SAMPLE_RATE)
        self.onset_frames = onset_frames
        self.vad = vad or Vad()
        self.samples = 0  # frames classified so far, in samples
        self.fed = 0  # samples pushed, classified or not
        self.speech_start: int | None = None
        self.speech_end: int | None = None  # end of the last speech frame
        self.ended: Endpoint | None = None
        self._run = 0

    def push(self, samples: array.array[int]) -> list[Endpoint]:
        """Feed samples; returns the events they complete (at most one start and one end)."""
        events: list[Endpoint] = []
        self.fed += len(samples)
        for speech in self.vad.frames(samples):
            if self.ended is not None:
                break
            self.samples += FRAME_SAMPLES
            if speech:
                self._run += 1
                self.speech_end = self.samples
                if self.speech_start is None and self._run >= self.onset_frames:
                    self.speech_start = self.samples - self._run * FRAME_SAMPLES
                    events.append(Endpoint("speech_started", self.speech_start))
            else:
                self._run = 0
            end = self._end()
            if end is not None:
                self.ended = end
                events.append(end)
        return events

    def _end(self) -> Endpoint | None:
        if self.speech_start is None:
            if self.samples >= self.no_input:
                return Endpoint("end", self.samples, "noinput")
            return None
        if self.samples - self.speech_start >= self.max_utterance:
            return Endpoint("end", self.samples, "max_utterance")
        assert self.speech_end is not None
        if self.samples - self.speech_end >= self.end_silence:
            return Endpoint("end", self.samples, "end_silence")
        return None
