"""AGI command round trips, counted per command for ``/metrics``.

Every command of every call passes here, so this is on the path that issue 13
measures (calls per engine CPU-second). prometheus-client's
``Histogram.labels(...).observe`` takes a lock, looks the child up and walks
the buckets in Python; even a function of ours with a ``bisect`` cost about
3,300 instructions per command (callgrind: 2.6 % of a call). So a channel
appends ``(command, seconds)`` to :attr:`AgiTimings.pending` (a list append),
and the counts are folded into buckets when Prometheus scrapes, or every
1,024 commands, whichever comes first (memory stays bounded with no scraper).
That is why it is written by hand.

The label is the command's verb (``STREAM FILE``) or, for ``EXEC``, the verb
and the application (``EXEC Dial``): never an argument, which may hold a
caller's data. Application names come from flows and are checked to be names.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator
from typing import Final

from prometheus_client.core import HistogramMetricFamily, Metric

__all__ = ["BUCKETS", "TIMINGS", "AgiTimings"]

#: Upper bounds in seconds (``le``); a Dial runs as long as its call.
BUCKETS: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
NAME: Final = "ivr_agi_command_seconds"
HELP: Final = "AGI command round trip, from sending it to Asterisk's reply"


class AgiTimings:
    """Counts per command: how many replies took at most each bound, and their sum."""

    __slots__ = ("_counts", "_sums", "pending")

    #: Round trips appended before they are folded into the counts.
    FOLD_AT: Final = 1024

    def __init__(self) -> None:
        self._counts: dict[str, list[int]] = {}
        self._sums: dict[str, float] = {}
        #: ``(command, seconds)`` not yet counted: appended by the channels.
        self.pending: list[tuple[str, float]] = []

    def record(self, command: str, seconds: float) -> None:
        pending = self.pending
        pending.append((command, seconds))
        if len(pending) >= self.FOLD_AT:
            self.fold()

    def fold(self) -> None:
        """Count what is pending."""
        pending, self.pending[:] = list(self.pending), []
        counts_of, sums = self._counts, self._sums
        for command, seconds in pending:
            counts = counts_of.get(command)
            if counts is None:
                counts = counts_of[command] = [0] * (len(BUCKETS) + 1)
                sums[command] = 0.0
            counts[bisect_left(BUCKETS, seconds)] += 1  # bisect_left: a bound is "<= le"
            sums[command] += seconds

    def count(self, command: str) -> int:
        self.fold()
        return sum(self._counts.get(command, ()))

    def collect(self) -> Iterator[Metric]:
        """The histogram, as prometheus-client's collectors give it (a registry calls this)."""
        self.fold()
        family = HistogramMetricFamily(NAME, HELP, labels=["command"])
        for command, counts in sorted(self._counts.items()):
            cumulative, buckets = 0, []
            for bound, n in zip((*map(_le, BUCKETS), "+Inf"), counts, strict=True):
                cumulative += n
                buckets.append((bound, float(cumulative)))
            family.add_metric([command], buckets, self._sums[command])
        yield family


def _le(bound: float) -> str:
    return str(float(bound))


#: This process's counts: every channel records here; ``ivr.console.metrics`` exposes them.
TIMINGS: Final = AgiTimings()
