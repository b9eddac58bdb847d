"""Named HTTP services on real calls: the demo billing flow reaches the demo account
service wherever ``IVR_DEMO_API_PORT`` puts it (``ivr serve``, a process, called by the
Asterisk emulator over TCP), ``ivr call`` and the flow tests resolve services from the
same settings, a service unknown at run time sends the node to ``on_error`` with a
logged reason, and ``ivr call``, ``ivr test`` and the engine leave no pooled connection
or per-call prompt folder behind."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import shutil
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import structlog
from structlog.testing import capture_logs

from ivr.cli import main
from ivr.config import load_settings, service_urls
from ivr.flows.interpreter import Engine
from ivr.flows.loader import load_flows
from ivr.flows.model import Flow
from ivr.flows.ports import PER_CALL, PooledHttp, SpeechPrompts
from ivr.flows.testing import run_file
from ivr.testing import Action, AsteriskEmulator, Hangup, Keys
from tests.integration.helpers.engine_rig import flows_in, serving
from tests.integration.test_privacy import EngineProcess, free_port, until

ROOT = Path(__file__).resolve().parents[2]
DIALPLANS = ROOT / "dialplans"


@pytest.fixture
def root() -> Iterator[Path]:
    """A short folder: the embedded Redis's Unix socket path must stay under 100 bytes."""
    folder = Path(tempfile.mkdtemp(prefix="ivrs-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def engine_folders(prompts: Path) -> list[str]:
    """What is under the per-call prompts folder: engines' folders and their locks."""
    folder = prompts / PER_CALL
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


@dataclass
class Accounts:
    """A small account service in a thread (``ivr call`` runs its own event loop)."""

    port: int = 0
    paths: list[str] = field(default_factory=list)
    authorization: list[str | None] = field(default_factory=list)


@contextlib.contextmanager
def account_service() -> Iterator[Accounts]:
    accounts = Accounts()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            accounts.paths.append(self.path)
            accounts.authorization.append(self.headers.get("Authorization"))
            body = json.dumps({"name": "Alice", "balance": "42.50"}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass  # quiet: the test reads the paths

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    accounts.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield accounts
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.mark.slow
async def test_serve_reaches_the_demo_service_on_its_port(root: Path) -> None:
    """IVR_DEMO_API_PORT moves the demo account service, and the billing flow follows it:
    the lookup answers and the call goes on to the PIN and the balance."""
    flows = root / "flows"
    flows.mkdir()
    shutil.copy(DIALPLANS / "billing.yaml", flows / "billing.yaml")
    port = free_port()  # 18089 in the issue; a free one here, so tests never collide
    engine = EngineProcess(
        root,
        flows,
        IVR_DEMO_API_PORT=str(port),
        IVR_SPEECH_LANGUAGES="en",  # keys only: no recognition model to load
    )
    async with engine:
        emulator = AsteriskEmulator(port=engine.port, sound_dirs=[engine.var / "prompts"])
        # A caller who reaches the queue instead (the lookup failed) hangs up there.
        actions: list[Action] = [
            Keys("12345#"),
            Keys("0000"),
            Hangup(on="SET MUSIC on", after=0.1),
        ]
        call = await asyncio.wait_for(emulator.call("billing", actions=actions), 60)
        looked_up = ("flow.http_ok", "flow.http_failed")
        await until(lambda: any(map(engine.logged, looked_up)), "the lookup's log line")
    assert call.agistatus != "FAILURE", call.commands
    assert '"flow.http_ok"' in engine.log and '"flow.http_failed"' not in engine.log, [
        line for line in engine.lines if "flow.http" in line
    ]
    # The balance was said, from a file made for this call only; none is left.
    assert any(f"/{PER_CALL}/" in c for c in call.commands), call.commands
    assert engine_folders(engine.var / "prompts") == []


@pytest.fixture(scope="module")
def billing_call(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Accounts, Path]:
    """``ivr call billing --press 12345# 0000 --fast`` with IVR_SERVICES naming ``demo``:
    its output, the account service it asked, and its prompts folder."""
    folder = tmp_path_factory.mktemp("call")
    out = io.StringIO()
    with account_service() as accounts, pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        patch.setenv("IVR_SERVICES", f"demo=http://127.0.0.1:{accounts.port}")
        patch.setenv("IVR_DEMO_API_PORT", "0")
        patch.delenv("IVR_DEMO_API_TOKEN", raising=False)
        patch.setenv("IVR_PROMPTS_DIR", str(folder / "prompts"))
        patch.setenv("IVR_ANNOUNCEMENTS_FILE", str(folder / "announcements.json"))
        argv = ["call", "billing", "--flows", str(DIALPLANS), "--press", "12345#", "0000"]
        logging = structlog.get_config()  # `ivr call` sets its own: theirs again after
        try:
            with contextlib.redirect_stdout(out):
                status = main([*argv, "--fast"])
        finally:
            structlog.configure(**logging)
    assert status == 0, out.getvalue()
    return out.getvalue(), accounts, folder / "prompts"


def test_call_reaches_the_service_its_settings_name(
    billing_call: tuple[str, Accounts, Path],
) -> None:
    """`ivr call` resolves ``${service:demo}`` from IVR_SERVICES, as `ivr serve` does
    (with no IVR_DEMO_API_TOKEN, "Bearer ${env:IVR_DEMO_API_TOKEN}" is sent as "Bearer":
    whitespace around a header value is not part of it, and httpx refused to send it)."""
    out, accounts, _ = billing_call
    assert accounts.paths == ["/accounts/12345"]
    assert accounts.authorization == ["Bearer"]
    assert "· http_ok" in out and "visited: account > lookup > pin > balance > done" in out
    assert "Alice" not in out and "42.50" not in out  # billing marks both sensitive


def test_call_leaves_no_per_call_folder(billing_call: tuple[str, Accounts, Path]) -> None:
    """The balance was rendered for the call only; after `ivr call` neither the call's
    folder nor the engine's (nor its lock) is left under per-call/."""
    _, _, prompts = billing_call
    assert (prompts / PER_CALL).is_dir()  # it was used
    assert engine_folders(prompts) == []


def test_flow_tests_follow_the_demo_port(tmp_path: Path) -> None:
    """With IVR_DEMO_API_PORT=18089 the billing flow and its tests' scripted answers
    both name http://127.0.0.1:18089, so every test passes; no per-call folder is left."""
    services = service_urls(load_settings(environ={"IVR_DEMO_API_PORT": "18089"}))
    assert services == {"demo": "http://127.0.0.1:18089"}
    flows, problems = load_flows([DIALPLANS], services=services)
    assert problems == []
    path = DIALPLANS / "tests" / "billing.yaml"
    outcomes = asyncio.run(run_file(path, flows, tmp_path, services=services))
    assert [o.failures for o in outcomes if not o.passed] == []
    assert outcomes[0].trace is not None and "balance" in outcomes[0].trace.nodes
    assert engine_folders(tmp_path) == []


LOOKUP = """
id: lookup
defaults: {language: en, timeout: 2, retries: 0}
nodes:
  fetch:
    type: http
    url: ${service:crm}/accounts/1
    next: found
    on_error: failed
  found: {type: hangup}
  failed: {type: hangup}
"""


async def test_an_unknown_service_at_run_time_takes_on_error(tmp_path: Path) -> None:
    """A flow loaded without the engine's services that names one it lacks: the node
    takes on_error, the event and an error log line say which service and which exist."""
    registry = flows_in(tmp_path / "flows", {"lookup": LOOKUP})
    engine = Engine(
        flows=registry.get,
        prompts=SpeechPrompts(tmp_path / "prompts"),
        services={"demo": "http://127.0.0.1:9"},
    )
    server, traces = await serving(registry, engine)
    try:
        with capture_logs() as logs:
            await AsteriskEmulator(port=server.port).call("lookup")
            await until(lambda: bool(traces), "the call's trace")
    finally:
        await server.drain(2)
        await engine.aclose()
    assert traces[0].nodes == ["fetch", "failed"]
    failed = next(e for e in traces[0].events if e["event"] == "http_failed")
    assert "no service named 'crm'; services: demo" in failed["error"]
    logged = [e for e in logs if e["event"] == "flow.http_unknown_service"]
    assert logged and logged[0]["log_level"] == "error"
    assert logged[0]["service"] == "crm" and logged[0]["node"] == "fetch"


async def test_engine_aclose_releases_connections_and_folders(tmp_path: Path) -> None:
    """Engine.aclose closes the pooled client's kept-alive connection (the service sees
    it end) and removes the engine's per-call folder and lock."""
    ended = asyncio.Event()

    async def keep_alive(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
        await writer.drain()
        await reader.read()  # until the client closes the connection
        ended.set()
        writer.close()

    service = await asyncio.start_server(keep_alive, "127.0.0.1", 0)
    port = service.sockets[0].getsockname()[1]
    no_flows: dict[str, Flow] = {}
    engine = Engine(flows=no_flows.get, prompts=SpeechPrompts(tmp_path), http=PooledHttp())
    try:
        reply = await engine.http.request("GET", f"http://127.0.0.1:{port}/", {}, None, 2)
        assert reply.status == 200
        engine.prompts.call_folder().new_file().write_bytes(b"RIFF")
        assert len(engine_folders(tmp_path)) == 2  # the engine's folder and its lock
        await asyncio.sleep(0.2)
        assert not ended.is_set()  # kept alive in the pool
        await engine.aclose()
        await asyncio.wait_for(ended.wait(), 2)
        assert engine_folders(tmp_path) == []
    finally:
        service.close()
        await service.wait_closed()
