"""The ``ivr`` command, called through ``main([...])`` and as a process."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ivr.agi.channel import Channel
from ivr.agi.server import FastAgiServer
from ivr.cli import main
from ivr.config import load_settings
from ivr.errors import ConfigError


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

    def test_call_against_a_running_engine(self, capsys: pytest.CaptureFixture[str]) -> None:
        """`ivr call` plays Asterisk against the engine and prints the dialogue."""

        async def echo(channel: Channel) -> None:
            await channel.answer()
            entry = await channel.get_data("beep", 3000, 4)
            await channel.say_digits(entry.digits)

        async def scenario() -> int:
            server = FastAgiServer(default=echo, port=0)
            await server.start()
            try:
                loop = asyncio.get_running_loop()
                argv = ["call", "demo", "--port", str(server.port), "--press", "42#"]
                return await loop.run_in_executor(None, main, argv)
            finally:
                await server.drain(1)

        assert asyncio.run(scenario()) == 0
        out = capsys.readouterr().out
        assert "> GET DATA beep 3000 4\n< 200 result=42" in out
        assert '> SAY DIGITS 42 ""' in out

    def test_call_with_no_engine_reports_failure(self, capsys: pytest.CaptureFixture[str]) -> None:
        """With nothing listening, the call ends AGISTATUS=FAILURE and exit status 1."""
        assert main(["call", "demo", "--port", str(free_port())]) == 1
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


def test_sigterm_drains_and_exits_cleanly() -> None:
    """`ivr serve` stops taking calls on SIGTERM, lets the running call finish, exits 0."""
    port = free_port()
    env = dict(os.environ, IVR_LOG_FORMAT="json")
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
        from ivr.testing import AsteriskEmulator, Press

        async def call() -> list[str]:
            emulator = AsteriskEmulator(port=port, speed=1.0)
            running = asyncio.ensure_future(
                emulator.call(
                    "demo",
                    actions=[
                        Press("1", on="STREAM FILE", after=0.2),
                        Press("1234", on="GET DATA", after=0.3),
                    ],
                )
            )
            await asyncio.sleep(0.3)
            proc.send_signal(signal.SIGTERM)
            result = await running
            return result.commands

        commands = asyncio.run(call())
        assert proc.wait(timeout=15) == 0
        assert commands[-1] == "HANGUP"
        assert 'SAY DIGITS 1234 ""' in commands
    finally:
        if proc.poll() is None:
            proc.kill()
        _, err = proc.communicate()
    assert "engine.stopping" in err and "engine.stopped" in err
