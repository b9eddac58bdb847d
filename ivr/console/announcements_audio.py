"""An uploaded announcement recording, checked and made into what Asterisk plays.

Asterisk's ``wav`` format is 8 kHz mono signed 16-bit PCM (a 16 kHz file
must be called ``.wav16``), so every upload is stored that way: 16-bit PCM
WAV at 8 or 16 kHz, mono or stereo, is converted with the project's audio
helpers (:mod:`speech.audio`: channels averaged, resampled); anything else is
refused with the command that converts it. Limits: :data:`MAX_UPLOAD` bytes
(checked while the upload streams, by the route) and :data:`MAX_SECONDS`
of sound. The file is named by a hash of its audio under the prompts
folder's ``announcements/``, so the same recording twice is one file and a
new one never overwrites a notice that is playing.
"""

from __future__ import annotations

import array
import hashlib
import io
import os
import re
import uuid
import wave
from pathlib import Path
from typing import Final

from speech.audio import SAMPLE_RATE, from_pcm, resample, to_pcm

__all__ = ["MAX_SECONDS", "MAX_UPLOAD", "RecordingError", "phone_wav", "store_recording"]

#: The largest upload: two minutes of 16 kHz mono, with room for the header.
MAX_UPLOAD: Final = 4 * 1024 * 1024
#: The longest notice a caller is made to hear.
MAX_SECONDS: Final = 120
_RATES: Final = (8000, 16000)
_CONVERT: Final = "convert it first, e.g. sox in.wav -r 8000 -c 1 -b 16 out.wav"


class RecordingError(ValueError):
    """The upload is not a recording the engine can play; the message says why."""


def phone_wav(data: bytes) -> tuple[bytes, float]:
    """``data`` (a WAV file) as an 8 kHz mono 16-bit WAV file, and its seconds."""
    if len(data) > MAX_UPLOAD:
        raise RecordingError(f"the file is {len(data):,} bytes; at most {MAX_UPLOAD:,}")
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise RecordingError(f"not a WAV file (RIFF/WAVE); {_CONVERT}")
    try:
        with wave.open(io.BytesIO(data), "rb") as wav:
            channels, width, rate = wav.getnchannels(), wav.getsampwidth(), wav.getframerate()
            frames = wav.getnframes()
            if width == 2 and channels in (1, 2) and rate in _RATES:
                if frames / rate > MAX_SECONDS:
                    raise RecordingError(
                        f"the recording lasts {frames / rate:.0f} s; at most {MAX_SECONDS} s"
                    )
                raw = wav.readframes(frames)
    except (wave.Error, EOFError) as exc:
        # Python's wave reads PCM only: compressed or float WAV files end here.
        raise RecordingError(
            f"not a PCM WAV file the engine can read ({exc}); {_CONVERT}"
        ) from None
    if width != 2:
        raise RecordingError(f"{8 * width}-bit samples; the engine plays 16-bit PCM: {_CONVERT}")
    if channels not in (1, 2):
        raise RecordingError(f"{channels} channels; mono or stereo only: {_CONVERT}")
    if rate not in _RATES:
        raise RecordingError(f"{rate} Hz; 8000 or 16000 Hz only: {_CONVERT}")
    samples = from_pcm(raw)
    if channels == 2:
        samples = array.array(
            "h", ((samples[i] + samples[i + 1]) // 2 for i in range(0, len(samples) - 1, 2))
        )
    if not samples:
        raise RecordingError("the recording holds no sound")
    samples = resample(samples, rate, SAMPLE_RATE)
    out = io.BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(SAMPLE_RATE)
        wav.writeframes(to_pcm(samples))
    return out.getvalue(), len(samples) / SAMPLE_RATE


def store_recording(prompts: Path, name: str, wav: bytes) -> Path:
    """Keep ``wav`` (from :func:`phone_wav`) under ``prompts/announcements/``; its path."""
    folder = Path(prompts) / "announcements"
    folder.mkdir(parents=True, exist_ok=True)
    safe = re.sub(r"[^A-Za-z0-9_-]", "_", name)[:64]
    path = folder / f"{safe}-{hashlib.sha256(wav).hexdigest()[:16]}.wav"
    if not path.exists():
        partial = folder / f".{path.name}.{uuid.uuid4().hex[:8]}.part"
        try:
            partial.write_bytes(wav)
            os.replace(partial, path)
        finally:
            partial.unlink(missing_ok=True)
    return path
