"""var/ read-only or full (issue 12, chaos 5).

A first run caches the fixed prompts; the engine then starts in a user and mount
namespace (``unshare -rm``, no privilege needed where user namespaces are allowed)
where var/ is a read-only bind mount, or a 1 MB tmpfs holding the cache and then
filled up. A directory chmod is not used: it stops nobody running as root (CI
containers often do), and a mount stops everyone. Calls must go on with the cached
prompts, and the disk error be said clearly, once per interval rather than per call.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.chaos import scenarios

pytestmark = [pytest.mark.slow]


@pytest.fixture(autouse=True)
def _namespaces() -> None:
    why = scenarios.namespaces_work()
    if why:
        pytest.skip(f"cannot simulate a read-only or full var/ here: {why}")


async def test_read_only(root: Path) -> None:
    await scenarios.disk_unwritable(root, how="read_only", calls=20)


async def test_full(root: Path) -> None:
    await scenarios.disk_unwritable(root, how="full", calls=20)
