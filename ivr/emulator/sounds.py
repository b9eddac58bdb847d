"""Sound files the emulated Asterisk knows, with their length in 8 kHz samples.

Lengths matter because ``endpos`` and timing depend on them. ``beep`` is
measured from the transcripts (``GET OPTION beep`` played to the end:
``endpos=3404``); the other stock prompts are approximate (Asterisk's core
sound pack varies by format and release) and only need to be long enough for
the scenarios that use them. Real files in ``sound_dirs`` (WAV) are measured.
"""

from __future__ import annotations

import wave
from collections.abc import Iterable, Mapping
from pathlib import Path

__all__ = ["SAMPLE_RATE", "SoundCatalog"]

SAMPLE_RATE = 8000

_STOCK: dict[str, int] = {
    "beep": 3404,  # transcript: GET OPTION beep "12" 500 -> endpos=3404
    "demo-congrats": 8000 * 16,  # approximate; the transcripts stop it at 1.7 s and 2.5 s
    "silence/1": 8000,
    "silence/2": 16000,
    "vm-goodbye": 8000,
    "vm-intro": 8000 * 3,
    "pls-wait-connect-call": 8000 * 2,
    "queue-thankyou": 8000 * 2,
    "agent-loginok": 8000,
    "auth-thankyou": 8000,
    "invalid": 8000,
    "please-try-again": 8000 * 2,
}
_STOCK.update({f"digits/{n}": 4400 for n in range(10)})
_STOCK.update({f"digits/{n}": 5600 for n in range(11, 20)})  # SAY NUMBER says 11-19 whole
_STOCK.update({f"digits/{n}": 5200 for n in (10, 20, 30, 40, 50, 60, 70, 80, 90)})
_STOCK.update({"digits/hundred": 4800, "digits/thousand": 5600, "digits/minus": 4000})
_STOCK.update({"digits/million": 5600, "digits/billion": 5600})
_STOCK.update({"digits/star": 4000, "digits/pound": 4400})
_STOCK.update({f"letters/{c}": 4000 for c in "abcdefghijklmnopqrstuvwxyz"})


class SoundCatalog:
    """Looks up a sound's length: stock prompts, then WAV files in ``sound_dirs``."""

    def __init__(
        self, extra: Mapping[str, int] | None = None, sound_dirs: Iterable[Path] = ()
    ) -> None:
        self._known = dict(_STOCK)
        self._known.update(extra or {})
        self._dirs = [Path(d) for d in sound_dirs]

    def samples(self, name: str, language: str = "en") -> int | None:
        """Length in 8 kHz samples, or ``None`` when Asterisk would not find the file."""
        for candidate in (f"{language}/{name}", name):
            if candidate in self._known:
                return self._known[candidate]
        folders = self._dirs
        if name.startswith("/"):  # Asterisk plays an absolute name as it is
            folders = [Path("/")]
        for folder in folders:
            for path in (folder / language / f"{name}.wav", folder / f"{name}.wav"):
                if path.is_file():
                    with wave.open(str(path)) as wav:
                        frames, rate = int(wav.getnframes()), int(wav.getframerate())
                    return frames * SAMPLE_RATE // rate
        return None

    def add(self, name: str, samples: int) -> None:
        self._known[name] = samples

    def forget(self, name: str) -> None:
        """Play a system without ``name`` (its sound package not installed)."""
        self._known.pop(name, None)
