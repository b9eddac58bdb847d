"""Offline speech: Vosk recognition, pyttsx3/espeak-ng prompts, an FAQ matcher.

- ``speech.recognizer``: ``Recognizer``, ``Utterance``, ``Result``, ``ModelRegistry``,
  ``recognize_file`` (streaming, grammar menus, endpointing in audio time);
- ``speech.tts``: ``Synthesizer`` (8 kHz WAV prompts and raw PCM, cached; text made
  from a call's data rendered per call, never cached);
- ``speech.private``: ``PrivateFolders`` (per-call prompt folders, removed with the call,
  a dead engine's swept at start);
- ``speech.models``: ``ModelStore`` (``ivr speech models list|install|use``);
- ``speech.faq``: ``FaqMatcher``;
- ``speech.audio``: resampling, VAD and endpointing; ``speech.grammar``: scoring;
- ``speech.errors``: ``SpeechError`` and its subclasses.

Imports nothing from ``ivr`` or ``routing``; importing the package loads no model.
"""
