"""FastAGI and AudioSocket bound beyond loopback admit only the peers of IVR_AGI_ALLOW:
anyone else is closed at once over real TCP, logged (rate-limited), and a listener that
would be open to everyone does not start."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import yaml
from structlog.testing import capture_logs

from ivr.agi.channel import Channel
from ivr.agi.connection import AgiConnection
from ivr.agi.server import FastAgiServer, _PeerGate
from ivr.audiosocket.protocol import Kind, encode_frame
from ivr.audiosocket.server import AudioSocketServer
from ivr.config import load_settings
from ivr.errors import ConfigError
from ivr.peers import LOG_BURST, PeerFilter
from ivr.testing import AsteriskEmulator

ELSEWHERE = "192.0.2.0/24"  # TEST-NET-1: the test's own 127.0.0.1 is not in it


async def answer(channel: Channel) -> None:
    await channel.answer()


@pytest.fixture(autouse=True)
def no_allow_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("IVR_AGI_ALLOW", raising=False)


@pytest.fixture
async def guarded() -> AsyncIterator[FastAgiServer]:
    """A FastAGI server on every address that admits no one on this host."""
    server = FastAgiServer(default=answer, host="0.0.0.0", port=0, allow=ELSEWHERE)
    await server.start()
    try:
        yield server
    finally:
        await server.drain(1)


async def closed_at_once(port: int) -> bytes:
    """Connect, send an environment line, and read what comes back before the close."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(b"agi_network: yes\n")
        return await asyncio.wait_for(reader.read(), 2)
    except ConnectionResetError:
        return b""
    finally:
        writer.close()


