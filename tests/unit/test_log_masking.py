"""Masking by context: a call's sensitive variables, and what a sensitive node hears,
never reach a log line of that call, and never another call's masks."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from ivr import log


def logged(**values: Any) -> dict[str, Any]:
    """What the masking processor lets through in the current context."""
    return dict(log.mask_sensitive(None, "info", dict(values)))


class TestMasking:
    def test_masking_hides_keys_within_the_block_only(self) -> None:
        """Inside the block ``text`` is masked; after it, it is logged again."""
        with log.masking("text", "phrase"):
            inside = logged(text="해지", phrase="해지", kind="speech")
        assert inside == {"text": "***", "phrase": "***", "kind": "speech"}
        assert logged(text="안내") == {"text": "안내"}

    def test_keys_masked_inside_a_block_stay_masked(self) -> None:
        """A variable marked sensitive while a node masks its answers stays masked after."""
        token = log.sensitive_keys.set(frozenset())
        try:
            with log.masking("text"):
                log.mask_keys("topic")
            assert logged(topic="해지", text="ok") == {"topic": "***", "text": "ok"}
        finally:
            log.sensitive_keys.reset(token)

    async def test_one_calls_masks_are_not_anothers(self) -> None:
        """Two calls' tasks: the keys one marks do not mask the other's lines."""
        marked = asyncio.Event()

        async def first() -> dict[str, Any]:
            log.mask_keys("balance")
            marked.set()
            return logged(balance="58213947")

        async def second() -> dict[str, Any]:
            await marked.wait()
            return logged(balance="10")

        one, two = await asyncio.gather(asyncio.create_task(first()), second())
        assert (one, two) == ({"balance": "***"}, {"balance": "10"})

    def test_httpx_request_lines_are_not_logged(self) -> None:
        """httpx logs each request's full URL at info: below warning it is silenced."""
        log.configure(json=True, level="debug")
        try:
            assert logging.getLogger("httpx").getEffectiveLevel() == logging.WARNING
            assert logging.getLogger("httpcore").getEffectiveLevel() == logging.WARNING
        finally:
            log.configure(json=True, level="info")
