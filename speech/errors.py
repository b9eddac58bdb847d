"""Errors of the speech package: one base class, messages that say what to do."""

from __future__ import annotations

__all__ = [
    "ModelArchiveError",
    "ModelInstallError",
    "ModelNotFoundError",
    "SpeechError",
    "TtsError",
]


class SpeechError(Exception):
    """Base of every error raised by ``speech``."""


class ModelNotFoundError(SpeechError, LookupError):
    """No recognition model is installed for a language."""

    def __init__(self, language: str) -> None:
        self.language = language
        super().__init__(
            f"no speech recognition model for language {language!r}; install one with "
            f"`ivr speech models install <URL-or-path> --language {language}` "
            "(an official Vosk model zip or an unpacked model folder)"
        )


class ModelInstallError(SpeechError):
    """A model could not be installed or selected; the message says why."""


class ModelArchiveError(ModelInstallError, ValueError):
    """A model archive is unsafe (path traversal, links) or not a Vosk model."""


class TtsError(SpeechError, RuntimeError):
    """The synthesizer is missing or failed; the message says how to fix it."""
