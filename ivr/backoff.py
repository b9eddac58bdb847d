"""Waiting between tries to reach something (Asterisk's AMI, at start and after a drop):
capped exponential backoff with jitter, one helper for every reconnect loop."""

from __future__ import annotations

import random

__all__ = ["Backoff"]


class Backoff:
    """``initial``, then twice as long each time, never over ``maximum``; each wait
    is spread by ``±jitter`` (a fraction) so that many clients do not retry in step."""

    def __init__(self, initial: float, maximum: float, *, jitter: float = 0.0) -> None:
        if not 0 < initial <= maximum:
            raise ValueError(f"backoff: need 0 < initial ({initial}) <= maximum ({maximum})")
        if not 0 <= jitter < 1:
            raise ValueError(f"backoff: jitter {jitter} must be at least 0 and less than 1")
        self.initial = initial
        self.maximum = maximum
        self.jitter = jitter
        self._next = initial

    @property
    def upcoming(self) -> float:
        """The next wait before jitter (what a log line can announce)."""
        return self._next

    def delay(self) -> float:
        """The wait before the next try; the one after it doubles (up to ``maximum``)."""
        base = self._next
        self._next = min(base * 2, self.maximum)
        spread = 1 + random.uniform(-self.jitter, self.jitter) if self.jitter else 1.0  # noqa: S311
        return min(base * spread, self.maximum)

    def longest(self) -> None:
        """Wait the longest from now on (e.g. credentials refused: no quick fix)."""
        self._next = self.maximum

    def reset(self) -> None:
        self._next = self.initial
