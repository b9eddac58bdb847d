"""The http node on the engine's pooled httpx client, against a real local HTTP server,
with calls from the Asterisk emulator over TCP: one deadline for the whole request (a
server that trickles its reply cannot hold the call), replies over the size limit
refused as they stream, a hang-up that ends the request at once, and no thread left
behind by any of them."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import structlog

from ivr.agi.server import FastAgiServer
from ivr.flows.interpreter import Engine, Trace
from ivr.flows.ports import PooledHttp, SpeechPrompts
from ivr.testing import AsteriskEmulator, Hangup
from tests.integration.helpers.engine_rig import flows_in, serving

FLOW = """
id: lookup
defaults: {{language: en, timeout: 3, retries: 0}}
nodes:
  fetch:
    type: http
    url: "http://127.0.0.1:{port}/${{path}}"
    timeout: {timeout}
    map: {{name: name}}
    next: found
    on_error: failed
  found: {{type: hangup}}
  failed: {{type: hangup}}
"""

LIMIT = 100_000


@dataclass
class Service:
    """A local HTTP server whose paths misbehave in one way each."""

    port: int = 0
    #: Paths asked for, and the paths whose connection the client closed first.
    asked: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    closed: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        path = head.split(b" ", 2)[1].decode().lstrip("/")
        self.asked.append(path)
        try:
            await self._answer(path, reader, writer)
        except (ConnectionError, OSError):
            self.dropped.append(path)
            self.closed.set()
        finally:
            writer.close()

    async def _answer(
        self, path: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        if path == "ok":
            body = json.dumps({"name": "Kim"}).encode()
            writer.write(_head(200, len(body)) + body)
        elif path == "trickle":
            # Headers at once, then a byte every 100 ms: each read is quick, the whole
            # reply never ends (urllib's per-socket timeout never fired on this).
            writer.write(_head(200, 10_000))
            while True:
                writer.write(b" ")
                await writer.drain()
                await asyncio.sleep(0.1)
        elif path == "silent":
            await reader.read()  # until the client closes the connection
            raise ConnectionResetError
        elif path == "big":
            writer.write(_head(200, 5 * LIMIT) + b"{" * 1000)
        elif path == "endless":
            # No Content-Length: chunks until the client has had enough.
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n"
            )
            chunk = b"[" * 16_384
            while True:
                writer.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                await writer.drain()
        elif path == "bomb":
            body = gzip.compress(b" " * (50 * LIMIT))  # 5 MB of spaces in a few KB
            writer.write(_head(200, len(body), b"Content-Encoding: gzip\r\n") + body)
        await writer.drain()


def _head(status: int, length: int, extra: bytes = b"") -> bytes:
    return (
        f"HTTP/1.1 {status} OK\r\nContent-Type: application/json\r\n"
        f"Content-Length: {length}\r\n".encode()
        + extra
        + b"\r\n"
    )


@dataclass
class Rig:
    service: Service
    emulator: AsteriskEmulator
    server: FastAgiServer
    traces: list[Trace]
    http: PooledHttp

    async def call(self, path: str) -> tuple[Trace, float]:
        began = time.monotonic()
        await self.emulator.call(f"lookup?path={path}")
        await until(lambda: bool(self.traces), "the call's trace")
        return self.traces.pop(), time.monotonic() - began


async def until(check: object, what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"not in time: {what}"
        await asyncio.sleep(0.01)


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    service = Service()
    listening = await asyncio.start_server(service.handle, "127.0.0.1", 0)
    service.port = listening.sockets[0].getsockname()[1]
    registry = flows_in(tmp_path / "flows", {"lookup": FLOW.format(port=service.port, timeout=1)})
    http = PooledHttp(limit=LIMIT)
    engine = Engine(flows=registry.get, prompts=SpeechPrompts(tmp_path / "prompts"), http=http)
    server, traces = await serving(registry, engine)
    emulator = AsteriskEmulator(port=server.port, speed=1.0)
    try:
        yield Rig(service, emulator, server, traces, http)
    finally:
        await server.drain(2)
        await http.aclose()
        listening.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(listening.wait_closed(), 2)


def failures(trace: Trace) -> list[str]:
    return [
        str(e.get("error", e.get("status"))) for e in trace.events if e["event"] == "http_failed"
    ]


class TestHttpNode:
    async def test_a_reply_fills_the_variables(self, rig: Rig) -> None:
        """The service answers: its JSON fills the mapped variables and the call goes on."""
        trace, _ = await rig.call("ok")
        assert trace.nodes == ["fetch", "found"]
        assert trace.variables["name"] == "Kim"

    async def test_a_trickling_reply_is_cut_at_the_deadline(self, rig: Rig) -> None:
        """A server that sends a byte every 100 ms never finishes: the node fails when its
        1 s deadline passes (not per read), the connection is closed, and no thread
        is left running."""
        threads = set(threading.enumerate())
        trace, took = await rig.call("trickle")
        assert trace.nodes == ["fetch", "failed"]
        assert took < 1.8, f"the node took {took:.2f} s on a 1 s deadline"
        assert failures(trace) == ["no complete reply within 1 s"]
        await asyncio.wait_for(rig.service.closed.wait(), 2)
        assert rig.service.dropped == ["trickle"]
        assert set(threading.enumerate()) <= threads

    async def test_a_server_that_never_answers_is_cut_at_the_deadline(self, rig: Rig) -> None:
        """No reply at all: the same deadline, the same failure branch."""
        threads = set(threading.enumerate())
        trace, took = await rig.call("silent")
        assert trace.nodes == ["fetch", "failed"]
        assert 0.9 < took < 1.8
        assert set(threading.enumerate()) <= threads

    @pytest.mark.parametrize("path", ["big", "endless", "bomb"])
    async def test_a_reply_over_the_limit_fails_the_node(self, rig: Rig, path: str) -> None:
        """Too large by its Content-Length, while it streams with no length, or once
        unpacked (gzip): refused before it is read whole; the error names the flow and
        the node."""
        with structlog.testing.capture_logs() as logs:
            trace, took = await rig.call(path)
        assert trace.nodes == ["fetch", "failed"]
        assert took < 1.0
        (error,) = failures(trace)
        assert f"{LIMIT:,} bytes allowed" in error
        (line,) = [entry for entry in logs if entry["event"] == "flow.http_reply_too_large"]
        assert (line["log_level"], line["flow"], line["node"]) == ("error", "lookup", "fetch")

    async def test_a_hang_up_ends_the_request_at_once(self, tmp_path: Path, rig: Rig) -> None:
        """The caller hangs up while the service thinks (10 s timeout): the request is
        cancelled then, its connection closed, and the call ends as a hang-up."""
        registry = flows_in(
            tmp_path / "slow", {"lookup": FLOW.format(port=rig.service.port, timeout=10)}
        )
        http = PooledHttp(limit=LIMIT)
        engine = Engine(flows=registry.get, prompts=SpeechPrompts(tmp_path / "prompts"), http=http)
        server, traces = await serving(registry, engine)
        emulator = AsteriskEmulator(port=server.port, speed=1.0)
        threads = set(threading.enumerate())
        try:
            began = time.monotonic()
            await emulator.call("lookup?path=silent", actions=[Hangup(at=0.5)])
            await until(lambda: bool(traces), "the call's trace")
            took = time.monotonic() - began
            await asyncio.wait_for(rig.service.closed.wait(), 2)
        finally:
            await server.drain(2)
            await http.aclose()
        assert traces[0].ended == "caller_hangup"
        assert traces[0].nodes == ["fetch"]
        assert took < 1.5, f"the call lasted {took:.2f} s after a hang-up at 0.5 s"
        assert rig.service.dropped == ["silent"]
        assert set(threading.enumerate()) <= threads
