"""The chaos rig: real processes to break, and the generated dialplan to run calls through.

- :class:`RedisServer`: a ``redis-server`` on a Unix socket in a folder, with an
  append-only file (``aof``) or no persistence at all (``none``); ``kill()`` is
  ``kill -9``, ``start()`` again brings it back on the same socket and folder.
- :class:`EngineProcess`: ``python -m ivr.cli serve`` (the real engine), JSON logs
  at debug level kept line by line; ``kill()`` is ``kill -9``. It reads its own
  ``/proc`` for open descriptors and RSS.
- :class:`Dialplan`: the entry context of ``extensions.conf`` as ``ivr
  asterisk-conf render`` writes it, played step by step: ``Set``, ``Answer``,
  ``AGI`` (a call of the Asterisk emulator over TCP), ``GotoIf`` on ``IVR_DONE``,
  the fallback (``Queue`` / ``VoiceMail``), ``Hangup``. A call's :class:`Outcome`
  says which way it left: ``done`` (the engine finished it), ``hangup`` (``AGI``
  returned -1: only ``h`` runs) or ``fallback``.
- :func:`write_setup`: the chaos flow, routing.yaml and a deployment file in a folder.

Shared by ``tests/chaos/`` (CI sizes) and ``bench/chaos.py`` (full sizes).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import os
import re
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import redis.asyncio as aioredis

from ivr.deploy import load_deployment, render
from ivr.testing import AsteriskEmulator, SessionResult

__all__ = [
    "AGENT_SECRETS",
    "Dialplan",
    "EngineProcess",
    "Outcome",
    "RedisServer",
    "free_port",
    "short_root",
    "until",
    "write_setup",
]

REPO = Path(__file__).resolve().parents[2]

#: The chaos flow: a greeting from the prompt cache, the queue, and a goodbye.
FLOW = """
id: chaos
defaults: {language: en, timeout: 3, retries: 0}
nodes:
  hello: {type: play, say: "Thank you for calling.", next: wait}
  wait:
    type: queue
    queue: chaos
    next: bye
    on_failure: sorry
  bye: {type: hangup, say: Goodbye.}
  sorry: {type: hangup, say: "Sorry, nobody can take your call now."}
"""

DEPLOYMENT = """
engine: {{host: 127.0.0.1, agi_port: {port}, audiosocket_port: 4574}}
flows_dir: flows
audiosocket: false
ami: {{user: ivr, secret_env: AMI_SECRET}}
queues:
  - {{name: fallback, ring_timeout: 20}}
entries:
  - name: chaos
    flow: chaos
    numbers: ["200"]
    fallback: {{queue: fallback}}
