"""Nothing a caller types or says outlives the call: the real engine (``ivr serve``, a
process with its own redis-server under ``var/``) takes calls from the Asterisk
emulator over TCP that read PINs and balances back (by TTS and by SAY DIGITS / SAY
NUMBER) and that answer a sensitive speech node and a sensitive FAQ in Korean
(espeak-ng's voice, heard by Vosk); then every file under ``var/`` (names and
contents), the engine's debug log and every key in its Redis (the event stream) are
searched for the values and for the prompt names the old cache would have made."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import sys
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import psutil  # type: ignore[import-untyped]
import pytest
import redis.asyncio as aioredis

from ivr.emulator.agi import Exchange
from ivr.flows.nodes import _CONFIRM
from ivr.testing import AsteriskEmulator, Hangup, Keys, SessionResult, say
from speech.tts import Synthesizer

pytestmark = pytest.mark.slow

PINS = ("73915286", "50284619")
#: Account (typed by the caller) -> balance (from the lookup service).
BALANCES = {"4417": "58213947", "4418": "61730958"}
#: What the Korean caller says to the sensitive nodes, and the answer to the question.
TOPIC, QUESTION = "해지", "반품 안내"
FAQ_ANSWER = "반품은 구매 후 30일 안에 가능합니다."

READBACK = """
id: readback
defaults: {{language: en, timeout: 3, retries: 0}}
sensitive: [balance]
nodes:
  account:
    type: gather
    prompt: Your account number, then pound.
    variable: account
    min_length: 4
    max_length: 10
    next: lookup
    on_failure: bye
  lookup:
    type: http
    url: http://127.0.0.1:{port}/accounts/${{account}}
    timeout: 3
    map: {{balance: balance}}
    next: pin
    on_error: bye
  pin:
    type: gather
    prompt: Your eight digit PIN.
    variable: pin
    min_length: 8
    max_length: 8
    sensitive: true
    next: pin_text
    on_failure: bye
  pin_text: {{type: play, say: "You entered ${{pin}}.", next: pin_digits}}
  pin_digits: {{type: say, value: "${{pin}}", as: digits, next: balance_text}}
  balance_text: {{type: play, say: "Your balance is ${{balance}} dollars.", next: balance_number}}
  balance_number: {{type: say, value: "${{balance}}", as: number, next: bye}}
  bye: {{type: hangup, say: Goodbye.}}
"""

#: Only what today's flows already allow: a sensitive PIN, read back by TTS and digits.
PIN_ONLY = """
id: pinonly
defaults: {language: en, timeout: 3, retries: 0}
nodes:
  pin:
    type: gather
    prompt: Your eight digit PIN.
    variable: pin
    min_length: 8
    max_length: 8
    sensitive: true
    next: pin_text
    on_failure: bye
  pin_text: {type: play, say: "You entered ${pin}.", next: pin_digits}
  pin_digits: {type: say, value: "${pin}", as: digits, next: bye}
  bye: {type: hangup, say: Goodbye.}
"""

SPOKEN = """
id: spoken
defaults: {language: ko, timeout: 3, retries: 1}
nodes:
  what:
    type: speech
    prompt: 무엇을 도와드릴까요?
    variable: topic
    grammar: [반품, 해지, 번호]
    confirm: true
    sensitive: true
    next: noted
    on_failure: failed
  noted: {type: play, say: "${topic} 접수했습니다.", next: ask}
  ask:
    type: faq
    sensitive: true
    prompt: 궁금하신 점을 말씀하세요.
    entries:
      - {question: 반품 안내, answer: 반품은 구매 후 30일 안에 가능합니다.}
      - {question: 예약 번호, answer: 예약 번호는 문자로 보내 드렸습니다.}
    handoff: failed
    next: bye
  failed: {type: hangup, say: 상담원에게 연결합니다.}
  bye: {type: hangup, say: 감사합니다.}
