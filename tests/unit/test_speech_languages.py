"""IVR_SPEECH_LANGUAGES limits which recognition models an engine loads."""

from __future__ import annotations

from pathlib import Path

import pytest

from ivr.config import load_settings, speech_languages
from ivr.errors import ConfigError
from ivr.speech_input import SpeechInput
from speech.models import ModelStore
from speech.recognizer import ModelRegistry, Recognizer
from speech.tts import Synthesizer


def test_the_setting_lists_languages() -> None:
    settings = load_settings(environ={"IVR_SPEECH_LANGUAGES": " ko, en ,"})
    assert speech_languages(settings) == {"ko", "en"}
    assert speech_languages(load_settings(environ={})) == frozenset()


def test_a_bad_code_names_the_variable() -> None:
    with pytest.raises(ConfigError, match=r"IVR_SPEECH_LANGUAGES.*'k!'.*language code"):
        load_settings(environ={"IVR_SPEECH_LANGUAGES": "ko,k!"})


def test_a_language_left_out_takes_keys_only_and_loads_no_model(tmp_path: Path) -> None:
    recognizer = Recognizer(ModelRegistry(ModelStore(tmp_path / "models")))
    try:
        synthesizer = Synthesizer(tmp_path / "prompts")
        limited = SpeechInput(recognizer, synthesizer, server=None, languages=frozenset({"en"}))
        assert not limited.speaks("ko")  # installed (built in), but not allowed here
        everyone = SpeechInput(recognizer, synthesizer, server=None)
        assert everyone.speaks("ko")
        assert not recognizer.registry._models  # asking loads nothing
    finally:
        recognizer.close()
