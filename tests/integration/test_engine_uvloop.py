"""The engine on uvloop (``IVR_EVENT_LOOP=uvloop``, the ``uvloop`` extra): a real
``ivr serve`` process takes a call from the Asterisk emulator and stops cleanly;
a loop it does not know, or uvloop missing, stops it before it opens anything."""

from __future__ import annotations

import asyncio
import importlib.util
import socket
import time
from pathlib import Path

import pytest

from ivr.config import ConfigError, load_settings
from ivr.testing import AsteriskEmulator, Press
from tests.integration.helpers.serve_process import free_port, serve, serve_env, stop

SIMPLE = Path(__file__).resolve().parents[1] / "data" / "flows" / "simple"


def test_an_unknown_loop_is_refused_naming_the_setting() -> None:
    with pytest.raises(ConfigError, match=r"IVR_EVENT_LOOP: 'trio'; use asyncio or uvloop"):
        load_settings(environ={"IVR_EVENT_LOOP": "trio"})


def test_uvloop_missing_is_refused_with_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "uvloop" else real(name, *a)
    )
    with pytest.raises(ConfigError, match=r"uvloop is not installed; pip install 'ivr\[uvloop\]'"):
        load_settings(environ={"IVR_EVENT_LOOP": "uvloop"})


def test_the_engine_serves_a_call_on_uvloop(redis_url: str, tmp_path: Path) -> None:
    port = free_port()
    (tmp_path / "routing.yaml").write_text("agents: []\nqueues: {}\n")
    proc = serve(serve_env(redis_url, tmp_path, SIMPLE, IVR_EVENT_LOOP="uvloop"), port)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, "the engine exited"
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "the engine did not listen in time"
                time.sleep(0.2)
        emulator = AsteriskEmulator(port=port, speed=20.0)
        result = asyncio.run(
            emulator.call("echo", actions=[Press("1234", on="STREAM FILE", after=0.05, gap=0.05)])
        )
        assert result.agistatus == "HANGUP"  # the flow's last node hangs up
        # The four keys barged into the prompt; the flow read them back.
        assert 'SAY DIGITS 1234 ""' in result.commands, result.commands
        assert result.commands[-1] == "HANGUP"
    finally:
        err = stop(proc)
    assert proc.returncode == 0, err[-2000:]
    assert "Traceback" not in err
    ready = [line for line in err.splitlines() if '"engine.ready"' in line]
    assert ready and '"loop": "uvloop"' in ready[0], err[-2000:]
