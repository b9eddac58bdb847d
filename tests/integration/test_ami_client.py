"""The AMI client against the emulated Asterisk AMI, over TCP."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from ivr.ami import (
    AmiClient,
    AmiConfig,
    AmiConnectionError,
    AmiInjectionError,
    AmiLoginError,
    AmiSetupError,
    ChanSpyStart,
    ChanSpyStop,
    DeviceStateChange,
    Hangup,
    Resync,
)
from ivr.ami.events import ContactStatus, Newchannel
from ivr.emulator.ami import AmiServer, AmiUser


def config(server: AmiServer, **kw: object) -> AmiConfig:
    values: dict[str, object] = {
        "host": server.host,
        "port": server.port,
        "username": "ivr",
        "secret": "ivr-secret",
        "action_timeout": 2.0,
        "ping_interval": 0,
        "backoff_initial": 0.1,
    }
    values.update(kw)
    return AmiConfig(**values)  # type: ignore[arg-type]


@pytest.fixture
async def server() -> AsyncIterator[AmiServer]:
    srv = AmiServer(login_failure_delay=0.05)
    srv.pbx.add_endpoint("PJSIP/200")
    srv.pbx.add_endpoint("PJSIP/201", outcome="noanswer", ring=0.2)
    srv.pbx.add_endpoint("PJSIP/900")
    await srv.start()
    try:
        yield srv
    finally:
        await srv.close()


@pytest.fixture
async def client(server: AmiServer) -> AsyncIterator[AmiClient]:
    ami = AmiClient(config(server))
    await ami.connect()
    try:
        yield ami
    finally:
        await ami.close()


class TestLogin:
    async def test_version_from_the_banner(self, client: AmiClient) -> None:
        """The client logs in and reads the AMI version Asterisk 22 announces."""
        assert client.connected
        assert client.version == "11.0.0"
        assert await client.ping() < 1.0

    async def test_refused_login_says_what_to_check(self, server: AmiServer) -> None:
        """A wrong secret raises AmiLoginError naming the user and the variables to fix."""
        ami = AmiClient(config(server, secret="wrong"))
        with pytest.raises(AmiLoginError) as info:
            await ami.connect()
        text = str(info.value)
        assert "'ivr'" in text and "Authentication failed" in text and "IVR_AMI_SECRET" in text
        assert not ami.connected

    async def test_unreachable_asterisk(self) -> None:
        """No AMI listening: AmiConnectionError with host and port."""
        srv = AmiServer()
        await srv.start()
        port = srv.port
        await srv.close()
        ami = AmiClient(AmiConfig(port=port, username="u", secret="s", connect_timeout=1))
        with pytest.raises(AmiConnectionError, match=f"127.0.0.1:{port}"):
            await ami.connect()


class TestActions:
    async def test_originate_app_answered(self, client: AmiClient, server: AmiServer) -> None:
        """Originate is sent Async and returns the OriginateResponse once the phone answers."""
        response = await client.originate("PJSIP/200", application="Wait", data="1")
        assert response.success and response.reason == 4 and response.reason_text == "answered"
        sent = server.pbx.channels  # the answered channel is up in the PBX
        assert any(name.startswith("PJSIP/200-") for name in sent)

    async def test_originate_no_answer(self, client: AmiClient) -> None:
        """A phone that does not answer gives a Failure response with reason 3 (ringing)."""
        response = await client.originate("PJSIP/201", application="Wait", data="1", timeout=5)
        assert not response.success and response.reason == 3

    async def test_originate_refuses_system_apps(self, client: AmiClient) -> None:
        """Without `system`, Asterisk refuses Originate of System/AGI; the client raises."""
        from ivr.ami import AmiActionError

        with pytest.raises(AmiActionError, match="blacklisted"):
            await client.originate("PJSIP/200", application="System", data="true")

    async def test_event_list_collected(self, client: AmiClient, server: AmiServer) -> None:
        """CoreShowChannels returns its items as one list of typed records."""
        await client.originate("PJSIP/200", application="Wait", data="1")
        channels = await client.core_show_channels()
        assert [c.channel.channel for c in channels] == list(server.pbx.channels)
        assert channels[0].application == "Wait"

    async def test_device_states(self, client: AmiClient, server: AmiServer) -> None:
        """DeviceStateList maps each endpoint to its state."""
        server.pbx.set_registered("PJSIP/201", False)
        states = await client.device_states()
        assert states == {
            "PJSIP/200": "NOT_INUSE",
            "PJSIP/201": "UNAVAILABLE",
            "PJSIP/900": "NOT_INUSE",
        }

    async def test_injection_refused_before_sending(
        self, client: AmiClient, server: AmiServer
    ) -> None:
        """A CR/LF in any value raises, naming the header; nothing reaches Asterisk."""
        before = len(server.actions)
        with pytest.raises(AmiInjectionError, match="'CallerID'"):
            await client.originate(
                "PJSIP/200", application="Wait", caller_id="Bob\r\nAction: Originate"
            )
        with pytest.raises(AmiInjectionError, match="'Variable'"):
            await client.originate("PJSIP/200", application="Wait", variables={"X": "1\n"})
        assert len(server.actions) == before

    async def test_setvar_getvar(self, client: AmiClient) -> None:
        """Global variables round-trip through Setvar and Getvar."""
        await client.setvar("IVR_MODE", "night")
        assert await client.getvar("IVR_MODE") == "night"


class TestEvents:
    async def test_typed_events_by_name(self, client: AmiClient, server: AmiServer) -> None:
        """Subscribers get typed records for the events they named."""
        hangups: list[Hangup] = []
        client.on("Hangup", hangups.append)
        async with client.events("Newchannel") as stream:
            response = await client.originate("PJSIP/200", application="Wait", data="1")
            event = await stream.get(timeout=2)
        assert isinstance(event, Newchannel) and event.channel.channel.startswith("PJSIP/200-")
        await client.hangup(next(iter(server.pbx.channels)))
        await asyncio.sleep(0.05)
        assert [h.channel.uniqueid for h in hangups] == [response.uniqueid]
        assert hangups[0].cause == 16 and hangups[0].cause_txt == "Normal Clearing"

    async def test_supervisor_barge(self, client: AmiClient, server: AmiServer) -> None:
        """spy(..., "barge") rings the supervisor and ChanSpies exactly the agent's channel."""
        agent = server.pbx.endpoint_channel("PJSIP/200", state=6)
        server.pbx.endpoint_channel("PJSIP/2000", state=6)  # a prefix look-alike
        async with client.events("ChanSpyStart", "ChanSpyStop") as stream:
            response = await client.spy("PJSIP/900", agent.name, "barge")
            start = await stream.get(timeout=2)
            assert response.success
            server.pbx.end_call(agent)
            stop = await stream.get(timeout=2)
        assert isinstance(start, ChanSpyStart) and start.spyee.channel == agent.name
        assert start.spyer.channel.startswith("PJSIP/900-")
        assert isinstance(stop, ChanSpyStop)
        (record,) = server.pbx.spies
        assert (record.target, record.options, record.spied) == (agent.name, "qEuB", agent.name)

    async def test_registration_events(self, client: AmiClient, server: AmiServer) -> None:
        """An endpoint that stops answering: the engine's user (class call) hears
        DeviceStateChange UNAVAILABLE; ContactStatus (class system) only a user reading
        system does."""
        server.users["sys"] = AmiUser("sys-secret", read=frozenset({"system", "call"}))
        watcher = AmiClient(config(server, username="sys", secret="sys-secret"))
        await watcher.connect()
        try:
            async with (
                client.events("ContactStatus", "DeviceStateChange") as stream,
                watcher.events("ContactStatus") as contacts,
            ):
                server.pbx.set_registered("PJSIP/200", False)
                contact = await contacts.get(timeout=2)
                device = await stream.get(timeout=2)
                await client.ping()  # anything sent before the Pong has arrived
                assert stream.pending() == []  # no ContactStatus for the engine's user
        finally:
            await watcher.close()
        assert isinstance(contact, ContactStatus) and contact.contact_status == "Unreachable"
        assert isinstance(device, DeviceStateChange)
        assert (device.device, device.state) == ("PJSIP/200", "UNAVAILABLE")

    async def test_callback_agent_first_then_customer(self, server: AmiServer) -> None:
        """Originate to Context/Exten: the agent answers, then the dialplan dials the customer."""
        server.pbx.add_endpoint("PJSIP/5551234")

        async def dial_customer(chan: object) -> None:
            await server.pbx.dial_endpoint(chan, "PJSIP/5551234", "ANSWER", 0.01)  # type: ignore[arg-type]

        server.pbx.extensions[("callbacks", "5551234")] = dial_customer
        ami = AmiClient(config(server))
        await ami.connect()
        try:
            async with ami.events("DialBegin", "BridgeEnter") as stream:
                response = await ami.originate(
                    "PJSIP/200", context="callbacks", exten="5551234", priority=1
                )
                dials = [await stream.get(timeout=2) for _ in range(4)]
        finally:
            await ami.close()
        assert response.success
        names = [e.name for e in dials]
        assert names == ["DialBegin", "DialBegin", "BridgeEnter", "BridgeEnter"]
        assert dials[0].get("DestChannel").startswith("PJSIP/200-")
        assert dials[1].get("DestChannel").startswith("PJSIP/5551234-")


