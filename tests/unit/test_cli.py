"""The ``ivr`` command, called through ``main([...])`` and as a process."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from ivr.cli import main
from ivr.config import load_settings
from ivr.errors import ConfigError

SIMPLE = Path(__file__).resolve().parents[1] / "data" / "flows" / "simple"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class TestMain:
    def test_serve_help(self, capsys: pytest.CaptureFixture[str]) -> None:
        """`ivr serve --help` documents the flags and exits 0."""
        with pytest.raises(SystemExit) as exit_info:
            main(["serve", "--help"])
        assert exit_info.value.code == 0
        assert "--max-calls" in capsys.readouterr().out

    def test_no_command_is_a_usage_error(self, capsys: pytest.CaptureFixture[str]) -> None:
        """Without a subcommand the parser says what is expected (exit 2)."""
        with pytest.raises(SystemExit) as exit_info:
            main([])
        assert exit_info.value.code == 2
        assert "COMMAND" in capsys.readouterr().err

    def test_bad_port_names_the_flag(self, capsys: pytest.CaptureFixture[str]) -> None:
        """A bad flag value stops the engine with a message naming the flag."""
        assert main(["serve", "--port", "70000"]) == 2
        assert "--port: 70000 is not a port" in capsys.readouterr().err

    def test_call_runs_a_flow_in_process(self, capsys: pytest.CaptureFixture[str]) -> None:
        """`ivr call FLOW --press ...` runs the flow and prints what the caller hears."""
        argv = ["call", "echo", "--flows", str(SIMPLE), "--press", "4321", "--fast"]
        assert main(argv) == 0
        out = capsys.readouterr().out
        assert "Enter four digits." in out and "'variable': 'code', 'value': '4321'" in out
        assert "visited: ask > read_back > bye" in out

    def test_call_hears_a_switched_on_announcement(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """`ivr announcement on outage` reaches a local `ivr call` too (the same file)."""
        monkeypatch.setenv("IVR_ANNOUNCEMENTS_FILE", str(tmp_path / "switches.json"))
        assert main(["announcement", "on", "outage"]) == 0
        assert main(["call", "main", "--press", "1", "--fast"]) == 0
        assert "We are aware of a service outage" in capsys.readouterr().out

    def test_call_at_a_given_time(self, capsys: pytest.CaptureFixture[str]) -> None:
        """`--at` sets the clock the business hours read: a Wednesday morning reaches the
        menu, a Saturday afternoon the closed message (which says Saturdays are open)."""
        assert main(["call", "main", "--at", "2026-12-02 10:00", "--fast", "--press", "3"]) == 0
        assert "For English, press 1." in capsys.readouterr().out
        assert main(["call", "main", "--at", "2026-12-06 15:00", "--fast"]) == 0
        out = capsys.readouterr().out
        assert "10 to 2 on Saturdays" in out and "visited: outage > hours > closed" in out
        with pytest.raises(SystemExit):
            main(["call", "main", "--at", "next tuesday"])

    def test_call_unknown_flow(self, capsys: pytest.CaptureFixture[str]) -> None:
        assert main(["call", "nope", "--flows", str(SIMPLE), "--fast"]) == 2
        assert "no flow 'nope'" in capsys.readouterr().out

    def test_call_with_no_engine_reports_failure(self, capsys: pytest.CaptureFixture[str]) -> None:
        """With nothing listening, the call ends AGISTATUS=FAILURE and exit status 1."""
        argv = ["call", "demo", "--engine", f"127.0.0.1:{free_port()}", "--press", "1"]
        assert main(argv) == 1
        assert "AGISTATUS=FAILURE" in capsys.readouterr().out


class TestSettings:
    def test_layers(self, tmp_path: Path) -> None:
        """Flags beat the file, the file beats the environment, which beats defaults."""
        config = tmp_path / "engine.yaml"
        config.write_text("agi_port: 5000\nmax_calls: 10\n")
        env = {"IVR_AGI_PORT": "4000", "IVR_MAX_CALLS": "7", "IVR_COMMAND_TIMEOUT": "3"}
        settings = load_settings({"agi_port": 6000}, config_file=config, environ=env)
        assert (settings.agi_port, settings.max_calls, settings.command_timeout) == (6000, 10, 3.0)
        assert settings.agi_host == "127.0.0.1"

    def test_unknown_key_in_file(self, tmp_path: Path) -> None:
        """A misspelt key in the settings file is named, with the allowed keys."""
        config = tmp_path / "engine.yaml"
        config.write_text("agi_prot: 5000\n")
        with pytest.raises(ConfigError, match="unknown key 'agi_prot'; allowed: agi_host"):
            load_settings(config_file=config, environ={})

    def test_bad_environment_value(self) -> None:
        """A bad environment value names the variable."""
        with pytest.raises(ConfigError, match="IVR_MAX_CALLS"):
            load_settings(environ={"IVR_MAX_CALLS": "lots"})

    def test_alert_thresholds(self, tmp_path: Path) -> None:
        """The console's alerts are seconds; no wait threshold (unset, empty or null in
        the file) means each queue's service-level seconds."""
        settings = load_settings(environ={"IVR_ALERT_WAIT": "45", "IVR_ALERT_CALL": "900"})
        assert (settings.alert_wait, settings.alert_call) == (45.0, 900.0)
        default = load_settings(environ={})
        assert (default.alert_wait, default.alert_call) == (None, 600.0)
        assert load_settings(environ={"IVR_ALERT_WAIT": " "}).alert_wait is None
        config = tmp_path / "engine.yaml"
        config.write_text("alert_wait: null\nalert_call: 300\n")
        settings = load_settings(config_file=config, environ={"IVR_ALERT_WAIT": "30"})
        assert (settings.alert_wait, settings.alert_call) == (None, 300.0)

    @pytest.mark.parametrize(
        ("key", "value"),
        [
            ("IVR_ALERT_WAIT", "0"),
            ("IVR_ALERT_WAIT", "nan"),
            ("IVR_ALERT_WAIT", "soon"),
            ("IVR_ALERT_CALL", "-5"),
            ("IVR_ALERT_CALL", "inf"),
            ("IVR_ALERT_CALL", "100000"),
            ("IVR_ALERT_CALL", ""),
        ],
    )
    def test_a_bad_alert_threshold_names_the_variable(self, key: str, value: str) -> None:
        """Not a number of seconds, more than 0 and at most a day: refused, named."""
        with pytest.raises(ConfigError, match=f"environment variable {key}|{key}:"):
            load_settings(environ={key: value})


