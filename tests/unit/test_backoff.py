"""The reconnect backoff: doubles up to its cap, spreads by its jitter, jumps to the cap."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ivr.backoff import Backoff


def test_doubles_up_to_the_cap_and_resets() -> None:
    backoff = Backoff(0.5, 4.0)
    assert [backoff.delay() for _ in range(6)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    backoff.reset()
    assert backoff.delay() == 0.5
    backoff.longest()
    assert backoff.upcoming == 4.0
    assert backoff.delay() == 4.0


@given(
    initial=st.floats(0.01, 5),
    factor=st.floats(1, 20),
    jitter=st.floats(0, 0.99),
    tries=st.integers(1, 30),
)
def test_every_wait_stays_within_the_jitter_and_the_cap(
    initial: float, factor: float, jitter: float, tries: int
) -> None:
    maximum = initial * factor
    backoff = Backoff(initial, maximum, jitter=jitter)
    for _ in range(tries):
        base = backoff.upcoming
        wait = backoff.delay()
        assert base * (1 - jitter) - 1e-9 <= wait <= min(base * (1 + jitter), maximum) + 1e-9


@pytest.mark.parametrize(("initial", "maximum", "jitter"), [(0, 1, 0), (2, 1, 0), (1, 2, 1.0)])
def test_nonsense_is_refused(initial: float, maximum: float, jitter: float) -> None:
    with pytest.raises(ValueError, match="backoff"):
        Backoff(initial, maximum, jitter=jitter)