class TestReconnect:
    async def test_resync_after_server_drop_mid_call(self, server: AmiServer) -> None:
        """The server drops the link mid-call: the client reconnects and resyncs within 5 s."""
        resyncs: list[Resync] = []
        ami = AmiClient(config(server), on_resync=resyncs.append)
        await ami.connect()
        try:
            call = server.pbx.endpoint_channel("PJSIP/200", state=6)
            server.pbx._use("PJSIP/200", +1)
            dropped = time.monotonic()
            await server.restart(down_for=0.3)
            while len(resyncs) < 2 and time.monotonic() - dropped < 5:
                await asyncio.sleep(0.02)
            took = time.monotonic() - dropped
            assert len(resyncs) == 2, "no resync within 5 s"
            assert took < 5.0
            latest = resyncs[-1]
            assert latest.reconnected and ami.reconnects == 1
            assert [c.channel.channel for c in latest.channels] == [call.name]
            assert latest.device_states["PJSIP/200"] == "INUSE"
            assert await ami.ping() < 1.0
        finally:
            await ami.close()

    async def test_action_in_flight_fails_fast(self, server: AmiServer) -> None:
        """An Originate waiting when the link drops fails at once instead of being re-sent later."""
        server.pbx.add_endpoint("PJSIP/202", ring=5.0)
        server.speed = 1.0
        ami = AmiClient(config(server))
        await ami.connect()
        try:
            pending = asyncio.create_task(
                ami.originate("PJSIP/202", application="Wait", timeout=10)
            )
            await asyncio.sleep(0.1)
            await server.drop_connections()
            with pytest.raises(AmiConnectionError, match="may or may not have run"):
                await asyncio.wait_for(pending, 2)
            await ami.wait_connected(5)
            originates = [a for a in server.actions if a.get("Action") == "Originate"]
            assert len(originates) <= 1  # never sent again by the client
        finally:
            await ami.close()

    async def test_least_privilege_user(self, server: AmiServer) -> None:
        """A user without system read gets no FullyBooted and still works."""
        server.users["lp"] = AmiUser("pw", read=frozenset({"call", "reporting"}))
        ami = AmiClient(config(server, username="lp", secret="pw"))
        await ami.connect()
        try:
            assert (await ami.originate("PJSIP/900", application="Wait")).success
        finally:
            await ami.close()


async def test_a_missing_module_is_named_not_taken_for_an_unreachable_asterisk(
    server: AmiServer,
) -> None:
    """Without res_manager_devicestate (autoload=no and not loaded, as a real 22.9.0 ran the
    old modules.conf), DeviceStateList is an unknown command: connect() says which module
    to load, and does not stay half up."""
    server.unload("res_manager_devicestate")
    ami = AmiClient(config(server))
    with pytest.raises(AmiSetupError, match=r"load res_manager_devicestate\.so"):
        await ami.connect()
    assert not ami.connected
    await ami.close()


async def test_device_states_need_their_module(server: AmiServer) -> None:
    """The emulated Asterisk without res_manager_devicestate forwards no DeviceStateChange."""
    server.unload("res_manager_devicestate")
    ami = AmiClient(config(server), resync_devices=False)
    await ami.connect()
    try:
        async with ami.events("DeviceStateChange") as stream:
            server.pbx.device_state("PJSIP/200", "UNAVAILABLE")
            await ami.ping()  # every event written before the Pong has arrived
            assert stream.pending() == []
    finally:
        await ami.close()
