"""Offline speech: Vosk recognition and espeak-ng prompts.

Imports nothing from ``ivr`` or ``routing``. Filled in by the speech issue.
"""
