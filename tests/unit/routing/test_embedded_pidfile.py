"""How :class:`routing.embedded.EmbeddedRedis` finds a previous engine's redis-server
by the pidfile in its folder, and stops only that (real processes: a copy of ``sleep``
named ``redis-server`` stands in for the server)."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from routing.embedded import previous_server, stop_previous

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")

Spawn = Callable[..., subprocess.Popen[bytes]]


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Spawn]:
    """Starts ``sleep 60`` as ``redis-server`` (or as ``sleep``) in a folder; all are
    killed and reaped at the end."""
    sleep = shutil.which("sleep")
    assert sleep is not None
    fake = tmp_path / "bin" / "redis-server"
    fake.parent.mkdir()
    shutil.copy(sleep, fake)
    started: list[subprocess.Popen[bytes]] = []

    def start(
        folder: Path, *, named: str = "redis-server", ignore_term: bool = False
    ) -> subprocess.Popen[bytes]:
        folder.mkdir(parents=True, exist_ok=True)
        binary = str(fake) if named == "redis-server" else sleep
        # An ignored signal stays ignored across exec: a server that will not stop.
        trap = 'trap "" TERM; ' if ignore_term else ""
        process = subprocess.Popen(["sh", "-c", f'{trap}exec "$0" 60', binary], cwd=folder)
        deadline = time.monotonic() + 10
        while Path(f"/proc/{process.pid}/comm").read_text().strip() != named:  # sh until exec
            assert time.monotonic() < deadline, f"{named} did not start"
            time.sleep(0.005)
        started.append(process)
        return process

    yield start
    for process in started:
        process.kill()
        process.wait()


def write_pid(folder: Path, pid: int | str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "redis.pid").write_text(str(pid))  # redis-server writes no newline


def test_no_pidfile_no_server(tmp_path: Path) -> None:
    assert previous_server(tmp_path) is None


@pytest.mark.parametrize("text", ["", "not a pid", "-1", "0"])
def test_a_pidfile_without_a_pid_names_nothing(tmp_path: Path, text: str) -> None:
    write_pid(tmp_path, text)
    assert previous_server(tmp_path) is None


def test_a_dead_pid_names_nothing(tmp_path: Path) -> None:
    gone = subprocess.Popen(["true"])
    gone.wait()
    write_pid(tmp_path, gone.pid)
    assert previous_server(tmp_path) is None


def test_a_live_redis_server_in_the_folder_is_found(tmp_path: Path, spawn: Spawn) -> None:
    folder = tmp_path / "redis"
    server = spawn(folder)
    write_pid(folder, server.pid)
    assert previous_server(folder) == server.pid
    assert previous_server(tmp_path / "redis" / ".." / "redis") == server.pid  # any spelling


def test_a_reused_pid_is_left_alone(tmp_path: Path, spawn: Spawn) -> None:
    """The pid now belongs to another program (same folder): not a server, not stopped."""
    folder = tmp_path / "redis"
    other = spawn(folder, named="sleep")
    write_pid(folder, other.pid)
    assert previous_server(folder) is None


async def test_a_redis_server_of_another_folder_is_left_alone(tmp_path: Path, spawn: Spawn) -> None:
    server = spawn(tmp_path / "elsewhere")
    write_pid(tmp_path / "redis", server.pid)
    assert previous_server(tmp_path / "redis") is None
    assert await stop_previous(tmp_path / "redis") is None
    assert server.poll() is None


def test_a_zombie_names_nothing(tmp_path: Path, spawn: Spawn) -> None:
    folder = tmp_path / "redis"
    server = spawn(folder)
    write_pid(folder, server.pid)
    server.send_signal(signal.SIGKILL)
    # Not reaped yet: a zombie until the fixture waits for it.
    for _ in range(200):
        if Path(f"/proc/{server.pid}/stat").read_text().rpartition(")")[2].split()[0] == "Z":
            break
        time.sleep(0.01)
    assert previous_server(folder) is None


async def test_stop_previous_terminates_the_server(tmp_path: Path, spawn: Spawn) -> None:
    folder = tmp_path / "redis"
    server = spawn(folder)
    write_pid(folder, server.pid)
    assert await stop_previous(folder) == server.pid
    assert server.wait(timeout=5) == -signal.SIGTERM  # SIGTERM first: redis flushes its AOF


async def test_stop_previous_kills_a_server_that_ignores_sigterm(
    tmp_path: Path, spawn: Spawn
) -> None:
    folder = tmp_path / "redis"
    server = spawn(folder, ignore_term=True)
    write_pid(folder, server.pid)
    assert await stop_previous(folder, timeout=0.3) == server.pid
    assert server.wait(timeout=5) == -signal.SIGKILL


async def test_stop_previous_without_a_server_does_nothing(tmp_path: Path) -> None:
    assert await stop_previous(tmp_path) is None