class TestFastAgi:
    async def test_a_peer_outside_the_list_is_closed_before_a_byte(
        self, guarded: FastAgiServer
    ) -> None:
        """No 'failure' line, no call: the socket is closed, the refusal logged with the peer."""
        with capture_logs() as logs:
            assert await closed_at_once(guarded.port) == b""
            result = await AsteriskEmulator(port=guarded.port).call("main")
        assert result.exchanges == [] and result.commands == []
        assert guarded.stats.peers_refused == 2
        assert guarded.stats.accepted == 0 and guarded.stats.completed == 0
        refused = [e for e in logs if e["event"] == "agi.peer_refused"]
        assert len(refused) == 2
        assert refused[0]["listener"] == "FastAGI"
        assert refused[0]["peer"].startswith("127.0.0.1:")

    async def test_a_scan_cannot_flood_the_log(self, guarded: FastAgiServer) -> None:
        """Fifty refused connections in a burst: at most LOG_BURST lines, every one counted."""
        with capture_logs() as logs:
            await asyncio.gather(*(closed_at_once(guarded.port) for _ in range(50)))
        assert guarded.stats.peers_refused == 50
        assert len([e for e in logs if e["event"] == "agi.peer_refused"]) == LOG_BURST

    async def test_a_peer_in_the_list_gets_its_call(self) -> None:
        server = FastAgiServer(
            default=answer,
            host="0.0.0.0",
            port=0,
            allow=f"{ELSEWHERE}, 127.0.0.0/8",
        )
        await server.start()
        try:
            result = await AsteriskEmulator(port=server.port).call("main")
        finally:
            await server.drain(1)
        assert result.commands == ["ANSWER"]
        assert server.stats.peers_refused == 0 and server.stats.completed == 1

    async def test_a_transport_that_is_not_asyncio_s_own_is_admitted(self) -> None:
        """uvloop's TCPTransport is no asyncio.Transport subclass: the gate looks at the
        peer and hands the socket on all the same (it asserted the class before)."""

        class Foreign:  # what uvloop hands a protocol: the methods, not the class
            def __init__(self) -> None:
                self.protocol: object = None
                self.closed = False

            def get_extra_info(self, name: str, default: object = None) -> object:
                return ("127.0.0.1", 40000) if name == "peername" else default

            def set_protocol(self, protocol: object) -> None:
                self.protocol = protocol

            def is_closing(self) -> bool:
                return self.closed

            def abort(self) -> None:
                self.closed = True

            def write(self, data: bytes) -> None:
                pass

            def close(self) -> None:
                self.closed = True

        server = FastAgiServer(
            default=answer, host="0.0.0.0", port=0, allow=f"{ELSEWHERE}, 127.0.0.0/8"
        )
        await server.start()
        try:
            gate = server._connection()
            assert isinstance(gate, _PeerGate)
            foreign = Foreign()
            gate.connection_made(foreign)  # type: ignore[arg-type]
            assert isinstance(foreign.protocol, AgiConnection) and not foreign.closed
        finally:
            await server.drain(0)

    async def test_the_environment_variable_is_read_by_default(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("IVR_AGI_ALLOW", ELSEWHERE)
        server = FastAgiServer(default=answer, host="0.0.0.0", port=0)
        await server.start()
        try:
            assert await closed_at_once(server.port) == b""
        finally:
            await server.drain(1)
        assert server.stats.peers_refused == 1

    async def test_loopback_only_needs_no_list(self) -> None:
        """Bound to 127.0.0.1 only this host can connect: every peer is admitted."""
        server = FastAgiServer(default=answer, host="127.0.0.1", port=0)
        await server.start()
        try:
            result = await AsteriskEmulator(port=server.port).call("main")
        finally:
            await server.drain(1)
        assert result.commands == ["ANSWER"]

    def test_beyond_loopback_without_a_list_does_not_start(self) -> None:
        with pytest.raises(ConfigError, match=r"on 0\.0\.0\.0 .* set IVR_AGI_ALLOW"):
            FastAgiServer(default=answer, host="0.0.0.0")
        with pytest.raises(ConfigError, match=r"IVR_AGI_ALLOW: '10\.0\.0\.300' is not an address"):
            FastAgiServer(default=answer, host="0.0.0.0", allow="10.0.0.300")


class TestAudioSocket:
    async def test_a_peer_outside_the_list_cannot_join_a_session(self) -> None:
        """Even with the right UUID, a stranger's audio never reaches the session."""
        server = AudioSocketServer("0.0.0.0", 0, allow=ELSEWHERE)
        await server.start()
        try:
            call_id = uuid.uuid4()
            session = server.expect(call_id, timeout=2)
            with capture_logs() as logs:
                reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
                writer.write(encode_frame(Kind.UUID, call_id.bytes))
                try:
                    got = await asyncio.wait_for(reader.read(), 2)
                except ConnectionResetError:
                    got = b""
                writer.close()
            assert got == b""
            assert not session._connected.is_set()
            (line,) = [e for e in logs if e["event"] == "agi.peer_refused"]
            assert line["listener"] == "AudioSocket"
            assert server.peers.refused == 1
        finally:
            await server.close()

    async def test_a_peer_in_the_list_joins(self) -> None:
        server = AudioSocketServer("0.0.0.0", 0, allow="127.0.0.1/32")
        await server.start()
        try:
            call_id = uuid.uuid4()
            session = server.expect(call_id, timeout=2)
            _, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(encode_frame(Kind.UUID, call_id.bytes))
            await session.wait_connected(timeout=2)
            writer.write(encode_frame(Kind.HANGUP))
            writer.close()
        finally:
            await server.close()

    def test_beyond_loopback_without_a_list_does_not_start(self) -> None:
        with pytest.raises(ConfigError, match=r"AudioSocket listener on 0\.0\.0\.0"):
            AudioSocketServer("0.0.0.0", 0)


class TestPeerFilter:
    def test_addresses_networks_and_mapped_ipv6(self) -> None:
        peers = PeerFilter("FastAGI", "::", "172.30.60.0/24, 2001:db8::/32, 10.1.2.3")
        assert peers.admits(("172.30.60.20", 40000))
        assert peers.admits(("::ffff:172.30.60.20", 40000, 0, 0))  # a dual-stack socket
        assert peers.admits(("2001:db8::5", 40000, 0, 0))
        assert peers.admits(("10.1.2.3", 1))
        assert not peers.admits(("10.1.2.4", 1))
        assert not peers.admits(("172.30.61.1", 1))
        assert not peers.admits(None)  # no address: refused

    def test_host_names_count_as_beyond_loopback(self) -> None:
        with pytest.raises(ConfigError, match="IVR_AGI_ALLOW"):
            PeerFilter("FastAGI", "engine", "")
        assert PeerFilter("FastAGI", "localhost", "").open
        assert PeerFilter("FastAGI", "::1", "").open


class TestSettings:
    def test_ivr_serve_refuses_an_open_listener_before_any_port(self) -> None:
        """The error names the setting that opened it and the variable to set."""
        with pytest.raises(ConfigError) as info:
            load_settings(environ={"IVR_AGI_HOST": "0.0.0.0"})
        message = str(info.value)
        assert message.startswith("environment variable IVR_AGI_HOST: the FastAGI listener")
        assert "set IVR_AGI_ALLOW" in message
        with pytest.raises(ConfigError, match="IVR_AUDIOSOCKET_HOST: the AudioSocket"):
            load_settings(environ={"IVR_AUDIOSOCKET_HOST": "0.0.0.0"})
        # AudioSocket off: nothing listens there.
        load_settings(environ={"IVR_AUDIOSOCKET_HOST": "0.0.0.0", "IVR_AUDIOSOCKET_PORT": "0"})

    def test_a_bad_list_names_the_variable_and_what_is_allowed(self) -> None:
        with pytest.raises(
            ConfigError, match=r"IVR_AGI_ALLOW: 'asterisk' is not an address .*CIDRs"
        ):
            load_settings(environ={"IVR_AGI_ALLOW": "172.30.60.0/24,asterisk"})
        settings = load_settings(
            environ={"IVR_AGI_HOST": "0.0.0.0", "IVR_AGI_ALLOW": "172.30.60.0/24"}
        )
        assert settings.agi_host == "0.0.0.0"

    def test_compose_allows_the_asterisk_network(self) -> None:
        """docker/compose.yaml sets IVR_AGI_ALLOW to the network Asterisk is on."""
        root = Path(__file__).resolve().parents[2]
        compose = yaml.safe_load((root / "docker" / "compose.yaml").read_text())
        engine = compose["services"]["engine"]["environment"]
        subnet = compose["networks"]["ivr"]["ipam"]["config"][0]["subnet"]
        asterisk = compose["services"]["asterisk"]["networks"]["ivr"]["ipv4_address"]
        peers = PeerFilter("FastAGI", engine["IVR_AGI_HOST"], engine["IVR_AGI_ALLOW"])
        assert engine["IVR_AGI_ALLOW"] == subnet
        assert peers.admits((asterisk, 40000)) and not peers.admits(("192.0.2.1", 40000))