"""

#: What rendering needs from the environment (only extensions.conf is used here).
AGENT_SECRETS = {"AMI_SECRET": "chaos-ami-secret"}


def die_with_parent() -> None:
    """In a child before exec: SIGKILL when the rig's process dies (Linux prctl), so a
    crashed or interrupted run leaves no redis-server or engine behind."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (children of children too), from /proc."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rpartition(")")[2].split()[1])
        parents.setdefault(ppid, []).append(int(entry.name))
    found: list[int] = []
    todo = [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state != "Z"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def short_root(prefix: str = "ivrc-") -> Iterator[Path]:
    """A short folder: Unix socket paths must stay under 100 bytes."""
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield folder
    finally:
        for path in folder.rglob("*"):  # a test may leave folders read-only
            with contextlib.suppress(OSError):
                if path.is_dir() and not path.is_symlink():
                    path.chmod(0o755)
        shutil.rmtree(folder, ignore_errors=True)


async def until(check: Callable[[], Any], what: str, timeout: float = 20.0) -> float:
    """Poll ``check`` (a function or a coroutine function) until truthy; the seconds it took."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    while True:
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return loop.time() - start
        if loop.time() - start > timeout:
            raise AssertionError(f"not in {timeout:g} s: {what}")
        await asyncio.sleep(0.05)


def agent_ids(count: int) -> list[str]:
    return [f"a{i:03d}" for i in range(1, count + 1)]


def endpoint_of(agent: str) -> str:
    return f"PJSIP/{1000 + int(agent[1:])}"


def write_setup(root: Path, *, agents: int, port: int, wrap_up: float = 0.0) -> None:
    """The flow, routing.yaml (``agents`` agents, logged in) and deploy.yaml under ``root``."""
    (root / "flows").mkdir(parents=True, exist_ok=True)
    (root / "flows" / "chaos.yaml").write_text(FLOW)
    lines = ["agents:"]
    for agent in agent_ids(agents):
        where = endpoint_of(agent)
        lines.append(f"  - {{id: {agent}, endpoint: {where}, skills: {{chaos: 5}}, log_in: true}}")
    lines += ["queues:", f"  chaos: {{skills: {{chaos: 1}}, wrap_up: {wrap_up}, ring_timeout: 10}}"]
    (root / "routing.yaml").write_text("\n".join(lines) + "\n")
    (root / "deploy.yaml").write_text(DEPLOYMENT.format(port=port))


# --------------------------------------------------------------------------- Redis


class RedisServer:
    """A real redis-server on ``folder/redis.sock``; ``persistence``: ``aof`` or ``none``."""

    def __init__(self, folder: Path, persistence: Literal["aof", "none"] = "none") -> None:
        self.folder = folder
        self.persistence = persistence
        self.socket = folder / "redis.sock"
        self.process: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def client(self) -> aioredis.Redis:
        return aioredis.Redis(unix_socket_path=str(self.socket), decode_responses=True)

    async def start(self) -> None:
        binary = shutil.which("redis-server")
        assert binary is not None, "redis-server is not installed (apt-get install redis-server)"
        self.folder.mkdir(parents=True, exist_ok=True)
        self.socket.unlink(missing_ok=True)
        persistence = (
            ["--appendonly", "yes", "--appendfsync", "always", "--save", ""]
            if self.persistence == "aof"
            else ["--appendonly", "no", "--save", ""]
        )
        self.process = await asyncio.create_subprocess_exec(
            binary,
            "--port",
            "0",
            "--unixsocket",
            str(self.socket),
            "--dir",
            str(self.folder),
            *persistence,
            "--logfile",
            "redis.log",
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            preexec_fn=die_with_parent,
        )
        client = self.client()
        try:
            await until(lambda: self._ping(client), "redis-server answers", 10)
        finally:
            await client.aclose()

    async def _ping(self, client: aioredis.Redis) -> bool:
        assert self.process is not None
        if self.process.returncode is not None:
            raise AssertionError(f"redis-server exited: {self.folder / 'redis.log'}")
        try:
            return bool(await client.ping())
        except (OSError, aioredis.ConnectionError):
            return False

    async def kill(self) -> None:
        """kill -9."""
        assert self.process is not None
        self.process.kill()
        await self.process.wait()

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.terminate()
            try:
                await asyncio.wait_for(self.process.wait(), 10)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()


# -------------------------------------------------------------------------- engine


class EngineProcess:
    """``ivr serve`` (the real engine) in ``root``; its state under ``var``."""

    def __init__(
        self,
        root: Path,
        *,
        port: int | None = None,
        var: Path | None = None,
        redis_url: str = "",
        keep_lines: int | None = None,
        argv_prefix: Sequence[str] = ("-m", "ivr.cli"),
        launcher: Sequence[str] = (),
        **environ: str,
    ) -> None:
        self.root = root
        self.var = var or root / "var"
        self.port = port or free_port()
        #: Every stderr line (or the last ``keep_lines``), and a count per event.
        self.lines: list[str] = []
        self.keep_lines = keep_lines
        self.counts: dict[str, int] = {}
        self.argv_prefix = tuple(argv_prefix)
        #: A command the engine's command line is handed to (``unshare ... sh -c``).
        self.launcher = tuple(launcher)
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("IVR_")}
        self.env.update(
            IVR_FLOWS_DIR=str(root / "flows"),
            IVR_PROMPTS_DIR=str(self.var / "prompts"),
            IVR_MODELS_DIR=str(self.var / "models"),
            IVR_SPOOL_DIR=str(self.var / "spool"),
            IVR_REDIS_DIR=str(self.var / "redis"),
            IVR_ANNOUNCEMENTS_FILE=str(self.var / "announcements.json"),
            IVR_ROUTING_FILE=str(root / "routing.yaml"),
            IVR_DEMO_API_PORT="0",
            IVR_API_PORT="0",
            IVR_AUDIOSOCKET_PORT="0",
            IVR_LOG_FORMAT="json",
            IVR_LOG_LEVEL="debug",
            IVR_DRAIN_TIMEOUT="5",
        )
        if redis_url:
            self.env["IVR_REDIS_URL"] = redis_url
        self.env.update(environ)
        self.process: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self._listeners: list[Callable[[dict[str, Any]], None]] = []
        self.runs = 0
        self.log_file: Path | None = None
        #: Helper processes of killed runs still alive (stopped by :meth:`stop`).
        self.orphans: list[int] = []

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    async def start(self, *, prompts: bool = True, timeout: float = 60) -> None:
        self.lines.clear()
        self.counts.clear()
        self.runs += 1
        # A log file, not a pipe: the engine's helpers (the TTS worker, an embedded
        # redis-server) outlive a kill -9 and would hold a pipe open for ever.
        self.log_file = self.root / f"engine-{self.port}-{self.runs}.log"
        with self.log_file.open("wb") as sink:
            self.process = await asyncio.create_subprocess_exec(
                *self.launcher,
                sys.executable,
                *self.argv_prefix,
                "serve",
                "--port",
                str(self.port),
                cwd=self.root,
                env=self.env,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=sink,
                preexec_fn=die_with_parent,
            )
        self._reader = asyncio.ensure_future(self._read(self.log_file))
        await until(lambda: self.logged("engine.ready"), "the engine is ready", timeout)
        if prompts:
            await until(
                lambda: self.logged("prompts.ready") or self.logged("prompts.build_failed"),
                "the fixed prompts are built",
                timeout,
            )

    def on_event(self, listener: Callable[[dict[str, Any]], None]) -> None:
        self._listeners.append(listener)

    async def _read(self, path: Path) -> None:
        """Follow the log file until the process is gone and the file is read."""
        assert self.process is not None
        process = self.process
        with path.open("rb") as source:
            pending = b""
            while True:
                chunk = source.read(1 << 16)
                if not chunk:
                    if process.returncode is not None:
                        break
                    await asyncio.sleep(0.02)
                    continue
                pending += chunk
                *complete, pending = pending.split(b"\n")
                for raw in complete:
                    self._line(raw.decode("utf-8", "replace") + "\n")

    def _line(self, line: str) -> None:
        self.lines.append(line)
        if self.keep_lines is not None and len(self.lines) > 2 * self.keep_lines:
            del self.lines[: -self.keep_lines]
        try:
            record = json.loads(line)
        except ValueError:
            return
        if isinstance(record, dict):
            name = str(record.get("event", ""))
            self.counts[name] = self.counts.get(name, 0) + 1
            for listener in self._listeners:
                listener(record)

    def logged(self, event: str) -> int:
        """How many times ``event`` was logged; fails at once if the engine stopped."""
        if self.process is not None and self.process.returncode is not None:
            raise AssertionError(
                f"the engine stopped ({self.process.returncode}):\n" + "".join(self.lines[-30:])
            )
        return self.counts.get(event, 0)

    def records(self, event: str) -> list[dict[str, Any]]:
        found = []
        for line in self.lines:
            if f'"{event}"' not in line:
                continue
            with contextlib.suppress(ValueError):
                record = json.loads(line)
                if isinstance(record, dict) and record.get("event") == event:
                    found.append(record)
        return found

    async def kill(self) -> list[int]:
        """kill -9: no drain, no cleanup; its sockets close with the process. Returns the
        engine's helper processes that outlived it (they are stopped with the rig)."""
        assert self.process is not None
        helpers = descendants(self.process.pid)
        self.process.send_signal(signal.SIGKILL)
        await self.process.wait()
        if self._reader is not None:
            await asyncio.wait({self._reader}, timeout=5)
        await asyncio.sleep(0.2)
        left = [pid for pid in helpers if alive(pid)]
        self.orphans += left
        return left

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.process.wait(), 30)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
        if self._reader is not None:
            await asyncio.wait({self._reader}, timeout=5)
        for pid in self.orphans:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        self.orphans.clear()

    # ----------------------------------------------------------- /proc figures

    def fds(self) -> int:
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.pid}/stat").read_text().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.asynccontextmanager
async def running(*processes: EngineProcess | RedisServer) -> AsyncIterator[None]:
    """Stops every process at the end, whatever happened (already dead ones too)."""
    try:
        yield
    finally:
        for process in reversed(processes):
            with contextlib.suppress(Exception):
                await process.stop()