"""

#: Waits after a PIN is read back: time to find the per-call file, and to kill the engine.
HOLD = """
id: hold
defaults: {language: en, timeout: 3, retries: 0}
nodes:
  pin:
    type: gather
    prompt: Your eight digit PIN.
    variable: pin
    min_length: 8
    max_length: 8
    sensitive: true
    next: pin_text
    on_failure: bye
  pin_text: {type: play, say: "You entered ${pin}.", next: wait}
  wait:
    type: gather
    prompt: Anything else?
    variable: more
    timeout: 30
    next: bye
    on_failure: bye
  bye: {type: hangup, say: Goodbye.}
"""

#: A private prompt as the emulator sees it: an absolute path under the per-call folder.
PRIVATE_PLAY = r'STREAM FILE \S*/per-call/\S+ ""'


@pytest.fixture
def root() -> Iterator[Path]:
    """A short folder: the embedded Redis's Unix socket path must stay under 100 bytes."""
    folder = Path(tempfile.mkdtemp(prefix="ivrp-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def until(check: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, f"not in time: {what}"
        await asyncio.sleep(0.05)


class EngineProcess:
    """``ivr serve`` on ``var``, JSON logs at debug level kept line by line."""

    def __init__(self, root: Path, flows: Path, **environ: str) -> None:
        self.root = root
        self.var = root / "var"
        self.port = free_port()
        self.lines: list[str] = []
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("IVR_")}
        self.env.update(
            IVR_FLOWS_DIR=str(flows),
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
        )
        self.env.update(environ)
        self.process: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None

    async def __aenter__(self) -> EngineProcess:
        try:
            await self.start()
        except BaseException:
            await self.stop()
            raise
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def start(self) -> None:
        (self.var / "spool").mkdir(parents=True, exist_ok=True)
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "ivr.cli",
            "serve",
            "--port",
            str(self.port),
            cwd=self.root,
            env=self.env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            limit=2**20,
        )
        self._reader = asyncio.ensure_future(self._read())
        await until(lambda: self.logged("engine.ready"), "the engine is ready", timeout=90)
        await until(lambda: self.logged("prompts.ready"), "the fixed prompts are built", 90)

    async def _read(self) -> None:
        assert self.process is not None and self.process.stderr is not None
        async for line in self.process.stderr:
            self.lines.append(line.decode("utf-8", "replace"))

    def logged(self, event: str) -> bool:
        if self.process is not None and self.process.returncode is not None:
            raise AssertionError("the engine stopped:\n" + "".join(self.lines[-30:]))
        return any(f'"{event}"' in line for line in self.lines)

    async def stop(self, sig: int = signal.SIGTERM) -> None:
        """End the engine (once; again is a no-op)."""
        if self.process is None or self._reader is None or self._reader.done():
            return
        if self.process.returncode is None:
            # A kill -9 leaves the engine's own children (its TTS worker): ours to end.
            children = psutil.Process(self.process.pid).children(recursive=True)
            self.process.send_signal(sig)
        else:
            children = []
        if sig == signal.SIGKILL:  # they hold stderr open: the engine's end waits for it
            for child in children:
                with contextlib.suppress(psutil.Error):
                    child.kill()
        await asyncio.wait_for(self.process.wait(), 60)
        await asyncio.wait_for(self._reader, 10)

    @property
    def log(self) -> str:
        return "".join(self.lines)


