"""Shared fixtures: the Asterisk transcripts and a running FastAGI server."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from ivr.agi.server import FastAgiServer

DATA = Path(__file__).parent / "data"
TRANSCRIPTS = DATA / "transcripts"


@pytest.fixture(scope="session")
def agi_sessions() -> list[dict[str, Any]]:
    """The captured Asterisk 22 FastAGI sessions."""
    sessions: list[dict[str, Any]] = json.loads((TRANSCRIPTS / "agi-sessions.json").read_text())
    return sessions


@pytest.fixture
async def agi_server() -> AsyncIterator[FastAgiServer]:
    """A FastAGI server on a free loopback port with no routes yet."""
    server = FastAgiServer(port=0, command_timeout=5.0, env_timeout=1.0, hangup_grace=0.5)
    await server.start()
    try:
        yield server
    finally:
        await server.drain(1.0)