# ------------------------------------------------------------------------ dialplan


@dataclass(slots=True)
class Outcome:
    """How one call left the entry context."""

    #: ``done`` (IVR_DONE=1: the engine finished it), ``hangup`` (AGI returned -1),
    #: ``fallback`` (the entry's Queue / VoiceMail ran).
    path: str
    agistatus: str
    result: SessionResult
    #: Loop time when the AGI application returned.
    agi_ended: float
    fallback_app: str = ""
    steps: list[str] = field(default_factory=list)


_STEP = re.compile(r"^(?:exten => s,1|\s*same => n)(?:\((\w+)\))?,(\w+)\((.*)\)$")
_GOTOIF = re.compile(r'^\$\["\$\{(\w+)\}" = "([^"]*)"\]\?(\w+)$')
_AGI = re.compile(r"^agi://([^:/]+):(\d+)/(.+)$")


class Dialplan:
    """The ``[ivr-<entry>]`` context of the rendered extensions.conf, run call by call."""

    def __init__(self, deploy_file: Path, entry: str = "chaos") -> None:
        deployment = load_deployment(deploy_file)
        text = render(deployment, environ=AGENT_SECRETS)["extensions.conf"]
        section = text.split(f"[ivr-{entry}]\n", 1)[1].split("\n[", 1)[0]
        self.steps: list[tuple[str, str, str]] = []
        for line in section.splitlines():
            found = _STEP.match(line)
            if found:
                self.steps.append((found.group(1) or "", found.group(2), found.group(3)))
        apps = [app for _, app, _ in self.steps]
        assert "AGI" in apps and "GotoIf" in apps, f"unexpected entry context:\n{section}"

    async def call(
        self,
        emulator: AsteriskEmulator,
        *,
        engine: tuple[str, int] | None = None,
        **call: Any,
    ) -> Outcome:
        """Run the context once; ``engine`` overrides the AGI URI's host and port (as
        ``hagi://`` with DNS SRV spreads calls over several engines)."""
        variables: dict[str, str] = {}
        done: list[str] = []
        result = SessionResult()
        agi_ended = 0.0
        index = 0
        while index < len(self.steps):
            _, app, data = self.steps[index]
            index += 1
            done.append(app)
            if app == "Set":
                name, _, value = data.partition("=")
                variables[name] = value
            elif app == "AGI":
                found = _AGI.match(data)
                assert found, data
                host, port = engine or (found.group(1), int(found.group(2)))
                emulator.host, emulator.port = host, port
                result = await emulator.call(found.group(3), variables=variables, **call)
                agi_ended = asyncio.get_running_loop().time()
                variables.update(result.variables)
                variables["AGISTATUS"] = result.agistatus
                if result.agistatus == "HANGUP":  # AGI returned -1: only h runs
                    return Outcome("hangup", result.agistatus, result, agi_ended, steps=done)
            elif app == "GotoIf":
                test = _GOTOIF.match(data)
                assert test, data
                if variables.get(test.group(1), "") == test.group(2):
                    index = next(i for i, step in enumerate(self.steps) if step[0] == test.group(3))
            elif app in ("Queue", "VoiceMail"):
                return Outcome(
                    "fallback", result.agistatus, result, agi_ended, fallback_app=data, steps=done
                )
            elif app == "Hangup":
                return Outcome("done", result.agistatus, result, agi_ended, steps=done)
            elif app not in ("Answer", "Verbose", "NoOp"):
                raise AssertionError(f"the rendered dialplan uses {app}: teach the rig")
        return Outcome("done", result.agistatus, result, agi_ended, steps=done)


# ------------------------------------------------------------------------- routing


async def routing_state(url: str) -> dict[str, Any]:
    """Every agent's state and every ticket's stage, straight from Redis."""
    from routing.redis import RedisRouter

    router = RedisRouter.connect(url, connections=4)
    try:
        return await router.snapshot()
    finally:
        await router.close()


def busy_agents(snapshot: Mapping[str, Any]) -> dict[str, str]:
    """Agents held by a call: reserved or on a call."""
    return {
        agent: row["state"]
        for agent, row in snapshot["agents"].items()
        if row["state"] in ("reserved", "on_call")
    }


def live_tickets(snapshot: Mapping[str, Any]) -> dict[str, str]:
    return {
        call: row["stage"]
        for call, row in snapshot["tickets"].items()
        if row["stage"] in ("waiting", "reserved", "connected")
    }


def now() -> float:
    return time.monotonic()