@contextlib.asynccontextmanager
async def accounts() -> AsyncIterator[int]:
    """The lookup service: ``GET /accounts/<number>`` -> ``{"balance": "..."}``."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        found = re.match(rb"GET /accounts/(\d+) ", head)
        balance = BALANCES.get(found.group(1).decode()) if found else None
        body = json.dumps({"balance": balance} if balance else {"error": "none"}).encode()
        status = b"200 OK" if balance else b"404 Not Found"
        writer.write(
            b"HTTP/1.1 " + status + b"\r\nContent-Type: application/json\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
        )
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


def old_cache_names(prompts: Path) -> set[str]:
    """The file names today's cache gave the prompts these calls read back: the text's
    sha256, which gives the value back in a few thousand tries."""
    synthesizer = Synthesizer(prompts)
    said = [(f"You entered {pin}.", "en") for pin in PINS]
    said += [(f"Your balance is {b} dollars.", "en") for b in BALANCES.values()]
    said += [(f"{TOPIC} 접수했습니다.", "ko"), (_CONFIRM["ko"][0].format(value=TOPIC), "ko")]
    return {synthesizer.path_for(text, language).name for text, language in said}


def secrets_in(text: str, names: set[str]) -> list[str]:
    """Every value (or old cache name) found in ``text``."""
    values = [*PINS, *BALANCES.values(), TOPIC, QUESTION.split(maxsplit=1)[0]]
    stems = [name.removesuffix(".wav") for name in names]
    return [value for value in values + stems if value in text]


def per_call_files(var: Path) -> list[Path]:
    """Prompt files under the per-call folder (a lock file per running engine aside)."""
    folder = var / "prompts" / "per-call"
    return [p for p in folder.rglob("*") if p.is_file() and not p.name.endswith(".lock")]


def scan_files(var: Path, names: set[str]) -> list[str]:
    found = []
    for path in var.rglob("*"):
        relative = str(path.relative_to(var))
        found += [f"name {relative}: {s}" for s in secrets_in(relative, names)]
        if path.is_file() and path.suffix not in (".sock",):
            content = path.read_bytes().decode("utf-8", "replace")
            found += [f"content {relative}: {s}" for s in secrets_in(content, names)]
    return found


def _flat(value: object) -> list[bytes]:
    if isinstance(value, bytes):
        return [value]
    if isinstance(value, dict):
        return [b for k, v in value.items() for b in _flat(k) + _flat(v)]
    if isinstance(value, list | tuple | set):
        return [b for item in value for b in _flat(item)]
    return [str(value).encode()]


async def redis_dump(socket_path: Path) -> str:
    """Every key and value in the engine's Redis (its event stream included)."""
    client = aioredis.Redis(unix_socket_path=str(socket_path))
    parts: list[bytes] = []
    try:
        async for key in client.scan_iter(count=1000):
            typed = await client.type(key)
            kind = typed.decode() if isinstance(typed, bytes) else typed
            value: object = kind
            if kind == "string":
                value = await client.get(key)
            elif kind == "hash":
                value = await client.hgetall(key)
            elif kind == "list":
                value = await client.lrange(key, 0, -1)
            elif kind == "set":
                value = await client.smembers(key)
            elif kind == "zset":
                value = await client.zrange(key, 0, -1)
            elif kind == "stream":
                value = await client.xrange(key)
            parts += [key, *_flat(value)]
    finally:
        await client.aclose()
    return b"\n".join(parts).decode("utf-8", "replace")


class PrivatePlays:
    """Per-call prompts the emulated Asterisk was told to play, and whether each file
    was there to be played."""

    def __init__(self) -> None:
        self.played: list[tuple[str, bool]] = []

    def __call__(self, exchange: Exchange) -> None:
        line = exchange.sent.decode("utf-8", "replace").rstrip("\n")
        if re.fullmatch(PRIVATE_PLAY, line):
            name = line.split()[2]
            self.played.append((name, Path(name + ".wav").is_file()))


