"""Every prompt text of a flow, so they are all synthesised before a caller needs one.

``ivr prompts build`` and the engine (at start and on each reload) render
them ahead (FAQ answers too: a cached answer rendered only when first asked
would tell when a caller asked it). A text with ``${...}`` depends on the
call: it is rendered for that call only, into its own folder, and never
cached (``Run.sound``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from pydantic import BaseModel

from ivr.flows.model import Flow

__all__ = ["flow_languages", "prompt_texts"]

_TEXT_FIELDS = frozenset({"say", "prompt", "answer"})


def _texts(value: Any) -> Iterator[tuple[str | None, str]]:
    """(language or None for the flow's default, text) found under ``value``."""
    if isinstance(value, BaseModel):
        for name in type(value).model_fields:
            item = getattr(value, name)
            if name in _TEXT_FIELDS:
                if isinstance(item, str):
                    yield None, item
                elif isinstance(item, dict):
                    yield from ((k, v) for k, v in item.items() if isinstance(v, str))
                    continue
            yield from _texts(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _texts(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _texts(item)


def prompt_texts(flows: Iterable[Flow]) -> set[tuple[str, str, str | None]]:
    """(text, language, voice) for every fixed prompt of ``flows``."""
    found: set[tuple[str, str, str | None]] = set()
    for flow in flows:
        default = flow.defaults.language
        for language, text in _texts(flow):
            if "${" in text or not text.strip():
                continue
            lang = language or default
            voice = flow.defaults.voice if lang == default else None
            found.add((text, lang, voice))
    return found


def flow_languages(flow: Flow) -> set[str]:
    """The languages a call of ``flow`` can be in: its default and its language menus'."""
    found = {flow.defaults.language}
    for node in flow.nodes.values():
        for option in getattr(node, "options", None) or []:
            language = getattr(option, "language", None)
            if isinstance(language, str):
                found.add(language)
    return found
