"""Voice activity of a whole recorded leg, for the timing rules (silence, talk-over, ratio).

The engine's live VAD (:class:`speech.audio.Vad`) must decide frame by frame
as the audio arrives, so it learns the line's noise as it goes; on a noisy
line (10 dB between speech and noise) it takes the first seconds of noise
for speech and then misses quiet speech (``bench/qa.py`` measured it). A
recording is there whole, so the noise floor is read from the whole leg
first: the 10th percentile of its 10 ms frame levels (a leg is quiet more
than a tenth of the time: the other side talks, people breathe). A frame is
speech when it stands clear of that floor: half-way to the leg's loud frames
(the 95th percentile), at least 6 dB and at most 15 dB above the floor, and
above -65 dBFS. Stretches start with 30 ms of speech frames and end after
300 ms without.
"""

from __future__ import annotations

import array
import math
import operator
from typing import Final

from speech.audio import FRAME_SAMPLES, SAMPLE_RATE

__all__ = ["frame_levels", "speech_spans"]

_ONSET: Final = 3
_HANGOVER: Final = 30
_MIN_DB: Final = -65.0
_FULL: Final = 32768.0 * 32768.0


def frame_levels(samples: array.array[int]) -> list[float]:
    """The level (dBFS) of each whole 10 ms frame of 8 kHz audio."""
    levels = []
    for start in range(0, len(samples) - FRAME_SAMPLES + 1, FRAME_SAMPLES):
        frame = samples[start : start + FRAME_SAMPLES]
        energy = sum(map(operator.mul, frame, frame)) / FRAME_SAMPLES
        levels.append(10 * math.log10(energy / _FULL + 1e-12))
    return levels


def _percentile(ordered: list[float], share: float) -> float:
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def speech_spans(samples: array.array[int]) -> list[tuple[float, float]]:
    """Stretches of speech (start, end in s) in a whole leg of 8 kHz audio."""
    levels = frame_levels(samples)
    if not levels:
        return []
    ordered = sorted(levels)
    floor = _percentile(ordered, 0.10)
    loud = _percentile(ordered, 0.95)
    threshold = max(floor + min(15.0, max(6.0, (loud - floor) / 2)), _MIN_DB)
    spans: list[tuple[int, int]] = []
    run = quiet = 0
    start: int | None = None
    last = 0
    for index, level in enumerate(levels):
        if level > threshold:
            run += 1
            quiet = 0
            last = index + 1
            if start is None and run >= _ONSET:
                start = index + 1 - run
        else:
            run = 0
            quiet += 1
            if start is not None and quiet >= _HANGOVER:
                spans.append((start, last))
                start = None
    if start is not None:
        spans.append((start, last))
    frame = FRAME_SAMPLES / SAMPLE_RATE
    return [(round(a * frame, 3), round(b * frame, 3)) for a, b in spans]