def _api(port: int, method: str, path: str, body: object = None) -> Any:
    """One request to the engine's HTTP API, over real TCP, with an admin token."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": "Bearer test-token-0123456", "Content-Type": "application/json"},
    )
    deadline = time.monotonic() + 15
    while True:
        try:
            with urllib.request.urlopen(request, timeout=5) as reply:
                return json.loads(reply.read())
        except urllib.error.URLError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_sigterm_drains_and_exits_cleanly(tmp_path: Path) -> None:
    """`ivr serve` stops taking calls on SIGTERM, lets the running call finish, exits 0.

    On the way, its HTTP API serves routing.yaml's queues and takes a change."""
    port, api_port = free_port(), free_port()
    env = dict(
        os.environ,
        IVR_LOG_FORMAT="json",
        IVR_FLOWS_DIR=str(SIMPLE),
        IVR_PROMPTS_DIR=str(tmp_path),
        IVR_DEMO_API_PORT="0",
        IVR_API_PORT=str(api_port),
        IVR_AUDIOSOCKET_PORT=str(free_port()),
        IVR_API_TOKENS="ops:admin:test-token-0123456",
        IVR_REDIS_DIR=str(tmp_path / "redis"),
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "ivr.cli", "serve", "--port", str(port), "--drain-timeout", "20"],
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        queues = _api(api_port, "GET", "/api/queues")["queues"]
        assert queues["billing"]["config"]["skills"] == {"billing": 3}
        changed = _api(api_port, "PUT", "/api/queues/billing", {"aht": 99})
        assert changed["aht"] == 99
        # A second engine on the same folders (a second ./dev run) refuses at once,
        # naming the first, and leaves it alone.
        second = subprocess.run(
            [sys.executable, "-m", "ivr.cli", "serve", "--port", str(free_port())],
            capture_output=True,
            text=True,
            env={**env, "IVR_API_PORT": "0", "IVR_AUDIOSOCKET_PORT": "0"},
            timeout=30,
            check=False,
        )
        assert second.returncode == 2, second.stderr
        assert "another engine already runs" in second.stderr
        assert f"pid {proc.pid}" in second.stderr and f"127.0.0.1:{port}" in second.stderr
        assert _api(api_port, "GET", "/api/queues")["queues"]["billing"]["config"]["aht"] == 99
        from ivr.testing import AsteriskEmulator, Keys

        async def call() -> list[str]:
            emulator = AsteriskEmulator(port=port, speed=1.0, sound_dirs=[tmp_path])
            running = asyncio.ensure_future(emulator.call("echo", actions=[Keys("1234")]))
            await asyncio.sleep(0.3)
            proc.send_signal(signal.SIGTERM)
            result = await running
            return result.commands

        commands = asyncio.run(call())
        assert proc.wait(timeout=15) == 0
        assert commands[-1] == "HANGUP"
        assert 'SAY DIGITS 1234 ""' in commands, commands
    finally:
        if proc.poll() is None:
            proc.kill()
        _, err = proc.communicate()
    assert "engine.stopping" in err and "engine.stopped" in err


