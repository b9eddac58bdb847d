"""AGI command round trips for ``/metrics``: a sample, one command in :data:`SAMPLE`.

Every command of every call passes the channel's hot path, which issue 13
measures (instructions and CPU per call). Timing and bucketing each command
cost about 4,200 instructions (callgrind: 3.5 % of a whole call, more than
the engine's lead over panoramisk), so the channel times one command in
:data:`SAMPLE` (every eighth of the call's, counted from a random start per
call, so every position in a flow gets its turn) and this module buckets it
at once. The histogram is the
distribution of round trips, per command; its ``_count`` is the number of
samples, not of commands. prometheus-client's ``Histogram`` would add a lock
and a label lookup per sample; plain lists do, and :meth:`AgiTimings.collect`
turns them into the histogram when Prometheus scrapes: that is why it is
written by hand.

The label is the command's verb (``STREAM FILE``) or, for ``EXEC``, the verb
and the application (``EXEC Dial``): never an argument, which may hold a
caller's data. Application names come from flows and are checked to be names.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator
from typing import Final

from prometheus_client.core import HistogramMetricFamily, Metric

__all__ = ["BUCKETS", "SAMPLE", "START_BITS", "TIMINGS", "AgiTimings"]

#: Upper bounds in seconds (``le``); a Dial runs as long as its call.
BUCKETS: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
NAME: Final = "ivr_agi_command_seconds"
HELP: Final = (
    "AGI command round trip, from sending it to Asterisk's reply (a sample: one command in 8)"
)
#: One command in this many is timed (tests set 1 to time every command).
SAMPLE = 8
#: Random bits that start a call's count anywhere in a cycle of ``SAMPLE``, evenly
#: (a power of two: ``random.getrandbits`` draws them in one C call, where
#: ``randrange`` cost 3,500 instructions per call).
START_BITS: Final = (SAMPLE - 1).bit_length()


class AgiTimings:
    """Counts per command: how many sampled replies took at most each bound, and their sum."""

    __slots__ = ("_counts", "_sums")

    def __init__(self) -> None:
        self._counts: dict[str, list[int]] = {}
        self._sums: dict[str, float] = {}

    def record(self, command: str, seconds: float) -> None:
        counts = self._counts.get(command)
        if counts is None:
            counts = self._counts[command] = [0] * (len(BUCKETS) + 1)
            self._sums[command] = 0.0
        counts[bisect_left(BUCKETS, seconds)] += 1  # bisect_left: a bound is "<= le"
        self._sums[command] += seconds

    def total(self) -> int:
        """Samples of every command."""
        return sum(sum(counts) for counts in self._counts.values())

    def count(self, command: str) -> int:
        return sum(self._counts.get(command, ()))

    def collect(self) -> Iterator[Metric]:
        """The histogram, as prometheus-client's collectors give it (a registry calls this)."""
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
