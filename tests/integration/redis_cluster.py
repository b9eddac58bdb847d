"""A real three-master Redis Cluster for tests, from the installed redis-server
(and a real Sentinel watching a master).

Three ``redis-server --cluster-enabled yes`` on free loopback ports (each with
its bus port, +10000, free too) in a temporary folder, joined by
``redis-cli --cluster create ... --cluster-replicas 0 --cluster-yes``; the
fixture yields the ``redis+cluster://`` URL and the ports, and stops the
servers afterwards.
"""

from __future__ import annotations

import contextlib
import random
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

__all__ = ["Cluster", "redis_cluster", "redis_sentinel", "running_cluster"]


@dataclass(frozen=True)
class Cluster:
    url: str
    ports: tuple[int, ...]


def _free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _ports(count: int) -> list[int]:
    chosen: list[int] = []
    while len(chosen) < count:
        port = random.randint(20000, 45000)
        if port not in chosen and _free(port) and _free(port + 10000):
            chosen.append(port)
    return chosen


def _cli(port: int, *args: str) -> str:
    return subprocess.run(
        ["redis-cli", "-p", str(port), *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=10,
    ).stdout


def _wait(check: object, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise RuntimeError(f"the test cluster did not come up: {what}")
        time.sleep(0.05)


@contextlib.contextmanager
def running_cluster(folder: Path, masters: int = 3) -> Iterator[Cluster]:
    """Start ``masters`` redis-servers in ``folder``, join them, stop them afterwards
    (the fixture's and bench/routing.py's)."""
    binary, cli = shutil.which("redis-server"), shutil.which("redis-cli")
    if binary is None or cli is None:
        raise RuntimeError("redis-server and redis-cli are needed (apt-get install redis-server)")
    ports = _ports(masters)
    processes = []
    for port in ports:
        home = folder / str(port)
        home.mkdir(parents=True)
        processes.append(
            subprocess.Popen(
                [
                    binary, "--port", str(port), "--bind", "127.0.0.1",
                    "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                    "--cluster-node-timeout", "5000", "--dir", str(home),
                    "--save", "", "--appendonly", "no", "--logfile", "redis.log",
                ],
                stdout=subprocess.DEVNULL,
            )
        )  # fmt: skip
    try:
        for port in ports:
            _wait(lambda port=port: _cli(port, "ping").strip() == "PONG", f"port {port}")
        subprocess.run(
            [
                cli, "--cluster", "create", *(f"127.0.0.1:{p}" for p in ports),
                "--cluster-replicas", "0", "--cluster-yes",
            ],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip
        for port in ports:
            _wait(
                lambda port=port: "cluster_state:ok" in _cli(port, "cluster", "info"),
                f"cluster_state on {port}",
            )
        yield Cluster(f"redis+cluster://127.0.0.1:{ports[0]}", tuple(ports))
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(10)


@pytest.fixture(scope="module")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """Three masters, every slot assigned, cluster_state:ok on each."""
    try:
        with running_cluster(tmp_path_factory.mktemp("cluster")) as cluster:
            yield cluster
    except RuntimeError as exc:
        pytest.fail(str(exc))


@pytest.fixture(scope="module")
def redis_sentinel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A master and a Sentinel monitoring it as ``main``: the redis+sentinel:// URL."""
    folder: Path = tmp_path_factory.mktemp("sentinel")
    master, sentinel = _ports(2)
    config = folder / "sentinel.conf"
    config.write_text(
        f"port {sentinel}\nbind 127.0.0.1\ndir {folder}\n"
        f"sentinel monitor main 127.0.0.1 {master} 1\n"
        "sentinel down-after-milliseconds main 5000\n"
    )
    processes = [
        subprocess.Popen(
            ["redis-server", "--port", str(master), "--bind", "127.0.0.1", "--save", "",
             "--dir", str(folder)],
            stdout=subprocess.DEVNULL,
        ),
        subprocess.Popen(["redis-server", str(config), "--sentinel"], stdout=subprocess.DEVNULL),
    ]  # fmt: skip
    try:
        _wait(lambda: _cli(sentinel, "ping").strip() == "PONG", f"sentinel on {sentinel}")
        yield f"redis+sentinel://127.0.0.1:{sentinel}/main"
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(10)
