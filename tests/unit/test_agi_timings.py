"""The AGI round-trip counts: Prometheus's histogram semantics (``le`` is "at most",
cumulative buckets, +Inf, the sum), checked against prometheus-client's own Histogram
fed the same values."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from ivr.agi.timings import BUCKETS, HELP, AgiTimings

seconds = st.one_of(
    st.sampled_from([*BUCKETS, 0.0]),
    st.floats(min_value=0, max_value=100, allow_nan=False, allow_infinity=False),
)


@given(st.lists(st.tuples(st.sampled_from(["ANSWER", "EXEC Dial", "STREAM FILE"]), seconds)))
def test_same_exposition_as_prometheus_client(observations: list[tuple[str, float]]) -> None:
    ours = AgiTimings()
    theirs_registry, ours_registry = CollectorRegistry(), CollectorRegistry()
    theirs = Histogram(
        "ivr_agi_command_seconds",
        HELP,
        ["command"],
        buckets=BUCKETS,
        registry=theirs_registry,
    )
    ours_registry.register(ours)
    for command, value in observations:
        ours.record(command, value)
        theirs.labels(command).observe(value)

    def lines(registry: CollectorRegistry) -> list[str]:
        text = generate_latest(registry).decode()
        # prometheus-client adds a _created sample per child; the counts must match.
        return sorted(line for line in text.splitlines() if "_created" not in line)

    assert lines(ours_registry) == lines(theirs_registry)
    for command in {c for c, _ in observations}:
        assert ours.count(command) == sum(1 for c, _ in observations if c == command)