async def test_values_read_back_and_heard_leave_nothing_behind(root: Path) -> None:
    """PINs and balances read back by TTS, SAY DIGITS and SAY NUMBER, and answers to a
    sensitive speech node and FAQ: no file under var/, no log line and no Redis key
    holds them or a name made from them, and no per-call file is left."""
    flows = root / "flows"
    flows.mkdir()
    audiosocket = free_port()
    async with accounts() as port:
        (flows / "readback.yaml").write_text(READBACK.format(port=port))
        (flows / "pinonly.yaml").write_text(PIN_ONLY)
        (flows / "spoken.yaml").write_text(SPOKEN)
        engine = EngineProcess(root, flows, IVR_AUDIOSOCKET_PORT=str(audiosocket))
        plays = PrivatePlays()
        results: list[SessionResult] = []
        async with engine:
            emulator = AsteriskEmulator(
                port=engine.port, sound_dirs=[engine.var / "prompts"], on_exchange=plays
            )
            for pin in PINS:
                results.append(await emulator.call("pinonly", actions=[Keys(pin)]))
            for pin, account in zip(PINS, BALANCES, strict=True):
                results.append(
                    await emulator.call("readback", actions=[Keys(f"{account}#"), Keys(pin)])
                )
            # A caller who hangs up while their PIN is read back.
            results.append(
                await emulator.call(
                    "readback",
                    actions=[Keys("4417#"), Keys(PINS[0]), Hangup(on=PRIVATE_PLAY, after=0.2)],
                )
            )
            results.append(
                await emulator.call(
                    "spoken",
                    actions=[
                        say(TOPIC, on="EXEC AudioSocket", after=0.4),
                        say("좋아요", on="EXEC AudioSocket", nth=2, after=0.4),
                        say(QUESTION, on="EXEC AudioSocket", nth=3, after=0.4),
                    ],
                    language="ko",
                )
            )
            await until(lambda: not per_call_files(engine.var), "per-call prompts removed")
            events = await redis_dump(engine.var / "redis" / "redis.sock")

    names = old_cache_names(engine.var / "prompts")
    found = scan_files(engine.var, names)
    assert found == [], found
    assert not per_call_files(engine.var)
    assert list((engine.var / "prompts").glob("per-call/*")) == [], "the engine's folder stays"
    leaked = secrets_in(engine.log, names)
    lines = [line for line in engine.lines if secrets_in(line, names)]
    assert leaked == [], lines[:5]
    assert secrets_in(events, names) == [], events[:2000]
    # The log shows the calls happened, masked.
    assert '"value": "***"' in engine.log
    assert '"flow.recognised"' in engine.log and '"flow.faq_answer"' in engine.log
    # ... and the calls did go through: the values were said.
    for result in results:
        assert result.connected and result.agistatus != "FAILURE", result.commands
    commands = [c for r in results for c in r.commands]
    # The values were really said: by Asterisk itself, and from per-call files.
    assert f'SAY DIGITS {PINS[0]} ""' in commands
    assert f'SAY NUMBER {BALANCES["4417"]} ""' in commands
    # pinonly x2, readback x2 (PIN and balance), the hang-up, the topic read back
    # (the confirmation is streamed over AudioSocket from memory, no file at all).
    assert len(plays.played) == 2 + 4 + 1 + 1, plays.played
    assert all(there for _, there in plays.played), plays.played
    assert not any(c.startswith("SAY DIGITS") for c in results[4].commands), "hung up late"
    # The speech call went through both sensitive nodes: the topic confirmed and read
    # back (a per-call file), the question answered (the flow's own text, cached).
    spoken = results[5]
    assert sum(c.startswith("EXEC AudioSocket") for c in spoken.commands) == 3
    assert any(re.fullmatch(PRIVATE_PLAY, c) for c in spoken.commands)
    answer = Synthesizer(engine.var / "prompts").path_for(FAQ_ANSWER, "ko").with_suffix("")
    assert f'STREAM FILE {answer} ""' in spoken.commands


async def test_a_dead_engines_per_call_prompts_go_when_an_engine_starts(
    root: Path, redis_url: str
) -> None:
    """kill -9 while a PIN read back is on disk: the next engine removes it at start."""
    flows = root / "flows"
    flows.mkdir()
    (flows / "hold.yaml").write_text(HOLD)
    async with EngineProcess(root, flows, IVR_REDIS_URL=redis_url) as engine:
        emulator = AsteriskEmulator(port=engine.port, speed=1.0)
        call = asyncio.ensure_future(emulator.call("hold", actions=[Keys(PINS[0], after=0.1)]))
        try:
            await until(lambda: bool(per_call_files(engine.var)), "a per-call prompt on disk")
            left = per_call_files(engine.var)
            await engine.stop(signal.SIGKILL)
            assert all(path.exists() for path in left)
            await asyncio.wait_for(call, 10)  # Asterisk sees the socket close
        finally:
            call.cancel()
    async with EngineProcess(root, flows, IVR_REDIS_URL=redis_url) as again:
        assert not any(path.exists() for path in left)
        assert per_call_files(again.var) == []
        assert '"prompts.per_call_leftovers_removed"' in again.log
    assert list((again.var / "prompts").glob("per-call/*")) == []