def test_announcement_switch(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`ivr announcement on NAME` switches it for the engines that read the same file."""
    import asyncio as aio

    from ivr.flows.ports import FileAnnouncements

    config = tmp_path / "engine.yaml"
    config.write_text(f"announcements_file: {tmp_path / 'switches.json'}\n")
    store = FileAnnouncements(tmp_path / "switches.json")
    assert not aio.run(store.active("outage"))
    assert main(["announcement", "on", "outage", "--config", str(config)]) == 0
    assert aio.run(store.active("outage"))
    assert main(["announcement", "list", "--config", str(config)]) == 0
    assert "outage: on" in capsys.readouterr().out
    assert main(["announcement", "off", "outage", "--config", str(config)]) == 0
    assert not aio.run(store.active("outage"))
    assert main(["announcement", "on", "--config", str(config)]) == 2
    capsys.readouterr()
    assert main(["announcement", "on", "no_such", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert "no announcement node named 'no_such'" in err and "known: outage" in err
    assert not aio.run(store.active("no_such"))


def test_staffing_command(capsys: pytest.CaptureFixture[str]) -> None:
    """`ivr agents staffing` prints the Erlang C table and the agents to schedule."""
    argv = ["agents", "staffing", "--calls", "360", "--interval", "1h", "--aht", "4m"]
    assert main([*argv, "--shrinkage", "0.3"]) == 0
    out = capsys.readouterr().out
    assert "24.00 Erlangs" in out and "<- needed" in out
    assert "29 agents on the phones meet 80% in 20 s; schedule 42" in out
    assert main([*argv, "--target", "80/20", "--shrinkage", "1.5"]) == 2


def test_call_refuses_keys_a_phone_does_not_have(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["call", "echo", "--flows", str(SIMPLE), "--press", "1x"])
    assert exit_info.value.code == 2
    assert "only 0-9, * and #" in capsys.readouterr().err


def test_a_short_api_token_stops_serve_before_anything_opens(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Tokens are checked with the other settings: no redis-server, no port, no model."""
    monkeypatch.setenv("IVR_API_TOKENS", "lee:admin:short")
    config = tmp_path / "engine.yaml"
    config.write_text(f"redis_dir: {tmp_path / 'redis'}\n")
    assert main(["serve", "--config", str(config), "--port", "0"]) == 2
    assert "shorter than 12" in capsys.readouterr().err
    assert not (tmp_path / "redis").exists()  # the embedded Redis never started


@pytest.fixture
def engine_port() -> Any:
    """A FastAGI engine serving tests/data/flows/simple, on its own loop in a thread."""
    import threading

    from ivr import log
    from ivr.agi.server import FastAgiServer
    from ivr.app import flow_handler
    from ivr.flows.interpreter import Engine
    from ivr.flows.ports import SpeechPrompts
    from ivr.flows.registry import FlowRegistry

    # Logs to this test's stderr: an earlier test's main() bound structlog to its own.
    log.configure(json=False, level="warning")
    loop = asyncio.new_event_loop()
    registry = FlowRegistry(SIMPLE)
    assert registry.reload() == []
    engine = Engine(flows=registry.get, prompts=SpeechPrompts(Path("var/prompts")))
    server = FastAgiServer(default=flow_handler(registry, engine), port=0)
    loop.run_until_complete(server.start())
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield server.port
    finally:
        asyncio.run_coroutine_threadsafe(server.drain(1), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def test_call_on_a_running_engine_shows_the_call(
    engine_port: int, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--engine` prints what the engine plays and runs, not only AGISTATUS."""
    argv = ["call", "echo", "--engine", f"127.0.0.1:{engine_port}", "--press", "4321", "--fast"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "🔊 (prompt" in out and "AGISTATUS=" in out


def test_call_on_a_running_engine_says_why_it_failed(
    engine_port: int, capsys: pytest.CaptureFixture[str]
) -> None:
    """An unknown flow there: the engine refused it at once, and the reason is given."""
    assert main(["call", "nope", "--engine", f"127.0.0.1:{engine_port}", "--fast"]) == 1
    out = capsys.readouterr().out
    assert "AGISTATUS=FAILURE" in out and "it has no flow 'nope'" in out
    assert main(["call", "nope", "--engine", f"127.0.0.1:{free_port()}", "--fast"]) == 1
    assert "nothing answered at" in capsys.readouterr().out
