"""Prompts and keys on a call, shared by every node that speaks or listens.

The step of the call path between the interpreter (a node asks) and the
``Channel`` (AGI commands): play files, let keys stop them, wait for one key.
"""

from __future__ import annotations

from ivr.errors import PlaybackError
from ivr.flows.run import Run

__all__ = ["KEYS", "ask", "play_files"]

#: Every keypad key.
KEYS = "0123456789*#"


async def play_files(run: Run, files: list[str], escape: str = "") -> str | None:
    """Play files in order; return the key that stopped them, if any.

    A file that cannot be played is told as ``prompt_failed`` and skipped:
    one missing prompt never ends a call.
    """
    for name in files:
        try:
            result = await run.channel.stream_file(name, escape)
        except PlaybackError as exc:
            run.event("prompt_failed", sound=name, error=str(exc))
            continue
        if result.digit:
            return result.digit
    return None


async def ask(run: Run, files: list[str], keys: str, timeout: float) -> str | None:
    """Play a prompt any of ``keys`` interrupts, then wait for one key."""
    digit = await play_files(run, files, keys)
    if digit is None:
        digit = await run.channel.wait_for_digit(int(timeout * 1000))
    return digit
