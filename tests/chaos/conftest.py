"""Fixtures of the chaos tests: a short folder per test (Unix socket paths stay short)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.chaos.rig import short_root


@pytest.fixture
def root() -> Iterator[Path]:
    with short_root() as folder:
        yield folder
