"""AMI classes over TCP: the engine logs in as the user of the rendered manager.conf, and
the emulated Asterisk sends it only the events of the classes it reads, refuses the
actions of classes it does not write, and presence still follows phones with that."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from ivr.ami import AmiActionError, AmiClient, AmiConfig, AmiEvent
from ivr.ami.protocol import AmiParser, Message
from ivr.centre.presence import UNREACHABLE, Presence
from ivr.deploy import load_deployment, render
from ivr.emulator.ami import AmiServer, AmiUser, users_from_manager_conf
from ivr.emulator.ami_classes import ALL_CLASSES
from routing.memory import Agent
from routing.redis import RedisRouter
from tests.unit.deploy.conftest import EXAMPLE, SECRETS

ENGINE_USER = load_deployment(EXAMPLE).ami.user


def manager_conf_users() -> dict[str, AmiUser]:
    """The users Asterisk would have with the manager.conf the deployment renders."""
    rendered = render(load_deployment(EXAMPLE), environ=SECRETS)
    users = users_from_manager_conf(rendered["manager.conf"])
    everything = frozenset(ALL_CLASSES)
    users["watch"] = AmiUser("watch-secret", read=everything, write=frozenset({"reporting"}))
    return users


def login(server: AmiServer, user: str = ENGINE_USER, secret: str = "") -> AmiClient:
    return AmiClient(
        AmiConfig(
            host=server.host,
            port=server.port,
            username=user,
            secret=secret or SECRETS["AMI_SECRET"],
            action_timeout=2.0,
            ping_interval=0,
        )
    )


@pytest.fixture
async def server() -> AsyncIterator[AmiServer]:
    srv = AmiServer(users=manager_conf_users(), login_failure_delay=0.05)
    srv.pbx.add_endpoint("PJSIP/1001")
    await srv.start()
    try:
        yield srv
    finally:
        await srv.close()


async def until(check: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, "not within the deadline"
        await asyncio.sleep(0.02)


class TestEvents:
    async def test_only_the_classes_read_are_delivered(self, server: AmiServer) -> None:
        """DTMF (every key on the PBX), ContactStatus / PeerStatus / FullyBooted (system),
        VarSet / Newexten (dialplan) never reach the engine's user; DeviceStateChange and
        the channel events (call) do. A user reading everything gets them all, so they
        were raised."""
        engine, watch = login(server), login(server, "watch", "watch-secret")
        heard: dict[str, list[AmiEvent]] = {"engine": [], "watch": []}
        engine.on("*", heard["engine"].append)
        watch.on("*", heard["watch"].append)
        await engine.connect()
        await watch.connect()
        try:
            pbx = server.pbx
            chan = pbx.endpoint_channel("PJSIP/1001", state=6)
            pbx.newexten(chan, "Wait", "10")
            pbx.dtmf(chan, "5")
            pbx.varset(chan, "IVR_SECRET_PIN", "1234")
            pbx.set_registered("PJSIP/1001", False)
            await engine.ping()  # every event written before the Pong has arrived
            await watch.ping()
        finally:
            await engine.close()
            await watch.close()
        seen = {who: [e.name for e in events] for who, events in heard.items()}
        assert seen["engine"] == ["Newchannel", "DeviceStateChange"]
        assert set(seen["watch"]) >= {
            "FullyBooted", "SuccessfulAuth", "Newchannel", "Newexten", "DTMFBegin", "DTMFEnd",
            "VarSet", "ContactStatus", "PeerStatus", "DeviceStateChange",
        }  # fmt: skip
        state = next(e for e in heard["engine"] if e.name == "DeviceStateChange")
        assert (state.get("Device"), state.get("State")) == ("PJSIP/1001", "UNAVAILABLE")
        assert state.get("Privilege") == "call,all"

    async def test_login_events_mask(self, server: AmiServer) -> None:
        """``Events: call`` at login narrows even a user reading everything (set_eventmask):
        no FullyBooted (system), no DTMF; ``Events: off``: nothing at all."""

        async def session(events: str) -> list[Message]:
            reader, writer = await asyncio.open_connection(server.host, server.port)
            writer.write(
                b"Action: Login\r\nUsername: watch\r\nSecret: watch-secret\r\n"
                + f"Events: {events}\r\n\r\n".encode()
            )
            parser = AmiParser()
            got: list[Message] = []
            while not any(m.response for m in got):
                got += parser.feed(await asyncio.wait_for(reader.read(65536), 2))
            chan = server.pbx.endpoint_channel("PJSIP/1001", state=6)
            server.pbx.dtmf(chan, "1")
            writer.write(b"Action: Ping\r\nActionID: p\r\n\r\n")
            while not any(m.action_id == "p" for m in got):
                got += parser.feed(await asyncio.wait_for(reader.read(65536), 2))
            writer.close()
            return got

        narrowed = [m.event for m in await session("call") if m.event]
        assert narrowed == ["Newchannel"]
        assert [m.event for m in await session("off") if m.event] == []
        everything = [m.event for m in await session("on") if m.event]
        assert everything[:2] == ["FullyBooted", "SuccessfulAuth"]
        assert {"Newchannel", "DTMFBegin", "DTMFEnd"} <= set(everything)

    async def test_events_action_changes_the_mask(self, server: AmiServer) -> None:
        """Action Events (any user): ``EventMask: call`` turns call events on (``Events:
        On``), an empty mask is ``Invalid event mask`` (action_events)."""
        reader, writer = await asyncio.open_connection(server.host, server.port)
        parser = AmiParser()
        got: list[Message] = []

        async def until_reply(action_id: str) -> Message:
            while not any(m.action_id == action_id and m.response for m in got):
                got.extend(parser.feed(await asyncio.wait_for(reader.read(65536), 2)))
            return next(m for m in got if m.action_id == action_id and m.response)

        writer.write(
            b"Action: Login\r\nActionID: l\r\nUsername: watch\r\nSecret: watch-secret\r\n"
            b"Events: off\r\n\r\n"
        )
        assert (await until_reply("l")).response == "Success"
        writer.write(b"Action: Events\r\nActionID: e\r\nEventMask: call\r\n\r\n")
        assert (await until_reply("e")).headers == (
            ("Response", "Success"), ("ActionID", "e"), ("Events", "On"),
        )  # fmt: skip
        chan = server.pbx.endpoint_channel("PJSIP/1001", state=6)
        server.pbx.dtmf(chan, "9")
        writer.write(b"Action: Events\r\nActionID: x\r\nEventMask: \r\n\r\n")
        assert (await until_reply("x")).get("Message") == "Invalid event mask"
        writer.close()
        assert [m.event for m in got if m.event] == ["Newchannel"]


class TestActions:
    async def test_the_engine_user_may_do_what_the_engine_does(self, server: AmiServer) -> None:
        """Originate (originate), Hangup and DeviceStateList (call), CoreShowChannels
        (reporting); and hears its OriginateResponse (call)."""
        server.pbx.add_endpoint("PJSIP/2001")
        engine = login(server)
        await engine.connect()
        try:
            response = await engine.originate("PJSIP/2001", application="Wait", data="5")
            assert response.success
            channels = await engine.core_show_channels()
            assert [c.channel.channel for c in channels] == [response.channel]
            assert (await engine.device_states())["PJSIP/2001"] == "INUSE"
            await engine.hangup(response.channel)
        finally:
            await engine.close()

    async def test_an_action_of_a_class_not_written_is_refused(self, server: AmiServer) -> None:
        """process_message: ``Response: Error`` / ``Message: Permission denied``; Hangup
        needs system or call, which this user does not write."""
        server.users["weak"] = AmiUser("weak-secret", write=frozenset({"originate", "reporting"}))
        weak = login(server, "weak", "weak-secret")
        chan = server.pbx.endpoint_channel("PJSIP/1001", state=6)
        await weak.connect()
        try:
            with pytest.raises(AmiActionError, match="Permission denied") as info:
                await weak.hangup(chan.name)
        finally:
            await weak.close()
        assert info.value.reason == "Permission denied"
        assert chan.name in server.pbx.channels  # still up

    async def test_a_user_who_cannot_resync_is_not_left_connected(self, server: AmiServer) -> None:
        """CoreShowChannels needs system or reporting: the refused resync fails connect()
        and closes the link (no half-connected client)."""
        server.users["blind"] = AmiUser("blind-secret", write=frozenset({"originate", "call"}))
        blind = login(server, "blind", "blind-secret")
        with pytest.raises(AmiActionError, match="may not run CoreShowChannels"):
            await blind.connect()
        assert not blind.connected
        await until(lambda: _no_sessions(server))


async def _no_sessions(server: AmiServer) -> bool:
    return not server.sessions


class TestPresence:
    async def test_an_unreachable_phone_pauses_its_agent(
        self, server: AmiServer, redis_url: str
    ) -> None:
        """With the rendered user's classes (no system: no ContactStatus), an agent whose
        phone becomes unavailable is paused, and resumed when it is back."""
        router = RedisRouter.connect(redis_url)
        await router.redis.flushall()
        await router.start()
        await router.add_agents([Agent("ann", "PJSIP/1001", {"sales": 5})])
        await router.login("ann")
        presence = Presence(router)
        contacts: list[AmiEvent] = []
        engine = AmiClient(login(server).config, on_resync=presence.resync)
        presence.attach(engine)
        engine.on("ContactStatus", contacts.append)
        await engine.connect()

        async def state_is(wanted: str) -> bool:
            await engine.ping()
            await presence.settled()
            return await router.agent_state("ann") == wanted

        try:
            server.pbx.set_registered("PJSIP/1001", False)
            await until(lambda: state_is("paused"))
            ann = await router.agent("ann")
            assert ann is not None and ann["reason"] == UNREACHABLE
            server.pbx.set_registered("PJSIP/1001", True)
            await until(lambda: state_is("available"))
            assert contacts == []  # it followed DeviceStateChange alone
        finally:
            await engine.close()
            await presence.close()
            await router.close()
